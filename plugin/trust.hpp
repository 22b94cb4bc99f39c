// The image_trust section of a policy, ready to use: keys read and parsed, patterns compiled
// (docs/IMAGE-TRUST.md). Built when a policy is loaded, immutable afterwards.
#pragma once

#include "plugin/crypto.hpp"
#include "policy/glob.hpp"
#include "policy/policy.hpp"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace portcullis {

struct TrustKey {
  std::string name;
  PublicKey key;
};

struct TrustRule {
  TrustRuleSpec spec;
  std::vector<PathGlob> globs;   // "/" + each pattern of spec.images
  std::vector<std::size_t> keys; // indices into TrustPolicy::keys(), spec.keys order
};

class TrustPolicy {
public:
  // Reads key files (relative to the policy file's directory) and parses every key. Problems are
  // appended to `errors` as "file:line:col: error: ..." lines; null when there was any.
  static std::shared_ptr<const TrustPolicy> build(const ImageTrustSpec &spec,
                                                  const std::string &policy_path,
                                                  std::vector<std::string> &errors);

  struct Match {
    const TrustRule *rule = nullptr;
    std::string pattern; // the pattern that matched
  };
  // The rule for an image repository ("docker.io/library/alpine"): among the rules with a
  // matching pattern, the most specific pattern wins (no wildcards beats any wildcard; then more
  // literal characters; then file order). nullopt when none matches.
  std::optional<Match> match(const std::string &repository_name) const;

  const std::vector<TrustKey> &keys() const { return keys_; }
  // sha256 over every key's name and fingerprint: with the policy text's hash it names exactly
  // what a cached verdict was decided under (key files are not part of the policy text).
  const std::string &keys_digest() const { return keys_digest_; }
  const std::vector<TrustRule> &rules() const { return rules_; }

private:
  std::vector<TrustKey> keys_;
  std::vector<TrustRule> rules_;
  std::string keys_digest_;
};

// "registry/repository" as trust patterns name it: registry lower-case, "index.docker.io" ->
// "docker.io".
std::string trust_repository_name(const std::string &registry, const std::string &repository);

} // namespace portcullis
