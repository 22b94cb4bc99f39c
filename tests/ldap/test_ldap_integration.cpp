// LDAP provider integration tests (the `ldap_tests` binary) against the real slapd started by
// tests/ldap/slapd.sh: `tests/ldap/slapd.sh start DIR --rogue`, then
// `PORTCULLIS_LDAP_ENV=DIR/env.json ldap_tests`. Without PORTCULLIS_LDAP_ENV it prints SKIP and
// exits 0. The later tests stop, restart and pause the harness's slapd (they run in file order);
// the size-limit test starts its own second harness.
#define DOCTEST_CONFIG_IMPLEMENT
#include "plugin/ldap.hpp"
#include "plugin/ldap_pool.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <doctest/doctest.h>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

using namespace portcullis;

namespace {

nlohmann::json g_env;

std::string env(const char *key) {
  return g_env.at(key).get<std::string>();
}

std::string harness(const std::string &args) {
  return std::string(PORTCULLIS_SOURCE_DIR) + "/tests/ldap/slapd.sh " + args;
}

int run_harness(const std::string &cmd, const std::string &dir) {
  return std::system((harness(cmd + " " + dir) + " >/dev/null 2>&1").c_str());
}

const std::string kBase = "dc=example,dc=test";
std::string group(const std::string &cn, const std::string &ou = "ou=groups") {
  return "cn=" + cn + "," + ou + "," + kBase;
}

LdapConfig base_config() {
  LdapConfig c;
  c.urls = {env("LDAPS_URL")};
  c.ca_file = env("LDAP_CA");
  c.bind_dn = env("LDAP_BIND_DN");
  c.bind_password_file = env("LDAP_BIND_PASSWORD_FILE");
  c.user_base_dn = env("LDAP_USER_BASE");
  c.group_base_dn = env("LDAP_GROUP_BASE");
  c.user_filter = "(objectClass=inetOrgPerson)";
  c.connect_timeout_ms = 1000;
  c.operation_timeout_ms = 2000;
  c.decision_timeout_ms = 2500;
  c.backoff_max_ms = 400;
  c.pool_size = 2;
  return c;
}

std::unique_ptr<LdapDirectory> make(const LdapConfig &c) {
  std::string error;
  auto d = LdapDirectory::create(c, error);
  REQUIRE_MESSAGE(d != nullptr, error);
  return d;
}

const GroupMembership *find(const UserLookup &u, const std::string &dn_or_key) {
  const std::string key = dn_or_key.rfind("cn:", 0) == 0 ? dn_or_key : *canonical_dn(dn_or_key);
  for (const auto &g : u.groups)
    if (g.key == key) return &g;
  return nullptr;
}

#define CHECK_STATUS(u, s)                                                                         \
  CHECK_MESSAGE((u).status == (s), lookup_status_name((u).status), ": ", (u).error)

std::string temp_file(const std::string &content) {
  char path[] = "/tmp/pl-ldap-pwXXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  std::ofstream(path) << content;
  return path;
}

// ldapmodify as the harness's rootdn; returns the exit status (no doctest macros: usable from a
// destructor).
int ldapmodify(const std::string &ldif) {
  char path[] = "/tmp/pl-ldap-ldifXXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) return -1;
  close(fd);
  std::ofstream(path) << ldif;
  const int rc = std::system(
      (harness("ldapmodify " + env("LDAP_DIR") + " " + path) + " >/dev/null 2>&1").c_str());
  std::remove(path);
  return rc;
}

// Changes the fixture for one test and puts it back afterwards (even when the test fails).
struct FixtureChange {
  FixtureChange(const std::string &apply, std::string undo) : undo_(std::move(undo)) {
    REQUIRE(ldapmodify(apply) == 0);
  }
  ~FixtureChange() { ldapmodify(undo_); }
  FixtureChange(const FixtureChange &) = delete;
  FixtureChange &operator=(const FixtureChange &) = delete;

private:
  std::string undo_;
};

std::string read_password(const std::string &path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

long long elapsed_ms(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               t0)
      .count();
}

} // namespace

TEST_CASE("alice is found with exactly her direct groups") {
  auto d = make(base_config());
  const UserLookup u = d->lookup("alice");
  REQUIRE_MESSAGE(u.status == LookupStatus::found, u.error);
  CHECK(*canonical_dn(u.user_dn) == "uid=alice,ou=people,dc=example,dc=test");
  CHECK(u.groups.size() == 2);
  const auto *admins = find(u, group("docker-admins"));
  REQUIRE(admins != nullptr);
  CHECK(admins->via.empty());
  CHECK(admins->source == "member");
  CHECK(find(u, group("admins")) != nullptr);
  CHECK(find(u, group("admins", "ou=finance,ou=groups")) == nullptr);
  CHECK(d->describe().find("ldaps://") != std::string::npos);
  CHECK(d->describe().find("svc-portcullis-test-pw") == std::string::npos);
}

TEST_CASE("dave's groups through three nesting levels, with the path") {
  for (const char *strategy : {"member", "memberof"}) {
    CAPTURE(strategy);
    LdapConfig c = base_config();
    c.group_strategies = {strategy};
    auto d = make(c);
    const UserLookup u = d->lookup("dave");
    REQUIRE_MESSAGE(u.status == LookupStatus::found, u.error);
    CHECK(u.groups.size() == 3);
    const auto *sre = find(u, group("sre-oncall"));
    const auto *platform = find(u, group("platform-team"));
    const auto *admins = find(u, group("docker-admins"));
    REQUIRE(sre != nullptr);
    REQUIRE(platform != nullptr);
    REQUIRE(admins != nullptr);
    CHECK(sre->via.empty());
    REQUIRE(platform->via.size() == 1);
    CHECK(*canonical_dn(platform->via[0]) == group("sre-oncall"));
    REQUIRE(admins->via.size() == 2);
    CHECK(*canonical_dn(admins->via[0]) == group("sre-oncall"));
    CHECK(*canonical_dn(admins->via[1]) == group("platform-team"));
    CHECK(admins->source == (std::string(strategy) == "member" ? "member" : "memberOf"));
  }
}

TEST_CASE("nesting: disabled gives direct groups only; a cycle terminates; too deep fails") {
  LdapConfig c = base_config();
  c.nested = false;
  UserLookup u = make(c)->lookup("dave");
  REQUIRE_MESSAGE(u.status == LookupStatus::found, u.error);
  CHECK(u.groups.size() == 1);

  u = make(base_config())->lookup("frank");
  REQUIRE_MESSAGE(u.status == LookupStatus::found, u.error);
  CHECK(u.groups.size() == 2);
  REQUIRE(find(u, group("loop-b")) != nullptr);
  CHECK(find(u, group("loop-b"))->via.size() == 1);

  c = base_config();
  c.max_depth = 2;
  u = make(c)->lookup("dave");
  CHECK_STATUS(u, LookupStatus::failed);
  CHECK(u.error.find("nesting deeper than 2") != std::string::npos);
  CHECK(u.groups.empty());
  c.max_depth = 3;
  CHECK_STATUS(make(c)->lookup("dave"), LookupStatus::found);

  c = base_config();
  c.max_groups = 2;
  u = make(c)->lookup("dave");
  CHECK_STATUS(u, LookupStatus::failed);
  CHECK(u.error.find("more than 2 groups") != std::string::npos);
}

TEST_CASE("filter metacharacters match nothing; the literal metacharacter user matches exactly") {
  LdapConfig c = base_config();
  c.group_strategies = {"member", "posix"};
  auto d = make(c);
  for (const char *name : {"*", "*)(uid=*", "\\", "(", "alice)(uid=*", "*alice*", "al*"}) {
    CAPTURE(name);
    CHECK_STATUS(d->lookup(name), LookupStatus::not_found);
  }
  const UserLookup u = d->lookup("star*(paren)\\back");
  REQUIRE_MESSAGE(u.status == LookupStatus::found, u.error);
  CHECK(*canonical_dn(u.user_dn) == "uid=star*(paren)\\5cback,ou=people,dc=example,dc=test");
  CHECK(u.groups.size() == 2);
  CHECK(find(u, group("quirky")) != nullptr); // member search with the escaped DN
  REQUIRE(find(u, group("devs")) != nullptr); // posix with the escaped name
  CHECK(find(u, group("devs"))->source == "posix");
}

TEST_CASE("names that cannot be users are refused without a search") {
  auto d = make(base_config());
  for (const std::string &name :
       {std::string(), std::string("alice\0", 6), std::string(" alice"), std::string("alice "),
        std::string("al\nice"), std::string(300, 'a')}) {
    const UserLookup u = d->lookup(name);
    CHECK_STATUS(u, LookupStatus::not_found);
    CHECK(u.error.find("not sent to the directory") != std::string::npos);
  }
}

TEST_CASE("a duplicated uid is refused, never guessed") {
  const UserLookup u = make(base_config())->lookup("dup");
  CHECK_STATUS(u, LookupStatus::failed);
  CHECK(u.error.find("2 directory entries match user 'dup'") != std::string::npos);
  CHECK(u.groups.empty());
  CHECK(u.user_dn.empty());
}

TEST_CASE("posix groups, groupOfUniqueNames, and strategies merged") {
  LdapConfig c = base_config();
  c.group_strategies = {"posix"};
  UserLookup u = make(c)->lookup("bob");
  REQUIRE_MESSAGE(u.status == LookupStatus::found, u.error);
  REQUIRE(u.groups.size() == 1);
  CHECK(u.groups[0].key == group("devs"));

  u = make(base_config())->lookup("carol"); // member + uniqueMember
  REQUIRE_MESSAGE(u.status == LookupStatus::found, u.error);
  CHECK(find(u, group("legacy-ops")) != nullptr);
  CHECK(find(u, group("docker-users")) != nullptr);
  CHECK(find(u, group("admins", "ou=finance,ou=groups")) != nullptr);
  CHECK(u.groups.size() == 3);

  c.group_strategies = {"member", "posix", "memberof"};
  u = make(c)->lookup("bob");
  REQUIRE_MESSAGE(u.status == LookupStatus::found, u.error);
  // platform-team, docker-admins (nested), legacy-ops, devs
  CHECK(u.groups.size() == 4);
  CHECK(find(u, group("devs")) != nullptr);
  CHECK(find(u, group("legacy-ops")) != nullptr);
  CHECK(find(u, group("docker-admins")) != nullptr);
}

TEST_CASE("CN collision: binding by DN distinguishes the two 'admins' groups") {
  auto d = make(base_config());
  std::string error;
  const auto key_groups = d->binding_key("CN=Admins, OU=Groups, DC=Example, DC=Test", error);
  const auto key_finance = d->binding_key(group("admins", "ou=finance,ou=groups"), error);
  REQUIRE(key_groups);
  REQUIRE(key_finance);
  CHECK(*key_groups != *key_finance);
  const UserLookup alice = d->lookup("alice");
  const UserLookup carol = d->lookup("carol");
  REQUIRE(alice.status == LookupStatus::found);
  REQUIRE(carol.status == LookupStatus::found);
  CHECK(find(alice, *key_groups) != nullptr);
  CHECK(find(alice, *key_finance) == nullptr);
  CHECK(find(carol, *key_finance) != nullptr);
  CHECK(find(carol, *key_groups) == nullptr);
  CHECK_FALSE(d->binding_key("admins", error));
  CHECK(error.find("bind_by_cn") != std::string::npos);
}

TEST_CASE("bind_by_cn: unique CNs get cn: keys, the ambiguous 'admins' fails the lookup") {
  LdapConfig c = base_config();
  c.bind_by_cn = true;
  auto d = make(c);
  const UserLookup dave = d->lookup("dave");
  REQUIRE_MESSAGE(dave.status == LookupStatus::found, dave.error);
  CHECK(find(dave, "cn:docker-admins") != nullptr);
  CHECK(find(dave, "cn:sre-oncall") != nullptr);
  CHECK(find(dave, group("docker-admins")) != nullptr);
  std::string error;
  CHECK(d->binding_key("Docker-Admins", error) == std::optional<std::string>("cn:docker-admins"));
  const UserLookup alice = d->lookup("alice");
  CHECK_STATUS(alice, LookupStatus::failed);
  CHECK(alice.error.find("group CN 'admins' is ambiguous (2 groups): bind it by DN") !=
        std::string::npos);
}

TEST_CASE("bind_by_cn: a same-named group outside groups.base_dn never gets the cn: key") {
  // Review finding: erin, in cn=docker-admins,ou=services (outside ou=groups), was given
  // cn:docker-admins because the only (cn=docker-admins) under ou=groups was counted, not compared.
  FixtureChange change("dn: cn=docker-admins,ou=services," + kBase +
                           "\nchangetype: add\nobjectClass: groupOfNames\ncn: docker-admins\n"
                           "member: uid=erin,ou=contractors,ou=people," +
                           kBase + "\n\ndn: cn=svc-only,ou=services," + kBase +
                           "\nchangetype: add\nobjectClass: groupOfNames\ncn: svc-only\n"
                           "member: uid=frank,ou=contractors,ou=people," +
                           kBase + "\n",
                       "dn: cn=docker-admins,ou=services," + kBase +
                           "\nchangetype: delete\n\ndn: cn=svc-only,ou=services," + kBase +
                           "\nchangetype: delete\n");
  LdapConfig c = base_config();
  c.group_strategies = {"memberof"};
  UserLookup erin = make(c)->lookup("erin");
  REQUIRE_MESSAGE(erin.status == LookupStatus::found, erin.error); // by DN: fine
  CHECK(find(erin, "cn=docker-admins,ou=services," + kBase) != nullptr);
  CHECK(find(erin, group("docker-admins")) == nullptr);

  c.bind_by_cn = true;
  auto d = make(c);
  erin = d->lookup("erin");
  CHECK_STATUS(erin, LookupStatus::failed);
  CHECK(erin.error.find("group CN 'docker-admins' is ambiguous (2 groups): bind it by DN") !=
        std::string::npos);
  CHECK(find(erin, "cn:docker-admins") == nullptr);
  CHECK(erin.groups.empty());
  // A unique CN outside the base: no search under the base can vouch for it -> failed.
  const UserLookup frank = d->lookup("frank");
  CHECK_STATUS(frank, LookupStatus::failed);
  CHECK(frank.error.find("group CN 'svc-only'") != std::string::npos);
  CHECK(frank.error.find("not found under ldap.groups.base_dn") != std::string::npos);
  // Groups under the base with unique CNs still get their keys.
  const UserLookup dave = d->lookup("dave");
  REQUIRE_MESSAGE(dave.status == LookupStatus::found, dave.error);
  CHECK(find(dave, "cn:docker-admins") != nullptr);
}

TEST_CASE("posix matches memberUid with the entry's own uid, not the requested name") {
  // mallory's cn is "bob": with user.attribute cn, "bob" finds mallory, and memberUid=bob (the
  // real bob's posix group 'devs') must not be granted to her.
  FixtureChange change(
      "dn: uid=mallory,ou=people," + kBase +
          "\nchangetype: add\nobjectClass: inetOrgPerson\nuid: mallory\ncn: "
          "bob\nsn: M\n\ndn: cn=nouid,ou=people," +
          kBase + "\nchangetype: add\nobjectClass: inetOrgPerson\ncn: nouid\nsn: N\n",
      "dn: uid=mallory,ou=people," + kBase + "\nchangetype: delete\n\ndn: cn=nouid,ou=people," +
          kBase + "\nchangetype: delete\n");
  LdapConfig c = base_config();
  c.user_attribute = "cn";
  c.group_strategies = {"posix"};
  auto d = make(c);
  UserLookup u = d->lookup("bob");
  REQUIRE_MESSAGE(u.status == LookupStatus::found, u.error);
  CHECK(*canonical_dn(u.user_dn) == "uid=mallory,ou=people," + kBase);
  CHECK(find(u, group("devs")) == nullptr);
  CHECK(u.groups.empty());
  u = d->lookup("Bob Brown"); // the real bob, by cn: his uid 'bob' is in devs
  REQUIRE_MESSAGE(u.status == LookupStatus::found, u.error);
  CHECK(find(u, group("devs")) != nullptr);
  // no uid on the entry / two uids: failed (only when the posix strategy is on)
  u = d->lookup("nouid");
  CHECK_STATUS(u, LookupStatus::failed);
  CHECK(u.error.find("exactly one 'uid' value") != std::string::npos);
  REQUIRE(ldapmodify("dn: uid=mallory,ou=people," + kBase +
                     "\nchangetype: modify\nadd: uid\nuid: mallory2\n-\n") == 0);
  u = d->lookup("bob");
  CHECK_STATUS(u, LookupStatus::failed);
  CHECK(u.error.find("found 2") != std::string::npos);
  c.group_strategies = {"member"};
  CHECK_STATUS(make(c)->lookup("nouid"), LookupStatus::found);
}

TEST_CASE("the entry must carry the requested name itself (ASCII case-insensitive)") {
  UserLookup u = make(base_config())->lookup("ALICE");
  REQUIRE_MESSAGE(u.status == LookupStatus::found, u.error);
  CHECK(*canonical_dn(u.user_dn) == "uid=alice,ou=people," + kBase);
  LdapConfig c = base_config();
  c.user_attribute = "cn";
  auto d = make(c);
  CHECK_STATUS(d->lookup("alice anders"), LookupStatus::found);
  // LDAP's caseIgnoreMatch collapses inner spaces: the server matches, portcullis does not.
  u = d->lookup("Alice  Anders");
  CHECK_STATUS(u, LookupStatus::not_found);
  CHECK(u.error.find("none of its 'cn' values is that name") != std::string::npos);
  CHECK(u.user_dn.empty());
  CHECK(u.groups.empty());
}

TEST_CASE("a search continuation reference (referral object) fails the lookup") {
  FixtureChange change("dn: ou=elsewhere,ou=groups," + kBase +
                           "\nchangetype: add\nobjectClass: referral\nobjectClass: "
                           "extensibleObject\nou: elsewhere\nref: ldap://127.0.0.1:1/ou=x\n",
                       "dn: ou=elsewhere,ou=groups," + kBase +
                           "\ncontrol: 2.16.840.1.113730.3.4.2\nchangetype: delete\n");
  const UserLookup u = make(base_config())->lookup("alice"); // member search under ou=groups
  CHECK_STATUS(u, LookupStatus::failed);
  CHECK(u.error.find("returned a referral (search continuation reference") != std::string::npos);
  CHECK(u.error.find("ldap://127.0.0.1:1/ou=x") != std::string::npos);
  CHECK(u.groups.empty());
}

TEST_CASE("memberOf with attribute options (AD range retrieval) or an unreadable parent fails") {
  // slapd returns subtypes with options for a requested attribute: description;lang-en stands in
  // for AD's memberOf;range=0-1499.
  FixtureChange change(
      "dn: uid=carol,ou=people," + kBase +
          "\nchangetype: modify\nadd: description;lang-en\ndescription;lang-en: " +
          group("docker-admins") + "\n-\n\ndn: uid=bob,ou=people," + kBase +
          "\nchangetype: modify\nadd: description\ndescription: " + group("ghost") + "\n-\n",
      "dn: uid=carol,ou=people," + kBase +
          "\nchangetype: modify\ndelete: description;lang-en\n-\n\ndn: "
          "uid=bob,ou=people," +
          kBase + "\nchangetype: modify\ndelete: description\n-\n");
  LdapConfig c = base_config();
  c.group_strategies = {"memberof"};
  c.memberof_attribute = "description";
  auto d = make(c);
  UserLookup u = d->lookup("carol");
  CHECK_STATUS(u, LookupStatus::failed);
  CHECK(u.error.find("description;lang-en") != std::string::npos);
  CHECK(u.groups.empty());
  u = d->lookup("bob"); // names a group that does not exist: its parents are unknown
  CHECK_STATUS(u, LookupStatus::failed);
  CHECK(u.groups.empty());
  CHECK_STATUS(d->lookup("alice"), LookupStatus::found); // no description: no groups, found
}

TEST_CASE("a pooled handle never opens a second connection (no silent reconnect, no chase)") {
  // libldap opens connections by itself: a lost default connection is reopened on the next
  // request (ldap_open_defconn), and a chased referral opens another one - both without StartTLS
  // and without the bind. The pool's connect callback refuses every connection attempt after the
  // connect phase. Proven here with a referral chase, the one way to make libldap 2.5 open a
  // connection on demand: the referral points back at the same server (plain ldap:// on another
  // address), whose log must show no new connection.
  const std::string other = env("LDAP_SAN_MISMATCH_URL"); // same server, another address
  FixtureChange change("dn: ou=elsewhere,ou=groups," + kBase +
                           "\nchangetype: add\nobjectClass: referral\nobjectClass: "
                           "extensibleObject\nou: elsewhere\nref: " +
                           other + "/ou=people," + kBase + "\n",
                       "dn: ou=elsewhere,ou=groups," + kBase +
                           "\ncontrol: 2.16.840.1.113730.3.4.2\nchangetype: delete\n");
  // Operations (a bind, a search) that reached the server on connections accepted on the
  // referral's address. The TCP connect itself happens before the callback can refuse it.
  auto chased_ops = [] {
    std::ifstream log(env("SLAPD_LOG"));
    std::string line;
    std::set<std::string> open; // "conn=N " accepted on 127.0.0.2 and not yet closed
    int n = 0;
    while (std::getline(log, line)) {
      const auto at = line.find(" conn=");
      if (at == std::string::npos) continue;
      const std::string conn = line.substr(at + 1, line.find(' ', at + 1) - at);
      if (line.find(" ACCEPT from ") != std::string::npos)
        line.find("(IP=127.0.0.2:") != std::string::npos ? (void)open.insert(conn)
                                                         : (void)open.erase(conn);
      else if (line.find(" closed") != std::string::npos)
        open.erase(conn);
      else if (open.count(conn) != 0 && line.find(" op=") != std::string::npos)
        ++n;
    }
    return n;
  };
  for (const bool starttls : {true, false}) {
    CAPTURE(starttls);
    LdapConfig c = base_config();
    if (starttls) {
      c.urls = {env("LDAP_URL")};
      c.starttls = true;
    }
    LdapPool pool(c, read_password(c.bind_password_file));
    LdapError e;
    auto conn = pool.acquire(Deadline(2000), false, e);
    REQUIRE_MESSAGE(conn != nullptr, e.message);
    REQUIRE(ldap_set_option(conn->ld, LDAP_OPT_REFERRALS, LDAP_OPT_ON) == LDAP_OPT_SUCCESS);
    std::this_thread::sleep_for(std::chrono::milliseconds(200)); // slapd writes its log
    const int before = chased_ops();
    char one_one[] = "1.1";
    char *attrs[] = {one_one, nullptr};
    timeval tv{2, 0};
    LDAPMessage *res = nullptr;
    const int rc =
        ldap_search_ext_s(conn->ld, ("ou=elsewhere,ou=groups," + kBase).c_str(), LDAP_SCOPE_BASE,
                          "(objectClass=*)", attrs, 0, nullptr, nullptr, &tv, 0, &res);
    if (res != nullptr) ldap_msgfree(res);
    CHECK(rc != LDAP_SUCCESS);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    CHECK(chased_ops() == before);
    pool.release(std::move(conn), true);
  }
}

TEST_CASE("a lease gives its pool slot back when the lookup throws") {
  LdapConfig c = base_config();
  c.pool_size = 1;
  LdapPool pool(c, read_password(c.bind_password_file));
  for (int i = 0; i < 3; ++i) {
    try {
      LdapError e;
      LdapLease lease(pool, pool.acquire(Deadline(2000), false, e));
      REQUIRE_MESSAGE(lease, e.message);
      throw std::runtime_error("simulated failure inside a lookup");
    } catch (const std::runtime_error &) {}
  }
  LdapError e;
  const auto t0 = std::chrono::steady_clock::now();
  LdapLease lease(pool, pool.acquire(Deadline(500), false, e));
  CHECK_MESSAGE(lease, e.message); // not "all 1 LDAP connections stayed busy"
  CHECK(elapsed_ms(t0) < 400);
}

TEST_CASE("ad_in_chain against OpenLDAP never yields a partial success") {
  LdapConfig c = base_config();
  c.group_strategies = {"ad_in_chain"};
  const UserLookup u = make(c)->lookup("dave");
  // slapd does not know the matching rule: either an error, or an answer without groups.
  CHECK(u.status != LookupStatus::unreachable);
  CHECK(u.groups.empty());
  MESSAGE("ad_in_chain on slapd: ", lookup_status_name(u.status), " ", u.error);
}

TEST_CASE("StartTLS with the right CA works; rogue servers are refused, never downgraded") {
  LdapConfig c = base_config();
  c.urls = {env("LDAP_URL")};
  c.starttls = true;
  CHECK_STATUS(make(c)->lookup("alice"), LookupStatus::found);

  // LDAPTLS_REQCERT=never and LDAPTLS_CACERT=<rogue CA> are set in this process (see main):
  // LDAPNOINIT must make libldap ignore them.
  for (const bool starttls : {false, true}) {
    CAPTURE(starttls);
    c.starttls = starttls;
    c.urls = {env(starttls ? "ROGUE_LDAP_URL" : "ROGUE_LDAPS_URL")};
    const UserLookup u = make(c)->lookup("alice");
    CHECK_STATUS(u, LookupStatus::failed);
    CHECK(u.error.find("could not be verified") != std::string::npos);
  }
  // No bind (hence no password) ever reached the rogue server.
  std::ifstream rogue_log(env("ROGUE_SLAPD_LOG"));
  const std::string log((std::istreambuf_iterator<char>(rogue_log)),
                        std::istreambuf_iterator<char>());
  CHECK(log.find("BIND dn=\"" + env("LDAP_BIND_DN")) == std::string::npos);
  // certificate valid but for another address (SAN mismatch)
  c.starttls = false;
  c.urls = {env("LDAPS_SAN_MISMATCH_URL")};
  CHECK_STATUS(make(c)->lookup("alice"), LookupStatus::failed);
  // the rogue CA as our CA: the real server is refused too
  c = base_config();
  c.ca_file = env("LDAP_ROGUE_CA");
  CHECK_STATUS(make(c)->lookup("alice"), LookupStatus::failed);
}

TEST_CASE("client certificate and cipher suite options are accepted") {
  LdapConfig c = base_config();
  c.client_cert = env("LDAP_CLIENT_CERT");
  c.client_key = env("LDAP_CLIENT_KEY");
  c.tls_cipher_suite = "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2";
  CHECK_STATUS(make(c)->lookup("alice"), LookupStatus::found);
}

TEST_CASE("create: password file and certificate checks") {
  LdapConfig c = base_config();
  std::string error;
  const std::string empty = temp_file("");
  c.bind_password_file = empty;
  CHECK(LdapDirectory::create(c, error) == nullptr);
  CHECK(error.find("is empty: portcullis refuses unauthenticated binds") != std::string::npos);
  const std::string newline = temp_file("\n");
  c.bind_password_file = newline;
  CHECK(LdapDirectory::create(c, error) == nullptr);
  c.bind_password_file = "/nonexistent/pw";
  CHECK(LdapDirectory::create(c, error) == nullptr);
  CHECK(error.find("cannot read") != std::string::npos);
  const std::string wrong = temp_file("wrong-password\n");
  c.bind_password_file = wrong;
  auto d = LdapDirectory::create(c, error); // starts, but lookups fail (bad credentials)
  REQUIRE(d != nullptr);
  const UserLookup u = d->lookup("alice");
  CHECK_STATUS(u, LookupStatus::failed);
  CHECK(u.error.find("wrong-password") == std::string::npos);
  c = base_config();
  c.ca_file = "/nonexistent/ca.pem";
  CHECK(LdapDirectory::create(c, error) == nullptr);
  c = base_config();
  const std::string shared = temp_file(read_password(c.bind_password_file));
  REQUIRE(::chmod(shared.c_str(), 0640) == 0);
  c.bind_password_file = shared;
  CHECK(LdapDirectory::create(c, error) == nullptr);
  CHECK(error.find("has mode 0640") != std::string::npos);
  REQUIRE(::chmod(shared.c_str(), 0400) == 0);
  CHECK(LdapDirectory::create(c, error) != nullptr);
  std::remove(shared.c_str());
  std::remove(empty.c_str());
  std::remove(newline.c_str());
  std::remove(wrong.c_str());
}

TEST_CASE("an unreachable directory at start: create succeeds, lookups are unreachable") {
  LdapConfig c = base_config();
  c.urls = {"ldaps://127.0.0.1:1"};
  auto d = make(c);
  const auto t0 = std::chrono::steady_clock::now();
  const UserLookup u = d->lookup("alice");
  CHECK_STATUS(u, LookupStatus::unreachable);
  CHECK(u.error.find("unreachable") != std::string::npos);
  CHECK(elapsed_ms(t0) < 1000); // in backoff after create's attempt: fails fast
}

TEST_CASE("concurrent lookups share the pool") {
  auto d = make(base_config());
  std::vector<std::thread> threads;
  std::atomic<int> found{0};
  for (int i = 0; i < 6; ++i)
    threads.emplace_back([&] {
      for (int j = 0; j < 5; ++j)
        if (d->lookup(j % 2 ? "dave" : "alice").status == LookupStatus::found) ++found;
    });
  for (auto &t : threads)
    t.join();
  CHECK(found == 30);
}

TEST_CASE("slapd stopped: unreachable quickly; restarted: recovers with the same directory") {
  const std::string dir = env("LDAP_DIR");
  LdapConfig c = base_config();
  auto d = make(c);
  REQUIRE(d->lookup("alice").status == LookupStatus::found);
  REQUIRE(run_harness("stop", dir) == 0);
  auto t0 = std::chrono::steady_clock::now();
  UserLookup u = d->lookup("alice");
  CHECK_STATUS(u, LookupStatus::unreachable);
  CHECK(u.error.find("directory unreachable") != std::string::npos);
  CHECK(elapsed_ms(t0) < c.decision_timeout_ms + 500);
  t0 = std::chrono::steady_clock::now();
  CHECK_STATUS(d->lookup("alice"), LookupStatus::unreachable);
  CHECK(elapsed_ms(t0) < c.decision_timeout_ms + 500);

  REQUIRE(run_harness("restart", dir) == 0);
  bool recovered = false;
  for (int i = 0; i < 50 && !recovered; ++i) {
    recovered = d->lookup("alice").status == LookupStatus::found;
    if (!recovered) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK(recovered);
}

TEST_CASE("slapd paused (SIGSTOP): unreachable within the decision timeout") {
  const std::string dir = env("LDAP_DIR");
  for (const bool starttls : {false, true}) {
    CAPTURE(starttls);
    LdapConfig c = base_config();
    if (starttls) {
      c.urls = {env("LDAP_URL")};
      c.starttls = true;
    }
    auto d = make(c); // one pooled connection
    REQUIRE(d->lookup("alice").status == LookupStatus::found);
    REQUIRE(run_harness("pause", dir) == 0);
    for (int i = 0; i < 2; ++i) { // pooled connection, then a new one (TLS handshake hangs)
      const auto t0 = std::chrono::steady_clock::now();
      const UserLookup u = d->lookup("dave");
      CHECK_STATUS(u, LookupStatus::unreachable);
      CHECK(elapsed_ms(t0) < c.decision_timeout_ms + 500);
    }
    const auto t0 = std::chrono::steady_clock::now();
    std::string error;
    auto fresh = LdapDirectory::create(c, error); // start-up while frozen: bounded too
    CHECK(fresh != nullptr);
    CHECK(elapsed_ms(t0) < c.decision_timeout_ms + 500);
    REQUIRE(run_harness("resume", dir) == 0);
    bool recovered = false;
    for (int i = 0; i < 50 && !recovered; ++i) {
      recovered = d->lookup("alice").status == LookupStatus::found;
      if (!recovered) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    CHECK(recovered);
  }
}

TEST_CASE("a server size limit below the group count fails the lookup (own harness)") {
  char tmpl[] = "/tmp/pl-szXXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  const std::string dir = tmpl;
  REQUIRE(std::system((harness("start " + dir + " --sizelimit 5") + " >/dev/null 2>&1").c_str()) ==
          0);
  std::ifstream in(dir + "/env.json");
  const nlohmann::json e = nlohmann::json::parse(in);
  LdapConfig c = base_config();
  c.urls = {e.at("LDAPS_URL").get<std::string>()};
  c.ca_file = e.at("LDAP_CA").get<std::string>();
  c.bind_password_file = e.at("LDAP_BIND_PASSWORD_FILE").get<std::string>();
  auto d = make(c);
  const UserLookup grace = d->lookup("grace"); // in 8 groups
  CHECK_STATUS(grace, LookupStatus::failed);
  CHECK(grace.error.find("limit") != std::string::npos);
  CHECK(grace.groups.empty());
  CHECK_STATUS(d->lookup("alice"), LookupStatus::found); // 2 groups: under the limit
  run_harness("cleanup", dir);
}

int main(int argc, char **argv) {
  const char *path = std::getenv("PORTCULLIS_LDAP_ENV");
  if (path == nullptr || *path == '\0') {
    std::printf("SKIP: ldap_tests needs a running harness: tests/ldap/slapd.sh start DIR --rogue, "
                "then PORTCULLIS_LDAP_ENV=DIR/env.json\n");
    return 0;
  }
  std::ifstream in(path);
  g_env = nlohmann::json::parse(in, nullptr, false);
  if (g_env.is_discarded() || !g_env.is_object()) {
    std::fprintf(stderr, "cannot read %s\n", path);
    return 1;
  }
  if (g_env.value("LDAP_ROGUE", "") != "1") {
    std::fprintf(stderr, "the harness must be started with --rogue\n");
    return 1;
  }
  // Ambient libldap configuration that would weaken TLS if it were read (LDAPNOINIT proves not).
  ::setenv("LDAPTLS_REQCERT", "never", 1);
  ::setenv("LDAPTLS_CACERT", g_env.at("LDAP_ROGUE_CA").get<std::string>().c_str(), 1);
  ldap_global_init();
  doctest::Context ctx(argc, argv);
  return ctx.run();
}
