#include "plugin/audit.hpp"

#include <algorithm>
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

void LogRecord::append_string(std::string &out, std::string_view s) {
  bool plain = true;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
      plain = false;
      break;
    }
  }
  if (plain) { // nlohmann writes these bytes unchanged
    out.reserve(out.size() + s.size() + 2);
    out.push_back('"');
    out.append(s);
    out.push_back('"');
    return;
  }
  out +=
      nlohmann::json(std::string(s)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string &LogRecord::slot(std::string_view key) {
  if (members_.empty()) members_.reserve(32); // a decision record has about 25 members
  for (auto &m : members_)
    if (m.first == key) {
      m.second.clear();
      return m.second;
    }
  return members_.emplace_back(std::string(key), std::string()).second;
}

LogRecord &LogRecord::set(std::string_view key, std::string_view value) {
  append_string(slot(key), value);
  return *this;
}

LogRecord &LogRecord::set(std::string_view key, bool value) {
  slot(key) = value ? "true" : "false";
  return *this;
}

LogRecord &LogRecord::set(std::string_view key, long long value) {
  slot(key) = std::to_string(value);
  return *this;
}

LogRecord &LogRecord::set(std::string_view key, const std::vector<std::string> &value) {
  std::string &out = slot(key);
  out.push_back('[');
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (i) out.push_back(',');
    append_string(out, value[i]);
  }
  out.push_back(']');
  return *this;
}

LogRecord &LogRecord::set(std::string_view key, const LogRecord &object) {
  std::string text = object.dump();
  slot(key) = std::move(text);
  return *this;
}

LogRecord &LogRecord::set(std::string_view key, const std::vector<LogRecord> &objects) {
  std::string text = "[";
  for (std::size_t i = 0; i < objects.size(); ++i) {
    if (i) text.push_back(',');
    text += objects[i].dump();
  }
  text.push_back(']');
  slot(key) = std::move(text);
  return *this;
}

std::string LogRecord::dump() const {
  // nlohmann::json objects are std::maps: members come out sorted by the key's bytes.
  std::vector<const std::pair<std::string, std::string> *> order;
  order.reserve(members_.size());
  std::size_t size = 2;
  for (const auto &m : members_) {
    order.push_back(&m);
    size += m.first.size() + m.second.size() + 4;
  }
  std::sort(order.begin(), order.end(),
            [](const auto *a, const auto *b) { return a->first < b->first; });
  std::string out;
  out.reserve(size);
  out.push_back('{');
  for (std::size_t i = 0; i < order.size(); ++i) {
    if (i) out.push_back(',');
    append_string(out, order[i]->first);
    out.push_back(':');
    out += order[i]->second;
  }
  out.push_back('}');
  return out;
}

bool DecisionLog::write(const nlohmann::json &record) {
  return write_line(record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

bool DecisionLog::write(const LogRecord &record) {
  return write_line(record.dump());
}

bool DecisionLog::write_line(std::string line) {
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
