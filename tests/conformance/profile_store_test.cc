// ProfileStore conformance: the same action sequences against every backend give the
// profile the pure fusion functions compute, whatever the batching and order.
#include "store/profile_store.h"

#include <gtest/gtest.h>

#include <random>

#include "redis_util.h"
#include "store/redis/redis_store.h"
#include "store/rocksdb/rocksdb_store.h"
#include "temp_dir.h"
#include "test_util.h"

namespace portrait {
namespace {

using testing_util::Click;

struct Backend {
  std::string name;
  std::function<Result<std::unique_ptr<ProfileStore>>(const std::string& dir, const TagRegistry*, MetricsRegistry*)> open;
  std::function<void()> reset;  // wipes shared servers between tests
};

// One standalone server and one 3-master cluster for the whole suite.
// Function-local statics: started on first use, killed when the test binary exits.
testing_util::RedisServer& Standalone() {
  static testing_util::RedisServer s;
  static bool started = s.Start();
  if (!started) ADD_FAILURE() << "cannot start redis-server";
  return s;
}

testing_util::RedisCluster& Cluster() {
  static testing_util::RedisCluster c;
  static bool started = c.Start();
  if (!started) ADD_FAILURE() << "cannot start the 3-master redis cluster";
  return c;
}

const Backend kRocksDb{"rocksdb",
                       [](const std::string& dir, const TagRegistry* tags, MetricsRegistry* m) {
                         return OpenRocksDbStore({dir + "/db", 8}, tags, m);
                       },
                       [] {}};
const Backend kRedis{"redis",
                     [](const std::string&, const TagRegistry* tags, MetricsRegistry* m) {
                       return OpenRedisStore({{Standalone().addr()}, false, 5000}, tags, m);
                     },
                     [] { Standalone().Cli("FLUSHALL"); }};
const Backend kRedisCluster{"redis_cluster",
                            [](const std::string&, const TagRegistry* tags, MetricsRegistry* m) {
                              return OpenRedisStore({Cluster().addrs(), true, 5000}, tags, m);
                            },
                            [] { Cluster().FlushAll(); }};

void PrintTo(const Backend& b, std::ostream* os) { *os << b.name; }

class ProfileStoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    tags_.Add(testing_util::ClickList(5));
    TagConfig n;
    n.name = "count";
    n.type = TagType::kNumber;
    tags_.Add(n);
    TagConfig m;
    m.name = "cats";
    m.type = TagType::kMap;
    tags_.Add(m);
    TagConfig s;
    s.name = "seen";
    s.type = TagType::kString;
    s.ttl_ms = 1000;
    tags_.Add(s);
    GetParam().reset();
    Reopen();
  }

  void Reopen() {
    store_.reset();
    auto s = GetParam().open(dir_.path(), &tags_, &metrics_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
  }

  Profile Get(const std::string& uid, std::vector<std::string> only = {}, TimestampMs now = 0) {
    auto p = store_->Get(uid, only, now);
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    return p.ok() ? *p : Profile{};
  }

  Action Incr(const std::string& uid, double n, TimestampMs ts) {
    Action a;
    a.uid = uid;
    a.tag = "count";
    a.op = OpCode::kNumberIncr;
    a.number = n;
    a.ts = ts;
    return a;
  }

  testing_util::TempDir dir_;
  MetricsRegistry metrics_;
  TagRegistry tags_;
  std::unique_ptr<ProfileStore> store_;
};

TEST_P(ProfileStoreTest, AppliesAndReadsEveryTagOfAUser) {
  const TagConfig& list = *tags_.Find("clicks");
  Action click = Click(list, 1, 100);
  click.uid = "u1";
  Action str;
  str.uid = "u1";
  str.tag = "seen";
  str.op = OpCode::kStringSet;
  str.text = "hello";
  const TimestampMs now = NowMs();  // ttl'd tags: Redis expires keys by its own clock
  str.ts = now - 100;
  std::vector<Action> batch = {click, Incr("u1", 2, 10), Incr("u1", 3, 20), str, Incr("u2", 1, 5)};
  ASSERT_TRUE(store_->Apply(batch, {}).ok());
  Profile p = Get("u1", {}, now);
  ASSERT_EQ(p.tags.size(), 3u);
  EXPECT_EQ(p.tags[0].name, "clicks");
  EXPECT_EQ(p.tags[0].state.items.size(), 1u);
  EXPECT_EQ(p.tags[1].name, "count");
  EXPECT_EQ(p.tags[1].state.number, 5);
  EXPECT_EQ(p.tags[1].state.updated_at, 20);
  EXPECT_EQ(p.tags[2].state.text, "hello");
  EXPECT_EQ(Get("u1", {"count"}, now).tags.size(), 1u);
  EXPECT_EQ(Get("u2", {}, now).tags[0].state.number, 1);
  EXPECT_TRUE(Get("nobody").tags.empty());
  // "u1" must not see a user whose id merely starts with it.
  ASSERT_TRUE(store_->Apply(std::vector<Action>{Incr("u10", 1, 1)}, {}).ok());
  EXPECT_EQ(Get("u1", {"count"}, now).tags[0].state.number, 5);
}

TEST_P(ProfileStoreTest, ExpiredTagsAreNeverReturned) {
  Action str;
  str.uid = "u";
  str.tag = "seen";
  str.op = OpCode::kStringSet;
  str.text = "x";
  const TimestampMs now = NowMs();
  str.ts = now - 400;  // ttl is 1 s
  ASSERT_TRUE(store_->Apply(std::vector<Action>{str}, {}).ok());
  EXPECT_EQ(Get("u", {}, now).tags.size(), 1u);
  EXPECT_EQ(Get("u", {}, now + 600).tags.size(), 0u);  // the reader's clock decides too
  Action old = str;
  old.uid = "v";
  old.ts = now - 5000;  // written already expired: never visible
  ASSERT_TRUE(store_->Apply(std::vector<Action>{old}, {}).ok());
  EXPECT_EQ(Get("v", {}, now).tags.size(), 0u);
}

TEST_P(ProfileStoreTest, CheckpointsPersistWithTheirBatch) {
  EXPECT_FALSE(store_->GetCheckpoint("processor", PartitionId(3)).value().has_value());
  std::vector<Checkpoint> cps = {{"processor", PartitionId(3), Offset(42)}};
  ASSERT_TRUE(store_->Apply(std::vector<Action>{Incr("u", 1, 1)}, cps).ok());
  Reopen();
  EXPECT_EQ(store_->GetCheckpoint("processor", PartitionId(3)).value(), Offset(42));
  EXPECT_FALSE(store_->GetCheckpoint("processor", PartitionId(2)).value().has_value());
  EXPECT_EQ(Get("u").tags[0].state.number, 1);
}

TEST_P(ProfileStoreTest, RandomBatchingAndOrderGiveTheFusionResult) {
  const TagConfig& list = *tags_.Find("clicks");
  std::mt19937 rng(7);
  std::vector<Action> actions;
  for (int i = 0; i < 400; ++i) {
    Action a = Click(list, static_cast<int>(rng() % 20), static_cast<int64_t>(rng() % 50), 1 + rng() % 3,
                     rng() % 2 ? Source::kOffline : Source::kRealtime);
    a.uid = "u" + std::to_string(rng() % 4);
    actions.push_back(a);
  }
  // Reference: the pure fusion functions, in order.
  std::map<std::string, fusion::TagState> expected;
  for (const auto& a : actions) fusion::Apply(expected[a.uid], a, list);
  // Store: shuffled, duplicated, in random batch sizes, across a reopen.
  std::vector<Action> shuffled = actions;
  for (int i = 0; i < 100; ++i) shuffled.push_back(actions[rng() % actions.size()]);
  std::shuffle(shuffled.begin(), shuffled.end(), rng);
  size_t pos = 0;
  while (pos < shuffled.size()) {
    size_t n = std::min<size_t>(1 + rng() % 50, shuffled.size() - pos);
    ASSERT_TRUE(store_->Apply(std::span<const Action>(shuffled).subspan(pos, n), {}).ok());
    pos += n;
    if (pos > shuffled.size() / 2 && pos - n <= shuffled.size() / 2) Reopen();
  }
  for (const auto& [uid, state] : expected) {
    Profile p = Get(uid);
    ASSERT_EQ(p.tags.size(), 1u) << uid;
    EXPECT_EQ(p.tags[0].state.items, state.items) << uid;
    EXPECT_EQ(p.tags[0].state.updated_at, state.updated_at) << uid;
  }
}

TEST_P(ProfileStoreTest, IncrementsWithAnIdApplyOnce) {
  Action a = Incr("u", 5, 10);
  a.id = "job-1";
  ASSERT_TRUE(store_->Apply(std::vector<Action>{a}, {}).ok());
  ASSERT_TRUE(store_->Apply(std::vector<Action>{a, a}, {}).ok());  // retried, also within one batch
  Reopen();
  ASSERT_TRUE(store_->Apply(std::vector<Action>{a}, {}).ok());
  Action b = Incr("u", 1, 11);
  b.id = "job-2";
  Action anonymous = Incr("u", 100, 12);  // no id: counted every time
  ASSERT_TRUE(store_->Apply(std::vector<Action>{b, anonymous, anonymous}, {}).ok());
  EXPECT_EQ(Get("u").tags[0].state.number, 206);
  Action other_user = a;
  other_user.uid = "v";  // ids are per user
  ASSERT_TRUE(store_->Apply(std::vector<Action>{other_user}, {}).ok());
  EXPECT_EQ(Get("v").tags[0].state.number, 5);
}

TEST_P(ProfileStoreTest, DeleteErasesEverythingOfTheUserOnly) {
  Action a = Incr("u", 5, 10);
  a.id = "job-1";
  a.source = Source::kRealtime;
  ASSERT_TRUE(store_->Apply(std::vector<Action>{a, Incr("w", 1, 1)}, {}).ok());
  EXPECT_EQ(Get("u").meta.realtime_updated_at, 10);
  std::vector<Checkpoint> cps = {{"processor", PartitionId(0), Offset(9)}};
  ASSERT_TRUE(store_->DeleteProfile("u", cps).ok());
  EXPECT_TRUE(Get("u").tags.empty());
  EXPECT_EQ(Get("u").meta.realtime_updated_at, 0);
  EXPECT_EQ(store_->GetCheckpoint("processor", PartitionId(0)).value(), Offset(9));
  EXPECT_EQ(Get("w").tags.size(), 1u);
  // Applied ids went with the profile: the same id counts again for the new profile.
  ASSERT_TRUE(store_->Apply(std::vector<Action>{a}, {}).ok());
  EXPECT_EQ(Get("u").tags[0].state.number, 5);
}

TEST_P(ProfileStoreTest, FreshnessFollowsRealtimeActionsOnly) {
  Action ext = Incr("u", 1, 500);
  ext.source = Source::kExternal;
  ASSERT_TRUE(store_->Apply(std::vector<Action>{ext}, {}).ok());
  EXPECT_EQ(Get("u").meta.realtime_updated_at, 0);
  Action rt = Incr("u", 1, 300);
  rt.source = Source::kRealtime;
  ASSERT_TRUE(store_->Apply(std::vector<Action>{rt}, {}).ok());
  EXPECT_EQ(Get("u").meta.realtime_updated_at, 300);
}

INSTANTIATE_TEST_SUITE_P(Backends, ProfileStoreTest, ::testing::Values(kRocksDb, kRedis, kRedisCluster),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace portrait
