// JSON parsing with the limits and the key semantics that matter for authorization.
//
// dockerd decodes request bodies with Go's encoding/json: object keys match struct fields
// case-insensitively (ASCII case plus Unicode simple folding, so U+017F 'ſ' matches 's' and
// U+212A KELVIN SIGN matches 'k'), duplicate keys are applied in order (objects merge), and
// trailing data after the value is rejected. To see exactly what the daemon will execute we:
//   * reject any object holding two keys that are equal after Go's folding (no merge games),
//   * reject trailing data, invalid UTF-8, and nesting deeper than a limit,
//   * look fields up with Go's folding (go_fold) so "pRiViLeGeD" and "Hoſtconfig" are found.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace portcullis {

struct JsonLimits {
  std::size_t max_bytes = 8u << 20;
  int max_depth = 64;
};

struct JsonParseResult {
  std::optional<nlohmann::json> value; // set on success
  std::string error;                   // set on failure; safe to show to the caller
};

// Strict parse as described above.
JsonParseResult parse_json_strict(std::string_view text, const JsonLimits &limits);

// Go's encoding/json key folding: ASCII letters upper-cased, every other rune mapped to the
// smallest rune of its simple-fold orbit (only U+017F->'S' and U+212A->'K' reach ASCII).
std::string go_fold(std::string_view key);

// Finds the member of `obj` that Go would decode into a struct field named `field`
// (case-insensitive with Go's folding). Returns nullptr when absent or when obj is not an object.
// parse_json_strict guarantees there is at most one such member.
const nlohmann::json *go_field(const nlohmann::json &obj, std::string_view field);

} // namespace portcullis
