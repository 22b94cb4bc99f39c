// clang-format off
#include <utility> // Boost 1.74 Asio needs std::exchange declared before its headers under C++20
// clang-format on
#include "plugin/daemon.hpp"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <openssl/crypto.h>

namespace portcullis {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using local = asio::local::stream_protocol;

namespace {
DaemonAnswer failed(std::string why) {
  DaemonAnswer a;
  a.status = DaemonAnswer::Status::error;
  a.error = std::move(why);
  return a;
}

// The daemon's error body is {"message":"..."}; keep a short printable excerpt.
std::string daemon_message(const std::string &body) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  std::string m;
  if (j.is_object() && j.contains("message") && j["message"].is_string())
    m = j["message"].get<std::string>();
  std::string out;
  for (char c : m) {
    if (out.size() >= 160) {
      out += "...";
      break;
    }
    auto u = static_cast<unsigned char>(c);
    out.push_back(u >= 0x20 && u < 0x7f ? c : '?');
  }
  return out;
}
} // namespace

bool lookup_token_matches(std::string_view presented, std::string_view ours) {
  if (presented.empty() || ours.empty() || presented.size() != ours.size()) return false;
  return CRYPTO_memcmp(presented.data(), ours.data(), ours.size()) == 0;
}

DaemonAnswer DaemonClient::get(const std::string &path, std::chrono::milliseconds timeout) const {
  try {
    if (opts_.socket.empty()) return failed("no daemon socket is configured");
    asio::io_context ioc;
    beast::basic_stream<local> stream(ioc);
    http::request<http::empty_body> req{http::verb::get, path, 11};
    req.set(http::field::host, "docker"); // Go's server requires a Host header
    req.set(http::field::user_agent, "portcullis");
    req.set(kLookupHeader, opts_.token);
    req.keep_alive(false);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(opts_.max_response_bytes);
    parser.header_limit(64 * 1024);
    beast::error_code result;
    const char *stage = "connect";

    if (timeout.count() <= 0) return failed("no time left for daemon lookups");
    stream.expires_after(timeout); // one deadline for the whole exchange
    stream.async_connect(local::endpoint(opts_.socket), [&](beast::error_code ec) {
      if (ec) {
        result = ec;
        return;
      }
      stage = "send";
      http::async_write(stream, req, [&](beast::error_code ec2, std::size_t) {
        if (ec2) {
          result = ec2;
          return;
        }
        stage = "read";
        http::async_read_header(stream, buffer, parser, [&](beast::error_code ec3, std::size_t) {
          if (ec3) {
            result = ec3;
            return;
          }
          // Boost 1.74's parser can miss body_limit when the body arrives with the header
          // (boostorg/beast#2183): refuse a declared length over the limit before reading it,
          // and check the size read below as well.
          if (parser.content_length() && *parser.content_length() > opts_.max_response_bytes) {
            result = http::error::body_limit;
            return;
          }
          http::async_read(stream, buffer, parser,
                           [&](beast::error_code ec4, std::size_t) { result = ec4; });
        });
      });
    });
    ioc.run();
    if (result == beast::error::timeout)
      return failed("the daemon did not answer in time (" + std::to_string(timeout.count()) +
                    " ms)");
    if (result == http::error::body_limit) return failed("the daemon's answer is too large");
    if (result) return failed(std::string(stage) + " failed: " + result.message());
    const auto &res = parser.get();
    if (res.body().size() > opts_.max_response_bytes)
      return failed("the daemon's answer is too large");
    const unsigned status = res.result_int();
    if (status == 404) {
      DaemonAnswer a;
      a.status = DaemonAnswer::Status::not_found;
      return a;
    }
    if (status != 200) {
      std::string m = daemon_message(res.body());
      return failed("the daemon answered HTTP " + std::to_string(status) +
                    (m.empty() ? std::string() : " (" + m + ")"));
    }
    DaemonAnswer a;
    a.body = nlohmann::json::parse(res.body(), nullptr, false);
    if (a.body.is_discarded() || !a.body.is_object())
      return failed("the daemon's answer is not a JSON object");
    a.status = DaemonAnswer::Status::found;
    return a;
  } catch (const std::exception &e) {
    return failed(std::string("internal error: ") + e.what());
  }
}

} // namespace portcullis
