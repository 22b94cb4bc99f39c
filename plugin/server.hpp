// HTTP/1.1 server on a unix socket (Boost.Beast). Knows nothing about policy: it hands each
// request's method, target and body to a handler and writes back what the handler returns.
#pragma once

#include "plugin/service.hpp"

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace portcullis {

struct ServerOptions {
  std::string socket_path;
  unsigned socket_mode = 0600;
  std::string socket_group; // "" = leave as created
  std::size_t max_body_bytes = 16u << 20;
  int idle_timeout_seconds = 300; // a connection making no progress this long is closed
  int threads = 2;
  // Calls the handler answered with PluginReply::defer run again, with may_block, on this many
  // separate threads, so that I/O threads never wait (see AuthzService::handle). More than
  // max_pending such calls at once are denied.
  int lookup_threads = 4;
  int max_pending = 64;
  // A deferred call still waiting for a lookup thread after this long is denied unanswered, so
  // the time to an answer stays under queue wait + the handler's own lookup budget.
  int max_queue_ms = 2000;
};

using Handler = std::function<PluginReply(std::string_view method, std::string_view target,
                                          std::string_view body, bool may_block)>;
// Called on SIGHUP from a server thread.
using ReloadHook = std::function<void()>;

// Lets another thread wait for the server to listen and stop it (tests, embedding).
class ServerControl {
public:
  bool wait_ready(std::chrono::milliseconds timeout);
  void stop(); // same as SIGTERM
  // used by run_server
  void set_ready(std::function<void()> stop_fn);
  void set_stopped();

private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool ready_ = false;
  bool stopped_ = false;
  std::function<void()> stop_fn_;
};

// Binds the socket (removing a stale one, refusing if another server is live on it), serves
// until SIGTERM/SIGINT, then stops accepting, lets in-flight requests finish (bounded), removes
// the socket and returns 0. Returns non-zero when the socket cannot be set up.
// With `control`, signals are still handled and control->stop() stops the server too.
int run_server(const ServerOptions &opts, Handler handler, ReloadHook on_reload,
               ServerControl *control = nullptr);

} // namespace portcullis
