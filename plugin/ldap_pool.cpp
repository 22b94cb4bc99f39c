// The LDAP connection pool: pool_size service-account connections, each verified-TLS (ldaps:// or
// a StartTLS that must succeed) and bound once with a simple bind that is never sent in cleartext.
// Checkout waits on a condition variable until the lookup's deadline. A connection that hit a
// transport error is destroyed; new connections are opened with exponential backoff (100 ms
// doubling to backoff_max_ms, jittered) and, while backing off, lookups fail fast with the last
// connect error instead of hammering the server.
//
// libldap does not bound the TLS handshake of an ldaps:// connection (a SIGSTOPped server hangs
// it forever), so a watchdog thread shuts the socket down when the deadline passes during the
// connect phase. The socket is learned from libldap's connection callbacks.
#include "plugin/ldap_pool.hpp"

#include <algorithm>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <thread>
#include <utility>

namespace portcullis {

long long Deadline::remaining_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(at_ - LdapClock::now()).count();
}

timeval Deadline::timeout(long long cap_ms) const {
  const long long ms = std::max(1LL, std::min(cap_ms, remaining_ms()));
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
  return tv;
}

bool ldap_rc_is_transport(int rc) {
  return rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR || rc == LDAP_TIMEOUT ||
         rc == LDAP_UNAVAILABLE || rc == LDAP_BUSY;
}

std::string ldap_error_text(LDAP *ld, int rc) {
  std::string text = ldap_err2string(rc);
  char *diag = nullptr;
  if (ld != nullptr &&
      ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag) == LDAP_OPT_SUCCESS &&
      diag != nullptr) {
    const std::string d = diag;
    ldap_memfree(diag);
    if (!d.empty() && d != "(unknown error code)") text += " (" + d + ")";
  }
  return text;
}

namespace {

// A non-zero return makes libldap close the new socket and fail the operation.
int on_connect(LDAP *, Sockbuf *sb, LDAPURLDesc *, sockaddr *, ldap_conncb *ctx) {
  auto *c = static_cast<LdapConn *>(ctx->lc_arg);
  int fd = -1;
  ber_sockbuf_ctrl(sb, LBER_SB_OPT_GET_FD, &fd);
  std::lock_guard lk(c->mu);
  if (c->connect_phase_over) return -1; // a silent reconnect: no StartTLS, no bind; refused
  c->fd = fd;
  c->tcp_connected = true;
  return 0;
}

void on_disconnect(LDAP *, Sockbuf *, ldap_conncb *ctx) {
  auto *c = static_cast<LdapConn *>(ctx->lc_arg);
  std::lock_guard lk(c->mu);
  c->fd = -1;
}

// Shuts the connection's socket down if the connect phase outlives the deadline.
class ConnectWatchdog {
public:
  ConnectWatchdog(LdapConn &c, LdapClock::time_point at)
      : thread_([this, &c, at] { run(c, at); }) {}
  ~ConnectWatchdog() {
    {
      std::lock_guard lk(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  ConnectWatchdog(const ConnectWatchdog &) = delete;
  ConnectWatchdog &operator=(const ConnectWatchdog &) = delete;

private:
  void run(LdapConn &c, LdapClock::time_point at) {
    std::unique_lock lk(mu_);
    if (cv_.wait_until(lk, at, [this] { return done_; })) return;
    std::lock_guard ck(c.mu);
    if (c.fd >= 0) {
      ::shutdown(c.fd, SHUT_RDWR);
      c.watchdog_fired = true;
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_; // last: starts after the members above exist
};

bool set_opt(LDAP *ld, int option, const void *value, const char *name, LdapError &error) {
  const int rc = ldap_set_option(ld, option, value);
  if (rc == LDAP_OPT_SUCCESS) return true;
  error = {LookupStatus::failed,
           std::string("LDAP: setting option ") + name + " failed: " + ldap_err2string(rc)};
  return false;
}

std::string join_urls(const std::vector<std::string> &urls) {
  std::string out;
  for (const auto &u : urls)
    out += (out.empty() ? "" : " ") + u;
  return out;
}

} // namespace

LdapConn::LdapConn() {
  callbacks.lc_add = on_connect;
  callbacks.lc_del = on_disconnect;
  callbacks.lc_arg = this;
}

LdapConn::~LdapConn() {
  if (ld != nullptr) ldap_unbind_ext_s(ld, nullptr, nullptr);
}

LdapPool::LdapPool(const LdapConfig &config, std::string password)
    : config_(config), password_(std::move(password)), urls_(join_urls(config.urls)),
      rng_(std::random_device{}()) {
  idle_.reserve(static_cast<std::size_t>(std::max(1, config.pool_size)));
}

LdapPool::~LdapPool() = default;

bool LdapPool::set_options(LdapConn &c, const Deadline &d, LdapError &e) {
  LDAP *ld = c.ld;
  const int v3 = LDAP_VERSION3, deref = LDAP_DEREF_NEVER, demand = LDAP_OPT_X_TLS_DEMAND;
  const int timelimit = static_cast<int>((config_.operation_timeout_ms + 999) / 1000);
  const timeval net = d.timeout(config_.connect_timeout_ms);
  const timeval op = d.timeout(config_.operation_timeout_ms);
  const int newctx_client = 0;
  bool ok = set_opt(ld, LDAP_OPT_PROTOCOL_VERSION, &v3, "PROTOCOL_VERSION", e) &&
            set_opt(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF, "REFERRALS", e) &&
            set_opt(ld, LDAP_OPT_RESTART, LDAP_OPT_ON, "RESTART", e) &&
            set_opt(ld, LDAP_OPT_NETWORK_TIMEOUT, &net, "NETWORK_TIMEOUT", e) &&
            set_opt(ld, LDAP_OPT_TIMEOUT, &op, "TIMEOUT", e) &&
            set_opt(ld, LDAP_OPT_TIMELIMIT, &timelimit, "TIMELIMIT", e) &&
            set_opt(ld, LDAP_OPT_DEREF, &deref, "DEREF", e) &&
            set_opt(ld, LDAP_OPT_CONNECT_CB, &c.callbacks, "CONNECT_CB", e);
  if (!ok) return false;
  const unsigned user_timeout = static_cast<unsigned>(config_.operation_timeout_ms);
  if (ldap_set_option(ld, LDAP_OPT_TCP_USER_TIMEOUT, &user_timeout) != LDAP_OPT_SUCCESS)
    spdlog::debug("LDAP: TCP_USER_TIMEOUT is not supported here; relying on operation timeouts");
  ok = set_opt(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand, "X_TLS_REQUIRE_CERT", e) &&
       set_opt(ld, LDAP_OPT_X_TLS_CACERTFILE, config_.ca_file.c_str(), "X_TLS_CACERTFILE", e);
  if (ok && !config_.client_cert.empty())
    ok = set_opt(ld, LDAP_OPT_X_TLS_CERTFILE, config_.client_cert.c_str(), "X_TLS_CERTFILE", e) &&
         set_opt(ld, LDAP_OPT_X_TLS_KEYFILE, config_.client_key.c_str(), "X_TLS_KEYFILE", e);
  if (ok && !config_.tls_cipher_suite.empty())
    ok = set_opt(ld, LDAP_OPT_X_TLS_CIPHER_SUITE, config_.tls_cipher_suite.c_str(),
                 "X_TLS_CIPHER_SUITE", e);
  // Last TLS option: builds the handle's own TLS context from the options above.
  return ok && set_opt(ld, LDAP_OPT_X_TLS_NEWCTX, &newctx_client, "X_TLS_NEWCTX", e);
}

// TCP + TLS (ldaps handshake or StartTLS) + simple bind, all before the deadline.
bool LdapPool::establish(LdapConn &c, const Deadline &d, LdapError &e) {
  ConnectWatchdog watchdog(c, d.at());
  int rc = config_.starttls ? ldap_start_tls_s(c.ld, nullptr, nullptr) : ldap_connect(c.ld);
  bool tcp_connected = false, fired = false;
  {
    std::lock_guard lk(c.mu);
    c.connect_phase_over = true; // any later connection attempt on this handle is refused
    tcp_connected = c.tcp_connected;
    fired = c.watchdog_fired;
  }
  if (rc != LDAP_SUCCESS) {
    if (fired || rc == LDAP_TIMEOUT)
      e = {LookupStatus::unreachable,
           "directory unreachable: connecting to " + urls_ + " timed out (TLS/StartTLS)"};
    else if (tcp_connected && (rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR))
      e = {LookupStatus::failed,
           "LDAP TLS handshake with " + urls_ +
               " failed: the server certificate could not be verified against " + config_.ca_file +
               " (or the server does not speak TLS): " + ldap_error_text(c.ld, rc)};
    else if (ldap_rc_is_transport(rc))
      e = {LookupStatus::unreachable,
           "directory unreachable: " + urls_ + ": " + ldap_error_text(c.ld, rc)};
    else
      e = {LookupStatus::failed,
           (config_.starttls ? "LDAP StartTLS with " : "LDAP connection to ") + urls_ +
               " failed: " + ldap_error_text(c.ld, rc)};
    return false;
  }
  if (ldap_tls_inplace(c.ld) == 0) {
    e = {LookupStatus::failed, "LDAP: TLS is not in place on the connection to " + urls_ +
                                   "; refusing to send the bind password in cleartext"};
    return false;
  }
  berval cred{static_cast<ber_len_t>(password_.size()), const_cast<char *>(password_.data())};
  rc = ldap_sasl_bind_s(c.ld, config_.bind_dn.c_str(), LDAP_SASL_SIMPLE, &cred, nullptr, nullptr,
                        nullptr);
  if (rc == LDAP_SUCCESS) return true;
  {
    std::lock_guard lk(c.mu);
    fired = c.watchdog_fired;
  }
  if (fired || ldap_rc_is_transport(rc))
    e = {LookupStatus::unreachable,
         "directory unreachable: binding to " + urls_ + ": " + ldap_error_text(c.ld, rc)};
  else
    e = {LookupStatus::failed, "LDAP: the service account bind as '" + config_.bind_dn +
                                   "' failed: " + ldap_error_text(c.ld, rc)};
  return false;
}

std::unique_ptr<LdapConn> LdapPool::connect(const Deadline &d, LdapError &e) {
  auto c = std::make_unique<LdapConn>();
  const int rc = ldap_initialize(&c->ld, urls_.c_str());
  if (rc != LDAP_SUCCESS || c->ld == nullptr) {
    c->ld = nullptr;
    e = {LookupStatus::failed, "LDAP: cannot use the URLs '" + urls_ + "': " + ldap_err2string(rc)};
    return nullptr;
  }
  if (!set_options(*c, d, e) || !establish(*c, d, e)) return nullptr;
  return c;
}

void LdapPool::connect_failed(const LdapError &error) {
  backoff_ms_ = backoff_ms_ == 0 ? 100 : std::min(backoff_ms_ * 2, config_.backoff_max_ms);
  const long long half = backoff_ms_ / 2;
  const long long delay = half + static_cast<long long>(rng_() % static_cast<unsigned>(half + 1));
  retry_at_ = LdapClock::now() + std::chrono::milliseconds(delay);
  last_failure_ = error;
  spdlog::warn("LDAP: {} (next connection attempt in {} ms)", error.message, delay);
}

void LdapPool::connect_succeeded() {
  if (backoff_ms_ != 0) spdlog::info("LDAP: connected again to {}", urls_);
  backoff_ms_ = 0;
  retry_at_ = {};
}

std::unique_ptr<LdapConn> LdapPool::take_idle(bool fresh_only) {
  const auto max_age = std::chrono::milliseconds(config_.max_connection_age_ms);
  while (!idle_.empty()) {
    std::unique_ptr<LdapConn> c = std::move(idle_.back());
    idle_.pop_back();
    if (!fresh_only && LdapClock::now() - c->created < max_age) return c;
    // too old (or the caller wants a new one): c is closed here, freeing its slot
  }
  return nullptr;
}

std::unique_ptr<LdapConn> LdapPool::acquire(const Deadline &d, bool fresh_only, LdapError &e) {
  std::unique_lock lk(mu_);
  for (;;) {
    if (auto c = take_idle(fresh_only)) {
      ++out_;
      return c;
    }
    if (out_ < config_.pool_size) break;
    if (cv_.wait_until(lk, d.at()) == std::cv_status::timeout && out_ >= config_.pool_size &&
        idle_.empty()) {
      e = {LookupStatus::unreachable, "directory unreachable: all " +
                                          std::to_string(config_.pool_size) +
                                          " LDAP connections stayed busy until the deadline"};
      return nullptr;
    }
  }
  if (LdapClock::now() < retry_at_) {
    e = last_failure_;
    e.message += " (not retrying yet: reconnect backoff)";
    return nullptr;
  }
  ++out_;
  lk.unlock();
  std::unique_ptr<LdapConn> c;
  try { // e.g. std::thread (the watchdog) or an allocation failing: the slot must come back
    c = connect(d, e);
  } catch (const std::exception &ex) {
    c.reset();
    e = {LookupStatus::failed, std::string("LDAP: internal error while connecting: ") + ex.what()};
  } catch (...) {
    c.reset();
    e = {LookupStatus::failed, "LDAP: internal error while connecting"};
  }
  lk.lock();
  if (c) {
    connect_succeeded();
    return c;
  }
  --out_;
  connect_failed(e);
  lk.unlock();
  cv_.notify_one();
  return nullptr;
}

void LdapPool::release(std::unique_ptr<LdapConn> conn, bool broken) noexcept {
  std::vector<std::unique_ptr<LdapConn>> dropped;
  {
    std::lock_guard lk(mu_);
    --out_;
    const auto max_age = std::chrono::milliseconds(config_.max_connection_age_ms);
    if (broken) {
      dropped.swap(idle_); // a restarted or frozen server breaks them all
    } else if (conn && LdapClock::now() - conn->created < max_age) {
      conn->reused = true;
      try {
        idle_.push_back(std::move(conn)); // strong guarantee: on failure conn is just closed
      } catch (...) {}
    }
  }
  cv_.notify_one();
  // dropped connections (and conn, unless it went idle) are unbound here, outside the lock
}

} // namespace portcullis
