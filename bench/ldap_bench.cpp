// portcullis-ldap-bench: in-process figures for the LDAP directory against a REAL slapd started by
// tests/ldap/slapd.sh (see docs/PERFORMANCE.md, "LDAP directory"). A program that prints figures,
// not a test: it never decides pass/fail on speed. Every loop is bounded by a count.
//
//   tests/ldap/slapd.sh start DIR && portcullis-ldap-bench --env DIR/env.json [options]
//
// (a) cold lookups: LdapDirectory::lookup() (no cache) for alice (direct groups), dave (3 levels
//     of nesting), erin (nested, under ou=contractors) and an unknown user; p50/p90/max µs.
// (b) warm cache: CachingDirectory(LdapDirectory)::groups_for() hits next to
//     FileDirectory::groups_for() returning the same group keys; ns per call and the ratio.
// (c) hit rate: a paced stream of requests over --sim-users users (Zipf-like popularity, fixed
//     seed) through a CachingDirectory with a short positive TTL, with refresh-ahead on and off;
//     prints the cache's stats() and the per-request latency.
// (d) whole decisions in process (AuthzService::handle, no sockets): the same dockerd-shaped
//     container create by alice through a file-directory service and an LDAP-directory service
//     (warm cache), same policy, interleaved rounds; µs per decision and the ratio. Runs when
//     --policy, --users and --cert are given (bench/ldap_run.sh does).
#include "bench/authz_call.hpp"
#include "plugin/crypto.hpp"
#include "plugin/dircache.hpp"
#include "plugin/ldap.hpp"
#include "plugin/service.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <spdlog/spdlog.h>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace portcullis;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string env_file;
  std::string transport = "ldaps";       // ldaps | starttls
  std::string parts = "abcd";            // which of (a) .. (d) to run ((d) needs the files below)
  std::string policy, users, cert, body; // (d): policy, users file, alice's PEM, API body
  long decide_iterations = 5'000;        // (d): decisions per target and round
  long cold_iterations = 200;            // per user
  long warm_iterations = 200'000;        // per measurement round
  int warm_rounds = 5;
  int sim_users = 50;
  std::string sim_prefix = "bench-u"; // sim user names: <prefix>00, <prefix>01, ...
  long sim_requests = 12'000;         // per simulation
  long sim_rate = 4'000;              // requests per second
  long sim_ttl_ms = 1'000;
  double zipf_s = 1.0;
};

int usage(const char *argv0) {
  std::fprintf(stderr,
               "usage: %s --env DIR/env.json\n"
               "  [--transport ldaps|starttls]  how to reach slapd (default ldaps)\n"
               "  [--parts abcd]                which parts to run (default abcd)\n"
               "  [--policy F --users F --cert PEM [--body JSON]]  (d): file-directory users,\n"
               "                                alice's client certificate, API body\n"
               "  [--decide-iterations N]       decisions per target and round in (d) "
               "(default 5000)\n"
               "  [--cold-iterations N]         lookups per user in (a) (default 200)\n"
               "  [--warm-iterations N]         calls per round in (b) (default 200000)\n"
               "  [--warm-rounds R]             interleaved rounds in (b) (default 5)\n"
               "  [--sim-users U]               distinct users in (c) (default 50)\n"
               "  [--sim-prefix P]              their names: P00, P01, ... (default bench-u)\n"
               "  [--sim-requests M]            requests per simulation in (c) (default 12000)\n"
               "  [--sim-rate R]                requests per second in (c) (default 4000)\n"
               "  [--sim-ttl-ms T]              positive/negative TTL in (c) (default 1000)\n"
               "  [--zipf S]                    popularity exponent in (c) (default 1.0; 0 = "
               "uniform)\n",
               argv0);
  return 2;
}

bool parse_args(int argc, char **argv, Options &o) {
  auto num = [](const char *s, long lo, long hi, long &out) {
    char *end = nullptr;
    out = std::strtol(s, &end, 10);
    return end && end != s && *end == '\0' && out >= lo && out <= hi;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return false;
    const char *v = argv[++i];
    long n = 0;
    if (a == "--env") {
      o.env_file = v;
    } else if (a == "--transport") {
      o.transport = v;
      if (o.transport != "ldaps" && o.transport != "starttls") return false;
    } else if (a == "--parts") {
      o.parts = v;
      if (o.parts.empty() || o.parts.find_first_not_of("abcd") != std::string::npos) return false;
    } else if (a == "--policy") {
      o.policy = v;
    } else if (a == "--users") {
      o.users = v;
    } else if (a == "--cert") {
      o.cert = v;
    } else if (a == "--body") {
      o.body = v;
    } else if (a == "--decide-iterations" && num(v, 1, 10'000'000, n)) {
      o.decide_iterations = n;
    } else if (a == "--sim-prefix") {
      o.sim_prefix = v;
    } else if (a == "--zipf") {
      char *end = nullptr;
      o.zipf_s = std::strtod(v, &end);
      if (!end || end == v || *end != '\0' || o.zipf_s < 0 || o.zipf_s > 5) return false;
    } else if (a == "--cold-iterations" && num(v, 1, 100'000, n)) {
      o.cold_iterations = n;
    } else if (a == "--warm-iterations" && num(v, 1, 100'000'000, n)) {
      o.warm_iterations = n;
    } else if (a == "--warm-rounds" && num(v, 1, 100, n)) {
      o.warm_rounds = static_cast<int>(n);
    } else if (a == "--sim-users" && num(v, 1, 100, n)) {
      o.sim_users = static_cast<int>(n);
    } else if (a == "--sim-requests" && num(v, 1, 10'000'000, n)) {
      o.sim_requests = n;
    } else if (a == "--sim-rate" && num(v, 1, 1'000'000, n)) {
      o.sim_rate = n;
    } else if (a == "--sim-ttl-ms" && num(v, 1, 3'600'000, n)) {
      o.sim_ttl_ms = n;
    } else {
      return false;
    }
  }
  return !o.env_file.empty();
}

double us_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

// Percentile of an ascending vector (nearest rank).
double pct(const std::vector<double> &sorted, double p) {
  if (sorted.empty()) return 0;
  auto rank = static_cast<std::size_t>(p / 100.0 * static_cast<double>(sorted.size()));
  return sorted[std::min(rank, sorted.size() - 1)];
}

// (a) Cold lookups straight to the backend. Returns false when a lookup answered unexpectedly.
bool cold_lookups(LdapDirectory &ldap, const Options &o) {
  struct Case {
    const char *user;
    const char *what;
    LookupStatus expect;
    std::size_t groups; // expected group count when found
  };
  const Case cases[] = {
      {"alice", "direct groups", LookupStatus::found, 2},
      {"dave", "3-level nesting", LookupStatus::found, 3},
      {"erin", "nested + posix", LookupStatus::found, 3},
      {"nobody-bench", "not in the directory", LookupStatus::not_found, 0},
  };
  std::printf("\n=== (a) cold lookups: LdapDirectory::lookup(), no cache, %ld per user ===\n",
              o.cold_iterations);
  std::printf("%-14s %-22s %-10s %6s %8s %8s %8s %8s\n", "user", "case", "status", "groups",
              "p50 us", "p90 us", "max us", "mean us");
  bool good = true;
  for (const auto &c : cases) {
    std::vector<double> us;
    us.reserve(static_cast<std::size_t>(o.cold_iterations));
    UserLookup last;
    long unexpected = 0;
    for (long i = 0; i < o.cold_iterations; ++i) {
      const auto t0 = Clock::now();
      last = ldap.lookup(c.user);
      us.push_back(us_since(t0));
      if (last.status != c.expect ||
          (c.expect == LookupStatus::found && last.groups.size() != c.groups))
        ++unexpected;
    }
    double sum = 0;
    for (double v : us)
      sum += v;
    std::sort(us.begin(), us.end());
    std::printf("%-14s %-22s %-10s %6zu %8.0f %8.0f %8.0f %8.0f\n", c.user, c.what,
                lookup_status_name(last.status), last.groups.size(), pct(us, 50), pct(us, 90),
                us.back(), sum / static_cast<double>(us.size()));
    std::printf("RESULT cold user=%s status=%s groups=%zu p50_us=%.0f p90_us=%.0f max_us=%.0f "
                "unexpected=%ld\n",
                c.user, lookup_status_name(last.status), last.groups.size(), pct(us, 50),
                pct(us, 90), us.back(), unexpected);
    if (unexpected) {
      std::printf("  WARNING: %ld of %ld lookups of %s did not answer %s with %zu groups (last: "
                  "%s %s)\n",
                  unexpected, o.cold_iterations, c.user, lookup_status_name(c.expect), c.groups,
                  lookup_status_name(last.status), last.error.c_str());
      good = false;
    }
  }
  return good;
}

// CPU-time-ish ns per call of fn(user), cycling over `users`.
template <class F> double ns_per_call(F fn, const std::vector<std::string> &users, long n) {
  std::size_t sink = 0;
  const auto t0 = Clock::now();
  for (long i = 0; i < n; ++i)
    sink += fn(users[static_cast<std::size_t>(i) % users.size()]).groups.size();
  const double ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
  if (sink == 0) std::fprintf(stderr, "warning: no groups returned\n");
  return ns / static_cast<double>(n);
}

// (b) Warm cache hits vs the file directory with the same groups.
bool warm_hits(const std::shared_ptr<LdapDirectory> &ldap, const Options &o) {
  const std::vector<std::string> users = {"alice", "dave", "grace"};
  std::printf("\n=== (b) warm cache: CachingDirectory hit vs FileDirectory, same groups ===\n");
  DirectoryCacheConfig cfg;
  cfg.positive_ttl_ms = 3'600'000; // nothing expires or refreshes during the run
  cfg.refresh_ahead = 0;
  cfg.max_entries = 100;
  CachingDirectory cache(ldap, cfg);

  // The file directory gets, for each user, the keys the cache reports (canonical group DNs).
  std::string yaml = "users:\n";
  for (const auto &u : users) {
    const DirectoryResult r = cache.groups_for(u); // the one miss: fills the cache
    if (!r.ok || !r.found || r.groups.empty()) {
      std::printf("  ERROR: %s not found with groups (%s)\n", u.c_str(), r.error.c_str());
      return false;
    }
    yaml += "  " + u + ": [";
    for (std::size_t g = 0; g < r.groups.size(); ++g)
      yaml += (g ? ", \"" : "\"") + r.groups[g] + "\"";
    yaml += "]\n";
  }
  std::string error;
  auto file = FileDirectory::parse(yaml, "ldap-bench.yaml", error);
  if (!file) {
    std::printf("  ERROR: %s\n", error.c_str());
    return false;
  }
  for (const auto &u : users)
    if (file->groups_for(u).groups != cache.groups_for(u).groups) {
      std::printf("  ERROR: file and cache disagree on %s\n", u.c_str());
      return false;
    }

  const auto cache_fn = [&](const std::string &u) { return cache.groups_for(u); };
  const auto file_fn = [&](const std::string &u) { return file->groups_for(u); };
  bool good = true;
  std::printf("%-8s %6s %12s %12s %8s\n", "user", "groups", "file ns", "cache ns", "ratio");
  for (const auto &u : users) {
    const std::vector<std::string> one = {u};
    ns_per_call(file_fn, one, o.warm_iterations / 10); // warm-up
    ns_per_call(cache_fn, one, o.warm_iterations / 10);
    const auto before = cache.stats();
    double best_file = 1e300, best_cache = 1e300;
    for (int r = 0; r < o.warm_rounds; ++r) { // interleaved, best of R
      best_file = std::min(best_file, ns_per_call(file_fn, one, o.warm_iterations));
      best_cache = std::min(best_cache, ns_per_call(cache_fn, one, o.warm_iterations));
    }
    const auto after = cache.stats();
    const auto groups = file->groups_for(u).groups.size();
    std::printf("%-8s %6zu %12.1f %12.1f %7.2fx\n", u.c_str(), groups, best_file, best_cache,
                best_cache / best_file);
    std::printf("RESULT warm user=%s groups=%zu file_ns=%.1f cache_ns=%.1f misses=%llu\n",
                u.c_str(), groups, best_file, best_cache,
                static_cast<unsigned long long>(after.misses - before.misses));
    if (after.misses != before.misses || after.backend_lookups != before.backend_lookups) {
      std::printf("  WARNING: the cache missed during the hit run; figures are not hits\n");
      good = false;
    }
  }
  return good;
}

// (c) Hit rate: a paced request stream over sim_users users through a short-TTL cache.
bool hit_rate(const std::shared_ptr<LdapDirectory> &ldap, const Options &o) {
  std::vector<std::string> names;
  for (int u = 0; u < o.sim_users; ++u) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%02d", u);
    names.push_back(o.sim_prefix + buf);
  }
  // Which of them the directory knows (they are added by bench/ldap_run.sh; unknown ones are
  // cached negatively, which is also a hit).
  int found = 0;
  for (const auto &n : names)
    found += ldap->lookup(n).status == LookupStatus::found;
  std::vector<double> weights;
  for (int u = 0; u < o.sim_users; ++u)
    weights.push_back(1.0 / std::pow(static_cast<double>(u + 1), o.zipf_s));

  const double seconds = static_cast<double>(o.sim_requests) / static_cast<double>(o.sim_rate);
  std::printf("\n=== (c) hit rate: %ld requests at %ld/s (%.1f s) over %d users (%d in the "
              "directory), Zipf s=%.2f, positive/negative TTL %ld ms ===\n",
              o.sim_requests, o.sim_rate, seconds, o.sim_users, found, o.zipf_s, o.sim_ttl_ms);
  std::printf("%-14s %8s %8s %9s %8s %8s %8s %8s %8s %8s\n", "refresh_ahead", "hits", "misses",
              "refreshes", "lookups", "hit %", "errors", "p50 us", "p99 us", "max us");
  bool good = true;
  for (const double refresh : {0.5, 0.0}) {
    DirectoryCacheConfig cfg;
    cfg.positive_ttl_ms = o.sim_ttl_ms;
    cfg.negative_ttl_ms = o.sim_ttl_ms;
    cfg.refresh_ahead = refresh;
    cfg.max_entries = 10'000;
    CachingDirectory cache(ldap, cfg);
    std::mt19937 rng(42); // the same stream for both runs
    std::discrete_distribution<int> pick(weights.begin(), weights.end());
    std::vector<double> us;
    us.reserve(static_cast<std::size_t>(o.sim_requests));
    long not_ok = 0;
    const auto start = Clock::now();
    const auto period = std::chrono::nanoseconds(1'000'000'000 / o.sim_rate);
    for (long i = 0; i < o.sim_requests; ++i) {
      std::this_thread::sleep_until(start + period * i); // paced: the TTL sees real time pass
      const auto t0 = Clock::now();
      const DirectoryResult r = cache.groups_for(names[static_cast<std::size_t>(pick(rng))]);
      us.push_back(us_since(t0));
      not_ok += !r.ok;
    }
    const double took = us_since(start) / 1e6;
    const auto s = cache.stats();
    std::sort(us.begin(), us.end());
    const double rate =
        100.0 * static_cast<double>(s.hits) / static_cast<double>(s.hits + s.misses);
    std::printf("%-14.2f %8llu %8llu %9llu %8llu %7.2f%% %8ld %8.1f %8.0f %8.0f\n", refresh,
                static_cast<unsigned long long>(s.hits), static_cast<unsigned long long>(s.misses),
                static_cast<unsigned long long>(s.refreshes),
                static_cast<unsigned long long>(s.backend_lookups), rate, not_ok, pct(us, 50),
                pct(us, 99), us.back());
    std::printf("RESULT sim rate=%ld refresh_ahead=%.2f hits=%llu misses=%llu refreshes=%llu "
                "backend_lookups=%llu backend_errors=%llu hit_rate=%.4f p50_us=%.1f p99_us=%.0f "
                "max_us=%.0f seconds=%.2f errors=%ld\n",
                o.sim_rate, refresh, static_cast<unsigned long long>(s.hits),
                static_cast<unsigned long long>(s.misses),
                static_cast<unsigned long long>(s.refreshes),
                static_cast<unsigned long long>(s.backend_lookups),
                static_cast<unsigned long long>(s.backend_errors), rate / 100.0, pct(us, 50),
                pct(us, 99), us.back(), took, not_ok);
    if (not_ok || s.backend_errors) good = false;
  }
  return good;
}

std::optional<std::string> read_file(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return std::nullopt;
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

using portcullis::bench::authz_call;

// (d) Whole decisions in process, file directory vs LDAP directory with a warm cache.
bool decisions(const LdapConfig &ldap_config, const Options &o) {
  std::printf("\n=== (d) whole decisions in process: AuthzService::handle, file vs ldap (warm "
              "cache), %d interleaved rounds of %ld ===\n",
              o.warm_rounds, o.decide_iterations);
  const auto pem = read_file(o.cert);
  std::optional<std::string> body = o.body.empty()
                                        ? std::optional<std::string>(R"({"Image":"busybox:latest"})"
                                                                     "\n")
                                        : read_file(o.body);
  if (!pem || !body) {
    std::printf("  ERROR: cannot read %s\n", !pem ? o.cert.c_str() : o.body.c_str());
    return false;
  }
  Config file_config;
  file_config.policy = o.policy;
  file_config.directory_path = o.users;
  file_config.decision_log = "/dev/null"; // both format their record; neither waits for a disk
  Config ldap_cfg = file_config;
  ldap_cfg.directory_type = "ldap";
  ldap_cfg.directory_path.clear();
  ldap_cfg.ldap = ldap_config;
  ldap_cfg.cache.positive_ttl_ms = 3'600'000;
  ldap_cfg.cache.refresh_ahead = 0;
  std::string error;
  auto file_svc = AuthzService::create(file_config, error);
  if (!file_svc) {
    std::printf("  ERROR: file service: %s\n", error.c_str());
    return false;
  }
  auto ldap_svc = AuthzService::create(ldap_cfg, error);
  if (!ldap_svc) {
    std::printf("  ERROR: ldap service: %s\n", error.c_str());
    return false;
  }
  const std::string call = authz_call(*body, *pem);
  struct Target {
    const char *name;
    AuthzService *svc;
    double best = 1e300;
    std::vector<double> rounds;
  };
  Target targets[] = {{"file", file_svc.get(), 1e300, {}}, {"ldap", ldap_svc.get(), 1e300, {}}};
  for (auto &t : targets) { // probe (and the LDAP service's one miss), then warm-up
    const PluginReply r = t.svc->handle("POST", "/AuthZPlugin.AuthZReq", call);
    std::printf("  probe %s: %d %s", t.name, r.status, r.body.c_str());
    if (r.status != 200 || r.body.find("\"Allow\":true") == std::string::npos) {
      std::printf("\n  ERROR: the %s service did not allow the request\n", t.name);
      return false;
    }
    for (long i = 0; i < o.decide_iterations / 10; ++i)
      t.svc->handle("POST", "/AuthZPlugin.AuthZReq", call);
  }
  std::size_t allowed = 0;
  for (int r = 0; r < o.warm_rounds; ++r)
    for (auto &t : targets) {
      const auto t0 = Clock::now();
      for (long i = 0; i < o.decide_iterations; ++i)
        allowed += t.svc->handle("POST", "/AuthZPlugin.AuthZReq", call).body.find("true") !=
                   std::string::npos;
      const double us = us_since(t0) / static_cast<double>(o.decide_iterations);
      t.rounds.push_back(us);
      t.best = std::min(t.best, us);
    }
  double median[2] = {0, 0};
  for (int i = 0; i < 2; ++i) {
    auto &t = targets[i];
    std::sort(t.rounds.begin(), t.rounds.end());
    median[i] = t.rounds[t.rounds.size() / 2];
    std::printf("  %-5s median %7.2f us/decision, best round %7.2f us\n", t.name, median[i],
                t.best);
    std::printf("RESULT decide target=%s median_us=%.2f best_us=%.2f\n", t.name, median[i], t.best);
  }
  std::printf("  ldap/file decisions per second = %.3f (medians; best rounds: %.3f)\n",
              median[0] / median[1], targets[0].best / targets[1].best);
  const auto expected =
      static_cast<std::size_t>(2 * o.warm_rounds) * static_cast<std::size_t>(o.decide_iterations);
  if (allowed != expected) {
    std::printf("  WARNING: %zu of %zu decisions allowed; figures are not valid\n", allowed,
                expected);
    return false;
  }
  return true;
}

} // namespace

int main(int argc, char **argv) {
  Options o;
  if (!parse_args(argc, argv, o)) return usage(argv[0]);
  nlohmann::json env;
  try {
    std::ifstream in(o.env_file);
    if (!in) {
      std::fprintf(stderr, "cannot read %s\n", o.env_file.c_str());
      return 1;
    }
    env = nlohmann::json::parse(in);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "%s: %s\n", o.env_file.c_str(), e.what());
    return 1;
  }
  LdapConfig c; // as in tests/ldap/test_ldap_integration.cpp and tests/e2e/ldap.sh
  try {
    const auto get = [&](const char *k) { return env.at(k).get<std::string>(); };
    if (o.transport == "ldaps") {
      c.urls = {get("LDAPS_URL")};
    } else {
      c.urls = {get("LDAP_URL")};
      c.starttls = true;
    }
    c.ca_file = get("LDAP_CA");
    c.bind_dn = get("LDAP_BIND_DN");
    c.bind_password_file = get("LDAP_BIND_PASSWORD_FILE");
    c.user_base_dn = get("LDAP_USER_BASE");
    c.group_base_dn = get("LDAP_GROUP_BASE");
  } catch (const std::exception &e) {
    std::fprintf(stderr, "%s: %s\n", o.env_file.c_str(), e.what());
    return 1;
  }
  c.user_filter = "(objectClass=inetOrgPerson)";
  c.group_strategies = {"member", "posix"};
  c.max_depth = 5;
  c.connect_timeout_ms = 1000;
  c.operation_timeout_ms = 2000;
  c.decision_timeout_ms = 3000;
  c.backoff_max_ms = 500;
  c.pool_size = 2;

  ldap_global_init();
  spdlog::set_level(spdlog::level::warn);
  std::string error;
  std::shared_ptr<LdapDirectory> ldap = LdapDirectory::create(c, error);
  if (!ldap) {
    std::fprintf(stderr, "LdapDirectory: %s\n", error.c_str());
    return 1;
  }
  std::printf("directory: %s\n", ldap->describe().c_str());
  {
    const auto t0 = Clock::now();
    const UserLookup first = ldap->lookup("alice");
    std::printf("first lookup (connect + TLS + bind + search): %.0f us, %s %s\n", us_since(t0),
                lookup_status_name(first.status), first.error.c_str());
    if (first.status != LookupStatus::found) return 1;
  }

  const auto part = [&](char p) { return o.parts.find(p) != std::string::npos; };
  bool good = true;
  if (part('a')) good = cold_lookups(*ldap, o) && good;
  if (part('b')) good = warm_hits(ldap, o) && good;
  if (part('c')) good = hit_rate(ldap, o) && good;
  if (part('d') && !o.policy.empty() && !o.users.empty() && !o.cert.empty())
    good = decisions(c, o) && good;
  if (!good) std::printf("\nWARNING: unexpected answers above; the figures are not valid\n");
  return good ? 0 : 1;
}
