#include "plugin/dircache.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <doctest/doctest.h>
#include <latch>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

using namespace portcullis;
using namespace std::chrono_literals;

namespace {

UserLookup found(std::vector<std::string> groups, std::string dn = "uid=u,dc=example") {
  UserLookup l;
  l.status = LookupStatus::found;
  l.user_dn = std::move(dn);
  for (auto &g : groups)
    l.groups.push_back({g, "cn=" + g, {}, "member"});
  return l;
}
UserLookup status(LookupStatus s, std::string error = {}) {
  UserLookup l;
  l.status = s;
  l.error = std::move(error);
  return l;
}
UserLookup not_found() {
  return status(LookupStatus::not_found, "no such user");
}
UserLookup unreachable() {
  return status(LookupStatus::unreachable, "Can't contact LDAP server");
}
UserLookup failed() {
  return status(LookupStatus::failed, "2 entries for one user");
}

// Scripted answers per user, a call counter, an optional delay and an optional gate that holds
// every lookup until opened.
class FakeBackend final : public DirectoryBackend {
public:
  UserLookup lookup(const std::string &user) override {
    calls.fetch_add(1);
    {
      std::unique_lock<std::mutex> lock(mu_);
      ++waiting_;
      changed_.notify_all();
      changed_.wait(lock, [&] { return !held_; });
      --waiting_;
    }
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    std::lock_guard<std::mutex> lock(mu_);
    if (throw_) throw std::runtime_error("boom");
    auto it = answers_.find(user);
    return it == answers_.end() ? not_found() : it->second;
  }
  std::string describe() const override { return "fake"; }
  std::optional<std::string> binding_key(const std::string &group,
                                         std::string &error) const override {
    if (group.empty()) {
      error = "empty group";
      return std::nullopt;
    }
    return "key:" + group;
  }

  void set(const std::string &user, UserLookup l) {
    std::lock_guard<std::mutex> lock(mu_);
    answers_[user] = std::move(l);
  }
  void set_throw(bool t) {
    std::lock_guard<std::mutex> lock(mu_);
    throw_ = t;
  }
  void hold() {
    std::lock_guard<std::mutex> lock(mu_);
    held_ = true;
  }
  void release() {
    std::lock_guard<std::mutex> lock(mu_);
    held_ = false;
    changed_.notify_all();
  }
  // Waits (bounded) until `n` lookups are held at the gate.
  bool wait_held(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return changed_.wait_for(lock, 5s, [&] { return waiting_ >= n; });
  }

  std::atomic<int> calls{0};
  std::chrono::milliseconds delay{0};

private:
  std::mutex mu_;
  std::condition_variable changed_;
  std::map<std::string, UserLookup> answers_;
  bool held_ = false, throw_ = false;
  int waiting_ = 0;
};

struct FakeClock {
  std::shared_ptr<std::atomic<long long>> ms = std::make_shared<std::atomic<long long>>(1'000'000);
  CachingDirectory::ClockFn fn() const {
    auto p = ms;
    return
        [p] { return std::chrono::steady_clock::time_point(std::chrono::milliseconds(p->load())); };
  }
  void advance(long long d) { ms->fetch_add(d); }
};

DirectoryCacheConfig cfg(long long pos = 1000, long long neg = 100, double ahead = 0,
                         long long grace = 0, std::size_t max = 100) {
  DirectoryCacheConfig c;
  c.positive_ttl_ms = pos;
  c.negative_ttl_ms = neg;
  c.refresh_ahead = ahead;
  c.stale_grace_ms = grace;
  c.max_entries = max;
  return c;
}

// Polls `pred` for up to 5 s.
template <class F> bool eventually(F pred) {
  for (int i = 0; i < 500; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

} // namespace

TEST_CASE("dircache: positive hit, result shape, TTL expiry re-asks the backend") {
  auto be = std::make_shared<FakeBackend>();
  FakeClock clock;
  be->set("alice", found({"ops", "dev", "ops"}, "uid=alice,dc=example"));
  CachingDirectory dir(be, cfg(), clock.fn());

  auto r = dir.groups_for("alice");
  REQUIRE(r.ok);
  CHECK(r.found);
  CHECK(r.cache == "miss");
  CHECK(r.groups == std::vector<std::string>{"dev", "ops"});
  REQUIRE(r.memberships.size() == 2);
  CHECK(r.memberships[0].key == "dev");
  CHECK(r.memberships[0].display == "cn=dev");
  CHECK(r.user_dn == "uid=alice,dc=example");
  CHECK(be->calls == 1);

  clock.advance(999);
  r = dir.groups_for("alice");
  CHECK(r.ok);
  CHECK(r.cache == "hit");
  CHECK(r.groups == std::vector<std::string>{"dev", "ops"});
  CHECK(be->calls == 1);

  // The key is the exact user string.
  r = dir.groups_for("Alice");
  CHECK(r.ok);
  CHECK_FALSE(r.found);
  CHECK(be->calls == 2);

  clock.advance(1);
  r = dir.groups_for("alice");
  CHECK(r.cache == "miss");
  CHECK(be->calls == 3);
  auto s = dir.stats();
  CHECK(s.hits == 1);
  CHECK(s.misses == 3);
  CHECK(s.backend_lookups == 3);
}

TEST_CASE("dircache: removal from a group takes effect after the TTL") {
  auto be = std::make_shared<FakeBackend>();
  FakeClock clock;
  be->set("bob", found({"admins", "dev"}));
  CachingDirectory dir(be, cfg(), clock.fn());
  CHECK(dir.groups_for("bob").groups == std::vector<std::string>{"admins", "dev"});
  be->set("bob", found({"dev"}));
  clock.advance(500);
  CHECK(dir.groups_for("bob").groups == std::vector<std::string>{"admins", "dev"});
  clock.advance(500);
  auto r = dir.groups_for("bob");
  CHECK(r.cache == "miss");
  CHECK(r.groups == std::vector<std::string>{"dev"});
}

TEST_CASE("dircache: negative answers are cached for the negative TTL") {
  auto be = std::make_shared<FakeBackend>();
  FakeClock clock;
  CachingDirectory dir(be, cfg(1000, 100), clock.fn());
  auto r = dir.groups_for("ghost");
  CHECK(r.ok);
  CHECK_FALSE(r.found);
  CHECK(r.groups.empty());
  CHECK(r.error.empty());
  CHECK(r.cache == "miss");
  clock.advance(99);
  r = dir.groups_for("ghost");
  CHECK(r.ok);
  CHECK_FALSE(r.found);
  CHECK(r.cache == "hit");
  CHECK(be->calls == 1);
  be->set("ghost", found({"g"}));
  clock.advance(1);
  r = dir.groups_for("ghost");
  CHECK(r.found);
  CHECK(r.groups == std::vector<std::string>{"g"});
  CHECK(be->calls == 2);
}

TEST_CASE("dircache: errors are never cached") {
  auto be = std::make_shared<FakeBackend>();
  FakeClock clock;
  CachingDirectory dir(be, cfg(), clock.fn());
  be->set("carol", unreachable());
  for (int i = 1; i <= 3; ++i) {
    auto r = dir.groups_for("carol");
    CHECK_FALSE(r.ok);
    CHECK(r.unreachable);
    CHECK(r.groups.empty());
    CHECK(r.error.find("unreachable") != std::string::npos);
    CHECK(r.error.find("Can't contact LDAP server") != std::string::npos);
    CHECK(be->calls == i);
  }
  be->set("carol", failed());
  auto r = dir.groups_for("carol");
  CHECK_FALSE(r.ok);
  CHECK_FALSE(r.unreachable);
  CHECK(r.error.find("2 entries for one user") != std::string::npos);
  r = dir.groups_for("carol");
  CHECK_FALSE(r.ok);
  CHECK(be->calls == 5);
  CHECK(dir.size() == 0);
  CHECK(dir.stats().backend_errors == 5);

  // Recovery without anything else: the next good answer is used and cached.
  be->set("carol", found({"x"}));
  r = dir.groups_for("carol");
  CHECK(r.ok);
  CHECK(r.groups == std::vector<std::string>{"x"});
  CHECK(dir.groups_for("carol").cache == "hit");
  CHECK(be->calls == 6);
}

TEST_CASE("dircache: a throwing backend is a failed lookup, not an exception") {
  auto be = std::make_shared<FakeBackend>();
  be->set_throw(true);
  CachingDirectory dir(be, cfg());
  auto r = dir.groups_for("dave");
  CHECK_FALSE(r.ok);
  CHECK_FALSE(r.unreachable);
  CHECK(r.error.find("boom") != std::string::npos);
  CHECK(dir.size() == 0);
}

TEST_CASE("dircache: concurrent misses of one user make one backend call") {
  auto be = std::make_shared<FakeBackend>();
  be->delay = 100ms;
  be->set("erin", found({"dev"}));
  CachingDirectory dir(be, cfg(60'000, 1000));
  constexpr int N = 8;
  std::latch start(N);
  std::vector<DirectoryResult> results(N);
  std::vector<std::thread> threads;
  for (int i = 0; i < N; ++i)
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      results[i] = dir.groups_for("erin");
    });
  for (auto &t : threads)
    t.join();
  CHECK(be->calls == 1);
  for (const auto &r : results) {
    CHECK(r.ok);
    CHECK(r.groups == std::vector<std::string>{"dev"});
    CHECK((r.cache == "miss" || r.cache == "hit")); // a late thread may find the stored entry
  }
  // Different users do not wait for each other's flight.
  be->set("frank", found({"ops"}));
  std::thread t1([&] { CHECK(dir.groups_for("frank").ok); });
  std::thread t2([&] { CHECK(dir.groups_for("gina").ok); });
  t1.join();
  t2.join();
  CHECK(be->calls == 3);
}

TEST_CASE("dircache: a failed single flight answers every waiter with the error") {
  auto be = std::make_shared<FakeBackend>();
  be->set("hank", unreachable());
  be->hold();
  CachingDirectory dir(be, cfg());
  std::vector<DirectoryResult> results(4);
  std::vector<std::thread> threads;
  threads.emplace_back([&] { results[0] = dir.groups_for("hank"); });
  REQUIRE(be->wait_held(1));
  for (int i = 1; i < 4; ++i)
    threads.emplace_back([&, i] { results[i] = dir.groups_for("hank"); });
  std::this_thread::sleep_for(50ms); // let the others reach the wait
  be->release();
  for (auto &t : threads)
    t.join();
  CHECK(be->calls == 1);
  for (const auto &r : results) {
    CHECK_FALSE(r.ok);
    CHECK(r.unreachable);
  }
  // Not cached: the next call asks again.
  dir.groups_for("hank");
  CHECK(be->calls == 2);
}

TEST_CASE("dircache: refresh ahead answers from the cache and updates in the background") {
  auto be = std::make_shared<FakeBackend>();
  FakeClock clock;
  be->set("ivy", found({"admins", "dev"}));
  CachingDirectory dir(be, cfg(1000, 100, 0.5), clock.fn());
  CHECK(dir.groups_for("ivy").cache == "miss");
  clock.advance(499);
  CHECK(dir.groups_for("ivy").cache == "hit"); // not yet old enough
  CHECK(be->calls == 1);

  be->set("ivy", found({"dev"})); // removed from admins
  be->hold();
  clock.advance(1);
  auto r = dir.groups_for("ivy");
  CHECK(r.ok);
  CHECK(r.cache == "refresh");
  CHECK(r.groups == std::vector<std::string>{"admins", "dev"}); // the cached answer, now
  REQUIRE(be->wait_held(1));
  // While the refresh is under way, hits do not schedule another one.
  for (int i = 0; i < 5; ++i)
    CHECK(dir.groups_for("ivy").cache == "hit");
  be->release();
  REQUIRE(eventually([&] { return dir.stats().refreshes == 1; }));
  CHECK(
      eventually([&] { return dir.groups_for("ivy").groups == std::vector<std::string>{"dev"}; }));
  CHECK(be->calls == 2);
  // The refreshed entry lives a full TTL from the refresh.
  clock.advance(900);
  r = dir.groups_for("ivy");
  CHECK(r.cache == "refresh");
  REQUIRE(eventually([&] { return dir.stats().refreshes == 2; }));

  // A refresh that says "not found" replaces the entry.
  be->set("ivy", not_found());
  clock.advance(500);
  CHECK(dir.groups_for("ivy").cache == "refresh");
  REQUIRE(eventually([&] { return dir.stats().refreshes == 3; }));
  CHECK(eventually([&] { return !dir.groups_for("ivy").found; }));
  CHECK(dir.groups_for("ivy").ok);
}

TEST_CASE("dircache: a refresh that cannot reach the directory leaves the entry as is") {
  auto be = std::make_shared<FakeBackend>();
  FakeClock clock;
  be->set("jack", found({"dev"}));
  CachingDirectory dir(be, cfg(1000, 100, 0.5), clock.fn());
  REQUIRE(dir.groups_for("jack").ok);
  be->set("jack", unreachable());
  clock.advance(500); // old enough to refresh; an error does not renew the entry
  auto before = dir.stats().refreshes;
  auto r = dir.groups_for("jack");
  CHECK(r.cache == "refresh");
  REQUIRE(eventually([&] { return dir.stats().refreshes == before + 1; }));
  clock.advance(100);
  r = dir.groups_for("jack");
  CHECK(r.ok);
  CHECK(r.groups == std::vector<std::string>{"dev"});
  CHECK(r.cache == "refresh"); // the entry was not renewed: still old enough to refresh
  REQUIRE(eventually([&] { return dir.stats().refreshes == before + 2; }));
  CHECK(dir.stats().backend_errors == 2);
  clock.advance(400); // the entry expires on its original schedule
  be->set("jack", found({"ops"}));
  CHECK(dir.groups_for("jack").cache == "miss");
  // Negative entries are not refreshed ahead.
  CachingDirectory neg(be, cfg(1000, 100, 0.5), clock.fn());
  be->set("kate", not_found());
  neg.groups_for("kate");
  clock.advance(90);
  CHECK(neg.groups_for("kate").cache == "hit");
  std::this_thread::sleep_for(20ms);
  CHECK(neg.stats().refreshes == 0);
}

// Review finding: a refresh answered "failed" (e.g. a second entry for the user appeared) kept
// the entry, and a later outage served it stale.
TEST_CASE("dircache: a refresh the directory answers unusably drops the entry, no stale serve") {
  auto be = std::make_shared<FakeBackend>();
  FakeClock clock;
  be->set("jack", found({"admins"}));
  CachingDirectory dir(be, cfg(1000, 100, 0.5, 60000), clock.fn());
  REQUIRE(dir.groups_for("jack").ok);
  be->set("jack", failed());
  clock.advance(600);
  auto before = dir.stats().refreshes;
  CHECK(dir.groups_for("jack").cache == "refresh"); // answered from cache, refresh queued
  REQUIRE(eventually([&] { return dir.stats().refreshes == before + 1; }));
  // The entry is gone: the next request asks the directory and is denied.
  auto r = dir.groups_for("jack");
  CHECK_FALSE(r.ok);
  CHECK(r.error.find("directory lookup failed") != std::string::npos);
  // An outage after that finds nothing to serve stale.
  be->set("jack", unreachable());
  clock.advance(1000);
  r = dir.groups_for("jack");
  CHECK_FALSE(r.ok);
  CHECK(r.unreachable);
  CHECK(dir.stats().stale_served == 0);
}

TEST_CASE("dircache: outage serves expired positive entries within the stale grace") {
  auto be = std::make_shared<FakeBackend>();
  FakeClock clock;
  be->set("liam", found({"dev"}));
  CachingDirectory dir(be, cfg(1000, 100, 0, 5000), clock.fn());
  REQUIRE(dir.groups_for("liam").ok);
  be->set("liam", unreachable());
  clock.advance(1500);
  auto r = dir.groups_for("liam");
  CHECK(r.ok);
  CHECK(r.cache == "stale");
  CHECK(r.groups == std::vector<std::string>{"dev"});
  CHECK(dir.stats().stale_served == 1);
  clock.advance(4499); // expired 4999 ms ago
  r = dir.groups_for("liam");
  CHECK(r.ok);
  CHECK(r.cache == "stale");
  CHECK(be->calls == 3); // every stale serve first asks the backend again
  clock.advance(1);      // expired 5000 ms ago: beyond the grace
  r = dir.groups_for("liam");
  CHECK_FALSE(r.ok);
  CHECK(r.unreachable);
  CHECK(r.groups.empty());
  CHECK(r.error.find("unreachable") != std::string::npos);
  CHECK(r.error.find("stale grace") != std::string::npos);
  CHECK(dir.stats().stale_served == 2);

  // The directory comes back: fresh answers again, without any restart.
  be->set("liam", found({"ops"}));
  r = dir.groups_for("liam");
  CHECK(r.ok);
  CHECK(r.cache == "miss");
  CHECK(r.groups == std::vector<std::string>{"ops"});
}

TEST_CASE("dircache: no stale serving after `failed`, for negative entries, or with no grace") {
  auto be = std::make_shared<FakeBackend>();
  FakeClock clock;
  CachingDirectory dir(be, cfg(1000, 100, 0, 5000), clock.fn());

  be->set("mia", found({"dev"}));
  REQUIRE(dir.groups_for("mia").ok);
  be->set("mia", failed());
  clock.advance(1500);
  auto r = dir.groups_for("mia");
  CHECK_FALSE(r.ok);
  CHECK_FALSE(r.unreachable);
  // ...and a `failed` answer drops the expired entry, so a later outage cannot serve it.
  be->set("mia", unreachable());
  r = dir.groups_for("mia");
  CHECK_FALSE(r.ok);
  CHECK(r.unreachable);

  be->set("ned", not_found());
  REQUIRE(dir.groups_for("ned").ok);
  be->set("ned", unreachable());
  clock.advance(150);
  r = dir.groups_for("ned");
  CHECK_FALSE(r.ok);
  CHECK(r.unreachable);

  // An uncached user during an outage.
  be->set("olga", unreachable());
  r = dir.groups_for("olga");
  CHECK_FALSE(r.ok);
  CHECK(r.unreachable);
  CHECK(r.error.find("directory server unreachable") == 0);
  CHECK(dir.stats().stale_served == 0);

  // Grace 0: expired means gone.
  CachingDirectory strict(be, cfg(1000, 100, 0, 0), clock.fn());
  be->set("pam", found({"dev"}));
  REQUIRE(strict.groups_for("pam").ok);
  be->set("pam", unreachable());
  clock.advance(1000);
  r = strict.groups_for("pam");
  CHECK_FALSE(r.ok);
  CHECK(r.unreachable);
}

TEST_CASE("dircache: max_entries evicts dead entries first, then the least recently used") {
  auto be = std::make_shared<FakeBackend>();
  FakeClock clock;
  for (auto u : {"u1", "u2", "u3", "u4", "u5"})
    be->set(u, found({"g"}));
  CachingDirectory dir(be, cfg(1000, 100, 0, 0, 3), clock.fn());
  dir.groups_for("u1");
  dir.groups_for("u2");
  dir.groups_for("u3");
  CHECK(dir.groups_for("u1").cache == "hit"); // u2 is now the least recently used
  dir.groups_for("u4");
  CHECK(dir.size() == 3);
  CHECK(dir.stats().evictions == 1);
  int calls = be->calls;
  CHECK(dir.groups_for("u1").cache == "hit");
  CHECK(dir.groups_for("u3").cache == "hit");
  CHECK(dir.groups_for("u4").cache == "hit");
  CHECK(be->calls == calls);
  CHECK(dir.groups_for("u2").cache == "miss"); // evicted; u1 (LRU now) makes room
  CHECK(dir.size() == 3);
  CHECK(dir.groups_for("u1").cache == "miss");

  // A dead (expired negative) entry goes before live ones, even when it was used last.
  CachingDirectory d2(be, cfg(1000, 100, 0, 0, 3), clock.fn());
  d2.groups_for("u1");
  d2.groups_for("u2");
  d2.groups_for("nobody");
  CHECK(d2.groups_for("nobody").cache == "hit");
  clock.advance(150);
  d2.groups_for("u5");
  CHECK(d2.size() == 3);
  CHECK(d2.groups_for("u1").cache == "hit");
  CHECK(d2.groups_for("u2").cache == "hit");
  CHECK(d2.groups_for("nobody").cache == "miss");
}

TEST_CASE("dircache: flush drops everything, and answers fetched before it are not stored") {
  auto be = std::make_shared<FakeBackend>();
  be->set("quinn", found({"dev"}));
  CachingDirectory dir(be, cfg(60'000, 1000));
  dir.groups_for("quinn");
  dir.groups_for("nobody");
  CHECK(dir.size() == 2);
  dir.flush();
  CHECK(dir.size() == 0);
  CHECK(dir.groups_for("quinn").cache == "miss");
  CHECK(be->calls == 3);

  dir.flush();
  be->hold();
  DirectoryResult during;
  std::thread t([&] { during = dir.groups_for("quinn"); });
  REQUIRE(be->wait_held(1));
  dir.flush();
  be->release();
  t.join();
  CHECK(during.ok); // the caller still gets its answer
  CHECK(dir.size() == 0);
  CHECK(dir.groups_for("quinn").cache == "miss");
  CHECK(be->calls == 5);
}

TEST_CASE("dircache: destructor with pending refreshes neither hangs nor leaks") {
  auto be = std::make_shared<FakeBackend>();
  FakeClock clock;
  be->delay = 200ms;
  const auto t0 = std::chrono::steady_clock::now();
  {
    CachingDirectory dir(be, cfg(1000, 100, 0.5), clock.fn());
    for (int i = 0; i < 5; ++i) {
      be->set("user" + std::to_string(i), found({"g"}));
      dir.groups_for("user" + std::to_string(i));
    }
    clock.advance(600);
    for (int i = 0; i < 5; ++i)
      CHECK(dir.groups_for("user" + std::to_string(i)).cache == "refresh");
    std::this_thread::sleep_for(20ms); // the refresher is inside its first lookup
  }
  const auto took = std::chrono::steady_clock::now() - t0;
  // 5 misses at 200 ms, then the refresh under way; not the 4 queued ones (that would be 2 s).
  CHECK(took < 1700ms);
  CHECK(be->calls <= 6);
}

TEST_CASE("dircache: delegation and flags") {
  auto be = std::make_shared<FakeBackend>();
  CachingDirectory dir(be, cfg());
  CHECK(dir.describe() == "cached fake");
  CHECK(dir.requires_entry());
  std::string err;
  CHECK(dir.binding_key("ops", err) == std::optional<std::string>("key:ops"));
  CHECK_FALSE(dir.binding_key("", err));
  CHECK(err == "empty group");
  CHECK_THROWS_AS(CachingDirectory(nullptr, cfg()), std::invalid_argument);
}

TEST_CASE("dircache: concurrent hits, misses, refreshes and flushes stay consistent") {
  auto be = std::make_shared<FakeBackend>();
  for (int i = 0; i < 20; ++i)
    be->set("u" + std::to_string(i), found({"g" + std::to_string(i % 3)}));
  CachingDirectory dir(be, cfg(20, 5, 0.5, 50, 8)); // real clock, tiny TTLs and bound
  std::atomic<bool> bad{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        const int u = (i * 7 + t) % 25; // u20..u24 do not exist
        auto r = dir.groups_for("u" + std::to_string(u));
        const bool want_found = u < 20;
        if (!r.ok || r.found != want_found ||
            (want_found && r.groups != std::vector<std::string>{"g" + std::to_string(u % 3)}))
          bad = true;
        if (t == 0 && i % 500 == 0) dir.flush();
      }
    });
  for (auto &t : threads)
    t.join();
  CHECK_FALSE(bad);
  CHECK(dir.size() <= 8);
  auto s = dir.stats();
  CHECK(s.hits + s.misses == 8000);
}
