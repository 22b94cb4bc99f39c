// The directory cache: a Directory in front of a remote DirectoryBackend (LDAP).
//
// - Positive (found) answers are kept positive_ttl, negative (not_found) answers negative_ttl;
//   errors (unreachable, failed) are never cached.
// - Concurrent misses of one user make one backend call (single flight); the others wait for it.
// - Refresh ahead: a hit on a positive entry older than refresh_ahead × positive_ttl is answered
//   from the cache and queues one background refresh of that user (one refresher thread, bounded
//   and deduplicated queue). A refresh that answers found/not_found replaces the entry; one the
//   directory answers `failed` (duplicate user, limits, TLS) drops it; an unreachable one keeps it.
// - Outage: when the backend is unreachable, an expired positive entry is served ("stale") until
//   stale_grace after its expiry; never a negative entry, never after a `failed` answer.
// - Bounded by max_entries: dead entries (expired and past any stale use) go first, then the
//   least recently used. Every operation is O(1) amortised.
#pragma once

#include "plugin/config.hpp"
#include "plugin/directory.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>

namespace portcullis {

class CachingDirectory final : public Directory {
public:
  using Clock = std::chrono::steady_clock;
  using ClockFn = std::function<Clock::time_point()>;

  struct Stats {
    std::uint64_t hits = 0;            // answered from a fresh entry (including "refresh")
    std::uint64_t misses = 0;          // not answered from a fresh entry (waiters included)
    std::uint64_t stale_served = 0;    // expired entries served during an outage
    std::uint64_t refreshes = 0;       // background refresh lookups performed
    std::uint64_t backend_errors = 0;  // unreachable/failed answers (misses and refreshes)
    std::uint64_t evictions = 0;       // entries dropped to stay within max_entries
    std::uint64_t backend_lookups = 0; // calls to the backend (misses and refreshes)
  };

  // Throws std::invalid_argument when `backend` is null (startup only). `clock` is for tests.
  CachingDirectory(std::shared_ptr<DirectoryBackend> backend, DirectoryCacheConfig config,
                   ClockFn clock = {});
  ~CachingDirectory() override; // stops and joins the refresher; queued refreshes are dropped
  CachingDirectory(const CachingDirectory &) = delete;
  CachingDirectory &operator=(const CachingDirectory &) = delete;

  DirectoryResult groups_for(const std::string &user) const override;
  std::string describe() const override;
  std::optional<std::string> binding_key(const std::string &group,
                                         std::string &error) const override;
  void flush() const override;
  bool requires_entry() const override { return true; }

  Stats stats() const;
  std::size_t size() const; // entries held now (fresh or not)

private:
  using TimePoint = Clock::time_point;
  using KeyList = std::list<const std::string *>; // points at the map's own keys

  struct Entry {
    std::shared_ptr<const DirectoryResult> result; // ok, cache = ""
    bool positive = false;
    TimePoint fetched{};
    TimePoint expires{};
    TimePoint dead{};      // from here on the entry is useless (expires, + stale grace if positive)
    KeyList::iterator lru; // position in lru_ (front = most recently used)
    KeyList::iterator by_age; // position in positive_age_ or negative_age_ (front = oldest)
  };

  struct Flight {
    std::condition_variable cv;
    bool done = false;
    std::shared_ptr<const DirectoryResult> result;
    const char *label = "miss";
  };

  // What callers of groups_for get for one backend answer.
  struct Outcome {
    std::shared_ptr<const DirectoryResult> result;
    const char *label = "miss"; // "miss", "stale" or "hit"
    std::string warning;        // to log (outside the lock) when an expired entry is served
  };

  using Map = std::unordered_map<std::string, Entry>;

  TimePoint now() const { return clock_ ? clock_() : Clock::now(); }
  static UserLookup call_backend(DirectoryBackend &backend, const std::string &user);
  // With mu_ held: stores a found/not_found answer (when `generation` is still current) and
  // returns what callers of groups_for get for `lookup` at time `t`.
  Outcome settle_locked(const std::string &user, const UserLookup &lookup, std::uint64_t generation,
                        TimePoint t, bool refresh) const;
  void store_locked(const std::string &user, std::shared_ptr<const DirectoryResult> result,
                    bool positive, TimePoint t) const;
  void erase_locked(Map::iterator it) const;
  void make_room_locked(TimePoint t) const;
  bool schedule_refresh_locked(const std::string &user) const;
  void refresher_main();

  std::shared_ptr<DirectoryBackend> backend_;
  DirectoryCacheConfig config_;
  ClockFn clock_;
  Clock::duration positive_ttl_, negative_ttl_, stale_grace_, refresh_after_;
  bool refresh_enabled_ = false;
  std::size_t max_queue_ = 0;
  std::shared_ptr<const DirectoryResult> internal_error_; // preallocated: answer when all fails

  mutable std::mutex mu_;
  mutable Map map_;
  mutable KeyList lru_, positive_age_, negative_age_;
  mutable std::unordered_map<std::string, std::shared_ptr<Flight>> flights_;
  mutable std::uint64_t generation_ = 0; // bumped by flush(): answers fetched before are dropped
  mutable std::deque<std::string> refresh_queue_;
  mutable std::unordered_set<std::string> refresh_pending_; // queued or being refreshed
  mutable std::condition_variable refresh_cv_;
  bool stopping_ = false;

  mutable std::atomic<std::uint64_t> hits_{0}, misses_{0}, stale_served_{0}, refreshes_{0},
      backend_errors_{0}, evictions_{0}, backend_lookups_{0};

  std::thread refresher_; // last member: started after everything above is constructed
};

} // namespace portcullis
