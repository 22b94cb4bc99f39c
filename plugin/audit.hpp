// Decision log: one JSON line per decision (schema in docs/DECISION-LOG.md).
#pragma once

#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

namespace portcullis {

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
  const std::string &path() const { return path_; }

private:
  std::mutex mu_;
  std::string path_;
  int fd_ = -1;
};

} // namespace portcullis
