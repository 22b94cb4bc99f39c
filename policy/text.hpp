// Request- or policy-controlled text inside messages: one escaping rule for the whole policy
// library (`"` and `\` escaped, control characters replaced by '?').
#pragma once

#include <string>
#include <string_view>

namespace portcullis {

inline std::string escape_for_message(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    auto uc = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (uc < 0x20 || uc == 0x7F) {
      out += '?';
    } else {
      out += c;
    }
  }
  return out;
}

} // namespace portcullis
