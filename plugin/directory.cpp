#include "plugin/directory.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <yaml-cpp/yaml.h>

namespace portcullis {

namespace {
std::string at(const std::string &file, const YAML::Mark &m) {
  return file + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1) + ": ";
}
} // namespace

std::unique_ptr<FileDirectory>
FileDirectory::parse(const std::string &text, const std::string &filename, std::string &error) {
  auto dir = std::unique_ptr<FileDirectory>(new FileDirectory());
  dir->filename_ = filename;
  try {
    YAML::Node root = YAML::Load(text);
    if (!root.IsMap()) {
      error = at(filename, root.Mark()) + "expected a mapping with key 'users'";
      return nullptr;
    }
    for (auto kv : root) {
      auto *it = &kv;
      const std::string key = it->first.as<std::string>();
      if (key != "users") {
        error = at(filename, it->first.Mark()) + "unknown key '" + key + "' (expected 'users')";
        return nullptr;
      }
    }
    YAML::Node users = root["users"];
    if (!users || users.IsNull()) return dir;
    if (!users.IsMap()) {
      error = at(filename, users.Mark()) + "'users' must map user names to lists of groups";
      return nullptr;
    }
    for (auto kv : users) {
      auto *it = &kv;
      const std::string name = it->first.as<std::string>();
      if (name.empty()) {
        error = at(filename, it->first.Mark()) + "empty user name";
        return nullptr;
      }
      if (name == "local") {
        error = at(filename, it->first.Mark()) +
                "'local' is the unix-socket caller; bind it in the policy with users: [local]";
        return nullptr;
      }
      std::vector<std::string> groups;
      if (it->second.IsSequence()) {
        for (const auto &g : it->second) {
          if (!g.IsScalar() || g.as<std::string>().empty()) {
            error = at(filename, g.Mark()) + "group names must be non-empty strings";
            return nullptr;
          }
          groups.push_back(g.as<std::string>());
        }
      } else if (!it->second.IsNull()) {
        error = at(filename, it->second.Mark()) + "expected a list of group names for user '" +
                name + "'";
        return nullptr;
      }
      std::sort(groups.begin(), groups.end());
      groups.erase(std::unique(groups.begin(), groups.end()), groups.end());
      if (!dir->users_.emplace(name, std::move(groups)).second) {
        error = at(filename, it->first.Mark()) + "user '" + name + "' listed twice";
        return nullptr;
      }
    }
  } catch (const YAML::Exception &e) {
    error = at(filename, e.mark) + e.msg;
    return nullptr;
  }
  return dir;
}

std::unique_ptr<FileDirectory> FileDirectory::load(const std::string &path, std::string &error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = path + ": cannot open user directory file";
    return nullptr;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse(ss.str(), path, error);
}

DirectoryResult FileDirectory::groups_for(const std::string &user) const {
  DirectoryResult r;
  r.ok = true;
  if (auto it = users_.find(user); it != users_.end()) {
    r.found = true;
    r.groups = it->second;
    for (const auto &g : r.groups)
      r.memberships.push_back({g, g, {}, "file"});
  }
  return r;
}

} // namespace portcullis
