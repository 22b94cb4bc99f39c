// portcullis-dircache-bench: the cost of a warm directory-cache hit (CachingDirectory in front
// of a backend) next to FileDirectory::groups_for for the same users and groups, in process.
// Also prints the cost of a miss against a backend that answers at once (the cache's own
// overhead on a cold lookup; a real LDAP lookup adds its round trips). A profiling aid for
// docs/PERFORMANCE.md, not a test: it never decides pass/fail on speed.
//
//   portcullis-dircache-bench [--iterations N] [--users U] [--groups G] [--threads T]
#include "plugin/dircache.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace portcullis;
using Clock = std::chrono::steady_clock;

std::string group_name(int g) {
  return "cn=group" + std::to_string(g) + ",ou=groups,dc=example";
}

// Answers at once: every user is found with the same groups.
class InstantBackend final : public DirectoryBackend {
public:
  explicit InstantBackend(int groups) {
    for (int g = 0; g < groups; ++g)
      answer_.groups.push_back({group_name(g), group_name(g), {}, "member"});
    answer_.status = LookupStatus::found;
  }
  UserLookup lookup(const std::string &user) override {
    UserLookup l = answer_;
    l.user_dn = "uid=" + user + ",ou=people,dc=example";
    return l;
  }
  std::string describe() const override { return "instant"; }

private:
  UserLookup answer_;
};

// ns per call of `fn(user)` over `iterations` calls spread on `threads` threads.
template <class F>
double ns_per_call(F fn, const std::vector<std::string> &users, long iterations, int threads) {
  std::atomic<std::size_t> sink{0};
  const auto t0 = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      std::size_t local = 0;
      for (long i = t; i < iterations; i += threads)
        local += fn(users[static_cast<std::size_t>(i) % users.size()]).groups.size();
      sink += local;
    });
  for (auto &th : pool)
    th.join();
  const double ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
  if (sink.load() == 0) std::fprintf(stderr, "warning: no groups returned\n");
  return ns * threads / static_cast<double>(iterations); // CPU ns per call
}

} // namespace

int main(int argc, char **argv) {
  long iterations = 2'000'000;
  int users = 1000, groups = 8, threads = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i];
    const long v = std::strtol(argv[i + 1], nullptr, 10);
    if (v <= 0) {
      std::fprintf(stderr, "%s: expected a positive number\n", k);
      return 2;
    }
    if (!std::strcmp(k, "--iterations"))
      iterations = v;
    else if (!std::strcmp(k, "--users"))
      users = static_cast<int>(v);
    else if (!std::strcmp(k, "--groups"))
      groups = static_cast<int>(v);
    else if (!std::strcmp(k, "--threads"))
      threads = static_cast<int>(v);
    else {
      std::fprintf(stderr, "usage: %s [--iterations N] [--users U] [--groups G] [--threads T]\n",
                   argv[0]);
      return 2;
    }
  }

  std::vector<std::string> names;
  std::string yaml = "users:\n";
  for (int u = 0; u < users; ++u) {
    names.push_back("user" + std::to_string(u));
    yaml += "  " + names.back() + ": [";
    for (int g = 0; g < groups; ++g)
      yaml += (g ? ", \"" : "\"") + group_name(g) + "\"";
    yaml += "]\n";
  }
  std::string error;
  auto file = FileDirectory::parse(yaml, "bench.yaml", error);
  if (!file) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }

  DirectoryCacheConfig cfg;
  cfg.positive_ttl_ms = 3'600'000; // nothing expires or refreshes during the run
  cfg.refresh_ahead = 0.99;
  cfg.max_entries = static_cast<std::size_t>(users);
  CachingDirectory cache(std::make_shared<InstantBackend>(groups), cfg);

  const auto file_fn = [&](const std::string &u) { return file->groups_for(u); };
  const auto cache_fn = [&](const std::string &u) { return cache.groups_for(u); };

  // Cold: every call a miss (flush before each round of users).
  const long cold_iterations = std::min<long>(iterations / 10, 200'000);
  double cold_ns = 0;
  {
    long done = 0;
    const auto t0 = Clock::now();
    while (done < cold_iterations) {
      cache.flush();
      for (const auto &u : names) {
        if (done++ >= cold_iterations) break;
        cache.groups_for(u);
      }
    }
    cold_ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count() /
              static_cast<double>(cold_iterations);
  }
  for (const auto &u : names) // warm
    cache.groups_for(u);
  const auto before = cache.stats();

  ns_per_call(file_fn, names, iterations / 10, threads); // warm-up
  const double file_ns = ns_per_call(file_fn, names, iterations, threads);
  const double hit_ns = ns_per_call(cache_fn, names, iterations, threads);
  const double file_ns2 = ns_per_call(file_fn, names, iterations, threads);
  const double file_best = std::min(file_ns, file_ns2);
  const auto after = cache.stats();

  std::printf("users %d, groups per user %d, threads %d, iterations %ld\n", users, groups, threads,
              iterations);
  std::printf("FileDirectory::groups_for          %8.1f ns/call\n", file_best);
  std::printf("CachingDirectory hit               %8.1f ns/call  (%.2fx file)\n", hit_ns,
              hit_ns / file_best);
  std::printf("CachingDirectory miss (instant be) %8.1f ns/call\n", cold_ns);
  std::printf("hits during the hit run %llu, misses %llu\n",
              static_cast<unsigned long long>(after.hits - before.hits),
              static_cast<unsigned long long>(after.misses - before.misses));
  return 0;
}
