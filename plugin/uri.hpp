// RequestUri -> (decoded path, API version, query) exactly as dockerd routes it: Go net/http's
// ParseRequestURI + gorilla/mux (decoded path, path cleaning, optional /vX.Y prefix) + Go's
// url.ParseQuery. See docs/NORMALIZATION.md. Nothing here throws; errors are short sentences that
// never echo the request.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace portcullis {

// Query parameters in request order, keys and values decoded (Go url.ParseQuery semantics).
// Keys are case-sensitive, as in Go. The daemon reads the FIRST value of a repeated key.
struct QueryParams {
  std::vector<std::pair<std::string, std::string>> items;

  // First value of `key`, or nullopt when the key is absent.
  std::optional<std::string> first(std::string_view key) const;
  // Number of times `key` occurs.
  std::size_t count(std::string_view key) const;
};

struct ParsedUri {
  std::string path; // percent-decoded, clean, API version prefix removed ("/containers/json")
  std::string api_version; // "1.41", or "" when there was no /vX.Y prefix
  QueryParams query;
};

struct UriResult {
  std::optional<ParsedUri> uri; // set on success
  std::string error;            // set on failure
};

// Parses a raw RequestUri (origin-form "/..." or absolute-form "http(s)://host/...").
UriResult parse_request_uri(std::string_view raw);

// Go url.ParseQuery: split on '&', ';' is an error, '+' is a space, %XX decoded. Returns false and
// sets `error` on the first problem.
bool parse_go_query(std::string_view raw, QueryParams &out, std::string &error);

// Percent-decodes `in` (path mode: '+' stays '+'). Returns nullopt on an invalid escape.
std::optional<std::string> percent_decode_path(std::string_view in);

// True when gorilla/mux would not redirect the (decoded) path: it starts with '/', has no empty,
// "." or ".." segment, except that a single trailing '/' is kept.
bool is_clean_path(std::string_view path);

// True when `s` is well-formed UTF-8.
bool is_valid_utf8(std::string_view s);

} // namespace portcullis
