// The LDAP directory provider: resolves a user name to its entry and its groups (direct and
// nested) with libldap (OpenLDAP 2.5), through a pool of service-account connections that are
// always TLS-protected and verified against the configured CA. No cache here: plugin/dircache.hpp
// puts one in front of LdapDirectory::lookup().
//
// Outcomes (LookupStatus): exactly one user entry and a complete group list -> found; zero
// entries (or a name that cannot be a user) -> not_found; could not connect / timed out ->
// unreachable; anything else that makes the answer unusable (duplicate users, size limit,
// referral or search continuation reference, ranged memberOf, an unreadable memberOf group, a
// looping or endless paged search, nesting deeper than max_depth, more than max_groups, TLS
// verification failure, ambiguous CN) -> failed. A partial group list is never returned.
//
// The user entry must carry the requested name in one of its user.attribute values (ASCII
// case-insensitive; LDAP matching is looser) - else not_found; its DN must canonicalise - else
// failed. The posix strategy matches memberUid against the entry's single uid value.
//
// Group keys: every GroupMembership.key is the canonical DN (canonical_dn()). With
// ldap.groups.bind_by_cn, every group whose first RDN is cn ALSO gets a membership with key
// "cn:<lower-cased cn value>" (source "cn", display the DN) so that policies may bind bare CNs.
// Such a CN must be unambiguous: if two of the user's groups share it, or a search (cn=<value>)
// under groups.base_dn (ANDed with groups.filter) finds more than one entry or finds one that is
// not the user's group, the whole lookup is failed with "group CN 'x' is ambiguous (N groups):
// bind it by DN" - never a guess. A user's group that this search does not find at all (outside
// groups.base_dn, or not matching groups.filter) fails the lookup too (fail-closed: a deny bound
// to its CN must not silently drop).
#pragma once

#include "plugin/config.hpp"
#include "plugin/directory.hpp"

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace portcullis {

// Sets LDAPNOINIT=1 (no ldap.conf, ldaprc or LDAP* variables can weaken anything), protocol v3
// and TLS REQUIRE_CERT=DEMAND on libldap's global options, and ignores SIGPIPE if it was at its
// default (libldap writes without MSG_NOSIGNAL). Idempotent; call before threads start.
void ldap_global_init();

// RFC 4515 escaping of a value placed in a filter (libldap's ldap_bv2escaped_filter_value).
std::string ldap_escape_filter_value(std::string_view value);

// The DN parsed and re-emitted in LDAPv3 form (ldap_str2dn + ldap_dn2str), attribute types and
// values ASCII-lower-cased. nullopt for empty or malformed DNs (and BER-encoded #hex values).
std::optional<std::string> canonical_dn(std::string_view dn);

// Filter composition, exposed for tests. `extra` is an admin-written filter ("" = none);
// `value` is escaped here.
std::string ldap_and_filter(const std::string &extra, const std::string &inner);
std::string ldap_equality_filter(const std::string &attribute, std::string_view value);
// (|(a1=<esc dn>)(a2=<esc dn>)...) or (a1=<esc dn>) for one attribute.
std::string ldap_member_filter(const std::vector<std::string> &attributes, std::string_view dn);

// Why a user name is refused before it is sent to the server ("" = acceptable).
std::string ldap_user_name_problem(std::string_view name);

// The binding key for a policy's group: canonical DN, or "cn:<lower>" with bind_by_cn.
std::optional<std::string> ldap_binding_key(const std::string &group, bool bind_by_cn,
                                            std::string &error);

class LdapPool;

class LdapDirectory final : public DirectoryBackend {
public:
  // Reads the password file (refused when empty or when its mode gives group/others any access),
  // checks the CA and client certificate files. The server need not be reachable (a warning is
  // logged). nullptr + error on a configuration problem.
  static std::unique_ptr<LdapDirectory> create(const LdapConfig &config, std::string &error);
  ~LdapDirectory() override;
  LdapDirectory(const LdapDirectory &) = delete;
  LdapDirectory &operator=(const LdapDirectory &) = delete;

  UserLookup lookup(const std::string &user) override;
  std::string describe() const override;
  std::optional<std::string> binding_key(const std::string &group,
                                         std::string &error) const override;

private:
  LdapDirectory(const LdapConfig &config, std::string password);
  LdapConfig config_;
  std::unique_ptr<LdapPool> pool_;
};

} // namespace portcullis
