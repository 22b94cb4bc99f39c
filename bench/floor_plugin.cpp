// portcullis-floor: the cheapest possible Docker authz plugin, used as the benchmark floor.
//
// It speaks exactly the transport portcullis speaks (HTTP/1.1 keep-alive on a unix socket,
// Boost.Beast, several threads) and answers /Plugin.Activate with {"Implements":["authz"]} and
// every other POST with {"Allow":true} WITHOUT looking at the body. Whatever it costs is the
// unavoidable price of the protocol; portcullis is measured against it.
//
// NEVER use it as a real plugin: it allows everything.
//
// Usage: portcullis-floor --socket PATH [--threads N]     (SIGTERM / SIGINT stop it)

// clang-format off
#include <utility> // before Asio: Boost 1.74 awaitable.hpp uses std::exchange without it
// clang-format on

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using local = asio::local::stream_protocol;

namespace {

constexpr std::uint64_t kMaxBody = 16 * 1024 * 1024; // dockerd forwards at most 4 MiB anyway
constexpr std::string_view kActivate = R"({"Implements":["authz"]})";
constexpr std::string_view kAllow = R"({"Allow":true})";

class Session : public std::enable_shared_from_this<Session> {
public:
  explicit Session(local::socket s) : socket_(std::move(s)) {}

  // Same read buffer as portcullis's server (plugin/server.cpp): a daemon call in one recv.
  void start() {
    buffer_.reserve(16 * 1024);
    read();
  }

private:
  void read() {
    parser_.emplace();
    parser_->body_limit(kMaxBody);
    http::async_read(
        socket_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec) {
      close();
      return;
    }
    const auto &req = parser_->get();
    res_ = {};
    res_.version(11);
    res_.keep_alive(req.keep_alive());
    res_.set(http::field::content_type, "application/vnd.docker.plugins.v1.1+json");
    if (req.method() != http::verb::post) {
      res_.result(http::status::method_not_allowed);
      res_.body() = R"({"Err":"method not allowed"})";
    } else {
      res_.result(http::status::ok);
      res_.body() = req.target() == "/Plugin.Activate" ? kActivate : kAllow;
    }
    res_.prepare_payload();
    http::async_write(socket_, res_,
                      [self = shared_from_this()](beast::error_code wec, std::size_t) {
                        if (wec || !self->res_.keep_alive()) {
                          self->close();
                          return;
                        }
                        self->read();
                      });
  }

  void close() {
    beast::error_code ignored;
    socket_.shutdown(local::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

  local::socket socket_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
};

void accept_loop(local::acceptor &acceptor) {
  acceptor.async_accept([&acceptor](beast::error_code ec, local::socket s) {
    if (!acceptor.is_open()) return;
    if (!ec) std::make_shared<Session>(std::move(s))->start();
    accept_loop(acceptor);
  });
}

int usage() {
  std::fprintf(stderr, "usage: portcullis-floor --socket PATH [--threads N]\n");
  return 2;
}

} // namespace

int main(int argc, char **argv) {
  std::string path;
  int threads = 2;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--socket" && i + 1 < argc) {
      path = argv[++i];
    } else if (a == "--threads" && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else {
      return usage();
    }
  }
  if (path.empty() || threads < 1 || threads > 256) return usage();

  try {
    std::error_code fec;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path(), fec);
    if (std::filesystem::is_socket(path, fec)) std::filesystem::remove(path, fec);

    asio::io_context ioc(threads);
    local::acceptor acceptor(ioc, local::endpoint(path));
    asio::signal_set signals(ioc, SIGTERM, SIGINT);
    signals.async_wait([&](beast::error_code, int) {
      beast::error_code ignored;
      acceptor.close(ignored);
      ioc.stop();
    });
    accept_loop(acceptor);
    std::fprintf(stderr, "portcullis-floor: listening on %s with %d threads\n", path.c_str(),
                 threads);

    std::vector<std::thread> pool;
    for (int i = 1; i < threads; ++i)
      pool.emplace_back([&ioc] { ioc.run(); });
    ioc.run();
    for (auto &t : pool)
      t.join();
    std::filesystem::remove(path, fec);
    std::fprintf(stderr, "portcullis-floor: stopped\n");
    return 0;
  } catch (const std::exception &e) {
    std::fprintf(stderr, "portcullis-floor: %s\n", e.what());
    return 1;
  }
}
