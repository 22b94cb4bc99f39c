// Daemon lookups (plugin/daemon, add_daemon_facts, the deferred path of the service and the
// server): a fake dockerd on a unix socket answers the plugin's GETs.
// clang-format off
#include <utility> // Boost 1.74 Asio needs std::exchange declared before its headers under C++20
// clang-format on
#include "cert_support.hpp"
#include "plugin/codec.hpp"
#include "plugin/crypto.hpp"
#include "plugin/daemon.hpp"
#include "plugin/normalize.hpp"
#include "plugin/server.hpp"
#include "plugin/service.hpp"
#include "test_support.hpp"

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <doctest/doctest.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>
#include <sys/socket.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace portcullis;
using namespace portcullis::test;
using json = nlohmann::json;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using local = asio::local::stream_protocol;
using Clock = std::chrono::steady_clock;

bool contains(const std::string &haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

std::string make_temp_dir(const char *prefix) {
  std::string tmpl = std::string("/tmp/") + prefix + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  const char *d = mkdtemp(buf.data());
  REQUIRE(d != nullptr);
  return d;
}

// --- a fake dockerd ------------------------------------------------------------------------

// Listens on a unix socket in a temp dir and answers one request per connection (the plugin's
// client sends Connection: close) from a map path -> (status, body); unknown paths get 404.
class FakeDaemon {
public:
  enum class Mode { normal, never_answer, huge_body, not_json };

  explicit FakeDaemon(Mode mode = Mode::normal) : mode_(mode), acceptor_(ioc_) {
    dir_ = make_temp_dir("portcullis-dockerd");
    sock_ = dir_ + "/docker.sock";
    acceptor_.open(local());
    acceptor_.bind(local::endpoint(sock_));
    acceptor_.listen();
    thread_ = std::thread([this] { run(); });
  }
  ~FakeDaemon() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    { // wake the blocking accept
      boost::system::error_code ec;
      local::socket s(ioc_);
      s.connect(local::endpoint(sock_), ec);
    }
    thread_.join();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  const std::string &socket_path() const { return sock_; }
  const std::string &dir() const { return dir_; }

  void set(const std::string &path, unsigned status, const std::string &body) {
    std::lock_guard lock(mu_);
    answers_[path] = {status, body};
  }
  std::vector<std::string> targets() const {
    std::lock_guard lock(mu_);
    return targets_;
  }
  std::vector<std::string> tokens() const {
    std::lock_guard lock(mu_);
    return tokens_;
  }
  int connections() const { return connections_.load(); }

private:
  void run() {
    for (;;) {
      boost::system::error_code ec;
      local::socket s(ioc_);
      acceptor_.accept(s, ec);
      {
        std::lock_guard lock(mu_);
        if (stop_) return;
      }
      if (ec) return;
      connections_++;
      serve(s);
    }
  }

  void serve(local::socket &s) {
    boost::system::error_code ec;
    beast::flat_buffer buf;
    http::request<http::string_body> req;
    http::read(s, buf, req, ec);
    if (ec) return;
    std::pair<unsigned, std::string> answer{404, R"({"message":"no such object"})"};
    {
      std::lock_guard lock(mu_);
      targets_.emplace_back(req.target());
      tokens_.emplace_back(req[kLookupHeader]);
      if (auto it = answers_.find(std::string(req.target())); it != answers_.end())
        answer = it->second;
    }
    if (mode_ == Mode::never_answer) {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, 3s, [&] { return stop_; });
      return;
    }
    if (mode_ == Mode::huge_body) answer = {200, R"({"x":")" + std::string(2u << 20, 'a') + "\"}"};
    if (mode_ == Mode::not_json) answer = {200, "this is not json"};
    http::response<http::string_body> res{static_cast<http::status>(answer.first), 11};
    res.set(http::field::content_type, "application/json");
    res.keep_alive(false);
    res.body() = answer.second;
    res.prepare_payload();
    http::write(s, res, ec);
    s.shutdown(local::socket::shutdown_both, ec);
  }

  Mode mode_;
  std::string dir_, sock_;
  asio::io_context ioc_;
  local::acceptor acceptor_;
  std::thread thread_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::map<std::string, std::pair<unsigned, std::string>> answers_;
  std::vector<std::string> targets_, tokens_;
  std::atomic<int> connections_{0};
};

const char *kBindEtc =
    R"({"Name":"vol","Driver":"local","Mountpoint":"/var/lib/docker/volumes/vol/)"
    R"(_data","Options":{"type":"none","o":"bind","device":"/etc"},"Scope":"local"})";

DaemonClient client_for(const FakeDaemon &d, std::chrono::milliseconds timeout = 1000ms,
                        const std::string &token = "t0ken") {
  return DaemonClient(DaemonClientOptions{d.socket_path(), timeout, 1u << 20, token});
}

// --- normalizer helpers --------------------------------------------------------------------

Request create(const std::string &body) {
  return normalize(req("POST", "/v1.41/containers/create", body, "application/json"), lexical());
}

// A create whose body is {"Image":"busybox","HostConfig":{<hc>}}.
Request create_hc(const std::string &hc) {
  return create(R"({"Image":"busybox","HostConfig":{)" + hc + "}}");
}

Request exec_start(const std::string &id_in_uri, const std::string &body = R"({"Detach":true})") {
  return normalize(req("POST", "/v1.41/exec/" + id_in_uri + "/start", body, "application/json"),
                   lexical());
}

DaemonAnswer found(const std::string &body) {
  DaemonAnswer a;
  a.status = DaemonAnswer::Status::found;
  a.body = json::parse(body);
  return a;
}

DaemonAnswer not_found() {
  DaemonAnswer a;
  a.status = DaemonAnswer::Status::not_found;
  return a;
}

DaemonAnswer error_answer(const std::string &why) {
  DaemonAnswer a;
  a.status = DaemonAnswer::Status::error;
  a.error = why;
  return a;
}

// NormalizeOptions whose daemon_get records the paths asked and answers with `answer`.
struct Lookups {
  std::vector<std::string> paths;
  std::function<DaemonAnswer(const std::string &)> answer;
  NormalizeOptions options() {
    NormalizeOptions o = lexical();
    o.daemon_get = [this](const std::string &p) {
      paths.push_back(p);
      return answer(p);
    };
    return o;
  }
};

bool has_prefix(const std::vector<std::string> &v, std::string_view p) {
  return std::any_of(v.begin(), v.end(), [&](const std::string &s) { return s.rfind(p, 0) == 0; });
}

const ContainerFacts &facts(const Request &r) {
  INFO("invalid: ", r.invalid.value_or("(none)"));
  REQUIRE_FALSE(r.invalid.has_value());
  REQUIRE(r.container.has_value());
  return *r.container;
}

// --- service helpers -----------------------------------------------------------------------

const char *kPolicy = R"(version: 1
roles:
  developer:
    rules:
      - name: dev-basics
        actions: [system.ping, container.list]
      - name: dev-run
        actions: [container.create]
        when:
          privileged: false
      - name: dev-exec
        actions: [exec.start]
        when:
          privileged: false
bindings:
  - role: developer
    groups: [developers]
)";

struct Fixture {
  fs::path dir;
  Config cfg;
  std::unique_ptr<AuthzService> svc;

  explicit Fixture(const std::string &daemon_socket, long long timeout_ms = 300) {
    dir = make_temp_dir("portcullis-dsvc");
    write("policy.yaml", kPolicy);
    write("users.yaml", "users:\n  alice: [developers]\n");
    cfg.policy = (dir / "policy.yaml").string();
    cfg.directory_path = (dir / "users.yaml").string();
    cfg.decision_log = (dir / "decisions.log").string();
    cfg.daemon.socket = daemon_socket;
    cfg.daemon.timeout_ms = timeout_ms;
    std::string err;
    svc = AuthzService::create(cfg, err);
    REQUIRE_MESSAGE(svc, err);
  }
  ~Fixture() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  void write(const std::string &name, const std::string &text) {
    std::ofstream(dir / name) << text;
  }
  std::string log_text() const {
    std::ifstream in(cfg.decision_log);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  std::vector<json> log_lines() const {
    std::ifstream in(cfg.decision_log);
    std::vector<json> out;
    for (std::string line; std::getline(in, line);)
      out.push_back(json::parse(line));
    return out;
  }
  json call(const json &r, bool may_block = true) {
    auto reply = svc->handle("POST", "/AuthZPlugin.AuthZReq", r.dump(), may_block);
    REQUIRE(reply.status == 200);
    REQUIRE_FALSE(reply.defer);
    return json::parse(reply.body);
  }
};

const char *kNamedVolumeCreate = R"({"Image":"busybox","HostConfig":{"Binds":["vol:/x"]}})";

// What dockerd sends for the plugin's own GET over the unix socket (no User).
json lookup_request(const std::string &method, const std::string &uri, const std::string &token,
                    const std::string &header = kLookupHeader) {
  return {{"RequestMethod", method},
          {"RequestUri", uri},
          {"RequestHeaders", {{header, token}, {"User-Agent", "portcullis"}}}};
}

std::string msg_of(const json &reply) {
  return reply.contains("Msg") ? reply["Msg"].get<std::string>() : std::string();
}

// run_server with one I/O thread and a handler of the test's choosing.
struct LookupServer {
  std::string dir, sock;
  ServerControl control;
  std::thread thread;

  LookupServer(Handler handler, int max_pending = 64, int lookup_threads = 2,
               int max_queue_ms = 5000) {
    dir = make_temp_dir("portcullis-dsrv");
    sock = dir + "/p.sock";
    ServerOptions o;
    o.socket_path = sock;
    o.threads = 1;
    o.lookup_threads = lookup_threads;
    o.max_pending = max_pending;
    o.max_queue_ms = max_queue_ms;
    o.idle_timeout_seconds = 30;
    thread =
        std::thread([this, o, h = std::move(handler)] { run_server(o, h, nullptr, &control); });
    REQUIRE(control.wait_ready(std::chrono::seconds(10)));
  }
  ~LookupServer() {
    control.stop();
    if (thread.joinable()) thread.join();
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

// A gate the handler waits on (at most `cap`) until the test opens it.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  bool wait(std::chrono::milliseconds cap = 5000ms) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, cap, [&] { return open; });
  }
  void release() {
    {
      std::lock_guard lock(mu);
      open = true;
    }
    cv.notify_all();
  }
};

bool wait_until(const std::function<bool()> &pred, std::chrono::milliseconds cap = 5000ms) {
  const auto end = Clock::now() + cap;
  while (Clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

} // namespace

// ============================================================================================
// DaemonClient
// ============================================================================================

TEST_CASE("daemon client: 200 with a JSON object is found, with the body") {
  FakeDaemon d;
  d.set("/volumes/vol", 200, kBindEtc);
  DaemonAnswer a = client_for(d).get("/volumes/vol");
  CHECK(a.status == DaemonAnswer::Status::found);
  CHECK(a.error.empty());
  REQUIRE(a.body.is_object());
  CHECK(a.body["Name"] == "vol");
  CHECK(a.body["Options"]["device"] == "/etc");
}

TEST_CASE("daemon client: 404 is not_found, 500 is an error with the daemon's message") {
  FakeDaemon d;
  d.set("/volumes/boom", 500, R"({"message":"boom"})");
  auto c = client_for(d);
  DaemonAnswer nf = c.get("/volumes/missing");
  CHECK(nf.status == DaemonAnswer::Status::not_found);
  DaemonAnswer e = c.get("/volumes/boom");
  CHECK(e.status == DaemonAnswer::Status::error);
  CHECK_MESSAGE(contains(e.error, "HTTP 500"), e.error);
  CHECK_MESSAGE(contains(e.error, "boom"), e.error);
}

TEST_CASE("daemon client: a 200 that is not a JSON object is an error") {
  SUBCASE("non-JSON body") {
    FakeDaemon d(FakeDaemon::Mode::not_json);
    DaemonAnswer a = client_for(d).get("/volumes/vol");
    CHECK(a.status == DaemonAnswer::Status::error);
    CHECK_MESSAGE(contains(a.error, "not a JSON object"), a.error);
    CHECK(d.targets() == std::vector<std::string>{"/volumes/vol"});
  }
  SUBCASE("JSON array body") {
    FakeDaemon d;
    d.set("/volumes/vol", 200, R"([{"Name":"vol"}])");
    DaemonAnswer a = client_for(d).get("/volumes/vol");
    CHECK(a.status == DaemonAnswer::Status::error);
    CHECK_MESSAGE(contains(a.error, "not a JSON object"), a.error);
  }
}

TEST_CASE("daemon client: a socket nobody listens on is a connect error") {
  const std::string dir = make_temp_dir("portcullis-nodaemon");
  DaemonClient c(DaemonClientOptions{dir + "/nothing.sock", 300ms, 1u << 20, "tok"});
  const auto t0 = Clock::now();
  DaemonAnswer a = c.get("/volumes/vol");
  CHECK(Clock::now() - t0 < 1s);
  CHECK(a.status == DaemonAnswer::Status::error);
  CHECK_MESSAGE(contains(a.error, "connect"), a.error);
  fs::remove_all(dir);

  DaemonClient none(DaemonClientOptions{"", 300ms, 1u << 20, "tok"});
  DaemonAnswer b = none.get("/volumes/vol");
  CHECK(b.status == DaemonAnswer::Status::error);
  CHECK_FALSE(b.error.empty());
}

TEST_CASE("daemon client: a daemon that never answers is an error after about the timeout") {
  FakeDaemon d(FakeDaemon::Mode::never_answer);
  const auto timeout = 250ms;
  auto c = client_for(d, timeout);
  const auto t0 = Clock::now();
  DaemonAnswer a = c.get("/volumes/vol");
  const auto elapsed = Clock::now() - t0;
  CHECK(a.status == DaemonAnswer::Status::error);
  CHECK_MESSAGE(contains(a.error, "in time"), a.error);
  CHECK(elapsed >= timeout - 20ms);
  CHECK(elapsed < timeout + 1s);
  // The request did reach the daemon.
  CHECK(wait_until([&] { return d.targets().size() == 1; }));
}

// Boost 1.74's response parser missed body_limit when the body came with the header
// (boostorg/beast#2183): DaemonClient checks the declared length and the size read itself.
TEST_CASE("daemon client: an answer over the size limit is an error") {
  FakeDaemon d(FakeDaemon::Mode::huge_body);
  DaemonAnswer a = client_for(d).get("/volumes/vol");
  CHECK(a.status == DaemonAnswer::Status::error);
  CHECK_MESSAGE(contains(a.error, "too large"), a.error);
}

TEST_CASE("daemon client: the lookup carries the token header and the exact path") {
  FakeDaemon d;
  d.set("/volumes/a%2Fb", 200, R"({"Name":"a/b","Driver":"local"})");
  d.set("/exec/abc/json", 200, R"({"ID":"abc"})");
  auto c = client_for(d, 1000ms, "0123456789abcdef");
  CHECK(c.get("/volumes/a%2Fb").status == DaemonAnswer::Status::found);
  CHECK(c.get("/exec/abc/json").status == DaemonAnswer::Status::found);
  CHECK(d.targets() == std::vector<std::string>{"/volumes/a%2Fb", "/exec/abc/json"});
  CHECK(d.tokens() == std::vector<std::string>{"0123456789abcdef", "0123456789abcdef"});
}

TEST_CASE("daemon client: no time left is an error without connecting") {
  FakeDaemon d;
  d.set("/volumes/vol", 200, kBindEtc);
  auto c = client_for(d);
  DaemonAnswer a = c.get("/volumes/vol", 0ms);
  CHECK(a.status == DaemonAnswer::Status::error);
  CHECK_FALSE(a.error.empty());
  DaemonAnswer neg = c.get("/volumes/vol", -5ms);
  CHECK(neg.status == DaemonAnswer::Status::error);
  // The daemon serves connections in order: had the calls above connected, it would have seen
  // them before this one.
  CHECK(c.get("/volumes/vol").status == DaemonAnswer::Status::found);
  CHECK(d.connections() == 1);
  CHECK(d.targets() == std::vector<std::string>{"/volumes/vol"});
}

TEST_CASE("daemon lookup token comparison") {
  CHECK(lookup_token_matches("abcdef0123", "abcdef0123"));
  CHECK_FALSE(lookup_token_matches("abcdef0124", "abcdef0123"));
  CHECK_FALSE(lookup_token_matches("abcdef012", "abcdef0123"));
  CHECK_FALSE(lookup_token_matches("abcdef01234", "abcdef0123"));
  CHECK_FALSE(lookup_token_matches("", "abcdef0123"));
  CHECK_FALSE(lookup_token_matches("abcdef0123", ""));
  CHECK_FALSE(lookup_token_matches("", ""));
}

TEST_CASE("daemon lookup: percent_encode_segment keeps only unreserved characters") {
  CHECK(percent_encode_segment("my-vol_1.2~x") == "my-vol_1.2~x");
  CHECK(percent_encode_segment("a/b") == "a%2Fb");
  CHECK(percent_encode_segment("a b?#%") == "a%20b%3F%23%25");
  CHECK(percent_encode_segment("..") == "..");
  CHECK(percent_encode_segment(std::string("\xff\x00", 2)) == "%FF%00");
}

// ============================================================================================
// Normalizer: needs_daemon_facts / add_daemon_facts
// ============================================================================================

TEST_CASE("daemon lookup needed: named volumes and exec.start") {
  CHECK(needs_daemon_facts(create_hc(R"("Binds":["vol:/x"])")));
  CHECK(needs_daemon_facts(create_hc(R"("Binds":["/srv:/s","vol:/x:ro"])")));
  CHECK(needs_daemon_facts(
      create_hc(R"("Mounts":[{"Type":"volume","Source":"vol","Target":"/x"}])")));
  CHECK(needs_daemon_facts(create(R"({"Image":"busybox","Binds":["vol:/x"]})"))); // top level
  Request ex = exec_start("0123abcd");
  REQUIRE_FALSE(ex.invalid.has_value());
  CHECK(ex.action == "exec.start");
  CHECK(needs_daemon_facts(ex));
}

TEST_CASE("daemon lookup not needed: host binds, anonymous volumes, invalid requests") {
  CHECK_FALSE(needs_daemon_facts(create_hc(R"("Binds":["/srv:/s","/etc:/e:ro"])")));
  CHECK_FALSE(needs_daemon_facts(create_hc(R"("Binds":["/x"])")));
  CHECK_FALSE(needs_daemon_facts(create_hc(R"("Mounts":[{"Type":"volume","Target":"/x"}])")));
  CHECK_FALSE(
      needs_daemon_facts(create_hc(R"("Mounts":[{"Type":"bind","Source":"/srv","Target":"/x"}])")));
  CHECK_FALSE(needs_daemon_facts(create(R"({"Image":"busybox"})")));
  CHECK_FALSE(
      needs_daemon_facts(normalize(req("GET", "/v1.41/volumes/vol"), lexical()))); // volume.inspect
  // Invalid requests are denied anyway: no lookup.
  Request bad = create_hc(R"("Binds":["vol:/x"],"Privileged":"yes")");
  REQUIRE(bad.invalid.has_value());
  CHECK_FALSE(needs_daemon_facts(bad));
  Request bad_exec = exec_start("abc", "{");
  REQUIRE(bad_exec.invalid.has_value());
  CHECK_FALSE(needs_daemon_facts(bad_exec));
  // add_daemon_facts does nothing for them (no lookup, no error).
  Lookups l;
  l.answer = [](const std::string &) { return found(kBindEtc); };
  CHECK_FALSE(add_daemon_facts(bad, l.options()).has_value());
  Request hostonly = create_hc(R"("Binds":["/srv:/s"])");
  CHECK_FALSE(add_daemon_facts(hostonly, l.options()).has_value());
  CHECK(l.paths.empty());
}

TEST_CASE("daemon lookup: an existing local bind volume becomes a host mount") {
  Lookups l;
  l.answer = [](const std::string &) { return found(kBindEtc); };
  Request r = create_hc(R"("Binds":["vol:/x"])");
  REQUIRE(facts(r).host_mounts.empty());
  auto err = add_daemon_facts(r, l.options());
  REQUIRE_FALSE_MESSAGE(err.has_value(), err.value_or(""));
  CHECK(l.paths == std::vector<std::string>{"/volumes/vol"});
  const auto &f = facts(r);
  REQUIRE(f.host_mounts.size() == 1);
  CHECK(f.host_mounts[0].path == "/etc");
  CHECK(f.host_mounts[0].source == "/etc");
  CHECK_FALSE(f.host_mounts[0].read_only);
  CHECK_MESSAGE(contains(f.host_mounts[0].origin, "vol"), f.host_mounts[0].origin);
  CHECK_MESSAGE(contains(f.host_mounts[0].origin, "existing volume"), f.host_mounts[0].origin);
  CHECK(f.unsafe.empty());
}

TEST_CASE("daemon lookup: read-only follows the mount") {
  Lookups l;
  l.answer = [](const std::string &) { return found(kBindEtc); };
  SUBCASE("Binds :ro") {
    Request r = create_hc(R"("Binds":["vol:/x:ro"])");
    REQUIRE_FALSE(add_daemon_facts(r, l.options()).has_value());
    REQUIRE(facts(r).host_mounts.size() == 1);
    CHECK(facts(r).host_mounts[0].read_only);
  }
  SUBCASE("Mounts ReadOnly") {
    Request r = create_hc(R"("Mounts":[{"Type":"volume","Source":"vol","Target":"/x",)"
                          R"("ReadOnly":true}])");
    REQUIRE_FALSE(add_daemon_facts(r, l.options()).has_value());
    REQUIRE(facts(r).host_mounts.size() == 1);
    CHECK(facts(r).host_mounts[0].read_only);
    CHECK(facts(r).host_mounts[0].path == "/etc");
  }
  SUBCASE("Mounts without ReadOnly") {
    Request r = create_hc(R"("Mounts":[{"Type":"volume","Source":"vol","Target":"/x"}])");
    REQUIRE_FALSE(add_daemon_facts(r, l.options()).has_value());
    REQUIRE(facts(r).host_mounts.size() == 1);
    CHECK_FALSE(facts(r).host_mounts[0].read_only);
  }
  SUBCASE("a volume created with o=bind,ro is read-only whatever the mount says") {
    l.answer = [](const std::string &) {
      return found(R"({"Driver":"local","Options":{"type":"none","o":"bind,ro","device":"/etc"}})");
    };
    Request r = create_hc(R"("Binds":["vol:/x"])");
    REQUIRE_FALSE(add_daemon_facts(r, l.options()).has_value());
    REQUIRE(facts(r).host_mounts.size() == 1);
    CHECK(facts(r).host_mounts[0].read_only);
  }
}

// Daemons before API 1.45 ignore VolumeOptions.Subpath and mount the whole volume: the whole
// device is judged (a review found /srv/projects/x judged while / was mounted).
TEST_CASE("daemon lookup: Mounts Subpath does not narrow the existing volume's host path") {
  Lookups l;
  l.answer = [](const std::string &) { return found(kBindEtc); };
  Request r = create_hc(R"("Mounts":[{"Type":"volume","Source":"vol","Target":"/x",)"
                        R"("VolumeOptions":{"Subpath":"a/b"}}])");
  REQUIRE_FALSE(add_daemon_facts(r, l.options()).has_value());
  REQUIRE(facts(r).host_mounts.size() == 1);
  CHECK(facts(r).host_mounts[0].path == "/etc");

  Request up = create_hc(R"("Mounts":[{"Type":"volume","Source":"vol","Target":"/x",)"
                         R"("VolumeOptions":{"Subpath":"../root"}}])");
  REQUIRE(up.invalid.has_value());
  CHECK_MESSAGE(contains(*up.invalid, ".."), *up.invalid);
}

TEST_CASE("daemon lookup: a volume the daemon does not have adds nothing") {
  Lookups l;
  l.answer = [](const std::string &) { return not_found(); };
  Request r = create_hc(R"("Binds":["vol:/x","/srv:/s"])");
  const auto before = facts(r).host_mounts.size();
  CHECK_FALSE(add_daemon_facts(r, l.options()).has_value());
  CHECK(l.paths.size() == 1);
  CHECK(facts(r).host_mounts.size() == before);
  CHECK(facts(r).unsafe.empty());
}

TEST_CASE("daemon lookup: a failed lookup is an error to deny with") {
  Lookups l;
  l.answer = [](const std::string &) { return error_answer("connect failed: no such file"); };
  Request r = create_hc(R"("Binds":["vol:/x"])");
  auto err = add_daemon_facts(r, l.options());
  REQUIRE(err.has_value());
  CHECK_MESSAGE(contains(*err, "connect failed: no such file"), *err);
  CHECK_MESSAGE(contains(*err, "vol"), *err);
  CHECK(facts(r).host_mounts.empty());
  // A found answer whose body is not an object, and an error without text, are errors too.
  l.answer = [](const std::string &) {
    DaemonAnswer a;
    a.status = DaemonAnswer::Status::found;
    a.body = json::array();
    return a;
  };
  Request r2 = create_hc(R"("Binds":["vol:/x"])");
  CHECK(add_daemon_facts(r2, l.options()).has_value());
  l.answer = [](const std::string &) { return DaemonAnswer{}; };
  Request r3 = create_hc(R"("Binds":["vol:/x"])");
  CHECK(add_daemon_facts(r3, l.options()).has_value());
}

TEST_CASE("daemon lookup: third-party driver is unsafe, unclean device and odd answers fail") {
  Lookups l;
  SUBCASE("driver foo") {
    l.answer = [](const std::string &) { return found(R"({"Driver":"foo","Options":null})"); };
    Request r = create_hc(R"("Binds":["vol:/x"])");
    REQUIRE_FALSE(add_daemon_facts(r, l.options()).has_value());
    CHECK(facts(r).host_mounts.empty());
    CHECK(has_prefix(facts(r).unsafe, "volume driver foo"));
  }
  SUBCASE("unclean device") {
    l.answer = [](const std::string &) {
      return found(
          R"({"Driver":"local","Options":{"type":"none","o":"bind","device":"/etc/../root"}})");
    };
    Request r = create_hc(R"("Binds":["vol:/x"])");
    auto err = add_daemon_facts(r, l.options());
    REQUIRE(err.has_value());
    CHECK_MESSAGE(contains(*err, "not clean"), *err);
  }
  SUBCASE("no Driver") {
    l.answer = [](const std::string &) { return found(R"({"Name":"vol"})"); };
    Request r = create_hc(R"("Binds":["vol:/x"])");
    auto err = add_daemon_facts(r, l.options());
    REQUIRE(err.has_value());
    CHECK_MESSAGE(contains(*err, "not understood"), *err);
  }
  SUBCASE("Options not an object") {
    l.answer = [](const std::string &) { return found(R"({"Driver":"local","Options":[1]})"); };
    Request r = create_hc(R"("Binds":["vol:/x"])");
    CHECK(add_daemon_facts(r, l.options()).has_value());
  }
  SUBCASE("a plain local volume adds nothing") {
    l.answer = [](const std::string &) { return found(R"({"Driver":"local","Options":{}})"); };
    Request r = create_hc(R"("Binds":["vol:/x"])");
    REQUIRE_FALSE(add_daemon_facts(r, l.options()).has_value());
    CHECK(facts(r).host_mounts.empty());
    CHECK(facts(r).unsafe.empty());
  }
}

TEST_CASE("daemon lookup: one lookup per volume, at most 32 volumes") {
  Lookups l;
  l.answer = [](const std::string &) { return not_found(); };
  Request twice = create_hc(R"("Binds":["vol:/x","vol:/y"],)"
                            R"("Mounts":[{"Type":"volume","Source":"vol","Target":"/z"}])");
  REQUIRE_FALSE(add_daemon_facts(twice, l.options()).has_value());
  CHECK(l.paths == std::vector<std::string>{"/volumes/vol"});

  // Top-level Binds are decoded too (dockerd 20.10): the same name there is not asked again.
  l.paths.clear();
  Request both =
      create(R"({"Image":"busybox","Binds":["vol:/x"],"HostConfig":{"Binds":["vol:/x"]}})");
  REQUIRE_FALSE(add_daemon_facts(both, l.options()).has_value());
  CHECK(l.paths.size() == 1);

  for (bool via_mounts : {false, true}) {
    CAPTURE(via_mounts);
    l.paths.clear();
    std::string list;
    for (int i = 0; i < 40; ++i) {
      if (i) list += ",";
      list += via_mounts ? R"({"Type":"volume","Source":"v)" + std::to_string(i) +
                               R"(","Target":"/m)" + std::to_string(i) + "\"}"
                         : "\"v" + std::to_string(i) + ":/m" + std::to_string(i) + "\"";
    }
    Request many = create_hc((via_mounts ? R"("Mounts":[)" : R"("Binds":[)") + list + "]");
    REQUIRE(facts(many).named_volumes.size() == 40);
    auto err = add_daemon_facts(many, l.options());
    REQUIRE(err.has_value());
    CHECK_MESSAGE(contains(*err, "32"), *err);
    CHECK(l.paths.size() <= 32);
  }

  // Exactly 32 distinct volumes are fine.
  l.paths.clear();
  std::string list;
  for (int i = 0; i < 32; ++i)
    list +=
        std::string(i ? "," : "") + "\"v" + std::to_string(i) + ":/m" + std::to_string(i) + "\"";
  Request ok = create_hc(R"("Binds":[)" + list + "]");
  CHECK_FALSE(add_daemon_facts(ok, l.options()).has_value());
  CHECK(l.paths.size() == 32);
}

TEST_CASE("daemon lookup: the volume name is percent-encoded in the path") {
  Lookups l;
  l.answer = [](const std::string &) { return not_found(); };
  Request r = create_hc(R"("Mounts":[{"Type":"volume","Source":"a/b","Target":"/x"},)"
                        R"({"Type":"volume","Source":"c d","Target":"/y"}])");
  REQUIRE_FALSE(add_daemon_facts(r, l.options()).has_value());
  CHECK(l.paths == std::vector<std::string>{"/volumes/a%2Fb", "/volumes/c%20d"});
}

TEST_CASE("daemon lookup: lookups disabled (no daemon_get) is an error") {
  Request r = create_hc(R"("Binds":["vol:/x"])");
  auto err = add_daemon_facts(r, lexical());
  REQUIRE(err.has_value());
  CHECK_MESSAGE(contains(*err, "disabled"), *err);
  CHECK_MESSAGE(contains(*err, "named volumes"), *err);
  Request e = exec_start("abc");
  auto err2 = add_daemon_facts(e, lexical());
  REQUIRE(err2.has_value());
  CHECK_MESSAGE(contains(*err2, "disabled"), *err2);
  CHECK_MESSAGE(contains(*err2, "exec"), *err2);
}

TEST_CASE("daemon lookup: the new host mount's symlink target is resolved, old ones are not") {
  std::vector<std::string> resolved;
  NormalizeOptions o;
  o.resolve_host_path = [&](const std::string &p) -> std::optional<std::string> {
    resolved.push_back(p);
    if (p == "/etc") return std::string("/private/etc");
    return p;
  };
  Request r = normalize(req("POST", "/v1.41/containers/create",
                            R"({"Image":"busybox","HostConfig":{"Binds":["/srv:/s","vol:/x"]}})",
                            "application/json"),
                        o);
  REQUIRE(facts(r).host_mounts.size() == 1);
  CHECK(resolved == std::vector<std::string>{"/srv"});
  o.daemon_get = [](const std::string &) { return found(kBindEtc); };
  REQUIRE_FALSE(add_daemon_facts(r, o).has_value());
  CHECK(resolved == std::vector<std::string>{"/srv", "/etc"});
  const auto &f = facts(r);
  bool target = false;
  for (const auto &m : f.host_mounts)
    if (m.path == "/private/etc" && contains(m.origin, "symlink target")) target = true;
  CHECK(target);
}

// An unprivileged container as the daemon describes it: its default masked and read-only paths.
const std::string kPlainContainer =
    R"({"HostConfig":{"MaskedPaths":["/proc/kcore","/proc/keys","/sys/firmware"],)"
    R"("ReadonlyPaths":["/proc/sys","/proc/sysrq-trigger","/proc/irq","/proc/bus"]},"Mounts":[]})";

// The exec instance answers, and the container it runs in: a plain one by default.
std::function<DaemonAnswer(const std::string &)>
exec_answer(std::string exec_json, std::string container_json = kPlainContainer) {
  return [exec_json, container_json](const std::string &p) {
    if (p.rfind("/exec/", 0) == 0) return found(exec_json);
    if (p == "/containers/c1/json") return found(container_json);
    return not_found();
  };
}

TEST_CASE("daemon lookup: exec.start takes the exec instance's facts") {
  Lookups l;
  SUBCASE("privileged, default user") {
    l.answer = exec_answer(R"({"ID":"abc","ContainerID":"c1","ProcessConfig":{"privileged":true,)"
                           R"("user":"","entrypoint":"sh","arguments":[]}})");
    Request r = exec_start("abc");
    REQUIRE_FALSE(add_daemon_facts(r, l.options()).has_value());
    CHECK(l.paths == std::vector<std::string>{"/exec/abc/json", "/containers/c1/json"});
    const auto &f = facts(r);
    CHECK(f.privileged);
    CHECK(f.user.empty());
    CHECK(f.user_is_root);
  }
  SUBCASE("unprivileged, uid 1000") {
    l.answer =
        exec_answer(R"({"ContainerID":"c1","ProcessConfig":{"privileged":false,"user":"1000"}})");
    Request r = exec_start("abc");
    REQUIRE_FALSE(add_daemon_facts(r, l.options()).has_value());
    const auto &f = facts(r);
    CHECK_FALSE(f.privileged);
    CHECK(f.user == "1000");
    CHECK_FALSE(f.user_is_root);
  }
  SUBCASE("an unprivileged exec in a privileged container is privileged") {
    l.answer =
        exec_answer(R"({"ContainerID":"c1","ProcessConfig":{"privileged":false,"user":"1000"}})",
                    R"({"HostConfig":{"Privileged":true},"Mounts":[]})");
    Request r = exec_start("abc");
    REQUIRE_FALSE(add_daemon_facts(r, l.options()).has_value());
    CHECK(facts(r).privileged);
  }
  SUBCASE("no ContainerID in the exec instance") {
    l.answer = exec_answer(R"({"ProcessConfig":{"privileged":false,"user":"1000"}})");
    Request r = exec_start("abc");
    auto err = add_daemon_facts(r, l.options());
    REQUIRE(err.has_value());
    CHECK_MESSAGE(contains(*err, "not understood"), *err);
  }
  SUBCASE("no such exec instance") {
    l.answer = [](const std::string &) { return not_found(); };
    Request r = exec_start("abc");
    auto err = add_daemon_facts(r, l.options());
    REQUIRE(err.has_value());
    CHECK_MESSAGE(contains(*err, "abc"), *err);
  }
  SUBCASE("lookup failed") {
    l.answer = [](const std::string &) { return error_answer("the daemon did not answer"); };
    Request r = exec_start("abc");
    auto err = add_daemon_facts(r, l.options());
    REQUIRE(err.has_value());
    CHECK_MESSAGE(contains(*err, "did not answer"), *err);
  }
  SUBCASE("ProcessConfig.privileged missing or not a bool") {
    for (const char *body : {R"({"ProcessConfig":{"user":""}})", R"({"ID":"abc"})",
                             R"({"ProcessConfig":{"privileged":"false","user":""}})",
                             R"({"ProcessConfig":{"privileged":false,"user":0}})"}) {
      CAPTURE(body);
      l.answer = [body](const std::string &) { return found(body); };
      Request r = exec_start("abc");
      auto err = add_daemon_facts(r, l.options());
      REQUIRE(err.has_value());
      CHECK_MESSAGE(contains(*err, "not understood"), *err);
    }
  }
  SUBCASE("the exec id is percent-encoded") {
    l.answer =
        exec_answer(R"({"ContainerID":"c1","ProcessConfig":{"privileged":false,"user":"app"}})");
    Request r = exec_start("a%20b%3Fc");
    REQUIRE_FALSE(r.invalid.has_value());
    CHECK(r.object == "a b?c");
    REQUIRE_FALSE(add_daemon_facts(r, l.options()).has_value());
    CHECK(l.paths == std::vector<std::string>{"/exec/a%20b%3Fc/json", "/containers/c1/json"});
  }
}

// An exec shares its container's privileges, namespaces, devices and mounts (a review found an
// operator could exec into an admin's privileged container): the container's facts are added.
TEST_CASE("daemon lookup: exec create and start take the target container's host access") {
  Lookups l;
  const std::string container =
      R"({"HostConfig":{"Privileged":false,"CapAdd":["sys_admin"],"PidMode":"host",)"
      R"("MaskedPaths":["/proc/kcore","/proc/keys","/sys/firmware"],)"
      R"("ReadonlyPaths":["/proc/sys","/proc/sysrq-trigger","/proc/irq","/proc/bus"],)"
      R"("NetworkMode":"bridge","IpcMode":"private","Devices":[{"PathOnHost":"/dev/kmsg",)"
      R"("PathInContainer":"/dev/kmsg","CgroupPermissions":"rwm"}],)"
      R"("SecurityOpt":["seccomp=unconfined","no-new-privileges"]},)"
      R"("Mounts":[{"Type":"bind","Source":"/etc","Destination":"/x","RW":true},)"
      R"({"Type":"bind","Source":"/srv/ro","Destination":"/r","RW":false},)"
      R"({"Type":"volume","Name":"vol","Source":"/var/lib/docker/volumes/vol/_data",)"
      R"("Driver":"local","RW":true}]})";
  l.answer = [&](const std::string &p) {
    if (p == "/containers/web/json" || p == "/containers/c1/json") return found(container);
    if (p == "/volumes/vol") return found(kBindEtc);
    if (p == "/exec/e1/json")
      return found(R"({"ContainerID":"c1","ProcessConfig":{"privileged":false,"user":"app"}})");
    return not_found();
  };
  for (const char *kind : {"create", "start"}) {
    CAPTURE(kind);
    l.paths.clear();
    Request r = std::string(kind) == "create"
                    ? normalize(req("POST", "/v1.41/containers/web/exec",
                                    R"({"Cmd":["sh"],"User":"app"})", "application/json"),
                                lexical())
                    : exec_start("e1");
    REQUIRE(needs_daemon_facts(r));
    REQUIRE_FALSE(add_daemon_facts(r, l.options()).has_value());
    const auto &f = facts(r);
    CHECK_FALSE(f.privileged);
    CHECK(f.capabilities == std::vector<std::string>{"CAP_SYS_ADMIN"});
    CHECK(f.host_namespaces == std::vector<std::string>{"pid"});
    CHECK(f.devices == std::vector<std::string>{"/dev/kmsg"});
    REQUIRE(f.unsafe.size() == 1);
    CHECK_MESSAGE(contains(f.unsafe[0], "seccomp=unconfined"), f.unsafe[0]);
    REQUIRE(f.host_mounts.size() == 3);
    CHECK(f.host_mounts[0].path == "/etc");
    CHECK_FALSE(f.host_mounts[0].read_only);
    CHECK(f.host_mounts[1].path == "/srv/ro");
    CHECK(f.host_mounts[1].read_only);
    CHECK(f.host_mounts[2].path == "/etc"); // the named volume, looked up: a bind of /etc
    CHECK_MESSAGE(contains(f.host_mounts[2].origin, "volume vol"), f.host_mounts[2].origin);
    CHECK(f.user == "app");
  }
  // No such container, or an answer that is not understood: an error to deny with.
  Request gone =
      normalize(req("POST", "/v1.41/containers/nope/exec", R"({"Cmd":["sh"]})", "application/json"),
                lexical());
  REQUIRE(add_daemon_facts(gone, l.options()).has_value());
  l.answer = [](const std::string &) { return found(R"({"HostConfig":[]})"); };
  Request odd =
      normalize(req("POST", "/v1.41/containers/web/exec", R"({"Cmd":["sh"]})", "application/json"),
                lexical());
  auto err = add_daemon_facts(odd, l.options());
  REQUIRE(err.has_value());
  CHECK_MESSAGE(contains(*err, "not understood"), *err);
}

// A service's tasks may run on other nodes, where a volume of that name can be anything: the
// name is an unsafe setting, and this node is not asked.
TEST_CASE("daemon lookup: service.create with a named volume in the ContainerSpec is unsafe") {
  Request r = normalize(req("POST", "/v1.41/services/create",
                            R"({"Name":"web","TaskTemplate":{"ContainerSpec":{"Image":"nginx:1",)"
                            R"("Mounts":[{"Type":"volume","Source":"data","Target":"/d"}]}}})",
                            "application/json"),
                        lexical());
  REQUIRE(r.action == "service.create");
  CHECK_FALSE(needs_daemon_facts(r));
  REQUIRE(facts(r).unsafe.size() == 1);
  CHECK_MESSAGE(contains(facts(r).unsafe[0], "service mounts named volume data"),
                facts(r).unsafe[0]);
  // An anonymous volume is fresh on every node: not unsafe.
  Request anon = normalize(req("POST", "/v1.41/services/create",
                               R"({"TaskTemplate":{"ContainerSpec":{"Image":"nginx:1",)"
                               R"("Mounts":[{"Type":"volume","Target":"/d"}]}}})",
                               "application/json"),
                           lexical());
  CHECK(facts(anon).unsafe.empty());
}

// One request can create a named volume from one mount's inline options and mount it again
// through another reference: the created volume is judged for every reference (a review found
// an inline read-only bind of a project directory mounted read-write through a second Mounts
// entry of the same name).
TEST_CASE("daemon lookup: a volume created inline is writable if any reference is") {
  const std::string bind =
      R"("VolumeOptions":{"DriverConfig":{"Name":"local","Options":{"type":"none","o":"bind",)"
      R"("device":"/srv/projects/x"}}})";
  Request twice = create_hc(R"("Mounts":[{"Type":"volume","Source":"v","Target":"/a",)"
                            R"("ReadOnly":true,)" +
                            bind + R"(},{"Type":"volume","Source":"v","Target":"/h"}])");
  REQUIRE(facts(twice).host_mounts.size() == 1);
  CHECK(facts(twice).host_mounts[0].path == "/srv/projects/x");
  CHECK_FALSE(facts(twice).host_mounts[0].read_only);

  Request via_binds = create_hc(R"("Binds":["v:/b"],"Mounts":[{"Type":"volume","Source":"v",)"
                                R"("Target":"/a","ReadOnly":true,)" +
                                bind + "}]");
  REQUIRE(facts(via_binds).host_mounts.size() == 1);
  CHECK_FALSE(facts(via_binds).host_mounts[0].read_only);

  Request all_ro = create_hc(R"("Binds":["v:/b:ro"],"Mounts":[{"Type":"volume","Source":"v",)"
                             R"("Target":"/a","ReadOnly":true,)" +
                             bind + "}]");
  REQUIRE(facts(all_ro).host_mounts.size() == 1);
  CHECK(facts(all_ro).host_mounts[0].read_only);

  // Inline options with Subpath: the whole device is judged.
  Request sub = create_hc(R"("Mounts":[{"Type":"volume","Source":"w","Target":"/a",)"
                          R"("ReadOnly":true,"VolumeOptions":{"Subpath":"srv/projects/x",)"
                          R"("DriverConfig":{"Name":"local","Options":{"type":"none","o":"bind",)"
                          R"("device":"/"}}}}])");
  REQUIRE(facts(sub).host_mounts.size() == 1);
  CHECK(facts(sub).host_mounts[0].path == "/");
}

// ============================================================================================
// AuthzService
// ============================================================================================

TEST_CASE("daemon lookup service: a named-volume create is deferred when it may not block") {
  FakeDaemon d;
  Fixture f(d.socket_path());
  auto reply = f.svc->handle(
      "POST", "/AuthZPlugin.AuthZReq",
      tls_request("alice", "POST", "/v1.41/containers/create", kNamedVolumeCreate).dump(),
      /*may_block=*/false);
  CHECK(reply.defer);
  // Should a caller ignore `defer`, the body is still a denial.
  CHECK(json::parse(reply.body)["Allow"] == false);
  CHECK(f.log_lines().empty());
  CHECK(d.targets().empty());
  // A request without a lookup is answered at once.
  auto ping = f.svc->handle("POST", "/AuthZPlugin.AuthZReq",
                            tls_request("alice", "GET", "/v1.41/_ping").dump(), false);
  CHECK_FALSE(ping.defer);
  CHECK(json::parse(ping.body)["Allow"] == true);
}

// A review found that any caller, roles or not, made the plugin ask the daemon (load on the
// daemon, and deny messages revealing other people's volumes and execs).
TEST_CASE("daemon lookup service: a caller no rule covers is denied without a lookup") {
  FakeDaemon d;
  d.set("/volumes/vol", 200,
        R"({"Name":"vol","Driver":"local","Options":{"type":"none",)"
        R"("o":"bind","device":"/etc"}})");
  Fixture f(d.socket_path());
  for (bool may_block : {false, true}) {
    CAPTURE(may_block);
    auto reply = f.svc->handle(
        "POST", "/AuthZPlugin.AuthZReq",
        tls_request("mallory", "POST", "/v1.41/containers/create", kNamedVolumeCreate).dump(),
        may_block);
    CHECK_FALSE(reply.defer);
    CHECK(json::parse(reply.body)["Allow"] == false);
    CHECK_MESSAGE(contains(reply.body, "rule=default-deny"), reply.body);
    auto start = f.svc->handle(
        "POST", "/AuthZPlugin.AuthZReq",
        tls_request("mallory", "POST", "/v1.41/exec/abc/start", R"({"Detach":true})").dump(),
        may_block);
    CHECK_FALSE(start.defer);
    CHECK_MESSAGE(contains(start.body, "rule=default-deny"), start.body);
  }
  CHECK(d.targets().empty());
}

TEST_CASE("daemon lookup service: the daemon's answer decides a named-volume create") {
  FakeDaemon d;
  Fixture f(d.socket_path());
  const json r = tls_request("alice", "POST", "/v1.41/containers/create", kNamedVolumeCreate);

  d.set("/volumes/vol", 200, kBindEtc);
  json denied = f.call(r, true);
  CHECK(denied["Allow"] == false);
  CHECK_MESSAGE(contains(msg_of(denied), "rule=dev-run"), msg_of(denied));
  CHECK_MESSAGE(contains(msg_of(denied), "/etc"), msg_of(denied));
  REQUIRE(d.targets() == std::vector<std::string>{"/volumes/vol"});
  const std::string token = d.tokens().at(0);
  CHECK(token.size() >= 64); // at least 256 random bits, in hex
  CHECK(token.find_first_not_of("0123456789abcdef") == std::string::npos);

  d.set("/volumes/vol", 404, R"({"message":"get vol: no such volume"})");
  json allowed = f.call(r, true);
  CHECK(allowed["Allow"] == true);
  CHECK(d.targets().size() == 2);
  CHECK(d.tokens().at(1) == token); // one token per process

  auto lines = f.log_lines();
  REQUIRE(lines.size() == 2);
  CHECK(lines[0]["rule"] == "dev-run");
  CHECK(lines[0]["allow"] == false);
  CHECK(lines[1]["allow"] == true);
  CHECK_FALSE(contains(f.log_text(), token));
}

TEST_CASE("daemon lookup service: exec.start is judged by the exec instance") {
  FakeDaemon d;
  Fixture f(d.socket_path());
  d.set("/exec/e1/json", 200,
        R"({"ContainerID":"c1","ProcessConfig":{"privileged":true,"user":""}})");
  d.set("/exec/e2/json", 200,
        R"({"ContainerID":"c1","ProcessConfig":{"privileged":false,"user":"1000"}})");
  d.set("/containers/c1/json", 200, kPlainContainer);
  json priv = f.call(tls_request("alice", "POST", "/v1.41/exec/e1/start", R"({"Detach":true})"));
  CHECK(priv["Allow"] == false);
  CHECK_MESSAGE(contains(msg_of(priv), "rule=dev-exec"), msg_of(priv));
  json plain = f.call(tls_request("alice", "POST", "/v1.41/exec/e2/start", R"({"Detach":true})"));
  CHECK(plain["Allow"] == true);
  json gone = f.call(tls_request("alice", "POST", "/v1.41/exec/e3/start", R"({"Detach":true})"));
  CHECK(gone["Allow"] == false);
  CHECK_MESSAGE(contains(msg_of(gone), "rule=daemon-lookup"), msg_of(gone));
  CHECK(d.targets() == std::vector<std::string>{"/exec/e1/json", "/containers/c1/json",
                                                "/exec/e2/json", "/containers/c1/json",
                                                "/exec/e3/json"});
}

TEST_CASE("daemon lookup service: the plugin's own lookups are allowed, nothing else") {
  FakeDaemon d;
  Fixture f(d.socket_path());
  d.set("/volumes/vol", 404, R"({"message":"no such volume"})");
  // Let the service make one lookup to learn its token.
  REQUIRE(f.call(tls_request("alice", "POST", "/v1.41/containers/create",
                             kNamedVolumeCreate))["Allow"] == true);
  REQUIRE(d.tokens().size() == 1);
  const std::string token = d.tokens()[0];
  REQUIRE(token.size() >= 64);

  // The own lookup, as dockerd sends it for authorization (no User, unix socket).
  // (A review found the container lookup of exec/attach missing here: every docker exec was
  // denied once `local` had no role.)
  for (const char *uri :
       {"/v1.41/volumes/x", "/volumes/x", "/v1.41/exec/abc/json", "/containers/c1/json"}) {
    CAPTURE(uri);
    json own = f.call(lookup_request("GET", uri, token), /*may_block=*/false);
    CHECK(own["Allow"] == true);
    auto lines = f.log_lines();
    REQUIRE_FALSE(lines.empty());
    CHECK(lines.back()["rule"] == "portcullis-lookup");
    CHECK(lines.back()["allow"] == true);
    CHECK(lines.back()["principal"] == "portcullis (own lookup)");
  }
  // Header names are matched case-insensitively (Go canonicalizes, proxies may not).
  json lower = f.call(lookup_request("GET", "/v1.41/volumes/x", token, "x-portcullis-lookup"));
  CHECK(lower["Allow"] == true);
  CHECK(f.log_lines().back()["rule"] == "portcullis-lookup");

  std::string wrong = token;
  wrong[10] = wrong[10] == 'a' ? 'b' : 'a';
  struct Case {
    const char *what;
    json request;
  } cases[] = {
      {"wrong token", lookup_request("GET", "/v1.41/volumes/x", wrong)},
      {"short token", lookup_request("GET", "/v1.41/volumes/x", token.substr(0, 32))},
      {"empty token", lookup_request("GET", "/v1.41/volumes/x", "")},
      {"POST volumes/create",
       [&] {
         json j = lookup_request("POST", "/v1.41/volumes/create", token);
         j["RequestBody"] = base64_encode(R"({"Name":"x"})");
         j["RequestHeaders"]["Content-Type"] = "application/json";
         j["RequestHeaders"]["Content-Length"] = "12";
         return j;
       }()},
      {"DELETE volume", lookup_request("DELETE", "/v1.41/volumes/x", token)},
      {"GET containers/json", lookup_request("GET", "/v1.41/containers/json", token)},
      {"GET info", lookup_request("GET", "/v1.41/info", token)},
      {"a TLS user",
       [&] {
         json j = tls_request("alice", "GET", "/v1.41/volumes/x");
         j["RequestHeaders"] = {{kLookupHeader, token}};
         return j;
       }()},
  };
  for (const auto &c : cases) {
    CAPTURE(c.what);
    json reply = f.call(c.request, /*may_block=*/false);
    CHECK(reply["Allow"] == false);
    CHECK_FALSE(contains(msg_of(reply), "portcullis-lookup"));
    auto lines = f.log_lines();
    REQUIRE_FALSE(lines.empty());
    CHECK(lines.back()["rule"] != "portcullis-lookup");
    CHECK(lines.back()["allow"] == false);
  }
  // The token is never written to the decision log.
  const std::string text = f.log_text();
  CHECK_FALSE(text.empty());
  CHECK_FALSE(contains(text, token));
  CHECK_FALSE(contains(text, token.substr(0, 32)));
}

TEST_CASE("daemon lookup service: lookups disabled or unreachable deny with daemon-lookup") {
  const json r = tls_request("alice", "POST", "/v1.41/containers/create", kNamedVolumeCreate);
  SUBCASE("socket \"\"") {
    Fixture f("");
    // Still deferred: the decision is made where blocking is allowed.
    CHECK(f.svc->handle("POST", "/AuthZPlugin.AuthZReq", r.dump(), false).defer);
    json j = f.call(r, true);
    CHECK(j["Allow"] == false);
    CHECK_MESSAGE(contains(msg_of(j), "rule=daemon-lookup"), msg_of(j));
    CHECK_MESSAGE(contains(msg_of(j), "disabled"), msg_of(j));
    auto lines = f.log_lines();
    REQUIRE(lines.size() == 1);
    CHECK(lines[0]["rule"] == "daemon-lookup");
    // With no token, an empty lookup header is not an own lookup.
    json own = f.call(lookup_request("GET", "/v1.41/volumes/x", ""));
    CHECK(own["Allow"] == false);
    CHECK(f.log_lines().back()["rule"] != "portcullis-lookup");
  }
  SUBCASE("socket pointing nowhere") {
    const std::string dir = make_temp_dir("portcullis-nodaemon");
    {
      Fixture f(dir + "/nothing.sock");
      json j = f.call(r, true);
      CHECK(j["Allow"] == false);
      CHECK_MESSAGE(contains(msg_of(j), "rule=daemon-lookup"), msg_of(j));
      CHECK(f.log_lines().back()["rule"] == "daemon-lookup");
    }
    fs::remove_all(dir);
  }
  SUBCASE("daemon answers 500") {
    FakeDaemon d;
    d.set("/volumes/vol", 500, R"({"message":"boom"})");
    Fixture f(d.socket_path());
    json j = f.call(r, true);
    CHECK(j["Allow"] == false);
    CHECK_MESSAGE(contains(msg_of(j), "rule=daemon-lookup"), msg_of(j));
    CHECK_MESSAGE(contains(msg_of(j), "boom"), msg_of(j));
  }
  SUBCASE("daemon never answers: denied within the timeout") {
    FakeDaemon d(FakeDaemon::Mode::never_answer);
    Fixture f(d.socket_path(), 200);
    const auto t0 = Clock::now();
    json j = f.call(r, true);
    CHECK(Clock::now() - t0 < 1200ms);
    CHECK(j["Allow"] == false);
    CHECK_MESSAGE(contains(msg_of(j), "rule=daemon-lookup"), msg_of(j));
  }
}

// ============================================================================================
// Server: deferred calls run on the lookup pool
// ============================================================================================

TEST_CASE("daemon lookup server: a deferred call does not hold the only I/O thread") {
  Gate fast_answered;
  std::atomic<bool> slow_blocking{false}, slow_saw_fast{false}, slow_ran_on_io{false};
  LookupServer s([&](std::string_view, std::string_view t, std::string_view b, bool may_block) {
    if (t != "/AuthZPlugin.AuthZReq") return PluginReply{200, encode_activate_response()};
    if (b == "slow") {
      if (!may_block) return PluginReply{200, {}, /*defer=*/true};
      slow_blocking = true;
      slow_saw_fast = fast_answered.wait(5000ms);
      return PluginReply{200, encode_authz_response(true, "")};
    }
    if (may_block) slow_ran_on_io = true; // "fast" needs no lookup: never deferred
    return PluginReply{200, encode_authz_response(true, "")};
  });
  int slow = dial(s.sock);
  REQUIRE(slow >= 0);
  send_all(slow, post("/AuthZPlugin.AuthZReq", "slow"));
  REQUIRE(wait_until([&] { return slow_blocking.load(); }));

  int fast = dial(s.sock);
  REQUIRE(fast >= 0);
  const auto t0 = Clock::now();
  send_all(fast, post("/AuthZPlugin.AuthZReq", "fast"));
  std::string fr = read_response(fast);
  CHECK(Clock::now() - t0 < 2s);
  CHECK(fr.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(contains(fr, "\"Allow\":true"));
  fast_answered.release();

  std::string sr = read_response(slow);
  CHECK(sr.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(contains(sr, "\"Allow\":true"));
  CHECK(slow_saw_fast.load());
  CHECK_FALSE(slow_ran_on_io.load());

  // The deferred connection stays usable (keep-alive).
  send_all(slow, post("/AuthZPlugin.AuthZReq", "fast"));
  CHECK(contains(read_response(slow), "\"Allow\":true"));
  ::close(slow);
  ::close(fast);
}

TEST_CASE("daemon lookup server: more deferred calls than max_pending are denied") {
  Gate release;
  std::atomic<int> running{0};
  LookupServer s(
      [&](std::string_view, std::string_view, std::string_view b, bool may_block) {
        if (b != "slow") return PluginReply{200, encode_authz_response(true, "")};
        if (!may_block) return PluginReply{200, {}, /*defer=*/true};
        running++;
        release.wait(5000ms);
        return PluginReply{200, encode_authz_response(true, "")};
      },
      /*max_pending=*/1);
  int first = dial(s.sock);
  REQUIRE(first >= 0);
  send_all(first, post("/AuthZPlugin.AuthZReq", "slow"));
  REQUIRE(wait_until([&] { return running.load() == 1; }));

  int second = dial(s.sock);
  REQUIRE(second >= 0);
  const auto t0 = Clock::now();
  send_all(second, post("/AuthZPlugin.AuthZReq", "slow"));
  std::string r2 = read_response(second);
  CHECK(Clock::now() - t0 < 2s);
  CHECK(r2.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(contains(r2, "\"Allow\":false"));
  CHECK_MESSAGE(contains(r2, "rule=daemon-lookup"), r2);
  CHECK(running.load() == 1);

  release.release();
  std::string r1 = read_response(first);
  CHECK(contains(r1, "\"Allow\":true"));

  // The slot is free again.
  int third = dial(s.sock);
  REQUIRE(third >= 0);
  send_all(third, post("/AuthZPlugin.AuthZReq", "slow"));
  CHECK(contains(read_response(third), "\"Allow\":true"));
  CHECK(running.load() == 2);
  ::close(first);
  ::close(second);
  ::close(third);
}

// A review measured answers after 2, 4, ... 16 s when lookups queued behind a slow daemon: a
// call waiting longer than max_queue_ms for a lookup thread is denied without running.
TEST_CASE("daemon lookup server: a deferred call that waited too long in the queue is denied") {
  Gate release;
  std::atomic<int> running{0};
  LookupServer s(
      [&](std::string_view, std::string_view, std::string_view b, bool may_block) {
        if (b != "slow") return PluginReply{200, encode_authz_response(true, "")};
        if (!may_block) return PluginReply{200, {}, /*defer=*/true};
        running++;
        release.wait(600ms);
        return PluginReply{200, encode_authz_response(true, "")};
      },
      /*max_pending=*/64, /*lookup_threads=*/1, /*max_queue_ms=*/150);
  int first = dial(s.sock);
  REQUIRE(first >= 0);
  send_all(first, post("/AuthZPlugin.AuthZReq", "slow"));
  REQUIRE(wait_until([&] { return running.load() == 1; }));
  int second = dial(s.sock);
  REQUIRE(second >= 0);
  send_all(second, post("/AuthZPlugin.AuthZReq", "slow"));
  std::string r1 = read_response(first);
  CHECK(contains(r1, "\"Allow\":true"));
  std::string r2 = read_response(second);
  CHECK(contains(r2, "\"Allow\":false"));
  CHECK_MESSAGE(contains(r2, "rule=daemon-lookup"), r2);
  CHECK(running.load() == 1); // the second never ran
  ::close(first);
  ::close(second);
}

TEST_CASE("daemon lookup server: a handler that defers when it may block gets internal-error") {
  std::atomic<int> blocking_calls{0};
  LookupServer s([&](std::string_view, std::string_view, std::string_view, bool may_block) {
    if (may_block) blocking_calls++;
    return PluginReply{200, {}, /*defer=*/true};
  });
  int fd = dial(s.sock);
  REQUIRE(fd >= 0);
  const auto t0 = Clock::now();
  send_all(fd, post("/AuthZPlugin.AuthZReq", "slow"));
  std::string r = read_response(fd);
  CHECK(Clock::now() - t0 < 2s);
  CHECK(r.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(contains(r, "\"Allow\":false"));
  CHECK_MESSAGE(contains(r, "rule=internal-error"), r);
  CHECK(blocking_calls.load() == 1);
  ::close(fd);
}

TEST_CASE("daemon lookup server: AuthzService behind run_server answers a named-volume create") {
  FakeDaemon d;
  d.set("/volumes/vol", 200, kBindEtc);
  Fixture f(d.socket_path());
  AuthzService *svc = f.svc.get();
  LookupServer s([svc](std::string_view m, std::string_view t, std::string_view b, bool may_block) {
    return svc->handle(m, t, b, may_block);
  });
  int fd = dial(s.sock);
  REQUIRE(fd >= 0);
  send_all(
      fd,
      post("/AuthZPlugin.AuthZReq",
           tls_request("alice", "POST", "/v1.41/containers/create", kNamedVolumeCreate).dump()));
  std::string r = read_response(fd);
  CHECK(contains(r, "\"Allow\":false"));
  CHECK(contains(r, "rule=dev-run"));
  CHECK(d.targets() == std::vector<std::string>{"/volumes/vol"});
  ::close(fd);
}

// Second review: container state that gives an exec (or attach) host access beyond mounts.
TEST_CASE("daemon lookup: the target container's unmasked paths, runtime, cgroup and sysctls") {
  auto target = [](const std::string &hc_extra, const std::string &mounts = "[]") {
    Lookups l;
    const std::string body = R"({"HostConfig":{)" + hc_extra + R"(},"Mounts":)" + mounts + "}";
    l.answer = [body](const std::string &p) {
      if (p == "/containers/web/json") return found(body);
      return not_found();
    };
    Request r = normalize(
        req("POST", "/v1.41/containers/web/exec", R"({"Cmd":["sh"]})", "application/json"),
        lexical());
    auto err = add_daemon_facts(r, l.options());
    return std::make_pair(std::move(r), err);
  };
  const std::string defaults =
      R"("MaskedPaths":["/proc/kcore","/proc/keys","/sys/firmware"],)"
      R"("ReadonlyPaths":["/proc/sys","/proc/sysrq-trigger","/proc/irq","/proc/bus"])";
  {
    auto [r, err] = target(defaults);
    REQUIRE_FALSE(err.has_value());
    CHECK(facts(r).unsafe.empty());
  }
  // --security-opt systempaths=unconfined: both lists empty.
  {
    auto [r, err] = target(R"("MaskedPaths":[],"ReadonlyPaths":[])");
    REQUIRE_FALSE(err.has_value());
    CHECK(facts(r).unsafe.size() == 2);
    CHECK(has_prefix(facts(r).unsafe, "target container web MaskedPaths"));
  }
  // A list without one of the defaults, or no list at all.
  {
    auto [r, err] =
        target(R"("MaskedPaths":["/proc/kcore"],)"
               R"("ReadonlyPaths":["/proc/sys","/proc/sysrq-trigger","/proc/irq","/proc/bus"])");
    REQUIRE_FALSE(err.has_value());
    CHECK(facts(r).unsafe.size() == 1);
    auto [r2, err2] = target(R"("Privileged":false)");
    CHECK(facts(r2).unsafe.size() == 2);
  }
  // Privileged: its own fact, the lists do not matter.
  {
    auto [r, err] = target(R"("Privileged":true,"MaskedPaths":null)");
    REQUIRE_FALSE(err.has_value());
    CHECK(facts(r).privileged);
    CHECK(facts(r).unsafe.empty());
  }
  {
    auto [r, err] =
        target(defaults +
               R"(,"Runtime":"kata","CgroupParent":"/x","Sysctls":{"net.ipv4.ip_forward":"1"})");
    REQUIRE_FALSE(err.has_value());
    CHECK(facts(r).unsafe.size() == 3);
    auto [ok, err2] = target(defaults + R"(,"Runtime":"runc","CgroupParent":"","Sysctls":{})");
    CHECK(facts(ok).unsafe.empty());
  }
  // Mount entries: unknown types are unsafe; unreadable ones are errors; bind-nonrecursive is
  // writable below its top.
  {
    auto [r, err] = target(defaults, R"([{"Type":"cluster","Name":"c","RW":true},)"
                                     R"({"Type":"tmpfs","Destination":"/t","RW":true}])");
    REQUIRE_FALSE(err.has_value());
    CHECK(facts(r).unsafe.size() == 1);
    for (const char *bad :
         {R"([{"Type":"bind","Source":"/srv"}])", R"([{"Source":"/srv","RW":true}])", R"(["x"])",
          R"([{"Type":"volume","RW":true}])", R"([{"Type":"bind","Source":"rel","RW":false}])"}) {
      CAPTURE(bad);
      auto [b, berr] = target(defaults, bad);
      REQUIRE(berr.has_value());
      CHECK_MESSAGE(contains(*berr, "not understood"), *berr);
    }
    auto [nr, err3] =
        target(defaults + R"(,"Mounts":[{"Type":"bind","Source":"/srv","Target":"/s",)"
                          R"("BindOptions":{"ReadOnlyNonRecursive":true}}])",
               R"([{"Type":"bind","Source":"/srv","Destination":"/s","RW":false},)"
               R"({"Type":"bind","Source":"/opt","Destination":"/o","RW":false}])");
    REQUIRE_FALSE(err3.has_value());
    REQUIRE(facts(nr).host_mounts.size() == 2);
    CHECK_FALSE(facts(nr).host_mounts[0].read_only);
    CHECK(facts(nr).host_mounts[1].read_only);
  }
}

TEST_CASE("daemon lookup: attach takes the container's access and its user") {
  Lookups l;
  l.answer = [](const std::string &p) {
    if (p == "/containers/web/json")
      return found(R"({"Config":{"User":"1000"},"HostConfig":{"Privileged":true},"Mounts":[]})");
    return not_found();
  };
  for (const char *uri : {"/v1.41/containers/web/attach?stream=1&stdin=1",
                          "/v1.41/containers/web/attach/ws?stream=1"}) {
    CAPTURE(uri);
    Request r = normalize(
        req(std::string(uri).find("/ws") != std::string::npos ? "GET" : "POST", uri), lexical());
    REQUIRE_FALSE(r.invalid.has_value());
    REQUIRE(needs_daemon_facts(r));
    REQUIRE_FALSE(add_daemon_facts(r, l.options()).has_value());
    CHECK(facts(r).privileged);
    CHECK(facts(r).user == "1000");
    CHECK_FALSE(facts(r).user_is_root);
  }
}

TEST_CASE("daemon lookup: service EndpointSpec.Ports are published ports") {
  Request r = normalize(req("POST", "/v1.41/services/create",
                            R"({"TaskTemplate":{"ContainerSpec":{"Image":"nginx:1"}},)"
                            R"("EndpointSpec":{"Ports":[{"Protocol":"tcp","TargetPort":22,)"
                            R"("PublishedPort":22,"PublishMode":"host"},{"TargetPort":80}]}})",
                            "application/json"),
                        lexical());
  const auto &f = facts(r);
  REQUIRE(f.published_ports.size() == 2);
  CHECK(f.published_ports[0].first == 22);
  CHECK(f.published_ports[0].container_port == "22/tcp");
  CHECK(f.published_ports[1].first == 0); // swarm picks one
  for (const char *bad : {R"([{"PublishedPort":70000}])", R"([{"PublishedPort":"22"}])",
                          R"([{"PublishedPort":-1}])", R"(["22:22"])"}) {
    CAPTURE(bad);
    Request b =
        normalize(req("POST", "/v1.41/services/create",
                      std::string(R"({"EndpointSpec":{"Ports":)") + bad + "}}", "application/json"),
                  lexical());
    CHECK(b.invalid.has_value());
  }
}
