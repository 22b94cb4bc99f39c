// Builds the directory a configuration asks for: the YAML users file, or LDAP behind the cache.
#pragma once

#include "plugin/config.hpp"
#include "plugin/directory.hpp"

#include <memory>
#include <string>

namespace portcullis {

// nullptr + error on a configuration problem. An unreachable LDAP server is not an error here
// (requests are denied with "directory unreachable" until it answers).
std::shared_ptr<const Directory> open_directory(const Config &config, std::string &error);

} // namespace portcullis
