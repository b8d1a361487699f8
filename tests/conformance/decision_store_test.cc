// The DecisionStore contract on every backend (RocksDB, Redis, a 3-master Redis Cluster):
// rule states read back as written, are deleted by an empty state, expire after their
// TTL and survive EraseAll (a replay keeps what the rules have seen); recent decisions
// come newest first, once per id, at most keep_per_user of them.
#include "features/decisions/decision_store.h"

#include <gtest/gtest.h>

#include <thread>

#include "redis_util.h"
#include "store/redis/redis_store.h"
#include "store/rocksdb/rocksdb_store.h"
#include "temp_dir.h"
#include "features/decisions/decisions_config.h"

namespace portrait {
namespace {

struct Backend {
  std::string name;
  std::function<Result<std::unique_ptr<ProfileStore>>(const std::string& dir, const TagRegistry*, MetricsRegistry*)> open;
};

const Backend kRocksDb{"rocksdb", [](const std::string& dir, const TagRegistry* tags, MetricsRegistry* m) {
                         return OpenRocksDbStore({dir + "/db", 8}, tags, m);
                       }};
const Backend kRedis{"redis", [](const std::string&, const TagRegistry* tags, MetricsRegistry* m) {
                       return OpenRedisStore({{testing_util::SharedRedisServer().addr()}, false, 5000}, tags, m);
                     }};
const Backend kRedisCluster{"redis_cluster", [](const std::string&, const TagRegistry* tags, MetricsRegistry* m) {
                              return OpenRedisStore({testing_util::SharedRedisCluster().addrs(), true, 5000}, tags, m);
                            }};
void PrintTo(const Backend& b, std::ostream* os) { *os << b.name; }

class DecisionStoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    auto s = GetParam().open(dir_.path(), &tags_, &metrics_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
    auto ds = OpenDecisionStore(store_.get());
    ASSERT_TRUE(ds.ok()) << ds.status().ToString();
    owned_ = std::move(ds).value();
    ds_ = owned_.get();
    ASSERT_NE(ds_, nullptr);
    prefix_ = ::testing::UnitTest::GetInstance()->current_test_info()->name() + std::to_string(NowMs()) + "-";
  }
  std::vector<std::string> Read(std::vector<std::string> uids) {
    std::vector<std::string> out;
    EXPECT_TRUE(ds_->ReadRuleStates(uids, &out).ok());
    return out;
  }
  std::string U(const std::string& s) { return prefix_ + s; }

  testing_util::TempDir dir_;
  TagRegistry tags_;
  MetricsRegistry metrics_;
  std::unique_ptr<ProfileStore> store_;
  DecisionStore* ds_ = nullptr;
  std::unique_ptr<DecisionStore> owned_;
  std::string prefix_;
  DecisionsConfig cfg_;
};

TEST_P(DecisionStoreTest, StatesReadBackAreDeletedAndSurviveEraseAll) {
  std::string binary("\x01\x00\xff state", 9);
  std::vector<RuleStateWrite> w{{U("a"), binary}, {U("b"), "b-state"}};
  ASSERT_TRUE(ds_->WriteRuleStates(w, 60'000, {}, cfg_).ok());
  EXPECT_EQ(Read({U("a"), U("none"), U("b")}), (std::vector<std::string>{binary, "", "b-state"}));
  ASSERT_TRUE(store_->EraseAll().ok());
  EXPECT_EQ(Read({U("a")}), std::vector<std::string>{binary}) << "a replay keeps what the rules have seen";
  std::vector<RuleStateWrite> del{{U("a"), ""}};
  ASSERT_TRUE(ds_->WriteRuleStates(del, 60'000, {}, cfg_).ok());
  EXPECT_EQ(Read({U("a"), U("b")}), (std::vector<std::string>{"", "b-state"}));
}

TEST_P(DecisionStoreTest, StatesExpireAfterTheirTtl) {
  std::vector<RuleStateWrite> w{{U("short"), "x"}, {U("long"), "y"}};
  ASSERT_TRUE(ds_->WriteRuleStates({&w[0], 1}, 150, {}, cfg_).ok());
  ASSERT_TRUE(ds_->WriteRuleStates({&w[1], 1}, 60'000, {}, cfg_).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_EQ(Read({U("short"), U("long")}), (std::vector<std::string>{"", "y"}));
}

TEST_P(DecisionStoreTest, RecentDecisionsNewestFirstOncePerIdAtMostKeep) {
  cfg_.keep_per_user = 3;
  std::vector<StoredDecision> d;
  for (int i = 0; i < 5; ++i) {
    std::string id = "d-" + std::to_string(i);
    d.push_back({U("u"), id, 1'700'000'000'000 + i * 1000, "{\"id\":\"" + id + "\"}"});
  }
  d.push_back({U("other"), "d-x", 1'700'000'000'000, "{\"id\":\"d-x\"}"});
  ASSERT_TRUE(ds_->WriteRuleStates({}, 60'000, {d.data(), 2}, cfg_).ok());
  ASSERT_TRUE(ds_->WriteRuleStates({}, 60'000, {d.data() + 1, 5}, cfg_).ok());  // d-1 again
  auto got = ds_->RecentDecisions(U("u"), 10);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), 3u);
  EXPECT_EQ((*got)[0], "{\"id\":\"d-4\"}");
  EXPECT_EQ((*got)[1], "{\"id\":\"d-3\"}");
  EXPECT_EQ((*got)[2], "{\"id\":\"d-2\"}");
  auto limited = ds_->RecentDecisions(U("u"), 2);
  ASSERT_TRUE(limited.ok());
  EXPECT_EQ(limited->size(), 2u);
  auto other = ds_->RecentDecisions(U("other"), 10);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(*other, std::vector<std::string>{"{\"id\":\"d-x\"}"});
  auto none = ds_->RecentDecisions(U("nobody"), 10);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

// Rule state and decisions of a uid with braces: one slot in a cluster, and erased with it.
TEST_P(DecisionStoreTest, UidsWithBracesKeepStateAndDecisionsAndEraseThem) {
  std::string u = U("}x{");
  std::vector<RuleStateWrite> w{{u, "state"}};
  std::vector<StoredDecision> d{{u, "d-1", 1'700'000'000'000, "{\"id\":\"d-1\"}"}};
  ASSERT_TRUE(ds_->WriteRuleStates(w, 60'000, d, cfg_).ok());
  EXPECT_EQ(Read({u}), std::vector<std::string>{"state"});
  auto got = ds_->RecentDecisions(u, 10);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->size(), 1u);
  ASSERT_TRUE(ds_->EraseUser(u).ok());
  EXPECT_EQ(Read({u}), std::vector<std::string>{""});
  got = ds_->RecentDecisions(u, 10);
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->empty());
}

// Many recent decisions read back at a large limit (Redis: no Lua unpack limit).
TEST_P(DecisionStoreTest, ManyRecentDecisionsReadBack) {
  cfg_.keep_per_user = 20'000;
  std::vector<StoredDecision> d;
  for (int i = 0; i < 12'000; ++i) {
    std::string id = "d-" + std::to_string(i);
    d.push_back({U("many"), id, 1'700'000'000'000 + i, "{\"id\":\"" + id + "\"}"});
  }
  ASSERT_TRUE(ds_->WriteRuleStates({}, 60'000, d, cfg_).ok());
  auto got = ds_->RecentDecisions(U("many"), 12'000);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->size(), 12'000u);
}

INSTANTIATE_TEST_SUITE_P(Backends, DecisionStoreTest, ::testing::Values(kRocksDb, kRedis, kRedisCluster),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace portrait
