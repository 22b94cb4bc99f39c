#include "plugin/gojson.hpp"

#include <cstdint>
#include <utility>
#include <vector>

namespace portcullis {

std::string go_fold(std::string_view key) {
  std::string out;
  out.reserve(key.size());
  for (std::size_t i = 0; i < key.size();) {
    auto c = static_cast<unsigned char>(key[i]);
    if (c < 0x80) {
      out.push_back(static_cast<char>((c >= 'a' && c <= 'z') ? c - ('a' - 'A') : c));
      ++i;
      continue;
    }
    // U+017F LATIN SMALL LETTER LONG S = C5 BF; U+212A KELVIN SIGN = E2 84 AA
    if (key.substr(i, 2) == "\xC5\xBF") {
      out.push_back('S');
      i += 2;
      continue;
    }
    if (key.substr(i, 3) == "\xE2\x84\xAA") {
      out.push_back('K');
      i += 3;
      continue;
    }
    // Any other non-ASCII rune folds to a non-ASCII rune and can never equal an ASCII field
    // name; keep the byte as is (the parser has already rejected invalid UTF-8).
    out.push_back(static_cast<char>(c));
    ++i;
  }
  return out;
}

namespace {
using json = nlohmann::json;

// go_fold(key) == folded, without allocating (same folding rules as go_fold).
bool folded_equals(std::string_view key, std::string_view folded) {
  std::size_t j = 0;
  for (std::size_t i = 0; i < key.size();) {
    auto c = static_cast<unsigned char>(key[i]);
    char out = static_cast<char>(c);
    std::size_t advance = 1;
    if (c < 0x80) {
      if (c >= 'a' && c <= 'z') out = static_cast<char>(c - ('a' - 'A'));
    } else if (key.substr(i, 2) == "\xC5\xBF") {
      out = 'S';
      advance = 2;
    } else if (key.substr(i, 3) == "\xE2\x84\xAA") {
      out = 'K';
      advance = 3;
    }
    if (j >= folded.size() || folded[j] != out) return false;
    ++j;
    i += advance;
  }
  return j == folded.size();
}

// FNV-1a of go_fold(key), without allocating. Equal folds give equal hashes; a hash match is
// only a hint and is always confirmed by comparing the folded keys.
std::uint64_t folded_hash(std::string_view key) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  auto mix = [&h](unsigned char b) {
    h ^= b;
    h *= 0x100000001b3ULL;
  };
  for (std::size_t i = 0; i < key.size();) {
    auto c = static_cast<unsigned char>(key[i]);
    if (c < 0x80) {
      mix((c >= 'a' && c <= 'z') ? static_cast<unsigned char>(c - ('a' - 'A')) : c);
      ++i;
    } else if (key.substr(i, 2) == "\xC5\xBF") {
      mix('S');
      i += 2;
    } else if (key.substr(i, 3) == "\xE2\x84\xAA") {
      mix('K');
      i += 3;
    } else {
      mix(c);
      ++i;
    }
  }
  return h;
}

// nlohmann's message ends with "; last read: '<input>'", which can echo request content
// (environment values, ...). Keep only the position and the kind of error.
std::string parse_error_message(const json::exception &e) {
  std::string what = e.what();
  if (auto p = what.find("; last read"); p != std::string::npos) what.resize(p);
  if (auto p = what.find("] "); p != std::string::npos) what.erase(0, p + 2);
  return "malformed JSON: " + what;
}

// nlohmann SAX handler that builds the document in one pass (as nlohmann's own DOM parser does)
// and enforces the strict rules while doing so: nesting depth (counted in open containers, the
// outermost being 1) and keys unique within each object after Go's folding. Returning false
// stops the parse at once; `error` then says why. Parse errors from nlohmann's lexer/parser
// (syntax, invalid UTF-8, lone surrogates, trailing data) arrive through parse_error().
class StrictDomBuilder {
public:
  using number_integer_t = json::number_integer_t;
  using number_unsigned_t = json::number_unsigned_t;
  using number_float_t = json::number_float_t;
  using string_t = json::string_t;
  using binary_t = json::binary_t;

  StrictDomBuilder(json &root, int max_depth) : root_(root), max_depth_(max_depth) {}

  bool null() { return put(nullptr); }
  bool boolean(bool v) { return put(v); }
  bool number_integer(number_integer_t v) { return put(v); }
  bool number_unsigned(number_unsigned_t v) { return put(v); }
  bool number_float(number_float_t v, const string_t & /*text*/) { return put(v); }
  bool string(string_t &v) { return put(std::move(v)); }
  bool binary(binary_t &v) { return put(json::binary(std::move(v))); }

  bool start_object(std::size_t /*elements*/) { return open(json::value_t::object); }
  bool start_array(std::size_t /*elements*/) { return open(json::value_t::array); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }

  bool key(string_t &k) {
    if (stack_.empty() || !stack_.back().value->is_object()) return fail("malformed JSON");
    auto &members = stack_.back().value->get_ref<json::object_t &>();
    const std::uint64_t h = folded_hash(k);
    for (std::size_t i = stack_.back().hash_start; i < hashes_.size(); ++i) {
      if (hashes_[i] == h && is_duplicate(members, k)) return duplicate(k);
    }
    hashes_.push_back(h);
    auto [it, inserted] = members.emplace(std::move(k), nullptr);
    if (!inserted) return duplicate(it->first); // unreachable: exact duplicates fold alike
    slot_ = &it->second;
    return true;
  }

  bool parse_error(std::size_t /*position*/, const std::string & /*last_token*/,
                   const json::exception &e) {
    return fail(parse_error_message(e));
  }

  const std::string &error() const { return error_; }

private:
  struct Frame {
    json *value;
    std::size_t hash_start; // this object's key hashes are hashes_[hash_start..]
  };

  static bool is_duplicate(const json::object_t &members, std::string_view k) {
    const std::string want = go_fold(k);
    for (const auto &m : members)
      if (folded_equals(m.first, want)) return true;
    return false;
  }

  bool duplicate(std::string_view k) {
    return fail("duplicate JSON key \"" + std::string(k.substr(0, 64)) +
                "\" (keys are compared case-insensitively, as dockerd does)");
  }

  bool fail(std::string message) {
    if (error_.empty()) error_ = std::move(message);
    return false;
  }

  // Where the next value goes: the root, the end of the open array, or the member whose key
  // was just read.
  template <class V> json *place(V &&v) {
    if (stack_.empty()) {
      root_ = json(std::forward<V>(v));
      return &root_;
    }
    json &top = *stack_.back().value;
    if (top.is_array()) {
      auto &arr = top.get_ref<json::array_t &>();
      arr.emplace_back(std::forward<V>(v));
      return &arr.back();
    }
    if (!slot_) return nullptr; // a value without a key: the parser never does this
    json *dst = slot_;
    slot_ = nullptr;
    *dst = json(std::forward<V>(v));
    return dst;
  }

  template <class V> bool put(V &&v) {
    return place(std::forward<V>(v)) != nullptr || fail("malformed JSON");
  }

  bool open(json::value_t type) {
    if (static_cast<long long>(stack_.size()) + 1 > max_depth_)
      return fail("JSON nesting deeper than " + std::to_string(max_depth_));
    json *v = place(type);
    if (!v) return fail("malformed JSON");
    stack_.push_back(Frame{v, hashes_.size()});
    return true;
  }

  bool close() {
    if (stack_.empty()) return fail("malformed JSON");
    hashes_.resize(stack_.back().hash_start);
    stack_.pop_back();
    slot_ = nullptr;
    return true;
  }

  json &root_;
  int max_depth_;
  std::vector<Frame> stack_;
  std::vector<std::uint64_t> hashes_; // folded-key hashes of all open objects, outermost first
  json *slot_ = nullptr;
  std::string error_;
};
bool run_sax(std::string_view text, StrictDomBuilder &builder) {
  return json::sax_parse(text.begin(), text.end(), &builder, json::input_format_t::json,
                         /*strict=*/true, /*ignore_comments=*/false);
}
} // namespace

JsonParseResult parse_json_strict(std::string_view text, const JsonLimits &limits) {
  JsonParseResult r;
  if (text.size() > limits.max_bytes) {
    r.error = "JSON document of " + std::to_string(text.size()) + " bytes exceeds the limit of " +
              std::to_string(limits.max_bytes) + " bytes";
    return r;
  }
  json root;
  StrictDomBuilder builder(root, limits.max_depth);
  bool ok = false;
  try {
    ok = run_sax(text, builder);
  } catch (const json::exception &e) {
    // nlohmann reports errors through parse_error() and does not throw here; kept fail-closed.
    r.error = parse_error_message(e);
    return r;
  }
  if (!ok || !builder.error().empty()) {
    r.error = builder.error().empty() ? "malformed JSON" : builder.error();
    return r;
  }
  r.value = std::move(root);
  return r;
}

const nlohmann::json *go_field(const nlohmann::json &obj, std::string_view field) {
  if (!obj.is_object()) return nullptr;
  const auto &members = obj.get_ref<const json::object_t &>();
  const std::string want = go_fold(field);
  if (want.empty()) {
    auto it = members.find(std::string_view{});
    return it == members.end() ? nullptr : &it->second;
  }
  // A key folds to `want` only if its first byte folds to want[0]: that byte itself, its lower
  // case, U+017F (lead byte C5) for 'S' or U+212A (lead byte E2) for 'K'. Members are sorted by
  // bytes, so scanning those ranges in ascending byte order returns the same member (the first
  // match in key order) as a scan of the whole object would, while reading a few keys only.
  const auto first = static_cast<unsigned char>(want[0]);
  unsigned char leads[4];
  std::size_t n = 0;
  leads[n++] = first;
  if (first >= 'A' && first <= 'Z') leads[n++] = static_cast<unsigned char>(first + ('a' - 'A'));
  if (first == 'S') leads[n++] = 0xC5;
  if (first == 'K') leads[n++] = 0xE2;
  for (std::size_t i = 0; i < n; ++i) {
    const char lead = static_cast<char>(leads[i]);
    for (auto it = members.lower_bound(std::string_view(&lead, 1));
         it != members.end() && !it->first.empty() && it->first[0] == lead; ++it)
      if (folded_equals(it->first, want)) return &it->second;
  }
  return nullptr;
}

} // namespace portcullis
