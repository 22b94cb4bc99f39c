// Docker image references, parsed and normalized the way the daemon's reference library does
// (github.com/distribution/reference: ParseAnyReference / ParseNormalizedNamed). See
// docs/NORMALIZATION.md for the exact rules.
#pragma once

#include "policy/model.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace portcullis {

// "busybox"                 -> docker.io / library/busybox : latest
// "ghcr.io/a/b:1@sha256:.." -> ghcr.io / a/b : 1 @ sha256:..
// "<64 hex>", "sha256:<64 hex>" -> is_id, digest "sha256:<hex>"
// Returns nullopt when the daemon would reject the reference (uppercase repository, bad tag,
// bad digest, name too long, ...). With default_tag=false a reference without tag and digest
// keeps an empty tag (the daemon's "all tags" for pull and push).
//
// Note: a short lower-hex string such as "abc123" is a valid repository name and is returned as
// docker.io/library/abc123:latest, although the daemon falls back to resolving it as an image ID
// prefix when no such tag exists locally.
std::optional<ImageRef> parse_image_ref(std::string_view s, bool default_tag = true);

// Canonical text: "docker.io/library/busybox:latest", "reg:5000/a/b@sha256:...", or the digest
// for an ID.
std::string image_ref_string(const ImageRef &ref);

// [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
bool is_valid_image_tag(std::string_view tag);

// "sha256:" followed by 64 lowercase hex digits (the only algorithm accepted here).
bool is_valid_image_digest(std::string_view digest);

} // namespace portcullis
