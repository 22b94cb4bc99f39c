// Internal to the LDAP provider (plugin/ldap.cpp): per-lookup deadlines, libldap error
// classification, and the pool of service-account connections (TLS verified, bound once, reused,
// reconnected with exponential backoff, recycled after max_connection_age_ms).
#pragma once

#include "plugin/config.hpp"
#include "plugin/directory.hpp"

#include <chrono>
#include <condition_variable>
#include <ldap.h>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <sys/time.h>
#include <utility>
#include <vector>

namespace portcullis {

using LdapClock = std::chrono::steady_clock;

// The end of one lookup: every operation gets min(its own limit, what is left).
class Deadline {
public:
  explicit Deadline(long long ms) : at_(LdapClock::now() + std::chrono::milliseconds(ms)) {}
  long long remaining_ms() const;
  bool expired() const { return remaining_ms() <= 0; }
  timeval timeout(long long cap_ms) const; // min(cap_ms, remaining), at least 1 ms
  LdapClock::time_point at() const { return at_; }

private:
  LdapClock::time_point at_;
};

// Why the LDAP layer could not answer.
struct LdapError {
  LookupStatus status = LookupStatus::failed; // unreachable or failed
  std::string message;
};

// SERVER_DOWN, CONNECT_ERROR, TIMEOUT, UNAVAILABLE, BUSY: the directory could not be reached.
bool ldap_rc_is_transport(int rc);
// ldap_err2string(rc) plus the handle's diagnostic message, if any.
std::string ldap_error_text(LDAP *ld, int rc);

// One bound connection. Owned by the pool while idle, by a lookup while checked out.
class LdapConn {
public:
  LdapConn();
  ~LdapConn();
  LdapConn(const LdapConn &) = delete;
  LdapConn &operator=(const LdapConn &) = delete;

  LDAP *ld = nullptr;
  LdapClock::time_point created = LdapClock::now();
  bool reused = false; // has served a lookup before (a transport error may just mean "stale")

  // Connect-phase watchdog state (see ldap_pool.cpp): the socket libldap opened, and whether the
  // watchdog had to shut it down because the deadline passed.
  std::mutex mu;
  int fd = -1;
  bool tcp_connected = false;
  bool watchdog_fired = false;
  // Set once the connect phase (TCP + TLS) has returned: from then on the connect callback refuses
  // every new socket, so libldap can never silently reopen a lost connection (ldap_open_defconn)
  // without StartTLS and without the bind.
  bool connect_phase_over = false;
  ldap_conncb callbacks{};
};

class LdapPool {
public:
  LdapPool(const LdapConfig &config, std::string password);
  ~LdapPool();
  LdapPool(const LdapPool &) = delete;
  LdapPool &operator=(const LdapPool &) = delete;

  // A bound connection, or nullptr + error. fresh_only: never hand out an idle connection.
  std::unique_ptr<LdapConn> acquire(const Deadline &deadline, bool fresh_only, LdapError &error);
  // Give the connection back; broken ones (transport error, timeout) are destroyed, and so are
  // all idle ones older than it (a server restart breaks them all). conn must not be null.
  void release(std::unique_ptr<LdapConn> conn, bool broken) noexcept;

private:
  std::unique_ptr<LdapConn> connect(const Deadline &deadline, LdapError &error);
  bool set_options(LdapConn &c, const Deadline &deadline, LdapError &error);
  bool establish(LdapConn &c, const Deadline &deadline, LdapError &error);
  void connect_failed(const LdapError &error);
  void connect_succeeded();
  std::unique_ptr<LdapConn> take_idle(bool fresh_only);

  const LdapConfig config_;
  const std::string password_;
  const std::string urls_; // space-separated, as ldap_initialize wants them

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<LdapConn>> idle_;
  int out_ = 0; // checked out or being connected
  // Reconnect backoff: no new connection before retry_at_ (last_failure_ is reported meanwhile).
  long long backoff_ms_ = 0;
  LdapClock::time_point retry_at_{};
  LdapError last_failure_;
  std::minstd_rand rng_;
};

// A checked-out connection that goes back to the pool exactly once: release(broken) when the
// lookup finished, otherwise (an exception, an early return) the destructor releases it as broken
// so that its pool slot is never leaked.
class LdapLease {
public:
  LdapLease(LdapPool &pool, std::unique_ptr<LdapConn> conn) : pool_(pool), conn_(std::move(conn)) {}
  ~LdapLease() {
    if (conn_) pool_.release(std::move(conn_), true);
  }
  LdapLease(const LdapLease &) = delete;
  LdapLease &operator=(const LdapLease &) = delete;

  explicit operator bool() const { return conn_ != nullptr; }
  LdapConn &conn() { return *conn_; }
  void release(bool broken) {
    if (conn_) pool_.release(std::move(conn_), broken);
  }

private:
  LdapPool &pool_;
  std::unique_ptr<LdapConn> conn_;
};

} // namespace portcullis
