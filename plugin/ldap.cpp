// The LDAP directory provider (see plugin/ldap.hpp): pure helpers (filter escaping, DN
// canonicalisation, filter composition, binding keys) and LdapDirectory::lookup, which finds
// exactly one user entry and resolves its groups with every configured strategy (member search,
// memberOf, posixGroup, AD in-chain), nested groups breadth-first with a visited set, a depth
// limit and a group limit. Connections come from plugin/ldap_pool.hpp.
#include "plugin/ldap.hpp"

#include "plugin/ldap_pool.hpp"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <set>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <utility>

namespace portcullis {

namespace {

constexpr int kPageSize = 500;
constexpr int kMaxPages = 1000; // one search returning more pages than this is an error
constexpr std::size_t kMaxUserName = 256;
// The posix strategy matches memberUid against the user entry's own uid (never the requested name).
constexpr const char *kPosixUidAttribute = "uid";

void ascii_lower(std::string &s) {
  for (char &ch : s)
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
}

std::string lower(std::string s) {
  ascii_lower(s);
  return s;
}

bool ascii_iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

int ldap_scope(const std::string &s) {
  if (s == "base") return LDAP_SCOPE_BASE;
  if (s == "one") return LDAP_SCOPE_ONELEVEL;
  return LDAP_SCOPE_SUBTREE;
}

// The value of the first RDN when it is a single cn=... AVA, lower-cased; nullopt otherwise.
std::optional<std::string> first_rdn_cn(const std::string &dn) {
  LDAPDN parsed = nullptr;
  if (ldap_str2dn(dn.c_str(), &parsed, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS || !parsed)
    return std::nullopt;
  std::optional<std::string> out;
  LDAPRDN rdn = parsed[0];
  if (rdn != nullptr && rdn[0] != nullptr && rdn[1] == nullptr) {
    const LDAPAVA *ava = rdn[0];
    const std::string type(ava->la_attr.bv_val, ava->la_attr.bv_len);
    if (lower(type) == "cn" && (ava->la_flags & LDAP_AVA_BINARY) == 0)
      out = lower(std::string(ava->la_value.bv_val, ava->la_value.bv_len));
  }
  ldap_dnfree(parsed);
  return out;
}

std::string join(const std::vector<std::string> &v, const char *sep) {
  std::string out;
  for (const auto &s : v)
    out += (out.empty() ? "" : sep) + s;
  return out;
}

bool readable(const std::string &path) {
  std::ifstream in(path);
  return in.good();
}

} // namespace

// ---------------------------------------------------------------------------------------------
// pure helpers

void ldap_global_init() {
  static std::once_flag once;
  std::call_once(once, [] {
    ::setenv("LDAPNOINIT", "1", 1);
    // libldap writes to sockets without MSG_NOSIGNAL: a server that went away would otherwise
    // kill the whole process with SIGPIPE (e.g. when unbinding a dead connection).
    struct sigaction old {};
    if (::sigaction(SIGPIPE, nullptr, &old) == 0 && old.sa_handler == SIG_DFL)
      std::signal(SIGPIPE, SIG_IGN);
    const int v3 = LDAP_VERSION3, demand = LDAP_OPT_X_TLS_DEMAND;
    if (ldap_set_option(nullptr, LDAP_OPT_PROTOCOL_VERSION, &v3) != LDAP_OPT_SUCCESS)
      spdlog::error("LDAP: cannot set the global protocol version 3");
    if (ldap_set_option(nullptr, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand) != LDAP_OPT_SUCCESS)
      spdlog::error("LDAP: cannot set the global TLS REQUIRE_CERT=demand");
  });
}

std::string ldap_escape_filter_value(std::string_view value) {
  if (value.empty()) return {};
  berval in{static_cast<ber_len_t>(value.size()), const_cast<char *>(value.data())};
  berval out{0, nullptr};
  if (ldap_bv2escaped_filter_value(&in, &out) == 0 && out.bv_val != nullptr) {
    std::string r(out.bv_val, out.bv_len);
    ber_memfree(out.bv_val);
    return r;
  }
  // Out of memory in libldap: escape every byte (valid RFC 4515; never the raw value).
  static const char hex[] = "0123456789ABCDEF";
  std::string r;
  for (unsigned char ch : value) {
    r += '\\';
    r += hex[ch >> 4];
    r += hex[ch & 15];
  }
  return r;
}

std::optional<std::string> canonical_dn(std::string_view dn) {
  if (dn.empty() || dn.find('\0') != std::string_view::npos) return std::nullopt;
  const std::string s(dn);
  LDAPDN parsed = nullptr;
  if (ldap_str2dn(s.c_str(), &parsed, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS || !parsed)
    return std::nullopt;
  bool binary = false;
  for (int i = 0; parsed[i] != nullptr; ++i)
    for (int j = 0; parsed[i][j] != nullptr; ++j)
      binary = binary || (parsed[i][j]->la_flags & LDAP_AVA_BINARY) != 0;
  char *out = nullptr;
  const int rc = binary ? LDAP_INVALID_DN_SYNTAX : ldap_dn2str(parsed, &out, LDAP_DN_FORMAT_LDAPV3);
  ldap_dnfree(parsed);
  if (rc != LDAP_SUCCESS || out == nullptr) return std::nullopt;
  std::string r(out);
  ldap_memfree(out);
  ascii_lower(r);
  if (r.empty()) return std::nullopt;
  return r;
}

std::string ldap_and_filter(const std::string &extra, const std::string &inner) {
  return extra.empty() ? inner : "(&" + extra + inner + ")";
}

std::string ldap_equality_filter(const std::string &attribute, std::string_view value) {
  return "(" + attribute + "=" + ldap_escape_filter_value(value) + ")";
}

std::string ldap_member_filter(const std::vector<std::string> &attributes, std::string_view dn) {
  if (attributes.size() == 1) return ldap_equality_filter(attributes[0], dn);
  std::string f = "(|";
  for (const auto &a : attributes)
    f += ldap_equality_filter(a, dn);
  return f + ")";
}

std::string ldap_user_name_problem(std::string_view name) {
  if (name.empty()) return "the user name is empty";
  if (name.size() > kMaxUserName)
    return "the user name is longer than " + std::to_string(kMaxUserName) + " bytes";
  for (unsigned char ch : name)
    if (ch < 0x20 || ch == 0x7f) return "the user name contains a NUL or control character";
  if (name.front() == ' ' || name.back() == ' ')
    return "the user name has leading or trailing spaces";
  return {};
}

std::optional<std::string> ldap_binding_key(const std::string &group, bool bind_by_cn,
                                            std::string &error) {
  if (group.find('=') != std::string::npos) {
    if (auto dn = canonical_dn(group)) return dn;
    error = "group '" + group + "' is not a valid LDAP DN";
    return std::nullopt;
  }
  if (bind_by_cn && !group.empty() && ldap_user_name_problem(group).empty())
    return "cn:" + lower(group);
  error = bind_by_cn ? "group '" + group + "' is neither a DN nor a usable CN"
                     : "group '" + group +
                           "' is not a DN; bind LDAP groups by their full DN (or enable "
                           "ldap.groups.bind_by_cn)";
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// one lookup on one connection

namespace {

struct Entry {
  std::string dn;
  std::map<std::string, std::vector<std::string>> attrs; // lower-cased attribute names
};

struct SearchSpec {
  std::string base;
  int scope = LDAP_SCOPE_SUBTREE;
  std::string filter;
  std::vector<std::string> attrs; // empty = DN only ("1.1")
  bool paged = false;
  std::size_t max_entries = 0; // more than this is an error (0 = no check here)
};

Entry parse_entry(LDAP *ld, LDAPMessage *m) {
  Entry e;
  if (char *dn = ldap_get_dn(ld, m)) {
    e.dn = dn;
    ldap_memfree(dn);
  }
  BerElement *ber = nullptr;
  for (char *a = ldap_first_attribute(ld, m, &ber); a != nullptr;
       a = ldap_next_attribute(ld, m, ber)) {
    auto &values = e.attrs[lower(a)];
    if (berval **vals = ldap_get_values_len(ld, m, a)) {
      for (int i = 0; vals[i] != nullptr; ++i)
        values.emplace_back(vals[i]->bv_val, vals[i]->bv_len);
      ldap_value_free_len(vals);
    }
    ldap_memfree(a);
  }
  if (ber != nullptr) ber_free(ber, 0);
  return e;
}

class Resolver {
public:
  Resolver(const LdapConfig &config, LdapConn &conn, const Deadline &deadline)
      : cfg_(config), ld_(conn.ld), deadline_(deadline) {}

  UserLookup run(const std::string &user);
  bool broken() const { return broken_; }

private:
  bool search(const SearchSpec &spec, std::vector<Entry> &out);
  bool search_page(const SearchSpec &spec, berval &cookie, std::vector<Entry> &out, bool &more);
  bool result_ok(LDAPMessage *result, const SearchSpec &spec, berval &cookie, bool &more);
  bool fail(LookupStatus status, std::string message) {
    error_ = {status, std::move(message)};
    return false;
  }
  bool add(const std::string &dn, const std::vector<std::string> &via, const std::string &source,
           std::string *key_out);
  bool expand(std::vector<std::string> frontier_keys, const std::string &source,
              const std::function<bool(const std::string &, std::vector<std::string> &)> &parents);
  bool member_groups(const std::string &dn, std::vector<std::string> &out);
  bool memberof_groups(const std::string &dn, std::vector<std::string> &out);
  bool memberof_values(const Entry &entry, std::vector<std::string> &out);
  bool strategy(const std::string &name, const Entry &entry);
  bool add_cn_keys();

  const LdapConfig &cfg_;
  LDAP *ld_;
  const Deadline &deadline_;
  bool broken_ = false;
  LdapError error_;
  std::map<std::string, GroupMembership> groups_; // by key
};

bool Resolver::search(const SearchSpec &spec, std::vector<Entry> &out) {
  berval cookie{0, nullptr};
  bool more = true, ok = true;
  std::string previous; // the last page's cookie: the same one twice would loop forever
  for (int pages = 0; ok && more; ++pages) {
    if (pages >= kMaxPages) {
      ok = fail(LookupStatus::failed, "LDAP search under '" + spec.base + "' returned more than " +
                                          std::to_string(kMaxPages) +
                                          " pages: refusing a possibly endless answer");
      break;
    }
    ok = search_page(spec, cookie, out, more);
    if (ok && more) {
      std::string current(cookie.bv_val, cookie.bv_len);
      if (current == previous)
        ok = fail(LookupStatus::failed, "LDAP search under '" + spec.base +
                                            "': the server returned the same paged results "
                                            "cookie twice: refusing to loop");
      previous = std::move(current);
    }
  }
  if (cookie.bv_val != nullptr) ber_memfree(cookie.bv_val);
  return ok;
}

bool Resolver::search_page(const SearchSpec &spec, berval &cookie, std::vector<Entry> &out,
                           bool &more) {
  more = false;
  if (deadline_.expired())
    return fail(LookupStatus::unreachable,
                "directory unreachable: the lookup did not finish within " +
                    std::to_string(cfg_.decision_timeout_ms) + " ms");
  LDAPControl *page = nullptr;
  if (spec.paged) {
    const int rc = ldap_create_page_control(ld_, kPageSize, &cookie, 0, &page);
    if (rc != LDAP_SUCCESS)
      return fail(LookupStatus::failed, std::string("LDAP: cannot create the paged results "
                                                    "control: ") +
                                            ldap_err2string(rc));
  }
  LDAPControl *controls[2] = {page, nullptr};
  std::vector<char *> attrs;
  for (const auto &a : spec.attrs)
    attrs.push_back(const_cast<char *>(a.c_str()));
  static char no_attrs[] = LDAP_NO_ATTRS;
  if (attrs.empty()) attrs.push_back(no_attrs);
  attrs.push_back(nullptr);
  timeval tv = deadline_.timeout(cfg_.operation_timeout_ms);
  LDAPMessage *res = nullptr;
  const int rc =
      ldap_search_ext_s(ld_, spec.base.c_str(), spec.scope, spec.filter.c_str(), attrs.data(), 0,
                        spec.paged ? controls : nullptr, nullptr, &tv, LDAP_NO_LIMIT, &res);
  if (page != nullptr) ldap_control_free(page);
  bool ok = true;
  // Any client-side error (rc < 0) may have cost the handle its connection, and a handle without
  // one must never be used again (the pool also refuses libldap's silent reconnects).
  if (rc < 0) broken_ = true;
  if (ldap_rc_is_transport(rc)) {
    broken_ = true;
    ok = fail(LookupStatus::unreachable,
              "directory unreachable: searching '" + spec.base + "': " + ldap_error_text(ld_, rc));
  }
  for (LDAPMessage *m = ok ? ldap_first_message(ld_, res) : nullptr; ok && m != nullptr;
       m = ldap_next_message(ld_, m)) {
    const int type = ldap_msgtype(m);
    if (type == LDAP_RES_SEARCH_ENTRY) {
      out.push_back(parse_entry(ld_, m));
      if (spec.max_entries != 0 && out.size() > spec.max_entries)
        ok =
            fail(LookupStatus::failed, "more than " + std::to_string(spec.max_entries) +
                                           " entries under '" + spec.base + "' for " + spec.filter);
    } else if (type == LDAP_RES_SEARCH_RESULT) {
      ok = result_ok(m, spec, cookie, more);
    } else if (type == LDAP_RES_SEARCH_REFERENCE) {
      // Referrals are not followed, so part of the answer lives elsewhere: never a partial list.
      char **refs = nullptr;
      std::string where;
      if (ldap_parse_reference(ld_, m, &refs, nullptr, 0) == LDAP_SUCCESS && refs != nullptr) {
        if (refs[0] != nullptr) where = std::string(" (") + refs[0] + ")";
        ldap_memvfree(reinterpret_cast<void **>(refs));
      }
      ok = fail(LookupStatus::failed,
                "LDAP search under '" + spec.base +
                    "' returned a referral (search continuation reference" + where +
                    "): part of the answer is on another server and referrals are not "
                    "followed; refusing a partial answer (narrow the base DN)");
    }
  }
  if (ok && rc != LDAP_SUCCESS) // e.g. no result message at all
    ok = fail(LookupStatus::failed,
              "LDAP search under '" + spec.base + "' failed: " + ldap_error_text(ld_, rc));
  if (res != nullptr) ldap_msgfree(res);
  return ok;
}

bool Resolver::result_ok(LDAPMessage *result, const SearchSpec &spec, berval &cookie, bool &more) {
  int code = LDAP_OTHER;
  char *diag = nullptr;
  LDAPControl **controls = nullptr;
  const int prc = ldap_parse_result(ld_, result, &code, nullptr, &diag, nullptr, &controls, 0);
  const std::string detail = diag != nullptr && *diag != '\0' ? std::string(" (") + diag + ")" : "";
  if (diag != nullptr) ldap_memfree(diag);
  bool ok = true;
  if (prc != LDAP_SUCCESS) {
    ok = fail(LookupStatus::failed,
              std::string("LDAP: unreadable search result: ") + ldap_err2string(prc));
  } else if (code == LDAP_SIZELIMIT_EXCEEDED || code == LDAP_ADMINLIMIT_EXCEEDED) {
    ok = fail(LookupStatus::failed, "LDAP search under '" + spec.base + "' hit a server limit (" +
                                        ldap_err2string(code) + detail +
                                        "): refusing a partial answer");
  } else if (code == LDAP_REFERRAL || code == LDAP_PARTIAL_RESULTS) {
    ok = fail(LookupStatus::failed, "LDAP search under '" + spec.base + "' returned " +
                                        ldap_err2string(code) +
                                        " (referrals are not followed): refusing a partial answer");
  } else if (code != LDAP_SUCCESS) {
    ok = fail(ldap_rc_is_transport(code) ? LookupStatus::unreachable : LookupStatus::failed,
              "LDAP search under '" + spec.base + "' failed: " + ldap_err2string(code) + detail);
  } else if (spec.paged && controls != nullptr) {
    if (LDAPControl *pr = ldap_control_find(LDAP_CONTROL_PAGEDRESULTS, controls, nullptr)) {
      ber_int_t count = 0;
      berval next{0, nullptr};
      if (ldap_parse_pageresponse_control(ld_, pr, &count, &next) != LDAP_SUCCESS) {
        ok = fail(LookupStatus::failed, "LDAP: unreadable paged results control");
      } else {
        if (cookie.bv_val != nullptr) ber_memfree(cookie.bv_val);
        cookie = next;
        more = cookie.bv_len > 0;
      }
    }
  }
  if (controls != nullptr) ldap_controls_free(controls);
  return ok;
}

// Records one group (keeps the shortest path when found twice). key_out: its canonical DN.
bool Resolver::add(const std::string &dn, const std::vector<std::string> &via,
                   const std::string &source, std::string *key_out) {
  const auto key = canonical_dn(dn);
  if (!key)
    return fail(LookupStatus::failed, "the directory returned a malformed group DN '" + dn + "'");
  if (key_out != nullptr) *key_out = *key;
  auto it = groups_.find(*key);
  if (it == groups_.end()) {
    groups_.emplace(*key, GroupMembership{*key, dn, via, source});
    if (groups_.size() > static_cast<std::size_t>(cfg_.max_groups))
      return fail(LookupStatus::failed, "the user is in more than " +
                                            std::to_string(cfg_.max_groups) +
                                            " groups (ldap.groups.max_groups)");
  } else if (via.size() < it->second.via.size()) {
    it->second = GroupMembership{*key, dn, via, source};
  }
  return true;
}

// Breadth-first over parent groups, starting from the direct groups (depth 1). A cycle ends at
// the visited set; a new group deeper than max_depth is an error, never a truncation.
bool Resolver::expand(
    std::vector<std::string> frontier, const std::string &source,
    const std::function<bool(const std::string &, std::vector<std::string> &)> &parents) {
  std::set<std::string> visited(frontier.begin(), frontier.end());
  for (int depth = 1; !frontier.empty(); ++depth) {
    std::vector<std::string> next;
    for (const auto &key : frontier) {
      const GroupMembership child = groups_.at(key);
      std::vector<std::string> found;
      if (!parents(child.display, found)) return false;
      for (const auto &dn : found) {
        const auto pkey = canonical_dn(dn);
        if (!pkey)
          return fail(LookupStatus::failed,
                      "the directory returned a malformed group DN '" + dn + "'");
        if (!visited.insert(*pkey).second) continue;
        if (depth + 1 > cfg_.max_depth)
          return fail(LookupStatus::failed,
                      "group nesting deeper than " + std::to_string(cfg_.max_depth) + " ('" + dn +
                          "' above '" + child.display + "'; ldap.groups.max_depth)");
        std::vector<std::string> via = child.via;
        via.push_back(child.display);
        if (!add(dn, via, source, nullptr)) return false;
        next.push_back(*pkey);
      }
    }
    frontier = std::move(next);
  }
  return true;
}

bool Resolver::member_groups(const std::string &dn, std::vector<std::string> &out) {
  SearchSpec s{cfg_.group_base_dn,
               ldap_scope(cfg_.group_scope),
               ldap_and_filter(cfg_.group_filter, ldap_member_filter(cfg_.member_attributes, dn)),
               {},
               true,
               static_cast<std::size_t>(cfg_.max_groups)};
  std::vector<Entry> entries;
  if (!search(s, entries)) return false;
  for (auto &e : entries)
    out.push_back(std::move(e.dn));
  return true;
}

// The memberOf values of an entry. A value list that comes with attribute options (AD's range
// retrieval, "memberOf;range=0-1499") is incomplete by design: an error, never "no memberOf".
bool Resolver::memberof_values(const Entry &entry, std::vector<std::string> &out) {
  const std::string name = lower(cfg_.memberof_attribute);
  for (const auto &[attr, values] : entry.attrs)
    if (attr.size() > name.size() && attr.compare(0, name.size(), name) == 0 &&
        attr[name.size()] == ';')
      return fail(LookupStatus::failed,
                  "the directory returned '" + attr + "' for '" + entry.dn +
                      "' (ranged or optioned memberOf, e.g. Active Directory range retrieval): "
                      "the group list would be incomplete; use the member or ad_in_chain "
                      "strategy");
  const auto it = entry.attrs.find(name);
  if (it != entry.attrs.end()) out = it->second;
  return true;
}

bool Resolver::memberof_groups(const std::string &dn, std::vector<std::string> &out) {
  SearchSpec s{dn, LDAP_SCOPE_BASE, "(objectClass=*)", {cfg_.memberof_attribute}, false, 1};
  std::vector<Entry> entries;
  if (!search(s, entries)) return false;
  if (entries.empty()) // unreadable: its parents are unknown, not "none"
    return fail(LookupStatus::failed,
                "the group '" + dn +
                    "' (from memberOf) cannot be read: its own groups are unknown");
  return memberof_values(entries[0], out);
}

bool Resolver::strategy(const std::string &name, const Entry &entry) {
  std::vector<std::string> direct;
  if (name == "member") {
    if (!member_groups(entry.dn, direct)) return false;
  } else if (name == "memberof") {
    if (!memberof_values(entry, direct)) return false;
  } else {
    std::string inner;
    if (name == "posix") {
      // memberUid holds uids: match the entry's own (single) uid, never the requested name,
      // which may have matched the entry through another attribute.
      const auto it = entry.attrs.find(kPosixUidAttribute);
      const std::size_t n = it == entry.attrs.end() ? 0 : it->second.size();
      if (n != 1)
        return fail(LookupStatus::failed, "the posix group strategy needs exactly one '" +
                                              std::string(kPosixUidAttribute) +
                                              "' value on the user entry '" + entry.dn +
                                              "', found " + std::to_string(n));
      inner = ldap_equality_filter(cfg_.posix_member_attribute, it->second[0]);
    } else {
      inner = "(member:1.2.840.113556.1.4.1941:=" + ldap_escape_filter_value(entry.dn) + ")";
    }
    SearchSpec s{cfg_.group_base_dn,
                 ldap_scope(cfg_.group_scope),
                 ldap_and_filter(cfg_.group_filter, inner),
                 {},
                 true,
                 static_cast<std::size_t>(cfg_.max_groups)};
    std::vector<Entry> entries;
    if (!search(s, entries)) return false;
    for (auto &e : entries)
      direct.push_back(std::move(e.dn));
  }
  const std::string source = name == "memberof" ? "memberOf" : name;
  std::vector<std::string> keys;
  for (const auto &dn : direct) {
    std::string key;
    if (!add(dn, {}, source, &key)) return false;
    keys.push_back(key);
  }
  if (!cfg_.nested || (name != "member" && name != "memberof")) return true;
  using namespace std::placeholders;
  if (name == "member")
    return expand(keys, source, std::bind(&Resolver::member_groups, this, _1, _2));
  return expand(keys, source, std::bind(&Resolver::memberof_groups, this, _1, _2));
}

// bind_by_cn: "cn:<value>" keys, refused when the CN is not unique. The one group that a
// (cn=<value>) search under groups.base_dn (with groups.filter) finds must BE the user's group:
// a same-named group elsewhere (reached through memberOf, say) would otherwise get the key. A
// group of the user's that this search does not find (outside the base, or not matching the
// filter) fails the lookup too: fail-closed, a guardrail bound to its CN must not silently drop.
bool Resolver::add_cn_keys() {
  std::map<std::string, std::vector<const GroupMembership *>> by_cn;
  for (const auto &[key, g] : groups_)
    if (auto cn = first_rdn_cn(key)) by_cn[*cn].push_back(&g);
  std::vector<GroupMembership> extra;
  for (const auto &[cn, list] : by_cn) {
    std::size_t n = list.size();
    if (n == 1) {
      SearchSpec s{cfg_.group_base_dn,
                   ldap_scope(cfg_.group_scope),
                   ldap_and_filter(cfg_.group_filter, ldap_equality_filter("cn", cn)),
                   {},
                   false,
                   0};
      std::vector<Entry> entries;
      if (!search(s, entries)) return false;
      bool mine = false;
      for (const auto &e : entries)
        mine = mine || canonical_dn(e.dn) == std::optional<std::string>(list[0]->key);
      if (entries.empty())
        return fail(LookupStatus::failed,
                    "group CN '" + cn + "' of the user's group '" + list[0]->display +
                        "' is not found under ldap.groups.base_dn '" + cfg_.group_base_dn +
                        "' (with ldap.groups.filter): a bare CN cannot name it; bind it by DN");
      n = entries.size() + (mine ? 0 : 1);
    }
    if (n > 1)
      return fail(LookupStatus::failed, "group CN '" + cn + "' is ambiguous (" + std::to_string(n) +
                                            " groups): bind it by DN");
    const GroupMembership &g = *list[0];
    extra.push_back({"cn:" + cn, g.display, g.via, "cn"});
  }
  for (auto &g : extra)
    groups_.emplace(g.key, std::move(g));
  return true;
}

UserLookup Resolver::run(const std::string &user) {
  UserLookup out;
  SearchSpec us{cfg_.user_base_dn,
                ldap_scope(cfg_.user_scope),
                ldap_and_filter(cfg_.user_filter, ldap_equality_filter(cfg_.user_attribute, user)),
                {cfg_.user_attribute},
                false,
                0};
  for (const auto &s : cfg_.group_strategies) {
    const std::string want = s == "memberof" ? cfg_.memberof_attribute
                             : s == "posix"  ? std::string(kPosixUidAttribute)
                                             : std::string();
    bool have = want.empty();
    for (const auto &a : us.attrs)
      have = have || ascii_iequal(a, want);
    if (!have) us.attrs.push_back(want);
  }
  std::vector<Entry> users;
  bool ok = search(us, users);
  if (ok && users.empty()) {
    out.status = LookupStatus::not_found;
    out.error = "no directory entry for user '" + user + "'";
    return out;
  }
  if (ok && users.size() > 1)
    ok = fail(LookupStatus::failed, std::to_string(users.size()) +
                                        " directory entries match user '" + user +
                                        "': refusing to guess");
  if (ok && !canonical_dn(users[0].dn))
    ok = fail(LookupStatus::failed, "the directory returned an empty or malformed DN '" +
                                        users[0].dn + "' for user '" + user + "'");
  if (ok) {
    // LDAP matching is looser than portcullis's names (it ignores case and collapses spaces, and
    // the attribute may have other matching rules): the entry must carry the name itself, equal
    // up to ASCII case.
    const auto it = users[0].attrs.find(lower(cfg_.user_attribute));
    bool equal = false;
    if (it != users[0].attrs.end())
      for (const auto &v : it->second)
        equal = equal || ascii_iequal(v, user);
    if (!equal) {
      out.status = LookupStatus::not_found;
      out.error = "the directory entry '" + users[0].dn + "' matched user '" + user +
                  "' but none of its '" + cfg_.user_attribute + "' values is that name";
      return out;
    }
  }
  for (std::size_t i = 0; ok && i < cfg_.group_strategies.size(); ++i)
    ok = strategy(cfg_.group_strategies[i], users[0]);
  if (ok && cfg_.bind_by_cn) ok = add_cn_keys();
  if (!ok) {
    out.status = error_.status;
    out.error = error_.message;
    return out;
  }
  out.status = LookupStatus::found;
  out.user_dn = users[0].dn;
  for (auto &[key, g] : groups_)
    out.groups.push_back(std::move(g));
  return out;
}

UserLookup error_lookup(const LdapError &e) {
  UserLookup out;
  out.status = e.status;
  out.error = e.message;
  return out;
}

} // namespace

// ---------------------------------------------------------------------------------------------
// LdapDirectory

LdapDirectory::LdapDirectory(const LdapConfig &config, std::string password)
    : config_(config), pool_(std::make_unique<LdapPool>(config, std::move(password))) {}

LdapDirectory::~LdapDirectory() = default;

std::unique_ptr<LdapDirectory> LdapDirectory::create(const LdapConfig &config, std::string &error) {
  ldap_global_init();
  struct stat st {};
  if (::stat(config.bind_password_file.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    error = "ldap.bind_password_file '" + config.bind_password_file + "' has mode " + mode +
            ": it must not be readable or writable by group or others (chmod 600 or 400)";
    return nullptr;
  }
  std::ifstream in(config.bind_password_file, std::ios::binary);
  std::string password;
  if (in.is_open())
    password.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (!in.is_open() || in.bad()) {
    error = "cannot read ldap.bind_password_file '" + config.bind_password_file + "'";
    return nullptr;
  }
  while (!password.empty() && (password.back() == '\n' || password.back() == '\r'))
    password.pop_back();
  if (password.empty()) {
    error = "ldap.bind_password_file '" + config.bind_password_file +
            "' is empty: portcullis refuses unauthenticated binds";
    return nullptr;
  }
  const std::vector<std::pair<std::string, std::string>> files = {
      {"ldap.tls.ca_file", config.ca_file},
      {"ldap.tls.client_cert", config.client_cert},
      {"ldap.tls.client_key", config.client_key}};
  for (const auto &[what, path] : files) {
    if ((what == "ldap.tls.ca_file" || !path.empty()) && !readable(path)) {
      error = "cannot read " + what + " '" + path + "'";
      return nullptr;
    }
  }
  if (config.bind_by_cn && config.group_base_dn.empty()) {
    error = "ldap.groups.bind_by_cn needs ldap.groups.base_dn (to check that CNs are unique)";
    return nullptr;
  }
  if (config.member_attributes.empty()) {
    error = "ldap.groups.member_attributes must not be empty";
    return nullptr;
  }
  auto dir = std::unique_ptr<LdapDirectory>(new LdapDirectory(config, std::move(password)));
  // Warm one connection; an unreachable directory is not a start-up error.
  LdapError e;
  const Deadline deadline(config.decision_timeout_ms);
  if (LdapLease lease(*dir->pool_, dir->pool_->acquire(deadline, false, e)); lease)
    lease.release(false);
  else
    spdlog::warn("LDAP directory not usable at start (requests will be denied until it is): {}",
                 e.message);
  return dir;
}

UserLookup LdapDirectory::lookup(const std::string &user) {
  if (const std::string problem = ldap_user_name_problem(user); !problem.empty()) {
    UserLookup out;
    out.status = LookupStatus::not_found;
    out.error = problem + " (not sent to the directory)";
    return out;
  }
  const Deadline deadline(config_.decision_timeout_ms);
  bool fresh_only = false;
  for (int attempt = 0;; ++attempt) {
    LdapError e;
    LdapLease lease(*pool_, pool_->acquire(deadline, fresh_only, e));
    if (!lease) return error_lookup(e);
    UserLookup out;
    bool broken = true;
    try {
      Resolver resolver(config_, lease.conn(), deadline);
      out = resolver.run(user);
      broken = resolver.broken();
    } catch (const std::exception &ex) { // the lease gives the connection back as broken
      return error_lookup(
          {LookupStatus::failed, std::string("LDAP lookup failed: internal error: ") + ex.what()});
    }
    const bool reused = lease.conn().reused;
    lease.release(broken);
    // A transport error on a connection that sat in the pool may just mean the server restarted:
    // searches are idempotent, so try once more on a new connection.
    if (!broken || !reused || attempt > 0 || deadline.expired()) return out;
    fresh_only = true;
  }
}

std::string LdapDirectory::describe() const {
  std::string d = "ldap " + join(config_.urls, " ") + " (user base " + config_.user_base_dn +
                  ", strategies " + join(config_.group_strategies, ",");
  if (config_.nested) d += ", nested up to " + std::to_string(config_.max_depth);
  if (config_.bind_by_cn) d += ", bind_by_cn";
  return d + ")";
}

std::optional<std::string> LdapDirectory::binding_key(const std::string &group,
                                                      std::string &error) const {
  return ldap_binding_key(group, config_.bind_by_cn, error);
}

} // namespace portcullis
