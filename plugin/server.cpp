// clang-format off
#include <utility> // Boost 1.74 Asio needs std::exchange declared before its headers under C++20
// clang-format on
#include "plugin/server.hpp"

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <grp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace portcullis {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using local = asio::local::stream_protocol;

namespace {

class Session;

struct Shared {
  Handler handler;
  ServerOptions opts;
  std::atomic<bool> stopping{false};
  std::atomic<int> busy{0};                    // requests read but not yet answered
  std::unique_ptr<asio::thread_pool> blocking; // runs deferred calls (daemon lookups)
  std::atomic<int> pending{0};                 // deferred calls queued or running
  std::mutex reg_mu;
  std::vector<std::weak_ptr<Session>> sessions;
};

using SteadyClock = std::chrono::steady_clock;

inline std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(SteadyClock::now().time_since_epoch())
      .count();
}

// A session is driven by one chain of async operations at a time (read, then write, then read
// ...), so it needs no strand and no per-operation timer: a sweeper closes connections that
// made no progress for idle_timeout_seconds by shutting the descriptor down, which completes the
// pending operation with an error.
class Session : public std::enable_shared_from_this<Session> {
public:
  Session(local::socket sock, std::shared_ptr<Shared> shared)
      : socket_(std::move(sock)), fd_(socket_.native_handle()), shared_(std::move(shared)) {}
  ~Session() {
    if (busy_) shared_->busy.fetch_sub(1);
  }

  void start() {
    {
      std::lock_guard lock(shared_->reg_mu);
      shared_->sessions.push_back(weak_from_this());
    }
    // Beast reads at most max(512, free capacity) bytes per recv(2): without room, a 3.5 KB
    // container-create call took 8 system calls. Larger calls grow the buffer as needed.
    buffer_.reserve(16 * 1024);
    read_next();
  }

  // Called by the sweeper (any thread) while it holds a reference to this session, so the
  // descriptor is still open: shutdown(2) on it is safe and wakes the pending operation.
  void shutdown_if_stale(std::int64_t now, std::int64_t limit) {
    if (now - last_activity_.load(std::memory_order_relaxed) > limit) ::shutdown(fd_, SHUT_RDWR);
  }

private:
  void touch() { last_activity_.store(now_seconds(), std::memory_order_relaxed); }

  void read_next() {
    parser_.emplace();
    parser_->body_limit(shared_->opts.max_body_bytes);
    parser_->header_limit(64 * 1024);
    touch();
    http::async_read(socket_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    touch();
    if (ec == http::error::end_of_stream || ec == asio::error::eof ||
        ec == asio::error::connection_reset || ec == asio::error::operation_aborted ||
        ec == asio::error::shut_down || ec == asio::error::broken_pipe) {
      return close();
    }
    if (ec == http::error::body_limit) {
      // Too large to judge: deny (HTTP 200 so the daemon shows our message), then close.
      spdlog::warn("request body over {} bytes refused", shared_->opts.max_body_bytes);
      return reply_and_close(
          200, encode_authz_response(
                   false, deny_message("request from the daemon exceeds the size limit of " +
                                           std::to_string(shared_->opts.max_body_bytes) + " bytes",
                                       "request-too-large", new_decision_id())));
    }
    if (ec) {
      spdlog::warn("bad HTTP request on plugin socket: {}", ec.message());
      return reply_and_close(400, encode_plugin_error("portcullis: malformed HTTP request"));
    }
    set_busy(true);
    PluginReply reply = call_handler(false);
    if (reply.defer) return defer();
    auto &req = parser_->get();
    bool keep = req.keep_alive() && !shared_->stopping.load();
    write_reply(reply.status, std::move(reply.body), keep, req.version());
  }

  PluginReply call_handler(bool may_block) {
    auto &req = parser_->get();
    return shared_->handler(
        std::string_view(req.method_string().data(), req.method_string().size()),
        std::string_view(req.target().data(), req.target().size()), req.body(), may_block);
  }

  // The call waits for the daemon: answer it from the blocking pool, so this I/O thread is free
  // to serve the daemon's authorization of portcullis's own lookup.
  void defer() {
    if (shared_->pending.fetch_add(1) >= shared_->opts.max_pending) {
      shared_->pending.fetch_sub(1);
      spdlog::warn("more than {} requests wait for daemon lookups: denying",
                   shared_->opts.max_pending);
      return reply_and_close(
          200,
          encode_authz_response(
              false, deny_message("too many requests are waiting for daemon lookups, try again",
                                  "daemon-lookup", new_decision_id())));
    }
    const auto queued = std::chrono::steady_clock::now();
    asio::post(*shared_->blocking, [self = shared_from_this(), queued] {
      auto deny = [](const char *why, const char *rule) {
        return PluginReply{
            200, encode_authz_response(false, deny_message(why, rule, new_decision_id()))};
      };
      PluginReply reply;
      const auto waited = std::chrono::steady_clock::now() - queued;
      if (self->shared_->stopping.load())
        reply = deny("portcullis is stopping, try again", "daemon-lookup");
      else if (waited > std::chrono::milliseconds(self->shared_->opts.max_queue_ms))
        reply =
            deny("too many requests are waiting for daemon lookups, try again", "daemon-lookup");
      else
        reply = self->call_handler(true);
      if (reply.defer) // a handler must answer when it may block; never loop
        reply = deny("internal error, request denied", "internal-error");
      self->shared_->pending.fetch_sub(1);
      auto &req = self->parser_->get();
      bool keep = req.keep_alive() && !self->shared_->stopping.load();
      unsigned version = req.version();
      asio::post(self->socket_.get_executor(),
                 [self, reply = std::move(reply), keep, version]() mutable {
                   self->write_reply(reply.status, std::move(reply.body), keep, version);
                 });
    });
  }

  void write_reply(int status, std::string body, bool keep_alive, unsigned version = 11) {
    res_ = {};
    res_.result(static_cast<http::status>(status));
    res_.version(version);
    res_.set(http::field::content_type, "application/vnd.docker.plugins.v1.2+json");
    res_.keep_alive(keep_alive);
    res_.body() = std::move(body);
    res_.prepare_payload();
    http::async_write(socket_, res_,
                      [self = shared_from_this(), keep_alive](beast::error_code ec, std::size_t) {
                        self->set_busy(false);
                        if (ec || !keep_alive) return self->close();
                        self->read_next();
                      });
  }

  void set_busy(bool b) {
    if (b == busy_) return;
    busy_ = b;
    shared_->busy.fetch_add(b ? 1 : -1);
  }

  void reply_and_close(int status, std::string body) {
    write_reply(status, std::move(body), false);
  }

  // Only shuts the connection down; the descriptor is closed by the socket's destructor, so a
  // sweeper holding a reference never touches a reused descriptor.
  void close() {
    beast::error_code ec;
    socket_.shutdown(local::socket::shutdown_both, ec);
  }

  local::socket socket_;
  int fd_;
  std::shared_ptr<Shared> shared_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
  std::atomic<std::int64_t> last_activity_{now_seconds()};
  bool busy_ = false;
};

// Every second: forget finished sessions, shut down the ones idle for too long.
class Sweeper : public std::enable_shared_from_this<Sweeper> {
public:
  Sweeper(asio::io_context &ioc, std::shared_ptr<Shared> shared)
      : timer_(ioc), shared_(std::move(shared)) {}
  void start() {
    timer_.expires_after(std::chrono::seconds(1));
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->shared_->stopping) return;
      self->sweep();
      self->start();
    });
  }
  void cancel() { timer_.cancel(); }

private:
  void sweep() {
    const auto now = now_seconds();
    const std::int64_t limit = shared_->opts.idle_timeout_seconds;
    std::vector<std::shared_ptr<Session>> live;
    {
      std::lock_guard lock(shared_->reg_mu);
      auto &v = shared_->sessions;
      std::size_t keep = 0;
      for (std::size_t i = 0; i < v.size(); ++i) {
        if (auto sp = v[i].lock()) {
          live.push_back(std::move(sp));
          if (keep != i) v[keep] = v[i]; // (self-move would empty a weak_ptr)
          ++keep;
        }
      }
      v.resize(keep);
    }
    for (auto &sp : live)
      sp->shutdown_if_stale(now, limit);
  }
  asio::steady_timer timer_;
  std::shared_ptr<Shared> shared_;
};

class Listener : public std::enable_shared_from_this<Listener> {
public:
  Listener(asio::io_context &ioc, local::acceptor acceptor, std::shared_ptr<Shared> shared)
      : ioc_(ioc), acceptor_(std::move(acceptor)), shared_(std::move(shared)) {}
  void start() { accept(); }
  void stop() {
    beast::error_code ec;
    acceptor_.close(ec);
  }

private:
  void accept() {
    acceptor_.async_accept(ioc_,
                           [self = shared_from_this()](beast::error_code ec, local::socket sock) {
                             if (ec == asio::error::operation_aborted || self->shared_->stopping)
                               return;
                             if (!ec)
                               std::make_shared<Session>(std::move(sock), self->shared_)->start();
                             else
                               spdlog::warn("accept failed: {}", ec.message());
                             self->accept();
                           });
  }
  asio::io_context &ioc_;
  local::acceptor acceptor_;
  std::shared_ptr<Shared> shared_;
};

// Returns "" on success.
std::string prepare_socket_path(const std::string &path) {
  namespace fs = std::filesystem;
  if (path.size() >= sizeof(sockaddr_un::sun_path)) return "socket path too long: " + path;
  std::error_code ec;
  fs::path p(path);
  if (p.has_parent_path()) {
    fs::create_directories(p.parent_path(), ec);
    if (ec) return "cannot create " + p.parent_path().string() + ": " + ec.message();
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return path + " exists and is not a socket; refusing to remove it";
    // A live server answers a connect; a stale socket refuses it.
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    bool live = fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) == 0;
    if (fd >= 0) ::close(fd);
    if (live) return "another server is already listening on " + path;
    if (::unlink(path.c_str()) != 0)
      return "cannot remove stale socket " + path + ": " + std::strerror(errno);
    spdlog::info("removed stale socket {}", path);
  }
  return "";
}

} // namespace

bool ServerControl::wait_ready(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return ready_ || stopped_; }) && ready_;
}

void ServerControl::stop() {
  std::function<void()> fn;
  {
    std::lock_guard lock(mu_);
    fn = stop_fn_;
  }
  if (fn) fn();
}

void ServerControl::set_ready(std::function<void()> stop_fn) {
  std::lock_guard lock(mu_);
  stop_fn_ = std::move(stop_fn);
  ready_ = true;
  cv_.notify_all();
}

void ServerControl::set_stopped() {
  std::lock_guard lock(mu_);
  stopped_ = true;
  ready_ = false;
  stop_fn_ = nullptr;
  cv_.notify_all();
}

int run_server(const ServerOptions &opts, Handler handler, ReloadHook on_reload,
               ServerControl *control) {
  struct StopGuard {
    ServerControl *c;
    ~StopGuard() {
      if (c) c->set_stopped();
    }
  } stop_guard{control};
  if (auto err = prepare_socket_path(opts.socket_path); !err.empty()) {
    spdlog::critical("{}", err);
    return 2;
  }
  asio::io_context ioc(opts.threads);
  auto shared = std::make_shared<Shared>();
  shared->handler = std::move(handler);
  shared->opts = opts;
  shared->blocking = std::make_unique<asio::thread_pool>(std::max(1, opts.lookup_threads));

  local::acceptor acceptor(ioc);
  try {
    acceptor.open(local());
    // Create the socket with no permissions for group/others, then widen to the configured mode:
    // there is never a moment where others can connect.
    mode_t old = ::umask(0177);
    beast::error_code ec;
    acceptor.bind(local::endpoint(opts.socket_path), ec);
    ::umask(old);
    if (ec) throw beast::system_error(ec);
    acceptor.listen(asio::socket_base::max_listen_connections);
  } catch (const std::exception &e) {
    spdlog::critical("cannot listen on {}: {}", opts.socket_path, e.what());
    return 2;
  }
  if (!opts.socket_group.empty()) {
    struct group *g = ::getgrnam(opts.socket_group.c_str());
    if (!g || ::chown(opts.socket_path.c_str(), static_cast<uid_t>(-1), g->gr_gid) != 0) {
      spdlog::critical("cannot give socket {} to group '{}'", opts.socket_path, opts.socket_group);
      ::unlink(opts.socket_path.c_str());
      return 2;
    }
  }
  if (::chmod(opts.socket_path.c_str(), opts.socket_mode) != 0) {
    spdlog::critical("cannot chmod socket {}: {}", opts.socket_path, std::strerror(errno));
    ::unlink(opts.socket_path.c_str());
    return 2;
  }

  auto listener = std::make_shared<Listener>(ioc, std::move(acceptor), shared);
  listener->start();
  auto sweeper = std::make_shared<Sweeper>(ioc, shared);
  sweeper->start();

  asio::signal_set signals(ioc, SIGINT, SIGTERM, SIGHUP);
  asio::steady_timer drain(ioc);
  std::function<void(beast::error_code, int)> on_signal;
  std::function<void()> wait_drain;
  auto drain_deadline = std::make_shared<std::chrono::steady_clock::time_point>();
  wait_drain = [&]() {
    if (shared->busy.load() == 0 || std::chrono::steady_clock::now() >= *drain_deadline) {
      ioc.stop();
      return;
    }
    drain.expires_after(std::chrono::milliseconds(20));
    drain.async_wait([&](beast::error_code) { wait_drain(); });
  };
  auto begin_stop = [&] {
    if (shared->stopping.exchange(true)) return;
    listener->stop();
    sweeper->cancel();
    // Idle keep-alive connections are parked in async_read and hold no request to finish; they
    // are torn down with the io_context. Requests being answered get up to 5 s.
    *drain_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    wait_drain();
  };
  on_signal = [&](beast::error_code ec, int sig) {
    if (ec) return;
    if (sig == SIGHUP) {
      spdlog::info("SIGHUP: reloading");
      if (on_reload) on_reload();
      signals.async_wait(on_signal);
      return;
    }
    spdlog::info("signal {}: stopping (in-flight requests get up to 5 s)", sig);
    begin_stop();
  };
  signals.async_wait(on_signal);
  if (control) control->set_ready([&ioc, &begin_stop] { asio::post(ioc, begin_stop); });

  spdlog::info("listening on {} (mode {:o}, {} threads)", opts.socket_path, opts.socket_mode,
               opts.threads);
  std::vector<std::thread> pool;
  for (int i = 1; i < opts.threads; ++i)
    pool.emplace_back([&] { ioc.run(); });
  ioc.run();
  for (auto &t : pool)
    t.join();
  // Queued calls are dropped; running lookups end within their deadline (replies dropped).
  shared->blocking->stop();
  shared->blocking->join();
  if (control) control->set_stopped();
  ::unlink(opts.socket_path.c_str());
  spdlog::info("stopped");
  return 0;
}

} // namespace portcullis
