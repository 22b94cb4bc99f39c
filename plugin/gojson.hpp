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

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

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

// The structural rules of parse_json_strict, for nlohmann SAX handlers that build their own
// result instead of a document (the daemon's AuthZ call, see plugin/codec.cpp): nesting depth
// (open containers, the outermost being 1) and keys unique within each object after Go's folding.
// Each method returns false when the document must be refused; error() then says why, in the
// same words parse_json_strict uses. Cost is O(n log n) in the number of keys of an object, also
// for hostile documents (a megabyte of distinct keys, keys chosen to collide in a hash).
class StrictStructure {
public:
  explicit StrictStructure(int max_depth) : max_depth_(max_depth) {
    // Room for a typical request (the docker CLI's create body: 100 keys, 4 levels) in one
    // allocation each, instead of a dozen as the vectors grow.
    frames_.reserve(8);
    keys_.reserve(128);
    arena_.reserve(2048);
  }

  bool open(bool object);                               // start_object (true) / start_array (false)
  bool close();                                         // end_object / end_array
  bool key(std::string_view key);                       // a key of the innermost open object
  bool parse_error(const nlohmann::json::exception &e); // nlohmann's syntax/UTF-8/trailing errors
  bool fail(std::string message);                       // the first failure's message is kept

  const std::string &error() const { return error_; }
  std::size_t depth() const { return frames_.size(); }
  // Key probes made so far: linear-scan comparisons in small objects plus one per ordered-set
  // lookup (itself O(log n)) in big ones. Tests check it stays linear in the number of keys.
  std::uint64_t probes() const { return probes_; }

private:
  struct Frame {
    bool object;
    std::size_t first_key; // this object's keys are keys_[first_key..] while it is small
    std::uint64_t seen[4]; // a 256-bit filter of those keys' hashes: most new keys skip the scan
    std::unique_ptr<std::set<std::string, std::less<>>> big; // folded keys, once it is not
  };
  struct Key {
    std::uint64_t hash; // of the folded key
    std::size_t offset; // of the key as written, in arena_
    std::size_t size;
  };
  bool duplicate(std::string_view key);

  int max_depth_;
  std::vector<Frame> frames_;
  std::vector<Key> keys_; // keys of the small open objects, outermost first
  std::string arena_;     // their text
  std::uint64_t probes_ = 0;
  std::string error_;
};

// A nlohmann SAX handler (see nlohmann::json_sax) for sax_parse_strict. Abstract, so that
// nlohmann's parser is instantiated once, in gojson.cpp, for every strict parse: GCC's inlining
// inside that parser (about half of a decision's cost) then cannot change with the handler or
// with which object file's copy the linker keeps.
class StrictSaxHandler {
public:
  using number_integer_t = nlohmann::json::number_integer_t;
  using number_unsigned_t = nlohmann::json::number_unsigned_t;
  using number_float_t = nlohmann::json::number_float_t;
  using string_t = nlohmann::json::string_t;
  using binary_t = nlohmann::json::binary_t;

  virtual ~StrictSaxHandler() = default;
  virtual bool null() = 0;
  virtual bool boolean(bool v) = 0;
  virtual bool number_integer(number_integer_t v) = 0;
  virtual bool number_unsigned(number_unsigned_t v) = 0;
  virtual bool number_float(number_float_t v, const string_t &text) = 0;
  virtual bool string(string_t &v) = 0;             // may be moved from
  virtual bool binary(binary_t &) { return false; } // never produced by JSON text
  virtual bool start_object(std::size_t elements) = 0;
  virtual bool end_object() = 0;
  virtual bool start_array(std::size_t elements) = 0;
  virtual bool end_array() = 0;
  virtual bool key(string_t &k) = 0; // may be moved from
  // nlohmann's syntax, UTF-8 and trailing-data errors; call StrictStructure::parse_error.
  virtual bool parse_error(std::size_t position, const std::string &last_token,
                           const nlohmann::json::exception &e) = 0;
  virtual const std::string &error() const = 0; // why the handler stopped the parse
};

// Runs nlohmann's strict SAX parser (no comments, no trailing data) over `text` with `handler`,
// after the size limit. Returns "" on success, else the error: the handler's own (its error()),
// or a message derived from nlohmann's exception.
std::string sax_parse_strict(std::string_view text, const JsonLimits &limits,
                             StrictSaxHandler &handler);

// Go's encoding/json key folding: ASCII letters upper-cased, every other rune mapped to the
// smallest rune of its simple-fold orbit (only U+017F->'S' and U+212A->'K' reach ASCII).
std::string go_fold(std::string_view key);

// Finds the member of `obj` that Go would decode into a struct field named `field`
// (case-insensitive with Go's folding). Returns nullptr when absent or when obj is not an object.
// parse_json_strict guarantees there is at most one such member.
const nlohmann::json *go_field(const nlohmann::json &obj, std::string_view field);

} // namespace portcullis
