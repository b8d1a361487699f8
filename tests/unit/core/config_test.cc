// Config loading: the shipped example is valid, and broken configs get errors that name
// FILE:LINE:COL and the fix.
#include "core/config.h"
#include "features/registry.h"
#include "features/channels/channels_config.h"
#include "features/offline/offline_config.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>

#include "core/http.h"
#include "temp_dir.h"

namespace portrait {
namespace {

constexpr const char* kBase = R"(
[events.click.props]
item_id = "int"
[tags.clicks]
type = "list"
size_limit = 10
sort_by = "et"
dedup_by = ["item_id", "et"]
)";

Status Parse(const std::string& extra) { return ParseConfig(std::string(kBase) + extra, "t.toml").status(); }

TEST(ConfigTest, ExampleConfigLoads) {
  auto cfg = LoadConfig(std::string(PORTRAIT_SOURCE_DIR) + "/examples/portrait.toml");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  const TagConfig* clicks = cfg->tags.Find("clicks");
  ASSERT_NE(clicks, nullptr);
  EXPECT_EQ(clicks->size_limit, 1000u);
  EXPECT_EQ(clicks->sort_by, "et");
  EXPECT_EQ(clicks->dedup_by, (std::vector<std::string>{"item_id", "et"}));
  EXPECT_FALSE(cfg->rules.empty());
  EXPECT_EQ(cfg->log.fsync, FsyncPolicy::kBatch);
}

TEST(ConfigTest, OfflineTagsBatchAndLazyLoad) {
  auto cfg = ParseConfig(std::string(kBase) + R"(
[events.APPSTART]
[tags.clicks.offline]
window = "30d"
[tags.best]
type = "number"
offline = { load = "number.max" }
[[rules]]
on = "click"
tag = "best"
op = "number.max"
value = "$props.item_id"
layer = "offline"
[batch]
at = "02:30"
keep = 5
[lazy_load]
triggers = ["APPSTART"]
)", "t.toml");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  const TagConfig* clicks = cfg->tags.Find("clicks");
  EXPECT_TRUE(clicks->offline);
  EXPECT_EQ(clicks->offline_window_ms, 30LL * 86'400'000);
  EXPECT_EQ(clicks->load, OpCode::kListRpushl);
  EXPECT_EQ(cfg->tags.Find("best")->load, OpCode::kNumberMax);
  EXPECT_FALSE(cfg->rules[0].realtime);
  EXPECT_TRUE(cfg->rules[0].offline);
  EXPECT_EQ(cfg->section<BatchConfig>().at, "02:30");
  EXPECT_EQ(cfg->section<BatchConfig>().keep, 5);
  EXPECT_EQ(cfg->section<LazyLoadConfig>().triggers, (std::vector<std::string>{"APPSTART"}));
}

TEST(ConfigTest, BadOfflineSettingsAreNamed) {
  Status st = ParseConfig(std::string(kBase) + R"(
[tags.clicks.offline]
load = "number.incr"
[tags.n]
type = "number"
[[rules]]
on = "click"
tag = "n"
op = "number.incr"
value = 1
layer = "offline"
[batch]
at = "25:00"
[lazy_load]
triggers = ["nosuch"]
)", "t.toml").status();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("tag \"clicks\": offline: load \"number.incr\" cannot load a list tag; use list.rpushl"),
            std::string::npos) << st.message();
  EXPECT_NE(st.message().find("an offline rule needs its tag computed offline"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("[batch]: at must be a time of day \"HH:MM\""), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("[lazy_load]: triggers[0] must name a declared event type"), std::string::npos)
      << st.message();
}

TEST(ConfigTest, ChannelsSection) {
  auto cfg = ParseConfig(std::string(kBase) + "[channels]\ndefault_product = \"app\"\ncalibrate_at = \"03:30\"\nfilter_mb = 64\n", "t.toml");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_TRUE(cfg->section<ChannelsConfig>().enabled);
  EXPECT_EQ(cfg->section<ChannelsConfig>().default_product, "app");
  EXPECT_EQ(cfg->section<ChannelsConfig>().calibrate_at, "03:30");
  EXPECT_EQ(cfg->section<ChannelsConfig>().filter_mb, 64u);
  Status bad = Parse("[channels]\ncalibrate_at = \"25:00\"\n");
  EXPECT_NE(bad.message().find("t.toml:10:16: [channels]: calibrate_at must be a time of day"), std::string::npos)
      << bad.message();
  bad = Parse("[channels]\ndefault_product = \"\"\n");
  EXPECT_NE(bad.message().find("default_product must not be empty"), std::string::npos) << bad.message();
  bad = Parse("[channels]\nfilter = 3\n");
  EXPECT_NE(bad.message().find("filter"), std::string::npos) << bad.message();
  EXPECT_NE(bad.message().find("filter_mb"), std::string::npos) << bad.message();
}

TEST(ConfigTest, SyntaxErrorNamesPosition) {
  Status st = ParseConfig("[server]\nlisten = \n", "bad.toml").status();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message().rfind("bad.toml:2:", 0), 0u) << st.message();
}

TEST(ConfigTest, UnknownKeyIsNamedWithKnownKeys) {
  Status st = Parse("[server]\nlisen = \"1:2\"\n");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("t.toml:10:1: [server]: unknown key \"lisen\"; known keys are: listen"), std::string::npos)
      << st.message();
}

TEST(ConfigTest, BadListSettings) {
  Status st = ParseConfig(R"(
[events.e]
[tags.l]
type = "list"
size_limit = 0
order = "sideways"
)", "t.toml").status();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("t.toml:5:14: tag \"l\": \"size_limit\" must be between 1"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("order must be \"asc\" or \"desc\""), std::string::npos);
}

TEST(ConfigTest, RuleProblemsAreAllReported) {
  Status st = Parse(R"(
[[rules]]
on = "view"
tag = "clicks"
op = "list.rpush"
value = { item_id = "$props.item_id" }

[[rules]]
on = "click"
tag = "clicks"
op = "number.incr"
value = 1

[[rules]]
on = "click"
tag = "nope"
op = "string.set"
value = "x"

[[rules]]
on = "click"
tag = "clicks"
op = "list.rpush"
value = { item_id = "$props.itemid", et = "$ts" }
)");
  ASSERT_FALSE(st.ok());
  const std::string& m = st.message();
  EXPECT_NE(m.find("event type \"view\" is not declared"), std::string::npos) << m;
  EXPECT_NE(m.find("the item lacks the tag's sort_by field \"et\""), std::string::npos) << m;
  EXPECT_NE(m.find("operator number.incr is not allowed on list tag \"clicks\""), std::string::npos) << m;
  EXPECT_NE(m.find("tag \"nope\" is not declared"), std::string::npos) << m;
  EXPECT_NE(m.find("reads $props.itemid, which event type \"click\" does not declare"), std::string::npos) << m;
}

TEST(ConfigTest, UnknownFieldReferenceInTemplate) {
  Status st = Parse("[[rules]]\non = \"click\"\ntag = \"clicks\"\nop = \"list.rpush\"\nvalue = { item_id = \"$item\", et = \"$ts\" }\n");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("unknown field \"$item\""), std::string::npos) << st.message();
}

TEST(ConfigTest, DurationsAndFsync) {
  auto cfg = ParseConfig(std::string(kBase) + "[tags.s]\ntype = \"string\"\nttl = \"7d\"\n[log]\nfsync = \"always\"\n", "t");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(cfg->tags.Find("s")->ttl_ms, 7 * 86'400'000LL);
  EXPECT_EQ(cfg->log.fsync, FsyncPolicy::kAlways);
  EXPECT_EQ(ParseDurationMs("250ms"), 250);
  EXPECT_EQ(ParseDurationMs("3x"), std::nullopt);
  Status st = ParseConfig(std::string(kBase) + "[log]\nfsync = \"sometimes\"\n", "t").status();
  EXPECT_NE(st.message().find("fsync must be \"always\", \"batch\" or \"none\""), std::string::npos);
}

TEST(ConfigTest, NoEventTypes) {
  Status st = ParseConfig("", "empty.toml").status();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("no event types declared"), std::string::npos);
}

}  // namespace
}  // namespace portrait

namespace portrait {
namespace {

TEST(ConfigTest, KafkaRetryAndRoutesAreCheckedWithTheFix) {
  std::string msg = Parse("[log]\nbackend = \"kafka\"\n").message();
  EXPECT_NE(msg.find("backend \"kafka\" needs [log.kafka] brokers"), std::string::npos) << msg;
  msg = Parse("[log]\nbackend = \"kafka\"\nkafka = { brokers = \"h:1\", bogus = 1 }\n[archive]\nenabled = true\n").message();
  EXPECT_NE(msg.find("[log.kafka]: unknown key \"bogus\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("[archive] with [log] backend = \"kafka\" needs dir"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[store] backend = \"rocksdb\" cannot serve [log] backend = \"kafka\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("use backend = \"redis\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("[privacy] erasure_list = \"...\" must be set with [log] backend = \"kafka\""), std::string::npos) << msg;
  // What several processes can share is accepted.
  EXPECT_TRUE(Parse("[log]\nbackend = \"kafka\"\nkafka = { brokers = \"h:1\" }\n[store]\nbackend = \"redis\"\n"
                    "url = \"redis://h:2\"\n[archive]\nenabled = true\ndir = \"/mnt/shared/archive\"\n"
                    "[privacy]\nerasure_list = \"/mnt/shared/erasures.list\"\n[batch]\nsnapshot_dir = \"/mnt/shared/snapshots\"\n")
                  .ok());
  EXPECT_NE(msg.find("[batch] snapshot_dir = \"...\" must be set with [log] backend = \"kafka\""), std::string::npos) << msg;
  msg = Parse("[retry]\nmultiplier = 0.5\ninitial_backoff = \"10s\"\nmax_backoff = \"1s\"\n").message();
  EXPECT_NE(msg.find("multiplier must be a number from 1 to 100"), std::string::npos) << msg;
  EXPECT_NE(msg.find("max_backoff is shorter than initial_backoff"), std::string::npos) << msg;
  msg = Parse("[[routes]]\ntypes = [\"nope\"]\ntopic = \"orders\"\n[[routes]]\ntypes = [\"click\"]\ntopic = \"events\"\n").message();
  EXPECT_NE(msg.find("\"nope\" is not a declared event type"), std::string::npos) << msg;
  EXPECT_NE(msg.find("not events, failed, retry or dead"), std::string::npos) << msg;

  auto cfg = ParseConfig(std::string(kBase) + "[retry]\ninitial_backoff = \"1s\"\nmultiplier = 3\nmax_backoff = \"20s\"\n", "t.toml");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(cfg->retry.BackoffMs(1), 1000);
  EXPECT_EQ(cfg->retry.BackoffMs(2), 3000);
  EXPECT_EQ(cfg->retry.BackoffMs(3), 9000);
  EXPECT_EQ(cfg->retry.BackoffMs(4), 20000) << "capped";
}

}  // namespace
}  // namespace portrait

namespace portrait {
namespace {

// Tokens: a string is a write token (as before scopes existed); a table names its scopes;
// secrets may come from the environment or a file; problems name the token and where its
// secret was to come from, never the secret.
TEST(TokenConfigTest, ScopesAndSecretsFromEnvironmentAndFile) {
  testing_util::TempDir dir;
  {
    std::ofstream f(dir.path() + "/ops.token");
    f << "from-a-file-123\n";
  }
  ::setenv("PORTRAIT_TEST_TOKEN", "from-the-env-456", 1);
  auto cfg = ParseConfig(std::string(kBase) + "[server.tokens]\napp = \"plain-token-1\"\n" +
                             "dash = { token = \"env:PORTRAIT_TEST_TOKEN\", scopes = [\"read\"] }\n" +
                             "ops = { token = \"file:" + dir.path() + "/ops.token\", scopes = [\"read\", \"admin\"] }\n",
                         "t.toml");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  std::map<std::string, ApiToken> by_name;
  for (const ApiToken& t : cfg->server.tokens) by_name[t.name] = t;
  ASSERT_EQ(by_name.size(), 3u);
  EXPECT_EQ(by_name["app"].secret, "plain-token-1");
  EXPECT_EQ(by_name["app"].scopes, kScopeWrite);
  EXPECT_EQ(by_name["dash"].secret, "from-the-env-456");
  EXPECT_EQ(by_name["dash"].scopes, kScopeRead);
  EXPECT_EQ(by_name["ops"].secret, "from-a-file-123") << "trailing newline dropped";
  EXPECT_EQ(by_name["ops"].scopes, kScopeRead | kScopeAdmin);
  EXPECT_FALSE(cfg->server.open_metrics);
}

TEST(TokenConfigTest, BadTokensAreNamedWithoutTheirSecret) {
  ::unsetenv("PORTRAIT_NO_SUCH_TOKEN");
  auto expect = [](const std::string& tokens, const std::string& problem) {
    auto cfg = ParseConfig(std::string(kBase) + "[server.tokens]\n" + tokens + "\n", "t.toml");
    ASSERT_FALSE(cfg.ok()) << tokens;
    EXPECT_NE(cfg.status().message().find(problem), std::string::npos) << cfg.status().message();
    EXPECT_EQ(cfg.status().message().find("secret-7"), std::string::npos) << "a secret in an error message";
  };
  expect("a = \"short\"", "token \"a\": must be 8 or more characters");
  expect("a = \"env:PORTRAIT_NO_SUCH_TOKEN\"", "environment variable PORTRAIT_NO_SUCH_TOKEN is not set");
  expect("a = \"file:/nonexistent/token\"", "cannot read /nonexistent/token");
  expect("a = { token = \"long-secret-7\", scopes = [\"root\"] }", "scope must be \"read\", \"write\" or \"admin\"");
  expect("a = { token = \"long-secret-7\" }", "needs scopes");
  expect("a = 42", "must be a string");
}

// A route without a declared scope is a programming error caught at once.
TEST(RouteTableDeathTest, ARouteWithoutAScopeIsRefused) {
  RouteTable table;
  Route r;
  r.method = "GET";
  r.pattern = "/v1/secret";
  r.summary = "forgot its scope";
  r.handler = [](RouteCall&) { return HttpResponse{200, "text/plain", "x"}; };
  EXPECT_DEATH(table.Add(r), "route GET /v1/secret declares no scope");
}

}  // namespace
}  // namespace portrait
