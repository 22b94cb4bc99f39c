// The catalog of action names the normalizer can produce and policies can name.
#pragma once
#include <string_view>
#include <vector>

namespace portcullis {

// Every action name, sorted. "unknown" is included: it is what unrecognised routes become.
const std::vector<std::string_view> &known_actions();

bool is_known_action(std::string_view name);

// The read-only actions, sorted: the group the pattern "*.read" names. Chosen conservatively (see
// actions.cpp and docs/POLICY.md): GET/HEAD routes that change nothing, call no registry and
// return metadata only, never file or log contents, a process's I/O or data that may be secret.
const std::vector<std::string_view> &read_actions();
bool is_read_action(std::string_view name);

// An action pattern in a policy: an exact name, "prefix.*" (matches "prefix.x" and "prefix.x.y"),
// "*.read" (the read-only actions above) or "*". No wildcard matches "unknown" (unrecognised
// routes); only the exact name does.
// action_pattern_is_valid: true if the pattern matches at least one known action.
bool action_pattern_is_valid(std::string_view pattern);
bool action_pattern_matches(std::string_view pattern, std::string_view action);

} // namespace portcullis
