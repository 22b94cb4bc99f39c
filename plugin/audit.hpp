// Decision log: one JSON line per decision (schema in docs/DECISION-LOG.md).
#pragma once

#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace portcullis {

// One JSON object written without building an nlohmann document: each member is rendered to JSON
// text when it is set, and dump() joins the members sorted by key. The output is byte for byte
// what nlohmann::json::dump(-1, ' ', false, error_handler_t::replace) writes for the same object
// (compact, keys in std::map order, invalid UTF-8 replaced by U+FFFD): plain printable-ASCII
// strings are copied as they are, any other string is escaped by nlohmann itself.
class LogRecord {
public:
  // Each setter replaces a member of the same key, as json::operator[] does.
  LogRecord &set(std::string_view key, std::string_view value);
  LogRecord &set(std::string_view key, const char *value) {
    return set(key, std::string_view(value));
  }
  LogRecord &set(std::string_view key, const std::string &value) {
    return set(key, std::string_view(value));
  }
  LogRecord &set(std::string_view key, bool value);
  LogRecord &set(std::string_view key, long long value);
  LogRecord &set(std::string_view key, long value) {
    return set(key, static_cast<long long>(value));
  }
  LogRecord &set(std::string_view key, int value) {
    return set(key, static_cast<long long>(value));
  }
  LogRecord &set(std::string_view key, const std::vector<std::string> &value);
  LogRecord &set(std::string_view key, const LogRecord &object);
  LogRecord &set(std::string_view key, const std::vector<LogRecord> &objects);

  bool empty() const { return members_.empty(); }
  std::string dump() const; // compact JSON object, no trailing newline

  static void append_string(std::string &out, std::string_view s); // JSON string literal

private:
  std::string &slot(std::string_view key); // the rendered value of `key`, created empty
  std::vector<std::pair<std::string, std::string>> members_; // key -> rendered JSON value
};

class DecisionLog {
public:
  DecisionLog() = default;
  ~DecisionLog();
  DecisionLog(const DecisionLog &) = delete;
  DecisionLog &operator=(const DecisionLog &) = delete;

  // Opens (creating with mode 0640) for appending. "" = no file (records go nowhere but the
  // caller's diagnostics). Returns false and sets error when the file cannot be opened.
  bool open(const std::string &path, std::string &error);
  // Reopens the same path (after log rotation). Keeps the old descriptor on failure.
  bool reopen(std::string &error);
  // Appends one record as a single line with a single write(2). False when it could not be
  // written completely; the caller fails closed.
  bool write(const nlohmann::json &record);
  bool write(const LogRecord &record);
  const std::string &path() const { return path_; }

private:
  bool write_line(std::string line);

  std::mutex mu_;
  std::string path_;
  int fd_ = -1;
};

} // namespace portcullis
