// portcullis-bench: a bounded load generator for authz plugins and dockerd, over unix sockets.
//
// Several targets are measured in ONE run, interleaved in rounds (A,B,A,B,...) so that machine
// noise hits all of them alike; figures are reported per target and as ratios to the first one.
//
//   portcullis-bench --mode authz --target floor=/tmp/a.sock --target portcullis=/tmp/b.sock
//   portcullis-bench --mode http-get --path /v1.41/containers/json --target plain=/tmp/d.sock ...
//
// Mode authz POSTs /AuthZPlugin.AuthZReq with the body dockerd sends for a docker-CLI
// `docker create` over mutual TLS (user "alice"), exactly as dockerd encodes it.
// Mode http-get GETs a path, e.g. from a dockerd's API socket.
// It is a program that prints figures, not a test: it never decides pass/fail on speed.
// clang-format off
#include <utility> // before Asio: Boost 1.74 awaitable.hpp uses std::exchange without it
// clang-format on

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <latch>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using local = asio::local::stream_protocol;
using Clock = std::chrono::steady_clock;

namespace {

// What `docker create --name web busybox:latest sh -c 'echo hi'` (CLI 28.2.2, API 1.41) sends,
// captured byte for byte (Go's json.Encoder adds the trailing newline). Also in
// bench/container-create.json.
constexpr std::string_view kCreateBody =
    R"({"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":true,)"
    R"("AttachStderr":true,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,)"
    R"("Cmd":["sh","-c","echo hi"],"Image":"busybox:latest","Volumes":{},"WorkingDir":"",)"
    R"("Entrypoint":null,"OnBuild":null,"Labels":{},"HostConfig":{"Binds":null,)"
    R"("ContainerIDFile":"","LogConfig":{"Type":"","Config":{}},"NetworkMode":"default",)"
    R"("PortBindings":{},"RestartPolicy":{"Name":"no","MaximumRetryCount":0},"AutoRemove":false,)"
    R"("VolumeDriver":"","VolumesFrom":null,"ConsoleSize":[0,0],"CapAdd":null,"CapDrop":null,)"
    R"("CgroupnsMode":"","Dns":[],"DnsOptions":[],"DnsSearch":[],"ExtraHosts":null,)"
    R"("GroupAdd":null,"IpcMode":"","Cgroup":"","Links":null,"OomScoreAdj":0,"PidMode":"",)"
    R"("Privileged":false,"PublishAllPorts":false,"ReadonlyRootfs":false,"SecurityOpt":null,)"
    R"("UTSMode":"","UsernsMode":"","ShmSize":0,"Isolation":"","CpuShares":0,"Memory":0,)"
    R"("NanoCpus":0,"CgroupParent":"","BlkioWeight":0,"BlkioWeightDevice":[],)"
    R"("BlkioDeviceReadBps":[],"BlkioDeviceWriteBps":[],"BlkioDeviceReadIOps":[],)"
    R"("BlkioDeviceWriteIOps":[],"CpuPeriod":0,"CpuQuota":0,"CpuRealtimePeriod":0,)"
    R"("CpuRealtimeRuntime":0,"CpusetCpus":"","CpusetMems":"","Devices":[],)"
    R"("DeviceCgroupRules":null,"DeviceRequests":null,"MemoryReservation":0,"MemorySwap":0,)"
    R"("MemorySwappiness":-1,"OomKillDisable":false,"PidsLimit":0,"Ulimits":[],"CpuCount":0,)"
    R"("CpuPercent":0,"IOMaximumIOps":0,"IOMaximumBandwidth":0,"MaskedPaths":null,)"
    R"("ReadonlyPaths":null},"NetworkingConfig":{"EndpointsConfig":{"default":{)"
    R"("IPAMConfig":null,"Links":null,"Aliases":null,"MacAddress":"","DriverOpts":null,)"
    R"("GwPriority":0,"NetworkID":"","EndpointID":"","Gateway":"","IPAddress":"",)"
    R"("IPPrefixLen":0,"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,)"
    R"("DNSNames":null}}}})"
    "\n";

constexpr double kMaxSeconds = 600;              // hard bound on any duration option
constexpr std::uint64_t kMaxResponse = 64 << 20; // responses larger than this are errors

struct Options {
  std::string mode = "authz";
  std::vector<std::pair<std::string, std::string>> targets; // name, socket path
  int connections = 4;
  double duration = 5;        // seconds of measurement per target (split over the rounds)
  std::uint64_t requests = 0; // if > 0: requests per target instead of a duration
  int rounds = 5;
  double warmup = 0.5; // seconds per target before the first round, not recorded
  std::string path = "/v1.41/containers/json";
  std::string user = "alice"; // "" = the unix-socket caller (no User key)
  std::string uri = "/v1.41/containers/create?name=web";
  std::string api_method = "POST"; // GET/HEAD/DELETE: dockerd sends no RequestBody
  bool response_phase = false;     // --phase res: /AuthZPlugin.AuthZRes with a JSON response
  std::string body_file;           // the docker API body to embed; default kCreateBody
  std::string peer_cert;           // PEM file sent as RequestPeerCertificates[0]
  bool show_reply = true;
};

struct Stats {
  std::vector<std::uint32_t> lat_us; // one entry per successful request
  std::uint64_t errors = 0;
  std::uint64_t allowed = 0;
  std::uint64_t denied = 0;
  std::map<unsigned, std::uint64_t> status;
  double seconds = 0;

  void merge(const Stats &o) {
    lat_us.insert(lat_us.end(), o.lat_us.begin(), o.lat_us.end());
    errors += o.errors;
    allowed += o.allowed;
    denied += o.denied;
    for (const auto &[k, v] : o.status)
      status[k] += v;
  }
};

std::string base64(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char *>(out.data()),
                                reinterpret_cast<const unsigned char *>(in.data()),
                                static_cast<int>(in.size()));
  out.resize(n < 0 ? 0 : static_cast<std::size_t>(n));
  return out;
}

std::optional<std::string> read_file(const std::string &p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) return std::nullopt;
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The JSON dockerd 20.10+ posts to /AuthZPlugin.AuthZReq: Go struct field order, map keys
// sorted, compact, trailing newline.
std::string authz_body(const Options &o, std::string_view api_body, const std::string &pem) {
  nlohmann::ordered_json j;
  if (!o.user.empty()) {
    j["User"] = o.user;
    j["UserAuthNMethod"] = "TLS";
  }
  j["RequestMethod"] = o.api_method;
  j["RequestUri"] = o.uri;
  const bool with_body = o.api_method == "POST" || o.api_method == "PUT";
  if (with_body) j["RequestBody"] = base64(api_body);
  nlohmann::ordered_json h;
  if (with_body) {
    h["Content-Length"] = std::to_string(api_body.size());
    h["Content-Type"] = "application/json";
  }
  h["User-Agent"] = "Docker-Client/28.2.2 (linux)";
  j["RequestHeaders"] = h;
  if (o.response_phase) {
    // What dockerd 20.10 adds for a small JSON answer (here: an empty container list).
    j["ResponseStatusCode"] = 200;
    j["ResponseBody"] = base64("[]\n");
    nlohmann::ordered_json rh;
    rh["Api-Version"] = "1.41";
    rh["Content-Type"] = "application/json";
    rh["Docker-Experimental"] = "false";
    rh["Ostype"] = "linux";
    rh["Server"] = "Docker/20.10.24+dfsg1 (linux)";
    j["ResponseHeaders"] = rh;
  }
  if (!o.user.empty() && !pem.empty())
    j["RequestPeerCertificates"] = nlohmann::json::array({base64(pem)});
  return j.dump() + "\n";
}

http::request<http::string_body> make_request(const Options &o, const std::string &body) {
  http::request<http::string_body> req;
  req.version(11);
  req.keep_alive(true);
  if (o.mode == "authz") {
    req.method(http::verb::post);
    req.target(o.response_phase ? "/AuthZPlugin.AuthZRes" : "/AuthZPlugin.AuthZReq");
    req.set(http::field::host, "plugin.moby.localhost");
    req.set(http::field::user_agent, "Go-http-client/1.1");
    req.set(http::field::accept, "application/vnd.docker.plugins.v1.2+json");
    req.set(http::field::accept_encoding, "gzip");
    req.body() = body;
  } else {
    req.method(http::verb::get);
    req.target(o.path);
    req.set(http::field::host, "api.moby.localhost");
    req.set(http::field::user_agent, "Docker-Client/28.2.2 (linux)");
  }
  req.prepare_payload();
  return req;
}

// One keep-alive connection to one target, used by one thread.
class Conn {
public:
  explicit Conn(std::string path) : path_(std::move(path)) {}

  bool ensure_open() {
    if (sock_.is_open()) return true;
    beast::error_code ec;
    sock_.connect(local::endpoint(path_), ec);
    if (ec) {
      sock_.close(ec);
      return false;
    }
    buf_.clear();
    return true;
  }

  // Sends req, reads the response into res. Returns false on a transport error (then closes).
  bool roundtrip(const http::request<http::string_body> &req,
                 http::response<http::string_body> &res) {
    beast::error_code ec;
    http::write(sock_, req, ec);
    if (!ec) {
      http::response_parser<http::string_body> p;
      p.body_limit(kMaxResponse);
      http::read(sock_, buf_, p, ec);
      if (!ec) res = p.release();
    }
    const bool ok = !ec;
    if (!ok || !res.keep_alive()) {
      beast::error_code ignored;
      sock_.close(ignored);
    }
    return ok;
  }

private:
  std::string path_;
  asio::io_context ioc_;
  local::socket sock_{ioc_};
  beast::flat_buffer buf_;
};

// Classifies a response; returns false when it counts as an error.
bool account(const Options &o, const http::response<http::string_body> &res, Stats &st) {
  st.status[res.result_int()]++;
  if (o.mode != "authz") return res.result_int() >= 200 && res.result_int() < 300;
  if (res.result() != http::status::ok) return false;
  auto j = nlohmann::json::parse(res.body(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("Allow") || !j["Allow"].is_boolean()) return false;
  (j["Allow"].get<bool>() ? st.allowed : st.denied)++;
  return true;
}

// Runs one slice: `conns` threads hammer one target until the deadline or their quota.
Stats run_slice(const Options &o, std::vector<std::unique_ptr<Conn>> &conns,
                const http::request<http::string_body> &req, double seconds,
                std::uint64_t quota_per_conn, bool record) {
  const auto n = conns.size();
  std::vector<Stats> per(n);
  std::latch start(static_cast<std::ptrdiff_t>(n + 1));
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      Conn &c = *conns[i];
      Stats &st = per[i];
      c.ensure_open();
      start.arrive_and_wait();
      const auto deadline =
          Clock::now() + std::chrono::duration_cast<Clock::duration>(
                             std::chrono::duration<double>(quota_per_conn ? kMaxSeconds : seconds));
      http::response<http::string_body> res;
      for (std::uint64_t k = 0; quota_per_conn == 0 || k < quota_per_conn; ++k) {
        const auto t0 = Clock::now();
        if (t0 >= deadline) break;
        if (!c.ensure_open()) {
          st.errors++;
          std::this_thread::sleep_for(std::chrono::milliseconds(2));
          continue;
        }
        const bool ok = c.roundtrip(req, res) && account(o, res, st);
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0);
        if (!ok)
          st.errors++;
        else if (record)
          st.lat_us.push_back(
              static_cast<std::uint32_t>(std::min<long long>(us.count(), UINT32_MAX)));
      }
    });
  }
  start.arrive_and_wait();
  const auto t0 = Clock::now();
  for (auto &t : threads)
    t.join();
  Stats total;
  for (const auto &s : per)
    total.merge(s);
  total.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return total;
}

double pct(const std::vector<std::uint32_t> &sorted, double p) {
  if (sorted.empty()) return 0;
  auto rank = static_cast<std::size_t>(p / 100.0 * static_cast<double>(sorted.size()));
  return sorted[std::min(rank, sorted.size() - 1)];
}

int usage() {
  std::fprintf(stderr,
               "usage: portcullis-bench --target NAME=SOCKET [--target NAME=SOCKET ...]\n"
               "  [--mode authz|http-get]   authz (default): POST /AuthZPlugin.AuthZReq\n"
               "  [--connections N]         parallel keep-alive connections (default 4)\n"
               "  [--duration SEC]          measured seconds per target (default 5)\n"
               "  [--requests N]            or: requests per target\n"
               "  [--rounds R]              interleaving rounds (default 5)\n"
               "  [--warmup SEC]            unrecorded warm-up per target (default 0.5)\n"
               "  [--path P]                http-get path (default /v1.41/containers/json)\n"
               "  [--user NAME]             authz: TLS user (default alice; '' = unix caller)\n"
               "  [--uri U]                 authz: RequestUri (default "
               "/v1.41/containers/create?name=web)\n"
               "  [--phase req|res]         authz: AuthZReq (default) or AuthZRes\n"
               "  [--api-method M]          authz: RequestMethod (default POST; GET etc. "
               "carry no body)\n"
               "  [--body-file F]           authz: API body (default: docker create JSON)\n"
               "  [--peer-cert PEM]         authz: RequestPeerCertificates[0]\n"
               "  [--quiet]                 do not print each target's first reply\n");
  return 2;
}

bool parse_args(int argc, char **argv, Options &o) {
  auto num = [](const char *s, double lo, double hi, double &out) {
    char *end = nullptr;
    out = std::strtod(s, &end);
    return end && *end == '\0' && out >= lo && out <= hi;
  };
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    const bool has = i + 1 < argc;
    double d = 0;
    if (a == "--quiet") {
      o.show_reply = false;
    } else if (!has) {
      return false;
    } else if (a == "--target") {
      std::string t = argv[++i];
      auto eq = t.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == t.size()) return false;
      o.targets.emplace_back(t.substr(0, eq), t.substr(eq + 1));
    } else if (a == "--mode") {
      o.mode = argv[++i];
      if (o.mode != "authz" && o.mode != "http-get") return false;
    } else if (a == "--connections") {
      if (!num(argv[++i], 1, 1024, d)) return false;
      o.connections = static_cast<int>(d);
    } else if (a == "--duration") {
      if (!num(argv[++i], 0.01, kMaxSeconds, o.duration)) return false;
    } else if (a == "--requests") {
      if (!num(argv[++i], 1, 1e9, d)) return false;
      o.requests = static_cast<std::uint64_t>(d);
    } else if (a == "--rounds") {
      if (!num(argv[++i], 1, 1000, d)) return false;
      o.rounds = static_cast<int>(d);
    } else if (a == "--warmup") {
      if (!num(argv[++i], 0, kMaxSeconds, o.warmup)) return false;
    } else if (a == "--path") {
      o.path = argv[++i];
    } else if (a == "--user") {
      o.user = argv[++i];
    } else if (a == "--phase") {
      std::string_view ph = argv[++i];
      if (ph != "req" && ph != "res") return false;
      o.response_phase = ph == "res";
    } else if (a == "--api-method") {
      o.api_method = argv[++i];
      if (o.api_method.empty()) return false;
    } else if (a == "--uri") {
      o.uri = argv[++i];
    } else if (a == "--body-file") {
      o.body_file = argv[++i];
    } else if (a == "--peer-cert") {
      o.peer_cert = argv[++i];
    } else {
      return false;
    }
  }
  return !o.targets.empty();
}

} // namespace

int run(int argc, char **argv) {
  Options o;
  if (!parse_args(argc, argv, o)) return usage();

  std::string api_body(kCreateBody);
  std::string pem;
  if (!o.body_file.empty()) {
    auto b = read_file(o.body_file);
    if (!b) {
      std::fprintf(stderr, "portcullis-bench: cannot read %s\n", o.body_file.c_str());
      return 2;
    }
    api_body = *b;
  }
  if (!o.peer_cert.empty()) {
    auto b = read_file(o.peer_cert);
    if (!b) {
      std::fprintf(stderr, "portcullis-bench: cannot read %s\n", o.peer_cert.c_str());
      return 2;
    }
    pem = *b;
  }
  const std::string body = o.mode == "authz" ? authz_body(o, api_body, pem) : std::string();
  const auto req = make_request(o, body);

  const auto nt = o.targets.size();
  const auto nc = static_cast<std::size_t>(o.connections);
  std::vector<std::vector<std::unique_ptr<Conn>>> conns(nt);
  std::vector<Stats> stats(nt);
  for (std::size_t t = 0; t < nt; ++t)
    for (std::size_t c = 0; c < nc; ++c)
      conns[t].push_back(std::make_unique<Conn>(o.targets[t].second));

  std::printf("portcullis-bench: mode=%s connections=%d rounds=%d ", o.mode.c_str(), o.connections,
              o.rounds);
  if (o.requests)
    std::printf("requests/target=%llu", static_cast<unsigned long long>(o.requests));
  else
    std::printf("seconds/target=%.2f", o.duration);
  if (o.mode == "authz")
    std::printf(" request=%zu bytes (api body %zu bytes) user=%s %s %s\n", body.size(),
                o.api_method == "POST" || o.api_method == "PUT" ? api_body.size() : 0,
                o.user.empty() ? "(unix caller)" : o.user.c_str(), o.api_method.c_str(),
                o.uri.c_str());
  else
    std::printf(" path=%s\n", o.path.c_str());

  // One probe per target: show the reply so the reader knows what was measured.
  for (std::size_t t = 0; t < nt; ++t) {
    Conn probe(o.targets[t].second);
    http::response<http::string_body> res;
    if (!probe.ensure_open() || !probe.roundtrip(req, res)) {
      std::fprintf(stderr, "portcullis-bench: target %s (%s) does not answer\n",
                   o.targets[t].first.c_str(), o.targets[t].second.c_str());
      return 1;
    }
    if (o.show_reply) {
      std::string b = res.body().substr(0, 300);
      while (!b.empty() && (b.back() == '\n' || b.back() == '\r'))
        b.pop_back();
      std::printf("  first reply from %-12s HTTP %u %s%s\n", o.targets[t].first.c_str(),
                  res.result_int(), b.c_str(), res.body().size() > 300 ? "..." : "");
    }
  }

  if (o.warmup > 0)
    for (std::size_t t = 0; t < nt; ++t)
      run_slice(o, conns[t], req, o.warmup, 0, false);

  const double slice = o.duration / o.rounds;
  const std::uint64_t quota =
      o.requests
          ? std::max<std::uint64_t>(1, o.requests / (static_cast<std::uint64_t>(o.rounds) * nc))
          : 0;
  for (int r = 0; r < o.rounds; ++r) {
    for (std::size_t t = 0; t < nt; ++t) {
      Stats s = run_slice(o, conns[t], req, slice, quota, true);
      stats[t].merge(s);
      stats[t].seconds += s.seconds;
    }
  }

  std::printf("\n%-12s %10s %10s %9s %9s %9s %9s %8s", "target", "requests", "req/s", "p50 us",
              "p90 us", "p99 us", "max us", "errors");
  if (o.mode == "authz") std::printf(" %9s %9s", "allowed", "denied");
  std::printf("\n");
  struct Row {
    double rps, p50, p90, p99, max;
  };
  std::vector<Row> rows;
  for (std::size_t t = 0; t < nt; ++t) {
    auto &s = stats[t];
    std::sort(s.lat_us.begin(), s.lat_us.end());
    const double n = static_cast<double>(s.lat_us.size());
    Row row{s.seconds > 0 ? n / s.seconds : 0, pct(s.lat_us, 50), pct(s.lat_us, 90),
            pct(s.lat_us, 99), s.lat_us.empty() ? 0.0 : static_cast<double>(s.lat_us.back())};
    rows.push_back(row);
    std::printf("%-12s %10zu %10.0f %9.0f %9.0f %9.0f %9.0f %8llu", o.targets[t].first.c_str(),
                s.lat_us.size(), row.rps, row.p50, row.p90, row.p99, row.max,
                static_cast<unsigned long long>(s.errors));
    if (o.mode == "authz")
      std::printf(" %9llu %9llu", static_cast<unsigned long long>(s.allowed),
                  static_cast<unsigned long long>(s.denied));
    std::printf("\n");
  }
  if (nt > 1) {
    std::printf("\nratio vs %s:\n", o.targets[0].first.c_str());
    for (std::size_t t = 1; t < nt; ++t) {
      auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
      std::printf("  %-12s req/s x%.3f  p50 x%.3f  p90 x%.3f  p99 x%.3f\n",
                  o.targets[t].first.c_str(), ratio(rows[t].rps, rows[0].rps),
                  ratio(rows[t].p50, rows[0].p50), ratio(rows[t].p90, rows[0].p90),
                  ratio(rows[t].p99, rows[0].p99));
    }
  }
  // Machine-readable lines for scripts (bench/run.sh).
  for (std::size_t t = 0; t < nt; ++t)
    std::printf("RESULT target=%s requests=%zu rps=%.1f p50_us=%.0f p90_us=%.0f p99_us=%.0f "
                "max_us=%.0f errors=%llu allowed=%llu denied=%llu\n",
                o.targets[t].first.c_str(), stats[t].lat_us.size(), rows[t].rps, rows[t].p50,
                rows[t].p90, rows[t].p99, rows[t].max,
                static_cast<unsigned long long>(stats[t].errors),
                static_cast<unsigned long long>(stats[t].allowed),
                static_cast<unsigned long long>(stats[t].denied));
  return 0;
}

int main(int argc, char **argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "portcullis-bench: %s\n", e.what());
    return 1;
  }
}
