// The OCI registry client (plugin/registry): mock registries and token servers on 127.0.0.1
// (cpp-httplib servers on ephemeral ports), a TLS registry on this machine's non-loopback address,
// and, when installed, the real docker-registry.
#include "plugin/crypto.hpp"
#include "plugin/registry.hpp"

#include <arpa/inet.h>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <doctest/doctest.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <httplib.h>
#include <ifaddrs.h>
#include <map>
#include <mutex>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <spawn.h>
#include <string>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

extern char **environ;

using namespace portcullis;
using namespace std::chrono_literals;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
using Status = RegistryResult::Status;

bool contains(const std::string &haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

RegistryDeadline in(std::chrono::milliseconds ms) {
  return Clock::now() + ms;
}

std::string digest_of(const std::string &s) {
  return "sha256:" + sha256_hex(s);
}

// What a mock server saw of one request.
struct Seen {
  std::string method;
  std::string path; // without the query
  httplib::Params params;
  httplib::Headers headers;
  std::string body;
  bool has_auth() const { return headers.count("Authorization") > 0; }
  std::string auth() const {
    auto it = headers.find("Authorization");
    return it == headers.end() ? "" : it->second;
  }
};

// A cpp-httplib server on an ephemeral port of `host`, serving from a background thread, that
// records every request it receives (before routing).
class MockServer {
public:
  explicit MockServer(std::unique_ptr<httplib::Server> srv = std::make_unique<httplib::Server>(),
                      const std::string &host = "127.0.0.1")
      : srv_(std::move(srv)), host_(host) {
    srv_->set_pre_routing_handler([this](const httplib::Request &req, httplib::Response &) {
      std::lock_guard lock(mu_);
      seen_.push_back(Seen{req.method, req.path, req.params, req.headers, ""});
      return httplib::Server::HandlerResponse::Unhandled;
    });
    port_ = srv_->bind_to_any_port(host_);
    REQUIRE(port_ > 0);
    thread_ = std::thread([this] { srv_->listen_after_bind(); });
    for (int i = 0; i < 2000 && !srv_->is_running(); ++i)
      std::this_thread::sleep_for(1ms);
    REQUIRE(srv_->is_running());
  }
  ~MockServer() {
    stopping_ = true;
    srv_->stop();
    thread_.join();
  }
  MockServer(const MockServer &) = delete;
  MockServer &operator=(const MockServer &) = delete;

  httplib::Server &srv() { return *srv_; }
  int port() const { return port_; }
  std::string registry() const {
    auto host = host_.find(':') != std::string::npos ? "[" + host_ + "]" : host_;
    return host + ":" + std::to_string(port_);
  }
  std::string url(const std::string &path, const std::string &scheme = "http") const {
    return scheme + "://" + registry() + path;
  }
  std::vector<Seen> seen() const {
    std::lock_guard lock(mu_);
    return seen_;
  }
  std::size_t hits(const std::string &path) const {
    std::lock_guard lock(mu_);
    std::size_t n = 0;
    for (const auto &s : seen_)
      n += s.path == path;
    return n;
  }
  // Sleeps up to `d`, returning early when the server is being torn down.
  void nap(std::chrono::milliseconds d) const {
    auto until = Clock::now() + d;
    while (!stopping_ && Clock::now() < until)
      std::this_thread::sleep_for(5ms);
  }
  bool stopping() const { return stopping_; }

private:
  std::unique_ptr<httplib::Server> srv_;
  std::string host_;
  int port_ = 0;
  std::thread thread_;
  mutable std::mutex mu_;
  std::vector<Seen> seen_;
  std::atomic<bool> stopping_{false};
};

const std::string kManifest =
    R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
    R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json",)"
    R"("digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",)"
    R"("size":2},"layers":[]})";

std::unique_ptr<Registry> client(RegistryOptions o = {}) {
  return make_http_registry(o);
}

// A non-loopback IPv4 address of this machine, or "" when there is none.
std::string non_loopback_ipv4() {
  ifaddrs *list = nullptr;
  if (getifaddrs(&list) != 0) return "";
  std::string found;
  for (auto *a = list; a && found.empty(); a = a->ifa_next) {
    if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET) continue;
    char buf[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in *>(a->ifa_addr)->sin_addr, buf, sizeof buf);
    std::string ip = buf;
    if (ip.rfind("127.", 0) != 0) found = ip;
  }
  freeifaddrs(list);
  return found;
}

// A throwaway self-signed certificate for an IP address (SAN iPAddress), with its key.
struct TestCert {
  X509 *cert = nullptr;
  EVP_PKEY *key = nullptr;
  std::string pem;
  explicit TestCert(const std::string &ip) {
    key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 7);
    X509_gmtime_adj(X509_getm_notBefore(cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME *name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char *>(ip.c_str()), -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
    std::string san = "IP:" + ip;
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, san.c_str());
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    X509_sign(cert, key, EVP_sha256());
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, cert);
    char *data = nullptr;
    long len = BIO_get_mem_data(bio, &data);
    pem.assign(data, static_cast<std::size_t>(len));
    BIO_free(bio);
  }
  ~TestCert() {
    X509_free(cert);
    EVP_PKEY_free(key);
  }
  TestCert(const TestCert &) = delete;
  TestCert &operator=(const TestCert &) = delete;
};

std::string write_temp(const std::string &name, const std::string &content) {
  auto path = fs::temp_directory_path() / (name + "-" + std::to_string(::getpid()));
  std::ofstream(path) << content;
  return path.string();
}

// A raw TCP server on 127.0.0.1 that accepts connections and trickles a response, one byte every
// 50 ms, forever: per-read timeouts never fire, only a total deadline stops it.
class TrickleServer {
public:
  explicit TrickleServer(std::string prefix, const std::string &ip = "127.0.0.1")
      : prefix_(std::move(prefix)), ip_(ip) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    REQUIRE(inet_pton(AF_INET, ip.c_str(), &a.sin_addr) == 1);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr *>(&a), &len);
    port_ = ntohs(a.sin_port);
    REQUIRE(::listen(fd_, 8) == 0);
    thread_ = std::thread([this] { run(); });
  }
  ~TrickleServer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  std::string registry() const { return ip_ + ":" + std::to_string(port_); }

private:
  void run() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      std::string out = prefix_;
      std::size_t i = 0;
      while (!stop_) {
        char ch = i < out.size() ? out[i] : 'x';
        if (::send(c, &ch, 1, MSG_NOSIGNAL) != 1) break;
        ++i;
        std::this_thread::sleep_for(i < out.size() / 2 ? 1ms : 50ms);
      }
      ::close(c);
    }
  }
  std::string prefix_;
  std::string ip_;
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
};

} // namespace

TEST_SUITE("registry") {

  TEST_CASE("registry: is_loopback_registry and registry_api_host") {
    for (const char *yes :
         {"localhost", "localhost:5000", "LOCALHOST:5000", "127.0.0.1", "127.0.0.1:5000",
          "127.1.2.3:80", "127.255.255.255", "[::1]", "[::1]:5000", "::1"})
      CHECK_MESSAGE(is_loopback_registry(yes), yes);
    for (const char *no : {"",
                           "docker.io",
                           "127.0.0.1.evil.com",
                           "127.0.0.1.evil.com:5000",
                           "localhost.evil.com",
                           "evil.localhost",
                           "128.0.0.1",
                           "127.0.0",
                           "127.0.0.1.1",
                           "127.0.0.256",
                           "127.0.0.-1",
                           "127.0.0.1:abc",
                           "127.0.0.1:",
                           "localhost:99999",
                           "[::1",
                           "[::2]:5000",
                           "[::1]x",
                           "0x7f.0.0.1",
                           "127.0.0.1 ",
                           "::2",
                           "10.0.0.1:5000",
                           "[::ffff:127.0.0.1]"})
      CHECK_MESSAGE(!is_loopback_registry(no), no);
    CHECK(registry_api_host("docker.io") == "registry-1.docker.io");
    CHECK(registry_api_host("ghcr.io") == "ghcr.io");
    CHECK(registry_api_host("127.0.0.1:5000") == "127.0.0.1:5000");
  }

  TEST_CASE("registry: manifest content negotiation and media types") {
    MockServer s;
    std::string content_type = kOciManifest;
    std::string accept_seen;
    s.srv().Get("/v2/lib/app/manifests/v1",
                [&](const httplib::Request &req, httplib::Response &res) {
                  accept_seen = req.get_header_value("Accept");
                  res.set_content(kManifest, content_type.c_str());
                });
    auto r = client();

    auto ok = r->get_manifest(s.registry(), "lib/app", "v1", in(2s));
    REQUIRE_MESSAGE(ok.status == Status::ok, ok.error);
    CHECK(ok.body == kManifest);
    CHECK(ok.media_type == kOciManifest);
    CHECK(ok.digest == digest_of(kManifest));
    CHECK(ok.http_status == 200);
    for (const char *m : {kOciIndex, kOciManifest, kDockerManifestList, kDockerManifest})
      CHECK_MESSAGE(contains(accept_seen, m), m);

    // Parameters and case do not matter.
    content_type = "Application/VND.OCI.image.index.v1+json; charset=utf-8";
    auto idx = r->get_manifest(s.registry(), "lib/app", "v1", in(2s));
    REQUIRE_MESSAGE(idx.status == Status::ok, idx.error);
    CHECK(idx.media_type == kOciIndex);

    for (const char *bad :
         {"application/json", "text/plain", "application/vnd.oci.image.config.v1+json",
          "application/vnd.docker.distribution.manifest.v1+prettyjws"}) {
      content_type = bad;
      auto e = r->get_manifest(s.registry(), "lib/app", "v1", in(2s));
      CHECK_MESSAGE(e.status == Status::error, bad);
      CHECK(e.body.empty());
    }
  }

  TEST_CASE("registry: manifest digests are computed and verified") {
    MockServer s;
    const std::string good_digest = digest_of(kManifest);
    const std::string other = kManifest + " ";
    std::string claimed;
    s.srv().Get(
        R"(/v2/lib/app/manifests/(.+))", [&](const httplib::Request &req, httplib::Response &res) {
          // Serves kManifest for its own digest and for "good", something else otherwise.
          std::string ref = req.matches[1];
          res.set_content(ref == good_digest || ref == "good" ? kManifest : other, kOciManifest);
          if (!claimed.empty()) res.set_header("Docker-Content-Digest", claimed);
        });
    auto r = client();

    auto by_digest = r->get_manifest(s.registry(), "lib/app", good_digest, in(2s));
    REQUIRE_MESSAGE(by_digest.status == Status::ok, by_digest.error);
    CHECK(by_digest.digest == good_digest);

    auto by_tag = r->get_manifest(s.registry(), "lib/app", "good", in(2s));
    REQUIRE(by_tag.status == Status::ok);
    CHECK(by_tag.digest == good_digest);

    // The registry answers other bytes for a digest reference.
    const std::string wanted = digest_of("something else");
    auto mismatch = r->get_manifest(s.registry(), "lib/app", wanted, in(2s));
    CHECK(mismatch.status == Status::error);
    CHECK(contains(mismatch.error, "digest mismatch"));
    CHECK(mismatch.body.empty());

    // Right bytes, but the registry claims another digest.
    claimed = wanted;
    auto claim = r->get_manifest(s.registry(), "lib/app", good_digest, in(2s));
    CHECK(claim.status == Status::error);
    CHECK(contains(claim.error, "digest mismatch"));
    claimed = good_digest;
    CHECK(r->get_manifest(s.registry(), "lib/app", good_digest, in(2s)).status == Status::ok);
  }

  TEST_CASE("registry: 404 is not_found, 500 and other statuses are errors") {
    MockServer s;
    s.srv().Get("/v2/lib/app/manifests/boom", [](const httplib::Request &, httplib::Response &res) {
      res.status = 500;
      res.set_content("oops", "text/plain");
    });
    s.srv().Get("/v2/lib/app/manifests/odd",
                [](const httplib::Request &, httplib::Response &res) { res.status = 204; });
    s.srv().Get("/v2/lib/app/blobs/(.+)",
                [](const httplib::Request &, httplib::Response &res) { res.status = 503; });
    auto r = client();
    auto nf = r->get_manifest(s.registry(), "lib/app", "missing", in(2s));
    CHECK(nf.status == Status::not_found);
    CHECK(nf.http_status == 404);
    auto boom = r->get_manifest(s.registry(), "lib/app", "boom", in(2s));
    CHECK(boom.status == Status::error);
    CHECK(boom.http_status == 500);
    CHECK(contains(boom.error, "500"));
    CHECK(r->get_manifest(s.registry(), "lib/app", "odd", in(2s)).status == Status::error);
    auto blob = r->get_blob(s.registry(), "lib/app", digest_of("x"), 100, in(2s));
    CHECK(blob.status == Status::error);
    CHECK(contains(blob.error, "503"));
    auto nf_blob = r->get_blob(s.registry(), "other/repo", digest_of("x"), 100, in(2s));
    CHECK(nf_blob.status == Status::not_found); // unrouted: httplib answers 404
  }

  TEST_CASE("registry: blob size limit, with and without Content-Length, and blob digests") {
    MockServer s;
    const std::string blob(1000, 'b');
    s.srv().Get("/v2/lib/app/blobs/(.+)", [&](const httplib::Request &, httplib::Response &res) {
      res.set_content(blob, "application/octet-stream");
    });
    // Chunked (no Content-Length) and endless: only the client's limit stops it.
    s.srv().Get("/v2/chunked/app/blobs/(.+)",
                [&](const httplib::Request &, httplib::Response &res) {
                  res.set_chunked_content_provider("application/octet-stream",
                                                   [&](std::size_t, httplib::DataSink &sink) {
                                                     if (s.stopping()) return false;
                                                     std::string chunk(4096, 'c');
                                                     return sink.write(chunk.data(), chunk.size());
                                                   });
                });
    auto r = client();
    const std::string d = digest_of(blob);

    auto exact = r->get_blob(s.registry(), "lib/app", d, 1000, in(2s));
    REQUIRE_MESSAGE(exact.status == Status::ok, exact.error);
    CHECK(exact.body == blob);
    CHECK(exact.digest == d);
    CHECK(exact.media_type == "application/octet-stream");

    auto big = r->get_blob(s.registry(), "lib/app", d, 999, in(2s));
    CHECK(big.status == Status::error);
    CHECK(contains(big.error, "999"));
    CHECK(big.body.empty());

    auto t0 = Clock::now();
    auto endless = r->get_blob(s.registry(), "chunked/app", d, 50000, in(3s));
    CHECK(endless.status == Status::error);
    CHECK(contains(endless.error, "50000"));
    CHECK(Clock::now() - t0 < 1500ms);

    // The body must hash to the digest asked for.
    auto wrong = r->get_blob(s.registry(), "lib/app", digest_of("another blob"), 5000, in(2s));
    CHECK(wrong.status == Status::error);
    CHECK(contains(wrong.error, "digest mismatch"));
  }

  TEST_CASE("registry: manifest size limit") {
    MockServer s;
    const std::string huge = R"({"pad":")" + std::string(5000, 'p') + "\"}";
    s.srv().Get("/v2/lib/app/manifests/big", [&](const httplib::Request &, httplib::Response &res) {
      res.set_content(huge, kOciManifest);
    });
    RegistryOptions o;
    o.max_manifest_bytes = 4096;
    auto r = client(o);
    auto e = r->get_manifest(s.registry(), "lib/app", "big", in(2s));
    CHECK(e.status == Status::error);
    CHECK(contains(e.error, "4096"));
  }

  // A registry that wants a Bearer token, and its token server (on the same mock).
  struct BearerRegistry {
    MockServer s;
    std::string challenge;
    std::string expected_scope = "repository:lib/app:pull";
    std::string expected_auth; // "" = anonymous: the token request must carry no Authorization
    json token_answer = {{"token", "tok-1"}, {"expires_in", 300}};
    std::string valid_token = "tok-1";
    std::atomic<int> token_rejects{0};

    BearerRegistry() {
      challenge = "Bearer realm=\"" + s.url("/token") +
                  "\",service=\"reg, \\\"test\\\"\",scope=\"repository:lib/app:pull\"";
      s.srv().Get("/token", [this](const httplib::Request &req, httplib::Response &res) {
        bool scope_ok = req.get_param_value("scope") == expected_scope;
        bool service_ok = req.get_param_value("service") == "reg, \"test\"";
        bool auth_ok = expected_auth.empty()
                           ? !req.has_header("Authorization")
                           : req.get_header_value("Authorization") == expected_auth;
        if (!scope_ok || !service_ok || !auth_ok) {
          token_rejects++;
          res.status = 401;
          return;
        }
        res.set_content(token_answer.dump(), "application/json");
      });
      s.srv().Get("/v2/lib/app/manifests/v1",
                  [this](const httplib::Request &req, httplib::Response &res) {
                    if (req.get_header_value("Authorization") != "Bearer " + valid_token) {
                      res.status = 401;
                      res.set_header("WWW-Authenticate", challenge);
                      return;
                    }
                    res.set_content(kManifest, kOciManifest);
                  });
    }
    std::size_t manifest_requests_with(const std::string &auth) const {
      std::size_t n = 0;
      for (const auto &x : s.seen())
        n += x.path == "/v2/lib/app/manifests/v1" && x.auth() == auth;
      return n;
    }
  };

  TEST_CASE("registry: anonymous bearer flow, token cache and expiry") {
    BearerRegistry b;
    auto r = client();
    auto first = r->get_manifest(b.s.registry(), "lib/app", "v1", in(2s));
    REQUIRE_MESSAGE(first.status == Status::ok, first.error);
    CHECK(b.token_rejects == 0);
    CHECK(b.s.hits("/token") == 1);
    CHECK(b.manifest_requests_with("") == 1);
    CHECK(b.manifest_requests_with("Bearer tok-1") == 1);
    CHECK(r->requests() == 3);

    // Cached: straight to the registry with the token.
    auto second = r->get_manifest(b.s.registry(), "lib/app", "v1", in(2s));
    REQUIRE(second.status == Status::ok);
    CHECK(b.s.hits("/token") == 1);
    CHECK(b.manifest_requests_with("") == 1);
    CHECK(r->requests() == 4);

    // A fresh client with a short-lived token ("access_token" this time): refetched once expired.
    b.token_answer = {{"access_token", "tok-1"}, {"expires_in", 1}};
    auto r2 = client();
    REQUIRE(r2->get_manifest(b.s.registry(), "lib/app", "v1", in(2s)).status == Status::ok);
    REQUIRE(r2->get_manifest(b.s.registry(), "lib/app", "v1", in(2s)).status == Status::ok);
    CHECK(b.s.hits("/token") == 2);
    std::this_thread::sleep_for(800ms);
    REQUIRE(r2->get_manifest(b.s.registry(), "lib/app", "v1", in(2s)).status == Status::ok);
    CHECK(b.s.hits("/token") == 3);
    CHECK(b.token_rejects == 0);
  }

  TEST_CASE("registry: bearer flow with credentials, odd challenge spellings") {
    BearerRegistry b;
    RegistryOptions o;
    o.hosts[b.s.registry()] = RegistryHostConfig{false, "alice", "s3cret:pw"};
    b.expected_auth = "Basic " + base64_encode("alice:s3cret:pw");
    // Upper-case scheme and parameter names, a quoted comma, another challenge after it.
    b.challenge = "BEARER Scope=\"repository:lib/app:pull\" , REALM=\"" + b.s.url("/token") +
                  "\", Service=\"reg, \\\"test\\\"\", Basic realm=\"x\"";
    auto r = client(o);
    auto res = r->get_manifest(b.s.registry(), "lib/app", "v1", in(2s));
    REQUIRE_MESSAGE(res.status == Status::ok, res.error);
    CHECK(b.token_rejects == 0);
    CHECK(b.s.hits("/token") == 1);

    // Wrong credentials: the token server refuses; an error that shows no secret.
    RegistryOptions wrong;
    wrong.hosts[b.s.registry()] = RegistryHostConfig{false, "alice", "wrong-pw"};
    auto e = client(wrong)->get_manifest(b.s.registry(), "lib/app", "v1", in(2s));
    CHECK(e.status == Status::error);
    CHECK(contains(e.error, "unauthorized"));
    CHECK(!contains(e.error, "wrong-pw"));
    CHECK(!contains(e.error, base64_encode("alice:wrong-pw")));

    // Anonymous client against a token server that wants credentials.
    auto anon = client()->get_manifest(b.s.registry(), "lib/app", "v1", in(2s));
    CHECK(anon.status == Status::error);
  }

  TEST_CASE("registry: a token the registry does not accept is an error, never ok") {
    BearerRegistry b;
    b.valid_token = "something-else";
    auto r = client();
    auto e = r->get_manifest(b.s.registry(), "lib/app", "v1", in(2s));
    CHECK(e.status == Status::error);
    CHECK(contains(e.error, "unauthorized"));
    CHECK(!contains(e.error, "tok-1"));
    CHECK(e.body.empty());
    CHECK(b.s.hits("/token") == 1);
    CHECK(b.s.hits("/v2/lib/app/manifests/v1") == 2); // exactly one retry

    // Token answers that are not usable.
    for (json bad : {json{{"nothing", "here"}}, json{{"token", ""}}, json{{"token", "a b\r\nX: y"}},
                     json::array({"tok-1"})}) {
      b.token_answer = bad;
      b.valid_token = "tok-1";
      auto e2 = client()->get_manifest(b.s.registry(), "lib/app", "v1", in(2s));
      CHECK_MESSAGE(e2.status == Status::error, bad.dump());
    }
    // Malformed challenges.
    for (std::string ch :
         {std::string("Bearer realm=\"unterminated"), std::string("Bearer"),
          std::string("Bearer realm=\"ftp://127.0.0.1/token\""), std::string("Negotiate abc")}) {
      b.challenge = ch;
      b.token_answer = {{"token", "tok-1"}};
      auto e3 = client()->get_manifest(b.s.registry(), "lib/app", "v1", in(2s));
      CHECK_MESSAGE(e3.status == Status::error, ch);
    }
  }

  TEST_CASE("registry: token server answers over max_token_bytes are errors") {
    BearerRegistry b;
    b.token_answer = {{"token", "tok-1"}, {"pad", std::string(3000, 'p')}};
    RegistryOptions o;
    o.max_token_bytes = 1024;
    auto e = client(o)->get_manifest(b.s.registry(), "lib/app", "v1", in(2s));
    CHECK(e.status == Status::error);
    CHECK(contains(e.error, "1024"));
  }

  TEST_CASE("registry: Basic challenge") {
    MockServer s;
    const std::string want = "Basic " + base64_encode("bob:hunter2");
    s.srv().Get("/v2/lib/app/manifests/v1",
                [&](const httplib::Request &req, httplib::Response &res) {
                  if (req.get_header_value("Authorization") != want) {
                    res.status = 401;
                    res.set_header("WWW-Authenticate", "basic Realm=\"registry\"");
                    return;
                  }
                  res.set_content(kManifest, kDockerManifest);
                });
    RegistryOptions o;
    o.hosts[s.registry()] = RegistryHostConfig{false, "bob", "hunter2"};
    auto ok = client(o)->get_manifest(s.registry(), "lib/app", "v1", in(2s));
    REQUIRE_MESSAGE(ok.status == Status::ok, ok.error);
    CHECK(ok.media_type == kDockerManifest);

    auto anon = client()->get_manifest(s.registry(), "lib/app", "v1", in(2s));
    CHECK(anon.status == Status::error);
    CHECK(contains(anon.error, "unauthorized"));

    o.hosts[s.registry()].password = "wrong";
    auto wrong = client(o)->get_manifest(s.registry(), "lib/app", "v1", in(2s));
    CHECK(wrong.status == Status::error);
    CHECK(!contains(wrong.error, "wrong"));
  }

  TEST_CASE("registry: a redirect to another origin carries no Authorization") {
    BearerRegistry b;
    b.expected_scope = "repository:lib/app:pull";
    MockServer storage;
    const std::string blob = "the blob bytes";
    const std::string d = digest_of(blob);
    b.s.srv().Get("/v2/lib/app/blobs/(.+)",
                  [&](const httplib::Request &req, httplib::Response &res) {
                    if (req.get_header_value("Authorization") != "Bearer tok-1") {
                      res.status = 401;
                      res.set_header("WWW-Authenticate", b.challenge);
                      return;
                    }
                    // First to a same-origin relative path, which keeps the token, then to the
                    // storage.
                    res.set_redirect("/relay/" + std::string(req.matches[1]), 307);
                  });
    b.s.srv().Get("/relay/(.+)", [&](const httplib::Request &req, httplib::Response &res) {
      if (req.get_header_value("Authorization") != "Bearer tok-1") {
        res.status = 401;
        return;
      }
      res.set_redirect(storage.url("/bucket/" + std::string(req.matches[1]) + "?sig=abc%2F"), 302);
    });
    storage.srv().Get("/bucket/(.+)", [&](const httplib::Request &, httplib::Response &res) {
      res.set_content(blob, "application/octet-stream");
    });
    auto r = client();
    auto got = r->get_blob(b.s.registry(), "lib/app", d, 1000, in(2s));
    REQUIRE_MESSAGE(got.status == Status::ok, got.error);
    CHECK(got.body == blob);
    auto at_storage = storage.seen();
    REQUIRE(at_storage.size() == 1);
    CHECK(!at_storage[0].has_auth());
    CHECK(at_storage[0].params.count("sig") == 1);
    CHECK(b.s.hits("/relay/" + d) == 1);
  }

  TEST_CASE("registry: redirect loops and redirect limits") {
    MockServer s;
    s.srv().Get("/v2/lib/app/blobs/(.+)", [](const httplib::Request &req, httplib::Response &res) {
      res.set_redirect(req.path, 302);
    });
    s.srv().Get("/v2/lib/app/manifests/(.+)", [](const httplib::Request &, httplib::Response &res) {
      res.status = 301; // no Location
    });
    RegistryOptions o;
    o.max_redirects = 2;
    auto r = client(o);
    auto loop = r->get_blob(s.registry(), "lib/app", digest_of("x"), 100, in(2s));
    CHECK(loop.status == Status::error);
    CHECK(contains(loop.error, "redirect"));
    CHECK(r->requests() == 3); // the request and two redirects, then it gives up
    auto noloc = r->get_manifest(s.registry(), "lib/app", "v1", in(2s));
    CHECK(noloc.status == Status::error);
  }

  TEST_CASE("registry: the deadline bounds every call") {
    MockServer s;
    s.srv().Get("/v2/lib/app/manifests/slow",
                [&](const httplib::Request &, httplib::Response &res) {
                  s.nap(3000ms);
                  res.set_content(kManifest, kOciManifest);
                });
    // Headers at once, then the body one byte at a time.
    s.srv().Get("/v2/lib/app/blobs/(.+)", [&](const httplib::Request &, httplib::Response &res) {
      res.set_chunked_content_provider("application/octet-stream",
                                       [&](std::size_t, httplib::DataSink &sink) {
                                         s.nap(50ms);
                                         return !s.stopping() && sink.write("z", 1);
                                       });
    });
    auto r = client();

    auto t0 = Clock::now();
    auto slow = r->get_manifest(s.registry(), "lib/app", "slow", in(300ms));
    auto took = Clock::now() - t0;
    CHECK(slow.status == Status::error);
    CHECK(contains(slow.error, "timeout"));
    CHECK(took < 800ms);

    t0 = Clock::now();
    auto drip = r->get_blob(s.registry(), "lib/app", digest_of("x"), 1u << 20, in(300ms));
    took = Clock::now() - t0;
    CHECK(drip.status == Status::error);
    CHECK(contains(drip.error, "timeout"));
    CHECK(took < 800ms);

    // Status line and headers trickling in: no single read times out.
    TrickleServer trickle("HTTP/1.1 200 OK\r\nX-Pad: ");
    t0 = Clock::now();
    auto headers = r->get_manifest(trickle.registry(), "lib/app", "v1", in(400ms));
    took = Clock::now() - t0;
    CHECK(headers.status == Status::error);
    CHECK(contains(headers.error, "timeout"));
    CHECK(took < 900ms);

    // A TLS server that trickles its handshake (a record header announcing 16 KiB, then one byte
    // every 50 ms): cpp-httplib's handshake waits have no total bound of their own.
    if (auto ip = non_loopback_ipv4(); !ip.empty()) {
      TrickleServer tls(std::string("\x16\x03\x03\x40\x00", 5), ip);
      t0 = Clock::now();
      auto hs = r->get_manifest(tls.registry(), "lib/app", "v1", in(400ms));
      took = Clock::now() - t0;
      CHECK(hs.status == Status::error);
      CHECK(contains(hs.error, "timeout"));
      CHECK(took < 900ms);
    } else {
      MESSAGE("no non-loopback IPv4 address: skipping the TLS handshake trickle");
    }

    // No time left: nothing is sent.
    auto before = r->requests();
    auto late = r->get_manifest(s.registry(), "lib/app", "v1", Clock::now() - 1ms);
    CHECK(late.status == Status::error);
    CHECK(contains(late.error, "timeout"));
    CHECK(r->requests() == before);
  }

  TEST_CASE("registry: IPv6 loopback registry") {
    {
      int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
      sockaddr_in6 a{};
      a.sin6_family = AF_INET6;
      a.sin6_addr = in6addr_loopback;
      bool can = fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0;
      if (fd >= 0) ::close(fd);
      if (!can) {
        MESSAGE("no IPv6 loopback: skipping");
        return;
      }
    }
    MockServer s(std::make_unique<httplib::Server>(), "::1");
    s.srv().Get("/v2/lib/app/manifests/v1", [](const httplib::Request &, httplib::Response &res) {
      res.set_content(kManifest, kOciManifest);
    });
    REQUIRE(is_loopback_registry(s.registry()));
    auto r = client()->get_manifest(s.registry(), "lib/app", "v1", in(2s));
    REQUIRE_MESSAGE(r.status == Status::ok, r.error);
    auto seen = s.seen();
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].headers.find("Host")->second == s.registry());
  }

  TEST_CASE("registry: hostile names and references are rejected without a request") {
    MockServer s;
    auto r = client();
    const std::string reg = s.registry();
    const std::string d = digest_of("x");
    for (std::string repo : {"", "Lib/app", "../app", "lib/../app", "lib//app", "/lib", "lib/",
                             "lib/app?x=1", "lib/app#x", "lib app", "lib%2fapp", "lib/app\r\nX: y",
                             "lib/.app", "lib/app.", "lib/a___b", "lib\\app"}) {
      CHECK_MESSAGE(r->get_manifest(reg, repo, "v1", in(1s)).status == Status::error, repo);
      CHECK_MESSAGE(r->get_blob(reg, repo, d, 10, in(1s)).status == Status::error, repo);
      CHECK_MESSAGE(r->put_blob(reg, repo, "x", in(1s)).status == Status::error, repo);
    }
    for (std::string ref :
         {std::string(""), std::string(".."), std::string("."), std::string("-v1"),
          std::string(".v1"), std::string("v1/x"), std::string("v1?x"), std::string("v1 x"),
          std::string("v1\n"), std::string(129, 'a'), std::string("sha256:abc"),
          "sha256:" + std::string(64, 'A'), "sha512:" + std::string(64, 'a'),
          "sha256:" + std::string(63, 'a') + "g", std::string("v1%00")}) {
      CHECK_MESSAGE(r->get_manifest(reg, "lib/app", ref, in(1s)).status == Status::error, ref);
      CHECK_MESSAGE(r->get_blob(reg, "lib/app", ref, 10, in(1s)).status == Status::error, ref);
      CHECK_MESSAGE(r->get_referrers(reg, "lib/app", ref, "", in(1s)).status == Status::error, ref);
      CHECK_MESSAGE(r->put_manifest(reg, "lib/app", ref, kOciManifest, kManifest, in(1s)).status ==
                        Status::error,
                    ref);
    }
    for (std::string bad_reg :
         {std::string(""), reg + "/x", std::string("127.0.0.1:0"), std::string("127.0.0.1:99999"),
          std::string("127.0.0.1:"), std::string("a b"), std::string("user@127.0.0.1:1"),
          std::string("[::1"), std::string("-evil.com"), std::string("evil_.com"),
          std::string("host:port"), std::string("evil.com\r\nX: y"), std::string("evil.com?x"),
          std::string("http://evil.com")})
      CHECK_MESSAGE(r->get_manifest(bad_reg, "lib/app", "v1", in(1s)).status == Status::error,
                    bad_reg);
    // Pushes with a bad media type, or a digest reference that is not the manifest's.
    CHECK(r->put_manifest(reg, "lib/app", "v1", "text/plain\r\nX: y", kManifest, in(1s)).status ==
          Status::error);
    CHECK(r->put_manifest(reg, "lib/app", "v1", "", kManifest, in(1s)).status == Status::error);
    CHECK(r->put_manifest(reg, "lib/app", digest_of("other"), kOciManifest, kManifest, in(1s))
              .status == Status::error);
    CHECK(r->requests() == 0);
    CHECK(s.seen().empty());
    // A valid 128-character tag is fine (and reaches the server).
    CHECK(r->get_manifest(reg, "lib/app", std::string(128, 'a'), in(1s)).status ==
          Status::not_found);
    CHECK(r->requests() == 1);
  }

  TEST_CASE("registry: https is required for registries that are neither loopback nor insecure") {
    RegistryOptions o;
    o.hosts["registry.example.invalid"] = RegistryHostConfig{false, "", ""};
    auto r = client(o);
    auto e = r->get_manifest("registry.example.invalid", "lib/app", "v1", in(2s));
    CHECK(e.status == Status::error);
    CHECK(contains(e.error, "https://registry.example.invalid:443"));
    CHECK(!contains(e.error, "http://"));

    const std::string ip = non_loopback_ipv4();
    if (ip.empty()) {
      MESSAGE("no non-loopback IPv4 address: skipping the plain-http listener checks");
      return;
    }
    // A plain-HTTP registry on a non-loopback address: the client speaks TLS to it, so no request
    // ever reaches a handler; marked insecure, it is used over plain HTTP.
    MockServer s(std::make_unique<httplib::Server>(), ip);
    std::atomic<int> handled{0};
    s.srv().Get("/v2/lib/app/manifests/v1", [&](const httplib::Request &, httplib::Response &res) {
      handled++;
      res.set_content(kManifest, kOciManifest);
    });
    auto tls = client()->get_manifest(s.registry(), "lib/app", "v1", in(2s));
    CHECK(tls.status == Status::error);
    CHECK(contains(tls.error, "https://"));
    CHECK(handled == 0);

    RegistryOptions insecure;
    insecure.hosts[s.registry()] = RegistryHostConfig{true, "", ""};
    auto plain = client(insecure)->get_manifest(s.registry(), "lib/app", "v1", in(2s));
    CHECK_MESSAGE(plain.status == Status::ok, plain.error);
    CHECK(handled == 1);
  }

  TEST_CASE("registry: TLS registry with certificate verification, realms and redirects") {
    const std::string ip = non_loopback_ipv4();
    if (ip.empty()) {
      MESSAGE("no non-loopback IPv4 address: skipping the TLS registry test");
      return;
    }
    TestCert cert(ip);
    const std::string ca = write_temp("portcullis-registry-ca.pem", cert.pem);
    auto srv = std::make_unique<httplib::SSLServer>(cert.cert, cert.key);
    REQUIRE(srv->is_valid());
    MockServer s(std::move(srv), ip);
    MockServer plain; // a plain-http server on loopback
    std::string realm;
    plain.srv().Get("/token", [](const httplib::Request &, httplib::Response &res) {
      res.set_content(R"({"token":"tok-1"})", "application/json");
    });
    plain.srv().Get("/blob", [](const httplib::Request &, httplib::Response &res) {
      res.set_content("x", "application/octet-stream");
    });
    s.srv().Get("/v2/lib/app/manifests/v1",
                [&](const httplib::Request &req, httplib::Response &res) {
                  if (!realm.empty() && req.get_header_value("Authorization") != "Bearer tok-1") {
                    res.status = 401;
                    res.set_header("WWW-Authenticate", "Bearer realm=\"" + realm + "\"");
                    return;
                  }
                  res.set_content(kManifest, kOciManifest);
                });
    s.srv().Get("/v2/lib/app/blobs/(.+)", [&](const httplib::Request &, httplib::Response &res) {
      res.set_redirect(plain.url("/blob"), 302);
    });

    RegistryOptions o;
    o.ca_file = ca;
    auto ok = client(o)->get_manifest(s.registry(), "lib/app", "v1", in(3s));
    CHECK_MESSAGE(ok.status == Status::ok, ok.error);

    // The system store does not know this certificate.
    auto untrusted = client()->get_manifest(s.registry(), "lib/app", "v1", in(3s));
    CHECK(untrusted.status == Status::error);
    CHECK(contains(untrusted.error, "https://"));

    // An https registry may not send us to a plain-http token realm or blob location.
    realm = plain.url("/token");
    auto r = client(o);
    auto bad_realm = r->get_manifest(s.registry(), "lib/app", "v1", in(3s));
    CHECK(bad_realm.status == Status::error);
    CHECK(contains(bad_realm.error, "plain-http"));
    auto bad_redirect = r->get_blob(s.registry(), "lib/app", digest_of("x"), 100, in(3s));
    CHECK(bad_redirect.status == Status::error);
    CHECK(contains(bad_redirect.error, "http"));
    CHECK(plain.seen().empty());

    // An https realm on the registry itself is fine.
    s.srv().Get("/token", [](const httplib::Request &req, httplib::Response &res) {
      if (req.get_param_value("scope") != "repository:lib/app:pull") {
        res.status = 400;
        return;
      }
      res.set_content(R"({"token":"tok-1"})", "application/json");
    });
    realm = s.url("/token", "https");
    auto good_realm = client(o)->get_manifest(s.registry(), "lib/app", "v1", in(3s));
    CHECK_MESSAGE(good_realm.status == Status::ok, good_realm.error);
    fs::remove(ca);
  }

  TEST_CASE("registry: put_blob and put_manifest") {
    MockServer s;
    std::mutex mu;
    std::map<std::string, std::string> blobs;
    std::string manifest_body, manifest_type, upload_query_state;
    bool absolute_location = false;
    s.srv().Get("/v2/lib/app/blobs/(.+)", [&](const httplib::Request &req, httplib::Response &res) {
      std::lock_guard lock(mu);
      if (req.method == "HEAD" && blobs.count(req.matches[1])) {
        res.status = 200;
        return;
      }
      res.status = 404;
    });
    s.srv().Post("/v2/lib/app/blobs/uploads/",
                 [&](const httplib::Request &, httplib::Response &res) {
                   res.status = 202;
                   // cpp-httplib 0.11.4 percent-decodes header values, so no %XX in this Location.
                   std::string loc = "/v2/lib/app/blobs/uploads/u-1?_state=ab_c-~.9";
                   res.set_header("Location", absolute_location ? s.url(loc) : loc);
                 });
    s.srv().Put("/v2/lib/app/blobs/uploads/u-1",
                [&](const httplib::Request &req, httplib::Response &res) {
                  std::lock_guard lock(mu);
                  upload_query_state = req.get_param_value("_state");
                  if (req.get_header_value("Content-Type") != "application/octet-stream" ||
                      digest_of(req.body) != req.get_param_value("digest")) {
                    res.status = 400;
                    return;
                  }
                  blobs[req.get_param_value("digest")] = req.body;
                  res.status = 201;
                  res.set_header("Location", "/v2/lib/app/blobs/" + req.get_param_value("digest"));
                });
    s.srv().Put("/v2/lib/app/manifests/(.+)",
                [&](const httplib::Request &req, httplib::Response &res) {
                  std::lock_guard lock(mu);
                  manifest_body = req.body;
                  manifest_type = req.get_header_value("Content-Type");
                  res.status = 201;
                  res.set_header("Docker-Content-Digest", digest_of(req.body));
                  res.set_header("Location", "/v2/lib/app/manifests/" + digest_of(req.body));
                });
    auto r = client();
    const std::string bytes = "layer bytes\n";
    auto put = r->put_blob(s.registry(), "lib/app", bytes, in(2s));
    REQUIRE_MESSAGE(put.status == Status::ok, put.error);
    CHECK(put.digest == digest_of(bytes));
    CHECK(blobs[digest_of(bytes)] == bytes);
    CHECK(upload_query_state == "ab_c-~.9");
    CHECK(contains(put.location, "/v2/lib/app/blobs/" + digest_of(bytes)));
    CHECK(s.hits("/v2/lib/app/blobs/uploads/") == 1);

    // Already there: HEAD only.
    auto again = r->put_blob(s.registry(), "lib/app", bytes, in(2s));
    REQUIRE(again.status == Status::ok);
    CHECK(s.hits("/v2/lib/app/blobs/uploads/") == 1);

    // An absolute upload Location works too.
    absolute_location = true;
    auto other = r->put_blob(s.registry(), "lib/app", "other bytes", in(2s));
    REQUIRE_MESSAGE(other.status == Status::ok, other.error);
    CHECK(blobs.count(digest_of("other bytes")) == 1);

    auto m = r->put_manifest(s.registry(), "lib/app", "v1", kOciManifest, kManifest, in(2s));
    REQUIRE_MESSAGE(m.status == Status::ok, m.error);
    CHECK(m.digest == digest_of(kManifest));
    CHECK(manifest_body == kManifest);
    CHECK(manifest_type == kOciManifest);
    CHECK(contains(m.location, digest_of(kManifest)));
    auto by_digest = r->put_manifest(s.registry(), "lib/app", digest_of(kManifest), kOciIndex,
                                     kManifest, in(2s));
    CHECK_MESSAGE(by_digest.status == Status::ok, by_digest.error);
    CHECK(manifest_type == kOciIndex);

    // A registry that refuses: errors with the status.
    auto refused =
        r->put_manifest(s.registry(), "other/repo", "v1", kOciManifest, kManifest, in(2s));
    CHECK(refused.status == Status::error);
    CHECK(refused.http_status == 404);
  }

  TEST_CASE("registry: push uses the pull,push scope") {
    BearerRegistry b;
    b.expected_scope = "repository:lib/app:pull,push";
    b.s.srv().Put("/v2/lib/app/manifests/(.+)",
                  [&](const httplib::Request &req, httplib::Response &res) {
                    if (req.get_header_value("Authorization") != "Bearer tok-1") {
                      res.status = 401;
                      res.set_header("WWW-Authenticate", b.challenge);
                      return;
                    }
                    res.status = 201;
                  });
    auto m =
        client()->put_manifest(b.s.registry(), "lib/app", "v1", kOciManifest, kManifest, in(2s));
    CHECK_MESSAGE(m.status == Status::ok, m.error);
    CHECK(b.token_rejects == 0);
    CHECK(b.s.hits("/v2/lib/app/manifests/v1") == 2);
  }

  TEST_CASE("registry: referrers") {
    MockServer s;
    const std::string index =
        R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]})";
    std::string type = kOciIndex;
    std::string body = index;
    s.srv().Get("/v2/lib/app/referrers/(.+)",
                [&](const httplib::Request &, httplib::Response &res) {
                  res.set_content(body, type.c_str());
                });
    auto r = client();
    const std::string d = digest_of("subject");
    const std::string art = "application/vnd.dev.cosign.artifact.sig.v1+json";
    auto ok = r->get_referrers(s.registry(), "lib/app", d, art, in(2s));
    REQUIRE_MESSAGE(ok.status == Status::ok, ok.error);
    CHECK(ok.body == index);
    CHECK(ok.media_type == kOciIndex);
    auto seen = s.seen();
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].path == "/v2/lib/app/referrers/" + d);
    CHECK(seen[0].params.count("artifactType") == 1);
    CHECK(seen[0].params.find("artifactType")->second == art);

    type = "application/json";
    CHECK(r->get_referrers(s.registry(), "lib/app", d, art, in(2s)).status == Status::error);
    type = kOciIndex;
    body = "[]";
    CHECK(r->get_referrers(s.registry(), "lib/app", d, art, in(2s)).status == Status::error);
    body = "not json";
    CHECK(r->get_referrers(s.registry(), "lib/app", d, "", in(2s)).status == Status::error);
    auto nf = r->get_referrers(s.registry(), "other/app", d, art, in(2s));
    CHECK(nf.status == Status::not_found);
  }

  TEST_CASE("registry: concurrent lookups share one client") {
    BearerRegistry b;
    auto r = client();
    std::atomic<int> ok{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 6; ++i)
      threads.emplace_back([&] {
        for (int j = 0; j < 3; ++j)
          ok += r->get_manifest(b.s.registry(), "lib/app", "v1", in(3s)).status == Status::ok;
      });
    for (auto &t : threads)
      t.join();
    CHECK(ok == 18);
    CHECK(b.token_rejects == 0);
  }

  TEST_CASE("registry: against the real docker-registry") {
    const char *bin = "/usr/bin/docker-registry";
    if (::access(bin, X_OK) != 0) {
      MESSAGE("docker-registry is not installed: skipping");
      return;
    }
    // A free port (bound and released; the registry binds it right after).
    int port = 0;
    {
      int fd = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      REQUIRE(::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0);
      socklen_t len = sizeof a;
      ::getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len);
      port = ntohs(a.sin_port);
      ::close(fd);
    }
    const std::string reg = "127.0.0.1:" + std::to_string(port);
    const std::string config = write_temp("portcullis-registry.yml",
                                          "version: 0.1\nlog: {level: error}\nstorage: {inmemory: "
                                          "{}}\nhttp: {addr: " +
                                              reg + "}\n");
    std::vector<std::string> args = {bin, "serve", config};
    std::vector<char *> argv;
    for (auto &a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid = 0;
    int rc = posix_spawn(&pid, bin, &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    REQUIRE(rc == 0);
    struct Reaper {
      pid_t pid;
      std::string config;
      ~Reaper() {
        ::kill(pid, SIGTERM);
        int st = 0;
        ::waitpid(pid, &st, 0);
        std::error_code ec;
        fs::remove(config, ec);
      }
    } reaper{pid, config};

    bool up = false;
    for (int i = 0; i < 100 && !up; ++i) {
      httplib::Client probe("127.0.0.1", port);
      probe.set_connection_timeout(0, 100000);
      auto res = probe.Get("/v2/");
      up = res && res->status == 200;
      if (!up) std::this_thread::sleep_for(50ms);
    }
    REQUIRE_MESSAGE(up, "docker-registry did not come up");

    auto r = client();
    const std::string config_blob = "{}";
    const std::string layer = "pretend this is a tarball";
    auto c = r->put_blob(reg, "portcullis/test", config_blob, in(5s));
    REQUIRE_MESSAGE(c.status == Status::ok, c.error);
    auto l = r->put_blob(reg, "portcullis/test", layer, in(5s));
    REQUIRE_MESSAGE(l.status == Status::ok, l.error);
    auto again = r->put_blob(reg, "portcullis/test", layer, in(5s)); // HEAD says it exists
    REQUIRE_MESSAGE(again.status == Status::ok, again.error);

    json m = {{"schemaVersion", 2},
              {"mediaType", kOciManifest},
              {"config",
               {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                {"digest", c.digest},
                {"size", config_blob.size()}}},
              {"layers",
               {{{"mediaType", "application/vnd.oci.image.layer.v1.tar"},
                 {"digest", l.digest},
                 {"size", layer.size()}}}}};
    const std::string manifest = m.dump();
    auto pm = r->put_manifest(reg, "portcullis/test", "v1", kOciManifest, manifest, in(5s));
    REQUIRE_MESSAGE(pm.status == Status::ok, pm.error);
    CHECK(pm.digest == digest_of(manifest));

    auto by_tag = r->get_manifest(reg, "portcullis/test", "v1", in(5s));
    REQUIRE_MESSAGE(by_tag.status == Status::ok, by_tag.error);
    CHECK(by_tag.body == manifest);
    CHECK(by_tag.media_type == kOciManifest);
    CHECK(by_tag.digest == pm.digest);
    auto by_digest = r->get_manifest(reg, "portcullis/test", pm.digest, in(5s));
    REQUIRE_MESSAGE(by_digest.status == Status::ok, by_digest.error);
    CHECK(by_digest.body == manifest);

    auto blob = r->get_blob(reg, "portcullis/test", l.digest, 1000, in(5s));
    REQUIRE_MESSAGE(blob.status == Status::ok, blob.error);
    CHECK(blob.body == layer);

    CHECK(r->get_manifest(reg, "portcullis/test", "nope", in(5s)).status == Status::not_found);
    CHECK(r->get_blob(reg, "portcullis/test", digest_of("nope"), 1000, in(5s)).status ==
          Status::not_found);
    auto refs = r->get_referrers(reg, "portcullis/test", pm.digest, "", in(5s));
    CHECK_MESSAGE(refs.status == Status::not_found, refs.error);
  }

} // TEST_SUITE

// ---- hostile servers (security review) ---------------------------------------------------------
namespace {
// Accepts connections on 127.0.0.1; sends `head`, then `filler` repeatedly up to `cap` bytes in
// total (as fast as the socket takes it), then stalls until stopped.
class RawServer {
public:
  RawServer(std::string head, std::string filler, std::size_t cap)
      : head_(std::move(head)), filler_(std::move(filler)), cap_(cap) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr *>(&a), &len);
    port_ = ntohs(a.sin_port);
    REQUIRE(::listen(fd_, 8) == 0);
    thread_ = std::thread([this] { run(); });
  }
  ~RawServer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  std::string registry() const { return "127.0.0.1:" + std::to_string(port_); }

private:
  void run() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      char buf[4096];
      ::recv(c, buf, sizeof buf, 0); // the request (small)
      std::size_t sent = 0;
      bool ok = ::send(c, head_.data(), head_.size(), MSG_NOSIGNAL) == (ssize_t)head_.size();
      while (ok && !stop_ && !filler_.empty() && sent < cap_) {
        auto n = ::send(c, filler_.data(), filler_.size(), MSG_NOSIGNAL);
        if (n <= 0) break;
        sent += (std::size_t)n;
      }
      while (!stop_) {
        char b;
        if (::recv(c, &b, 1, MSG_DONTWAIT) == 0) break;
        std::this_thread::sleep_for(5ms);
      }
      ::close(c);
    }
  }
  std::string head_, filler_;
  std::size_t cap_;
  int fd_ = -1, port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
};
long max_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024;
}
} // namespace

TEST_SUITE("registry") {
  TEST_CASE("registry: header flood stays within a memory bound") {
    // 200 OK, then endless header lines: cpp-httplib caps one line (8 KiB) but not their number.
    RawServer flood("HTTP/1.1 200 OK\r\n", "X-Pad: " + std::string(90, 'a') + "\r\n", 300u << 20);
    auto before = max_rss_mb();
    auto r = client();
    auto got = r->get_manifest(flood.registry(), "lib/app", "v1", in(3000ms));
    CHECK(got.status == Status::error);
    auto grew = max_rss_mb() - before;
    MESSAGE("peak RSS grew by " << grew << " MiB; error: " << got.error);
    CHECK(grew < 64);
  }

  TEST_CASE("registry: a huge chunk-size line stays within a memory bound") {
    RawServer flood("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n",
                    std::string(65536, '0'), 300u << 20);
    auto before = max_rss_mb();
    auto r = client();
    auto got = r->get_blob(flood.registry(), "lib/app", digest_of("x"), 1000, in(3000ms));
    CHECK(got.status == Status::error);
    auto grew = max_rss_mb() - before;
    MESSAGE("peak RSS grew by " << grew << " MiB; error: " << got.error);
    CHECK(grew < 64);
  }

  TEST_CASE("registry: a body cut short by the deadline is never ok") {
    // Full headers, no Content-Length, half a manifest, then silence until the deadline: the end
    // of the body is unknown, so this is never an answer.
    RawServer stall(std::string("HTTP/1.1 200 OK\r\nContent-Type: ") + kOciManifest +
                        "\r\nConnection: close\r\n\r\n" + kManifest.substr(0, 40),
                    "", 0);
    auto r = client();
    auto got = r->get_manifest(stall.registry(), "lib/app", "v1", in(300ms));
    MESSAGE("status " << (int)got.status << " body '" << got.body << "' error " << got.error);
    CHECK(got.status != Status::ok);
  }

  TEST_CASE("registry: configured credentials never go to a realm named by a redirect target") {
    MockServer reg, evil;
    std::string evil_saw_auth;
    reg.srv().Get("/v2/lib/app/blobs/(.+)",
                  [&](const httplib::Request &req, httplib::Response &res) {
                    res.set_redirect(evil.url("/cdn/" + std::string(req.matches[1])), 307);
                  });
    evil.srv().Get("/cdn/(.+)", [&](const httplib::Request &, httplib::Response &res) {
      res.status = 401;
      res.set_header("WWW-Authenticate", "Bearer realm=\"" + evil.url("/token") + "\"");
    });
    evil.srv().Get("/token", [&](const httplib::Request &req, httplib::Response &res) {
      evil_saw_auth = req.get_header_value("Authorization");
      res.set_content(R"({"token":"evil-token"})", "application/json");
    });
    RegistryOptions o;
    o.hosts[reg.registry()] = RegistryHostConfig{false, "alice", "s3cret"};
    auto r = client(o);
    auto got = r->get_blob(reg.registry(), "lib/app", digest_of("x"), 1000, in(2s));
    CHECK(got.status == Status::error);
    MESSAGE("realm of the redirect target received Authorization: '" << evil_saw_auth << "'");
    CHECK(evil_saw_auth.empty());
  }

  TEST_CASE("registry: put_blob of an existing blob larger than 64 KiB") {
    MockServer s;
    const std::string blob(100000, 'q');
    s.srv().Get("/v2/lib/app/blobs/(.+)", [&](const httplib::Request &, httplib::Response &res) {
      res.set_content(blob, "application/octet-stream"); // HEAD answers with Content-Length only
    });
    auto r = client();
    auto got = r->put_blob(s.registry(), "lib/app", blob, in(2s));
    MESSAGE("error: " << got.error);
    CHECK(got.status == Status::ok);
  }

  TEST_CASE("registry: gzip is not inflated (control)") {
    MockServer s;
    const std::string gz(
        "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00", 20);
    s.srv().Get("/v2/lib/app/blobs/(.+)", [&](const httplib::Request &, httplib::Response &res) {
      res.set_content(gz, "application/octet-stream");
      res.set_header("Content-Encoding", "gzip");
    });
    auto r = client();
    auto got = r->get_blob(s.registry(), "lib/app", digest_of(gz), 1000, in(2s));
    CHECK_MESSAGE(got.status == Status::ok, got.error);
    CHECK(got.body == gz);
  }
}

TEST_SUITE("registry") {
  TEST_CASE("registry: a long token realm path does not crash a 2 MiB-stack thread") {
    MockServer s;
    const std::string realm = s.url("/t/" + std::string(7900, 'a') + "?x=1");
    s.srv().Get("/v2/lib/app/manifests/v1", [&](const httplib::Request &, httplib::Response &res) {
      res.status = 401;
      res.set_header("WWW-Authenticate", "Bearer realm=\"" + realm + "\"");
    });
    const std::string reg = s.registry();
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      pthread_attr_t a;
      pthread_attr_init(&a);
      pthread_attr_setstacksize(&a, 2u << 20); // the default under `ulimit -s unlimited`
      pthread_t t;
      static std::string sreg;
      sreg = reg;
      pthread_create(
          &t, &a,
          [](void *) -> void * {
            auto r = make_http_registry({});
            auto got = r->get_manifest(sreg, "lib/app", "v1", Clock::now() + 2s);
            fprintf(stderr, "child: status %d error %s requests %lu\n", (int)got.status,
                    got.error.c_str(), r->requests());
            return nullptr;
          },
          nullptr);
      pthread_join(t, nullptr);
      ::_exit(0);
    }
    int st = 0;
    ::waitpid(pid, &st, 0);
    MESSAGE("child: exited=" << WIFEXITED(st) << " signaled=" << WIFSIGNALED(st)
                             << " sig=" << (WIFSIGNALED(st) ? WTERMSIG(st) : 0));
    CHECK(WIFEXITED(st));
  }
}

TEST_SUITE("registry") {
  TEST_CASE("registry: a long status line does not crash the process") {
    std::size_t len = 200000;
    RawServer hostile("HTTP/1.1 200 " + std::string(len, 'a') + "\r\n\r\n", "", 0);
    const std::string reg = hostile.registry();
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      std::thread t([&] { // a default (8 MiB) thread stack, like the plugin's lookup threads
        auto r = make_http_registry({});
        auto got = r->get_manifest(reg, "lib/app", "v1", Clock::now() + 3s);
        fprintf(stderr, "child: status %d error %s\n", (int)got.status, got.error.c_str());
      });
      t.join();
      ::_exit(0);
    }
    int st = 0;
    ::waitpid(pid, &st, 0);
    MESSAGE("child: exited=" << WIFEXITED(st) << " signaled=" << WIFSIGNALED(st)
                             << " sig=" << (WIFSIGNALED(st) ? WTERMSIG(st) : 0));
    CHECK(WIFEXITED(st));
  }
}
