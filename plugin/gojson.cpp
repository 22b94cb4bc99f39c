#include "plugin/gojson.hpp"

#include <set>
#include <vector>

namespace portcullis {

namespace {
struct LimitExceeded {
  std::string message;
};
} // namespace

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

JsonParseResult parse_json_strict(std::string_view text, const JsonLimits &limits) {
  JsonParseResult r;
  if (text.size() > limits.max_bytes) {
    r.error = "JSON document of " + std::to_string(text.size()) + " bytes exceeds the limit of " +
              std::to_string(limits.max_bytes) + " bytes";
    return r;
  }
  std::vector<std::set<std::string>> keys; // one set per open object
  std::vector<bool> is_object;             // container stack
  auto cb = [&](int depth, nlohmann::json::parse_event_t ev, nlohmann::json &parsed) -> bool {
    using E = nlohmann::json::parse_event_t;
    switch (ev) {
    case E::object_start:
    case E::array_start:
      if (depth + 1 > limits.max_depth)
        throw LimitExceeded{"JSON nesting deeper than " + std::to_string(limits.max_depth)};
      is_object.push_back(ev == E::object_start);
      if (ev == E::object_start) keys.emplace_back();
      break;
    case E::object_end:
    case E::array_end:
      if (!is_object.empty()) {
        if (is_object.back()) keys.pop_back();
        is_object.pop_back();
      }
      break;
    case E::key: {
      const std::string &k = parsed.get_ref<const std::string &>();
      if (!keys.empty() && !keys.back().insert(go_fold(k)).second)
        throw LimitExceeded{"duplicate JSON key \"" + k.substr(0, 64) +
                            "\" (keys are compared case-insensitively, as dockerd does)"};
      break;
    }
    case E::value:
      break;
    }
    return true;
  };
  try {
    r.value = nlohmann::json::parse(text.begin(), text.end(), cb, /*allow_exceptions=*/true,
                                    /*ignore_comments=*/false);
  } catch (const LimitExceeded &e) {
    r.value.reset();
    r.error = e.message;
  } catch (const nlohmann::json::exception &e) {
    r.value.reset();
    // nlohmann's message ends with "; last read: '<input>'", which can echo request content
    // (environment values, ...). Keep only the position and the kind of error.
    std::string what = e.what();
    if (auto p = what.find("; last read"); p != std::string::npos) what.resize(p);
    if (auto p = what.find("] "); p != std::string::npos) what.erase(0, p + 2);
    r.error = "malformed JSON: " + what;
  }
  return r;
}

namespace {
// go_fold(key) == folded, without allocating (same folding rules as go_fold).
bool folded_equals(std::string_view key, std::string_view folded) {
  std::size_t j = 0;
  for (std::size_t i = 0; i < key.size();) {
    auto c = static_cast<unsigned char>(key[i]);
    char out = static_cast<char>(c);
    std::size_t advance = 1;
    if (c >= 'a' && c <= 'z') {
      out = static_cast<char>(c - ('a' - 'A'));
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
} // namespace

const nlohmann::json *go_field(const nlohmann::json &obj, std::string_view field) {
  if (!obj.is_object()) return nullptr;
  const std::string want = go_fold(field);
  for (auto it = obj.begin(); it != obj.end(); ++it)
    if (folded_equals(it.key(), want)) return &it.value();
  return nullptr;
}

} // namespace portcullis
