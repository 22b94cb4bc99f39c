#include "plugin/audit.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace portcullis {

DecisionLog::~DecisionLog() {
  if (fd_ >= 0) ::close(fd_);
}

bool DecisionLog::open(const std::string &path, std::string &error) {
  std::lock_guard lock(mu_);
  path_ = path;
  if (path.empty()) return true;
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) {
    error = path + ": cannot open decision log: " + std::strerror(errno);
    return false;
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
  return true;
}

bool DecisionLog::reopen(std::string &error) {
  return open(path_, error);
}

bool DecisionLog::write(const nlohmann::json &record) {
  std::string line = record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  line.push_back('\n');
  std::lock_guard lock(mu_);
  if (path_.empty()) return true;
  if (fd_ < 0) return false;
  const char *p = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  return true;
}

} // namespace portcullis
