#include "plugin/directories.hpp"

#include "plugin/dircache.hpp"
#include "plugin/ldap.hpp"

namespace portcullis {

std::shared_ptr<const Directory> open_directory(const Config &config, std::string &error) {
  if (config.directory_type == "file") {
    auto dir = FileDirectory::load(config.directory_path, error);
    return dir ? std::shared_ptr<const Directory>(std::move(dir)) : nullptr;
  }
  if (config.directory_type == "ldap") {
    ldap_global_init();
    std::shared_ptr<DirectoryBackend> backend = LdapDirectory::create(config.ldap, error);
    if (!backend) return nullptr;
    return std::make_shared<const CachingDirectory>(std::move(backend), config.cache);
  }
  error = "unknown directory type '" + config.directory_type + "'";
  return nullptr;
}

} // namespace portcullis
