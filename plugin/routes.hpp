// The Docker Engine API route table (moby daemon/server/router/*, in mux registration order) as
// data: (method, anchored path pattern) -> action name from policy/actions.cpp, plus which path
// variable or query parameter names the object. See docs/NORMALIZATION.md.
#pragma once

#include "plugin/uri.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace portcullis {

struct Route {
  // "GET", "GET|HEAD", ... ; "*" means any method except OPTIONS (the debug routes are registered
  // without a method; OPTIONS is claimed by the earlier system route OPTIONS /{anyroute:.*}).
  std::string_view methods;
  // mux template: literal text and variables "{name}" (mux default [^/]+, no '/'), "{name:.*}"
  // (anything, may contain '/', may be empty) or "{name:.+}" (anything, non-empty).
  std::string_view pattern;
  // Action name; the pseudo-action "image.create" is resolved from the query (pull or import).
  std::string_view action;
  // Path variable whose value is the object ("name", "id"), or "?key" for a query parameter.
  std::string_view object;
  // mux registers this route earlier than any other route that matches the same path, so its
  // match wins instead of being reported as ambiguous (DELETE checkpoint vs DELETE container).
  bool first_wins = false;
  // Registered without the /vX.Y prefix only (the debug router).
  bool unversioned_only = false;
};

// The whole table in registration order.
const std::vector<Route> &route_table();

struct RouteMatch {
  std::string action = "unknown"; // "unknown" when no route matches
  std::string object;
  const Route *route = nullptr;       // the matching route, if any
  std::optional<std::string> invalid; // ambiguous route, or a query the action cannot accept
};

// Routes (method, decoded version-less path). `versioned` says whether the URI had a /vX.Y prefix.
// Matching is case-sensitive, as mux is.
RouteMatch match_route(std::string_view method, std::string_view path, bool versioned,
                       const QueryParams &query);

// match_route over another table (compiled on every call: for tests of the matching rules, such
// as ambiguity, that the real table does not exercise). `table` must outlive the result's route.
RouteMatch match_route_in(const std::vector<Route> &table, std::string_view method,
                          std::string_view path, bool versioned, const QueryParams &query);

// Every action the table can produce, sorted and unique ("unknown" excluded).
std::vector<std::string> route_table_actions();

// docs/ROUTES.md: a short introduction and the table as Markdown, one row per route in
// registration order. `portcullis routes` prints it; a unit test compares it with the file.
std::string route_table_markdown();

} // namespace portcullis
