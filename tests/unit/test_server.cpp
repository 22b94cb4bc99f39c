// The unix-socket HTTP server: keep-alive, concurrency, limits, stale sockets, stop.
#include "plugin/codec.hpp"
#include "plugin/server.hpp"
#include "test_support.hpp"

#include <atomic>
#include <cstring>
#include <doctest/doctest.h>
#include <filesystem>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>

using namespace portcullis;
using namespace portcullis::test;
namespace fs = std::filesystem;

namespace {

struct TestServer {
  std::string dir, sock;
  ServerControl control;
  std::thread thread;
  std::atomic<int> calls{0};
  int rc = -1;

  int idle = 5;
  explicit TestServer(std::size_t max_body = 1 << 20, int idle_seconds = 5) : idle(idle_seconds) {
    char tmpl[] = "/tmp/portcullis-srv-XXXXXX";
    dir = mkdtemp(tmpl);
    sock = dir + "/p.sock";
    start(max_body);
  }
  void start(std::size_t max_body) {
    ServerOptions o;
    o.socket_path = sock;
    o.max_body_bytes = max_body;
    o.threads = 2;
    o.idle_timeout_seconds = idle;
    thread = std::thread([this, o] {
      rc = run_server(
          o,
          [this](std::string_view m, std::string_view t, std::string_view b, bool) {
            calls++;
            if (t == "/Plugin.Activate") return PluginReply{200, encode_activate_response()};
            return PluginReply{200, encode_authz_response(b.size() % 2 == 0, std::string(m))};
          },
          nullptr, &control);
    });
    REQUIRE(control.wait_ready(std::chrono::seconds(10)));
  }
  ~TestServer() {
    control.stop();
    if (thread.joinable()) thread.join();
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

} // namespace

TEST_CASE("server: socket is created owner-only and answers Activate") {
  TestServer s;
  struct stat st {};
  REQUIRE(::stat(s.sock.c_str(), &st) == 0);
  CHECK(S_ISSOCK(st.st_mode));
  CHECK((st.st_mode & 0777) == 0600);
  int fd = dial(s.sock);
  REQUIRE(fd >= 0);
  send_all(fd, post("/Plugin.Activate", ""));
  auto r = read_response(fd);
  CHECK(r.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(r.find("{\"Implements\":[\"authz\"]}") != std::string::npos);
  ::close(fd);
}

TEST_CASE("server: keep-alive serves many requests on one connection") {
  TestServer s;
  int fd = dial(s.sock);
  REQUIRE(fd >= 0);
  for (int i = 0; i < 50; ++i) {
    send_all(fd, post("/AuthZPlugin.AuthZReq", i % 2 ? "x" : "xx"));
    auto r = read_response(fd);
    REQUIRE(r.rfind("HTTP/1.1 200", 0) == 0);
    CHECK(r.find(i % 2 ? "\"Allow\":false" : "\"Allow\":true") != std::string::npos);
  }
  // Two pipelined requests in one write.
  send_all(fd, post("/AuthZPlugin.AuthZReq", "aa") + post("/AuthZPlugin.AuthZReq", "a"));
  std::string carry;
  CHECK(read_response(fd, carry).find("\"Allow\":true") != std::string::npos);
  CHECK(read_response(fd, carry).find("\"Allow\":false") != std::string::npos);
  ::close(fd);
  CHECK(s.calls.load() == 52);
}

TEST_CASE("server: many concurrent connections") {
  TestServer s;
  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 16; ++c) {
    clients.emplace_back([&] {
      int fd = dial(s.sock);
      if (fd < 0) return;
      for (int i = 0; i < 20; ++i) {
        send_all(fd, post("/AuthZPlugin.AuthZReq", "{}"));
        if (read_response(fd).find("\"Allow\":true") != std::string::npos) ok++;
      }
      ::close(fd);
    });
  }
  for (auto &t : clients)
    t.join();
  CHECK(ok.load() == 16 * 20);
}

TEST_CASE("server: oversized bodies are denied and the server keeps serving") {
  TestServer s(4096);
  int fd = dial(s.sock);
  REQUIRE(fd >= 0);
  send_all(fd, post("/AuthZPlugin.AuthZReq", std::string(100000, 'a')));
  auto r = read_response(fd);
  CHECK(r.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(r.find("\"Allow\":false") != std::string::npos);
  CHECK(r.find("rule=request-too-large") != std::string::npos);
  ::close(fd);
  int fd2 = dial(s.sock);
  REQUIRE(fd2 >= 0);
  send_all(fd2, post("/AuthZPlugin.AuthZReq", "aa"));
  CHECK(read_response(fd2).find("\"Allow\":true") != std::string::npos);
  ::close(fd2);
}

TEST_CASE("server: malformed HTTP gets 400 and a closed connection") {
  TestServer s;
  const char *bad[] = {"GARBAGE\r\n\r\n", "POST / HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
                       "POST / HTTP/9.9\r\n\r\n"};
  for (const char *b : bad) {
    CAPTURE(b);
    int fd = dial(s.sock);
    REQUIRE(fd >= 0);
    send_all(fd, b);
    auto r = read_response(fd);
    CHECK(r.rfind("HTTP/1.1 400", 0) == 0);
    ::close(fd);
  }
  int fd = dial(s.sock);
  send_all(fd, post("/Plugin.Activate", ""));
  CHECK(read_response(fd).find("authz") != std::string::npos);
  ::close(fd);
}

TEST_CASE("server: stale socket is replaced, a live one is not") {
  TestServer s;
  // A second server on the same live socket must refuse to start.
  ServerOptions o;
  o.socket_path = s.sock;
  CHECK(run_server(o, nullptr, nullptr) == 2);
  // The first one still answers.
  int fd = dial(s.sock);
  REQUIRE(fd >= 0);
  ::close(fd);

  // A leftover socket file nobody listens on is removed at start.
  std::string stale = s.dir + "/stale.sock";
  int lfd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, stale.c_str(), sizeof a.sun_path - 1);
  REQUIRE(::bind(lfd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0);
  ::close(lfd); // the file stays, nobody listens
  ServerControl ctl;
  ServerOptions o2;
  o2.socket_path = stale;
  std::thread t([&] {
    run_server(
        o2,
        [](auto, auto, auto, bool) {
          return PluginReply{200, "{}"};
        },
        nullptr, &ctl);
  });
  CHECK(ctl.wait_ready(std::chrono::seconds(10)));
  int fd2 = dial(stale);
  CHECK(fd2 >= 0);
  if (fd2 >= 0) ::close(fd2);
  ctl.stop();
  t.join();
  CHECK_FALSE(fs::exists(stale)); // removed on stop

  // A regular file in the way is never deleted.
  std::string file = s.dir + "/file.sock";
  {
    std::FILE *f = std::fopen(file.c_str(), "w");
    std::fclose(f);
  }
  ServerOptions o3;
  o3.socket_path = file;
  CHECK(run_server(o3, nullptr, nullptr) == 2);
  CHECK(fs::exists(file));
}

TEST_CASE("server: idle connections are closed after the idle timeout") {
  TestServer s(1 << 20, 1);
  int fd = dial(s.sock);
  REQUIRE(fd >= 0);
  send_all(fd, post("/Plugin.Activate", ""));
  CHECK(read_response(fd).find("authz") != std::string::npos);
  char c;
  auto t0 = std::chrono::steady_clock::now();
  ssize_t n = ::recv(fd, &c, 1, 0); // blocks until the server closes (SO_RCVTIMEO is 10 s)
  auto waited = std::chrono::steady_clock::now() - t0;
  CHECK(n == 0);
  CHECK(waited < std::chrono::seconds(5));
  ::close(fd);
  // A half-sent request is cut off the same way.
  int fd2 = dial(s.sock);
  send_all(fd2, "POST /AuthZPlugin.AuthZReq HTTP/1.1\r\nContent-Length: 100\r\n\r\n{");
  CHECK(::recv(fd2, &c, 1, 0) == 0);
  ::close(fd2);
}
