#include "plugin/gojson.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
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

} // namespace

// nlohmann's message ends with "; last read: '<input>'", which can echo request content
// (environment values, ...). Keep only the position and the kind of error.
namespace {
std::string json_exception_message(const json::exception &e) {
  std::string what = e.what();
  if (auto p = what.find("; last read"); p != std::string::npos) what.resize(p);
  if (auto p = what.find("] "); p != std::string::npos) what.erase(0, p + 2);
  return "malformed JSON: " + what;
}

std::string json_size_error(std::size_t size, const JsonLimits &limits) {
  return "JSON document of " + std::to_string(size) + " bytes exceeds the limit of " +
         std::to_string(limits.max_bytes) + " bytes";
}
} // namespace

// ---- StrictStructure --------------------------------------------------------------------------
//
// Keys of an object are checked against the object's earlier keys. While an object has at most
// kSmallObject keys, they are kept as (hash of the folded key, text) and compared linearly, a
// hash match being confirmed by comparing the folded keys (FNV-1a is not collision resistant).
// Past that, the object's folded keys move to an ordered set: O(log n) comparisons per key
// whatever the keys are. (A linear scan of every earlier key took 2.4 s of CPU for one 1.3 MB
// body of 120 000 keys, and grows quadratically: a denial of service by any caller.)

namespace {
constexpr std::size_t kSmallObject = 128;
} // namespace

bool StrictStructure::open(bool object) {
  if (static_cast<long long>(frames_.size()) + 1 > max_depth_)
    return fail("JSON nesting deeper than " + std::to_string(max_depth_));
  frames_.push_back(Frame{object, keys_.size(), {0, 0, 0, 0}, nullptr});
  return true;
}

bool StrictStructure::close() {
  if (frames_.empty()) return fail("malformed JSON");
  const Frame &f = frames_.back();
  if (f.object && !f.big) {
    if (f.first_key < keys_.size()) arena_.resize(keys_[f.first_key].offset);
    keys_.resize(f.first_key);
  }
  frames_.pop_back();
  return true;
}

bool StrictStructure::key(std::string_view k) {
  if (frames_.empty() || !frames_.back().object) return fail("malformed JSON");
  Frame &f = frames_.back();
  if (f.big) {
    ++probes_; // one set lookup: O(log n) comparisons
    if (!f.big->insert(go_fold(k)).second) return duplicate(k);
    return true;
  }
  const std::uint64_t h = folded_hash(k);
  const unsigned bit = static_cast<unsigned>((h ^ (h >> 32)) & 255u);
  std::uint64_t &word = f.seen[bit / 64];
  const std::uint64_t mask = std::uint64_t{1} << (bit % 64);
  if (word & mask) { // maybe seen: scan (no key of this object has this bit otherwise)
    for (std::size_t i = f.first_key; i < keys_.size(); ++i) {
      ++probes_;
      if (keys_[i].hash != h) continue;
      const std::string_view prev(arena_.data() + keys_[i].offset, keys_[i].size);
      if (folded_equals(prev, go_fold(k))) return duplicate(k);
    }
  }
  word |= mask;
  if (keys_.size() - f.first_key < kSmallObject) {
    keys_.push_back(Key{h, arena_.size(), k.size()});
    arena_.append(k);
    return true;
  }
  // The object outgrows the linear scan: its keys move to an ordered set. Only the innermost
  // open object can be growing, so its keys are the last ones of keys_.
  f.big = std::make_unique<std::set<std::string, std::less<>>>();
  for (std::size_t i = f.first_key; i < keys_.size(); ++i)
    f.big->insert(go_fold(std::string_view(arena_.data() + keys_[i].offset, keys_[i].size)));
  f.big->insert(go_fold(k));
  if (f.first_key < keys_.size()) arena_.resize(keys_[f.first_key].offset);
  keys_.resize(f.first_key);
  return true;
}

bool StrictStructure::parse_error(const json::exception &e) {
  return fail(json_exception_message(e));
}

bool StrictStructure::fail(std::string message) {
  if (error_.empty()) error_ = std::move(message);
  return false;
}

bool StrictStructure::duplicate(std::string_view k) {
  return fail("duplicate JSON key \"" + std::string(k.substr(0, 64)) +
              "\" (keys are compared case-insensitively, as dockerd does)");
}

namespace {

// nlohmann SAX handler that builds the document in one pass (as nlohmann's own DOM parser does)
// and enforces the strict rules (StrictStructure) while doing so. Returning false stops the parse
// at once; error() then says why. Parse errors from nlohmann's lexer/parser (syntax, invalid
// UTF-8, lone surrogates, trailing data) arrive through parse_error().
class StrictDomBuilder final : public StrictSaxHandler {
public:
  StrictDomBuilder(json &root, int max_depth) : root_(root), strict_(max_depth) {}

  bool null() override { return put(nullptr); }
  bool boolean(bool v) override { return put(v); }
  bool number_integer(number_integer_t v) override { return put(v); }
  bool number_unsigned(number_unsigned_t v) override { return put(v); }
  bool number_float(number_float_t v, const string_t & /*text*/) override { return put(v); }
  bool string(string_t &v) override { return put(std::move(v)); }

  bool start_object(std::size_t /*elements*/) override { return open(json::value_t::object); }
  bool start_array(std::size_t /*elements*/) override { return open(json::value_t::array); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }

  bool key(string_t &k) override {
    if (!strict_.key(k)) return false;
    if (stack_.empty() || !stack_.back()->is_object()) return strict_.fail("malformed JSON");
    auto &members = stack_.back()->get_ref<json::object_t &>();
    auto [it, inserted] = members.emplace(std::move(k), nullptr);
    if (!inserted)
      return strict_.fail("malformed JSON"); // unreachable: exact duplicates fold alike
    slot_ = &it->second;
    return true;
  }

  bool parse_error(std::size_t /*position*/, const std::string & /*last_token*/,
                   const json::exception &e) override {
    return strict_.parse_error(e);
  }

  const std::string &error() const override { return strict_.error(); }

private:
  // Where the next value goes: the root, the end of the open array, or the member whose key
  // was just read.
  template <class V> json *place(V &&v) {
    if (stack_.empty()) {
      root_ = json(std::forward<V>(v));
      return &root_;
    }
    json &top = *stack_.back();
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
    return place(std::forward<V>(v)) != nullptr || strict_.fail("malformed JSON");
  }

  bool open(json::value_t type) {
    if (!strict_.open(type == json::value_t::object)) return false;
    json *v = place(type);
    if (!v) return strict_.fail("malformed JSON");
    stack_.push_back(v);
    return true;
  }

  bool close() {
    if (!strict_.close()) return false;
    if (stack_.empty()) return strict_.fail("malformed JSON");
    stack_.pop_back();
    slot_ = nullptr;
    return true;
  }

  json &root_;
  StrictStructure strict_;
  std::vector<json *> stack_;
  json *slot_ = nullptr;
};
} // namespace

namespace {
// A byte iterator of this file's own type (internal linkage), so that nlohmann's lexer and parser
// for it are instantiated here only: the linker cannot swap in another object file's copy of
// them, compiled with other inlining decisions (measured: 15 % more instructions per decision
// when it did).
struct ByteIterator {
  using iterator_category = std::forward_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char *;
  using reference = const char &;

  const char *p;
  reference operator*() const { return *p; }
  ByteIterator &operator++() {
    ++p;
    return *this;
  }
  ByteIterator operator++(int) { return ByteIterator{p++}; }
  bool operator==(const ByteIterator &o) const { return p == o.p; }
  bool operator!=(const ByteIterator &o) const { return p != o.p; }
};
} // namespace

std::string sax_parse_strict(std::string_view text, const JsonLimits &limits,
                             StrictSaxHandler &handler) {
  if (text.size() > limits.max_bytes) return json_size_error(text.size(), limits);
  bool ok = false;
  try {
    ok = json::sax_parse(ByteIterator{text.data()}, ByteIterator{text.data() + text.size()},
                         &handler, json::input_format_t::json, /*strict=*/true,
                         /*ignore_comments=*/false);
  } catch (const json::exception &e) {
    // nlohmann reports errors through parse_error() and does not throw here; kept fail-closed.
    return json_exception_message(e);
  }
  if (!ok || !handler.error().empty())
    return handler.error().empty() ? "malformed JSON" : handler.error();
  return "";
}

JsonParseResult parse_json_strict(std::string_view text, const JsonLimits &limits) {
  JsonParseResult r;
  json root;
  StrictDomBuilder builder(root, limits.max_depth);
  r.error = sax_parse_strict(text, limits, builder);
  if (r.error.empty()) r.value = std::move(root);
  return r;
}

const nlohmann::json *go_field(const nlohmann::json &obj, std::string_view field) {
  if (!obj.is_object()) return nullptr;
  const auto &members = obj.get_ref<const json::object_t &>();
  // Field names are short ASCII constants: fold them on the stack (same result as go_fold).
  char buf[64];
  std::string heap;
  std::string_view want;
  const bool ascii = field.size() <= sizeof buf &&
                     std::all_of(field.begin(), field.end(),
                                 [](char c) { return static_cast<unsigned char>(c) < 0x80; });
  if (ascii) {
    for (std::size_t i = 0; i < field.size(); ++i)
      buf[i] = (field[i] >= 'a' && field[i] <= 'z') ? static_cast<char>(field[i] - ('a' - 'A'))
                                                    : field[i];
    want = std::string_view(buf, field.size());
  } else {
    heap = go_fold(field);
    want = heap;
  }
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
