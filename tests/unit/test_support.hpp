// Helpers shared by the unit tests: raw requests for the normalizer, the daemon's AuthZReq JSON
// for a TLS caller, and a minimal HTTP client for the plugin socket (tests only; the product
// uses Beast).
#pragma once

#include "cert_support.hpp"
#include "plugin/crypto.hpp"
#include "plugin/normalize.hpp"

#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

namespace portcullis::test {

// An API request as the normalizer receives it (Content-Length set when there is a body).
inline RawHttpRequest req(std::string method, std::string uri, std::optional<std::string> body = {},
                          std::string content_type = "") {
  RawHttpRequest r;
  r.method = std::move(method);
  r.uri = std::move(uri);
  if (body) {
    r.headers["Content-Length"] = std::to_string(body->size());
    r.body = std::move(body);
  }
  if (!content_type.empty()) r.headers["Content-Type"] = content_type;
  return r;
}

// Host paths stay lexical (this machine's symlinks, e.g. /var/run -> /run, must not change the
// expected facts); symlink resolution has its own tests.
inline NormalizeOptions lexical() {
  NormalizeOptions o;
  o.resolve_host_path = nullptr;
  return o;
}

// The daemon's AuthZReq for a TLS caller `user` (with a throwaway certificate of that CN).
inline nlohmann::json tls_request(const std::string &user, const std::string &method,
                                  const std::string &uri, const std::string &body = "") {
  nlohmann::json r = {{"User", user},
                      {"UserAuthNMethod", "TLS"},
                      {"RequestMethod", method},
                      {"RequestUri", uri},
                      {"RequestPeerCertificates", {base64_encode(make_cert_pem(user))}}};
  if (!body.empty()) {
    r["RequestBody"] = base64_encode(body);
    r["RequestHeaders"] = {{"Content-Type", "application/json"},
                           {"Content-Length", std::to_string(body.size())}};
  }
  return r;
}

// --- the plugin socket ------------------------------------------------------------------------

inline int dial(const std::string &path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

inline void send_all(int fd, const std::string &s) {
  std::size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<std::size_t>(n);
  }
}

// Reads one HTTP response with Content-Length; returns "" on EOF/timeout. Bytes of a following
// (pipelined) response stay in `carry`.
inline std::string read_response(int fd, std::string &carry) {
  std::string &buf = carry;
  char tmp[4096];
  while (true) {
    auto hdr_end = buf.find("\r\n\r\n");
    if (hdr_end != std::string::npos) {
      auto cl = buf.find("Content-Length: ");
      std::size_t len = cl == std::string::npos ? 0 : std::stoul(buf.substr(cl + 16));
      if (buf.size() >= hdr_end + 4 + len) {
        std::string one = buf.substr(0, hdr_end + 4 + len);
        buf.erase(0, hdr_end + 4 + len);
        return one;
      }
    }
    ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
    if (n <= 0) return "";
    buf.append(tmp, static_cast<std::size_t>(n));
  }
}

inline std::string read_response(int fd) {
  std::string carry;
  return read_response(fd, carry);
}

// A POST to the plugin socket as dockerd writes it.
inline std::string post(const std::string &target, const std::string &body, bool close = false) {
  return "POST " + target + " HTTP/1.1\r\nHost: plugin.moby.localhost\r\nContent-Length: " +
         std::to_string(body.size()) + (close ? "\r\nConnection: close" : "") + "\r\n\r\n" + body;
}

} // namespace portcullis::test
