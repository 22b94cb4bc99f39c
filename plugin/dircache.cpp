// The directory cache (see dircache.hpp for the rules it follows).
#include "plugin/dircache.hpp"

#include <algorithm>
#include <exception>
#include <iterator>
#include <spdlog/spdlog.h>
#include <stdexcept>
#include <utility>

namespace portcullis {

namespace {

using Ms = std::chrono::milliseconds;

long long to_ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration_cast<Ms>(d).count();
}

// A user name as it may appear in a log line: printable ASCII only, bounded.
std::string loggable(const std::string &s) {
  std::string out;
  const std::size_t n = std::min<std::size_t>(s.size(), 128);
  out.reserve(n + 3);
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    out.push_back(c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?');
  }
  if (s.size() > n) out += "...";
  return out;
}

std::shared_ptr<const DirectoryResult> error_result(std::string error, bool unreachable) {
  auto r = std::make_shared<DirectoryResult>();
  r->ok = false;
  r->unreachable = unreachable;
  r->error = std::move(error);
  return r;
}

constexpr std::chrono::seconds kMaxWait{60}; // waiting for another caller's lookup

std::string unreachable_message(const UserLookup &l) {
  return "directory server unreachable" + (l.error.empty() ? std::string() : ": " + l.error);
}

// found / not_found → what is cached (ok, cache label left empty).
std::shared_ptr<const DirectoryResult> answer_from(const UserLookup &l) {
  auto r = std::make_shared<DirectoryResult>();
  r->ok = true;
  if (l.status != LookupStatus::found) return r; // not_found: no groups, no DN
  r->found = true;
  r->user_dn = l.user_dn;
  r->memberships = l.groups;
  std::stable_sort(
      r->memberships.begin(), r->memberships.end(),
      [](const GroupMembership &a, const GroupMembership &b) { return a.key < b.key; });
  r->memberships.erase(std::unique(r->memberships.begin(), r->memberships.end(),
                                   [](const GroupMembership &a, const GroupMembership &b) {
                                     return a.key == b.key;
                                   }),
                       r->memberships.end());
  r->groups.reserve(r->memberships.size());
  for (const auto &m : r->memberships)
    r->groups.push_back(m.key);
  return r;
}

} // namespace

CachingDirectory::CachingDirectory(std::shared_ptr<DirectoryBackend> backend,
                                   DirectoryCacheConfig config, ClockFn clock)
    : backend_(std::move(backend)), config_(config), clock_(std::move(clock)) {
  if (!backend_) throw std::invalid_argument("directory cache: no directory backend");
  positive_ttl_ = Ms(std::max(0LL, config_.positive_ttl_ms));
  negative_ttl_ = Ms(std::max(0LL, config_.negative_ttl_ms));
  stale_grace_ = Ms(std::max(0LL, config_.stale_grace_ms));
  refresh_enabled_ =
      config_.refresh_ahead > 0 && config_.refresh_ahead < 1 && config_.positive_ttl_ms > 0;
  if (refresh_enabled_)
    refresh_after_ =
        std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::milli>(
            config_.refresh_ahead * static_cast<double>(config_.positive_ttl_ms)));
  internal_error_ = error_result("directory cache internal error", false);
  max_queue_ = std::clamp<std::size_t>(config_.max_entries, 1, 1024);
  if (refresh_enabled_) refresher_ = std::thread([this] { refresher_main(); });
}

CachingDirectory::~CachingDirectory() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    refresh_queue_.clear();
  }
  refresh_cv_.notify_all();
  if (refresher_.joinable()) refresher_.join();
}

std::string CachingDirectory::describe() const {
  return "cached " + backend_->describe();
}

std::optional<std::string> CachingDirectory::binding_key(const std::string &group,
                                                         std::string &error) const {
  return backend_->binding_key(group, error);
}

UserLookup CachingDirectory::call_backend(DirectoryBackend &backend, const std::string &user) {
  try {
    return backend.lookup(user);
  } catch (const std::exception &e) {
    UserLookup l;
    l.status = LookupStatus::failed;
    l.error = std::string("directory backend error: ") + e.what();
    return l;
  } catch (...) {
    UserLookup l;
    l.status = LookupStatus::failed;
    l.error = "directory backend error";
    return l;
  }
}

DirectoryResult CachingDirectory::groups_for(const std::string &user) const {
  try {
    const TimePoint t = now();
    std::shared_ptr<const DirectoryResult> answer;
    const char *label = "hit";
    std::shared_ptr<Flight> flight;
    std::uint64_t generation = 0;
    {
      std::unique_lock<std::mutex> lock(mu_);
      auto it = map_.find(user);
      if (it != map_.end() && t < it->second.expires) {
        Entry &e = it->second;
        lru_.splice(lru_.begin(), lru_, e.lru);
        answer = e.result;
        if (e.positive && refresh_enabled_ && t - e.fetched >= refresh_after_ &&
            schedule_refresh_locked(user))
          label = "refresh";
      } else if (auto f = flights_.find(user); f != flights_.end()) {
        // Someone is already asking the backend about this user: wait for that answer (the
        // backend finishes within its own deadline).
        flight = f->second;
        // Bounded even if a backend ignored its own deadline: dockerd gives up long before.
        if (flight->cv.wait_for(lock, kMaxWait, [&] { return flight->done; })) {
          answer = flight->result;
          label = flight->label;
        } else {
          answer = error_result("directory lookup for this user is still running after " +
                                    std::to_string(kMaxWait.count()) + " s",
                                true);
          label = "miss";
        }
        flight.reset();
      } else {
        flight = std::make_shared<Flight>();
        flights_.emplace(user, flight);
        generation = generation_;
      }
    }
    if (flight) { // this call leads the lookup
      UserLookup l = call_backend(*backend_, user);
      backend_lookups_.fetch_add(1, std::memory_order_relaxed);
      Outcome out;
      {
        std::lock_guard<std::mutex> lock(mu_);
        try {
          out = settle_locked(user, l, generation, now(), false);
        } catch (...) {
          out.result = internal_error_;
          out.label = "miss";
        }
        flight->result = out.result;
        flight->label = out.label;
        flight->done = true;
        if (auto f = flights_.find(user); f != flights_.end() && f->second == flight)
          flights_.erase(f);
      }
      flight->cv.notify_all();
      if (!out.warning.empty()) spdlog::warn("{}", out.warning);
      answer = std::move(out.result);
      label = out.label;
    }
    if (std::string_view(label) == "hit" || std::string_view(label) == "refresh")
      hits_.fetch_add(1, std::memory_order_relaxed);
    else
      misses_.fetch_add(1, std::memory_order_relaxed);
    if (std::string_view(label) == "stale") stale_served_.fetch_add(1, std::memory_order_relaxed);
    DirectoryResult r = *answer;
    if (r.ok) r.cache = label;
    return r;
  } catch (...) {
    DirectoryResult r;
    r.ok = false;
    r.error = "directory cache internal error";
    return r;
  }
}

CachingDirectory::Outcome CachingDirectory::settle_locked(const std::string &user,
                                                          const UserLookup &l,
                                                          std::uint64_t generation, TimePoint t,
                                                          bool refresh) const {
  auto it = map_.find(user);
  switch (l.status) {
  case LookupStatus::found:
  case LookupStatus::not_found: {
    auto answer = answer_from(l);
    if (generation == generation_) store_locked(user, answer, l.status == LookupStatus::found, t);
    return {answer, "miss", {}};
  }
  case LookupStatus::unreachable:
    break;
  case LookupStatus::failed:
  default:
    backend_errors_.fetch_add(1, std::memory_order_relaxed);
    // The directory answered with something unusable (a second entry for the user, a limit,
    // a certificate error): whatever was cached is no longer trusted. The entry is dropped,
    // also after a background refresh, so neither a later hit nor a later outage can serve it.
    (void)refresh;
    (void)t;
    if (it != map_.end()) erase_locked(it);
    return {
        error_result("directory lookup failed" + (l.error.empty() ? "" : ": " + l.error), false),
        "miss",
        {}};
  }

  backend_errors_.fetch_add(1, std::memory_order_relaxed);
  if (it == map_.end() || !it->second.positive)
    return {error_result(unreachable_message(l), true), "miss", {}};
  const Entry &e = it->second;
  if (t < e.expires) return {e.result, "hit", {}}; // a refresh failed while the entry is fresh
  const auto expired_for = t - e.expires;
  if (expired_for < stale_grace_) {
    return {e.result, "stale",
            "directory unreachable; serving the cached groups of '" + loggable(user) +
                "' that expired " + std::to_string(to_ms(expired_for)) + " ms ago (stale grace " +
                std::to_string(config_.stale_grace_ms) + " ms): " + l.error};
  }
  std::string msg = unreachable_message(l);
  if (stale_grace_.count() > 0)
    msg += " (the cached entry expired " + std::to_string(to_ms(expired_for)) +
           " ms ago, beyond the stale grace of " + std::to_string(config_.stale_grace_ms) + " ms)";
  return {error_result(std::move(msg), true), "miss", {}};
}

void CachingDirectory::store_locked(const std::string &user,
                                    std::shared_ptr<const DirectoryResult> result, bool positive,
                                    TimePoint t) const {
  if (auto it = map_.find(user); it != map_.end()) erase_locked(it);
  if (config_.max_entries == 0) return;
  make_room_locked(t);
  auto [it, inserted] = map_.try_emplace(user);
  (void)inserted;
  Entry &e = it->second;
  e.result = std::move(result);
  e.positive = positive;
  e.fetched = t;
  e.expires = t + (positive ? positive_ttl_ : negative_ttl_);
  e.dead = positive ? e.expires + stale_grace_ : e.expires;
  lru_.push_front(&it->first);
  e.lru = lru_.begin();
  KeyList &age = positive ? positive_age_ : negative_age_;
  age.push_back(&it->first);
  e.by_age = std::prev(age.end());
}

void CachingDirectory::erase_locked(Map::iterator it) const {
  Entry &e = it->second;
  lru_.erase(e.lru);
  (e.positive ? positive_age_ : negative_age_).erase(e.by_age);
  map_.erase(it);
}

// Entries of one kind all live the same TTL, so each age list's front is the one that dies
// first: checking the two fronts finds a dead entry in O(1) if there is one.
void CachingDirectory::make_room_locked(TimePoint t) const {
  while (!map_.empty() && map_.size() >= config_.max_entries) {
    const std::string *victim = nullptr;
    for (const KeyList *age : {&negative_age_, &positive_age_}) {
      if (age->empty()) continue;
      auto it = map_.find(*age->front());
      if (it != map_.end() && it->second.dead <= t) {
        victim = age->front();
        break;
      }
    }
    if (!victim) victim = lru_.back();
    auto it = map_.find(*victim);
    if (it == map_.end()) break; // cannot happen: lists and map change together
    erase_locked(it);
    evictions_.fetch_add(1, std::memory_order_relaxed);
  }
}

bool CachingDirectory::schedule_refresh_locked(const std::string &user) const {
  if (stopping_ || refresh_queue_.size() >= max_queue_) return false;
  if (refresh_pending_.count(user) || flights_.count(user)) return false;
  refresh_queue_.push_back(user);
  refresh_pending_.insert(user);
  refresh_cv_.notify_one();
  return true;
}

void CachingDirectory::refresher_main() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    refresh_cv_.wait(lock, [&] { return stopping_ || !refresh_queue_.empty(); });
    if (stopping_) return;
    std::string user = std::move(refresh_queue_.front());
    refresh_queue_.pop_front();
    if (flights_.count(user)) { // a miss is already asking the backend
      refresh_pending_.erase(user);
      continue;
    }
    // Registered as a flight so that misses of this user meanwhile wait for this answer.
    auto flight = std::make_shared<Flight>();
    flights_.emplace(user, flight);
    const std::uint64_t generation = generation_;
    lock.unlock();
    UserLookup l = call_backend(*backend_, user);
    backend_lookups_.fetch_add(1, std::memory_order_relaxed);
    lock.lock();
    Outcome out;
    try {
      out = settle_locked(user, l, generation, now(), true);
    } catch (...) {
      out.result = internal_error_;
      out.label = "miss";
    }
    flight->result = out.result;
    flight->label = std::string_view(out.label) == "hit" ? "miss" : out.label;
    flight->done = true;
    if (auto f = flights_.find(user); f != flights_.end() && f->second == flight) flights_.erase(f);
    refresh_pending_.erase(user);
    refreshes_.fetch_add(1, std::memory_order_relaxed); // after the entry is settled
    flight->cv.notify_all();
    if (!out.warning.empty()) {
      lock.unlock();
      spdlog::warn("{}", out.warning);
      lock.lock();
    }
  }
}

void CachingDirectory::flush() const {
  std::lock_guard<std::mutex> lock(mu_);
  ++generation_;
  map_.clear();
  lru_.clear();
  positive_age_.clear();
  negative_age_.clear();
  // Lookups under way finish and answer their callers, but their answers are not stored, and
  // new misses start their own lookup instead of joining them.
  flights_.clear();
  for (const auto &u : refresh_queue_)
    refresh_pending_.erase(u);
  refresh_queue_.clear();
}

CachingDirectory::Stats CachingDirectory::stats() const {
  Stats s;
  s.hits = hits_.load(std::memory_order_relaxed);
  s.misses = misses_.load(std::memory_order_relaxed);
  s.stale_served = stale_served_.load(std::memory_order_relaxed);
  s.refreshes = refreshes_.load(std::memory_order_relaxed);
  s.backend_errors = backend_errors_.load(std::memory_order_relaxed);
  s.evictions = evictions_.load(std::memory_order_relaxed);
  s.backend_lookups = backend_lookups_.load(std::memory_order_relaxed);
  return s;
}

std::size_t CachingDirectory::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return map_.size();
}

} // namespace portcullis
