// The consistency report's comparison of one tag of one user (compare.h), its sums per tag,
// and the sample of users.
#include <gtest/gtest.h>

#include <cmath>

#include "features/consistency/compare.h"
#include "features/consistency/consistency_report.h"
#include "core/config_check.h"
#include "features/consistency/consistency_config.h"
#include "fusion/fusion.h"

namespace portrait {
namespace {

constexpr const char* kConfig = R"(
[events.click.props]
item_id = "int"
[events.buy.props]
item_id = "int"
[tags.clicks]
type = "list"
size_limit = 3
sort_by = "et"
dedup_by = ["item_id", "et"]
offline = { window = "2d", load = "list.rpushl" }
[tags.by_rank]
type = "list"
size_limit = 10
sort_by = "rank"
offline = { window = "2d", load = "list.rpushl" }
[tags.last_buy]
type = "number"
offline = { window = "30d", load = "number.max" }
[tags.cats]
type = "map"
offline = { window = "30d", load = "map.merge" }
[tags.seen]
type = "set"
offline = { window = "30d", load = "set.addl" }
[tags.offline_only]
type = "number"
offline = { window = "30d", load = "number.max" }
[tags.realtime_only]
type = "number"
[[rules]]
on = "click"
tag = "clicks"
op = "list.rpush"
value = { item_id = "$props.item_id", et = "$ts" }
[[rules]]
on = "click"
tag = "by_rank"
op = "list.rpush"
value = { item_id = "$props.item_id", rank = "$props.item_id" }
[[rules]]
on = "buy"
tag = "last_buy"
op = "number.max"
value = "$ts"
[[rules]]
on = "buy"
tag = "cats"
op = "map.incr"
key = "$props.item_id"
value = 1
[[rules]]
on = "buy"
tag = "seen"
op = "set.add"
value = "$props.item_id"
[[rules]]
on = "buy"
tag = "offline_only"
op = "number.max"
value = "$ts"
layer = "offline"
[[rules]]
on = "buy"
tag = "realtime_only"
op = "number.incr"
value = 1
layer = "realtime"
)";

constexpr TimestampMs kDay = 1'700'006'400'000;  // 2023-11-15T00:00:00Z
constexpr TimestampMs kAsOf = kDay + 86'400'000 - 1;

class CompareTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = ParseConfigWith(kConfig, "compare_test.toml", ConsistencyConfigSections());
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    config_ = std::move(c).value();
  }
  const TagConfig& Tag(const char* name) { return *config_.tags.Find(name); }
  TagWindow Window(const char* name) { return WindowFor(config_, Tag(name), kAsOf); }

  // A real-time list of clicks (item_id, et), fused as the store fuses them.
  fusion::TagState Clicks(const char* tag, std::vector<std::pair<int, TimestampMs>> clicks) {
    fusion::TagState s;
    for (auto [item, et] : clicks) {
      Action a;
      a.uid = "u";
      a.tag = tag;
      a.op = OpCode::kListRpush;
      a.ts = et;
      const std::string sort_field = Tag(tag).sort_by;
      std::vector<std::pair<std::string, std::string>> fields = {{"item_id", std::to_string(item)}};
      fields.emplace_back(sort_field, sort_field == "et" ? std::to_string(et) : std::to_string(item));
      auto made = fusion::MakeListItem(fields, Tag(tag), et, Source::kRealtime);
      EXPECT_TRUE(made.ok());
      a.items.push_back(std::move(made).value());
      fusion::Apply(s, a, Tag(tag));
    }
    return s;
  }
  fusion::TagState Number(const char* tag, double v, TimestampMs ts) {
    fusion::TagState s;
    Action a;
    a.uid = "u";
    a.tag = tag;
    a.op = OpCode::kNumberMax;
    a.ts = ts;
    a.number = v;
    fusion::Apply(s, a, Tag(tag));
    return s;
  }

  Config config_;
};

TEST_F(CompareTest, TagsInBothLayersAreOfflineTagsWithARealTimeRule) {
  std::vector<std::string> names;
  for (const TagConfig* t : TagsInBothLayers(config_)) names.push_back(t->name);
  EXPECT_EQ(names, (std::vector<std::string>{"by_rank", "cats", "clicks", "last_buy", "seen"}));
  EXPECT_TRUE(SortedByEventTime(config_, Tag("clicks")));
  EXPECT_FALSE(SortedByEventTime(config_, Tag("by_rank"))) << "its sort field comes from a prop";
  EXPECT_EQ(Window("clicks").from, kAsOf - 2 * 86'400'000 + 1);
}

TEST_F(CompareTest, ListItemsAfterTheDayOrBeforeTheWindowAreLeftOut) {
  auto rt = Clicks("clicks", {{1, kDay - 3 * 86'400'000}, {2, kDay + 10}, {3, kDay + 20}, {4, kAsOf + 5}});
  TagComparison c = CompareTag(Tag("clicks"), Window("clicks"), &rt, R"([{"et":1700006400010,"item_id":2},
                                                                        {"item_id":3,"et":1.70000640002e12}])");
  EXPECT_EQ(c.outcome, Outcome::kEqual) << c.realtime << " vs " << c.offline;
  EXPECT_DOUBLE_EQ(c.overlap, 1);
  EXPECT_DOUBLE_EQ(c.rank_distance, 0);
}

TEST_F(CompareTest, AFullListIsComparedAboveTheOldestItemBothSidesCanHold) {
  // Real time holds 3 (the limit), one of them after the day; the batch held 3 up to the day.
  auto rt = Clicks("clicks", {{5, kDay + 5}, {6, kDay + 6}, {7, kAsOf + 7}});
  TagComparison c = CompareTag(Tag("clicks"), Window("clicks"), &rt,
                               R"([{"item_id":4,"et":1700006400004},{"item_id":5,"et":1700006400005},)"
                               R"({"item_id":6,"et":1700006400006}])");
  EXPECT_EQ(c.outcome, Outcome::kEqual) << c.realtime << " vs " << c.offline;
}

TEST_F(CompareTest, MissingExtraAndDifferentLists) {
  auto rt = Clicks("clicks", {{1, kDay + 1}, {2, kDay + 2}});
  const std::string both = R"([{"item_id":1,"et":1700006400001},{"item_id":2,"et":1700006400002}])";
  EXPECT_EQ(CompareTag(Tag("clicks"), Window("clicks"), nullptr, both).outcome, Outcome::kMissing);
  EXPECT_EQ(CompareTag(Tag("clicks"), Window("clicks"), &rt, std::nullopt).outcome, Outcome::kExtra);
  EXPECT_TRUE(CompareTag(Tag("clicks"), Window("clicks"), nullptr, "[]").absent);
  EXPECT_EQ(CompareTag(Tag("clicks"), Window("clicks"), &rt, both).outcome, Outcome::kEqual);

  TagComparison c = CompareTag(Tag("clicks"), Window("clicks"), &rt,
                               R"([{"item_id":1,"et":1700006400001},{"item_id":3,"et":1700006400003}])");
  EXPECT_EQ(c.outcome, Outcome::kDifferent);
  EXPECT_NEAR(c.overlap, 1.0 / 3, 1e-9) << "one common item of three";
  EXPECT_GT(c.score, 0.5);
  EXPECT_EQ(CompareTag(Tag("clicks"), Window("clicks"), &rt, "not json").outcome, Outcome::kDifferent);
}

TEST_F(CompareTest, RankDistanceOfTheSameItemsInReverseOrder) {
  auto rt = Clicks("by_rank", {{1, kDay}, {2, kDay}, {3, kDay}, {4, kDay}});
  TagComparison c = CompareTag(Tag("by_rank"), Window("by_rank"), &rt,
                               R"([{"item_id":4,"rank":4},{"item_id":3,"rank":3},{"item_id":2,"rank":2},)"
                               R"({"item_id":1,"rank":1}])");
  EXPECT_EQ(c.outcome, Outcome::kDifferent);
  EXPECT_DOUBLE_EQ(c.overlap, 1);
  EXPECT_DOUBLE_EQ(c.rank_distance, 1);
  TagComparison swap = CompareTag(Tag("by_rank"), Window("by_rank"), &rt,
                                  R"([{"item_id":2,"rank":2},{"item_id":1,"rank":1},{"item_id":3,"rank":3},)"
                                  R"({"item_id":4,"rank":4}])");
  EXPECT_DOUBLE_EQ(swap.rank_distance, 2.0 / 8) << "footrule 2 of at most 8";
}

TEST_F(CompareTest, ScalarsMapsAndSetsCompareByValue) {
  auto n = Number("last_buy", 1700006400123, kDay + 123);
  EXPECT_EQ(CompareTag(Tag("last_buy"), Window("last_buy"), &n, "1.700006400123e12").outcome, Outcome::kEqual);
  EXPECT_EQ(CompareTag(Tag("last_buy"), Window("last_buy"), &n, "1700006400000").outcome, Outcome::kDifferent);
  auto later = Number("last_buy", kAsOf + 50, kAsOf + 50);
  EXPECT_EQ(CompareTag(Tag("last_buy"), Window("last_buy"), &later, "1700006400000").outcome, Outcome::kLater)
      << "written after the day: not comparable";

  fusion::TagState m;
  Action a;
  a.uid = "u";
  a.tag = "cats";
  a.op = OpCode::kMapIncr;
  a.ts = kDay;
  a.entries = {{"7", "", 2}, {"9", "", 1}};
  fusion::Apply(m, a, Tag("cats"));
  EXPECT_EQ(CompareTag(Tag("cats"), Window("cats"), &m, R"({"9":1,"7":2.0})").outcome, Outcome::kEqual);
  TagComparison cm = CompareTag(Tag("cats"), Window("cats"), &m, R"({"7":2,"9":3})");
  EXPECT_EQ(cm.outcome, Outcome::kDifferent);
  EXPECT_NEAR(cm.overlap, 1.0 / 3, 1e-9) << "entries (key and value) in common: 7=2 of 7=2, 9=1, 9=3";

  fusion::TagState s;
  Action b;
  b.uid = "u";
  b.tag = "seen";
  b.op = OpCode::kSetAddl;
  b.ts = kDay;
  b.members = {"1", "2"};
  fusion::Apply(s, b, Tag("seen"));
  EXPECT_EQ(CompareTag(Tag("seen"), Window("seen"), &s, "[2,1]").outcome, Outcome::kEqual);
  EXPECT_NEAR(CompareTag(Tag("seen"), Window("seen"), &s, "[2,3]").overlap, 1.0 / 3, 1e-9);
}

TEST_F(CompareTest, TallyKeepsTheWorstExamplesAndCountsOutcomes) {
  TagTally t;
  auto rt = Clicks("clicks", {{1, kDay + 1}, {2, kDay + 2}});
  const std::string same = R"([{"item_id":1,"et":1700006400001},{"item_id":2,"et":1700006400002}])";
  const std::string half = R"([{"item_id":1,"et":1700006400001}])";
  t.Add("a", CompareTag(Tag("clicks"), Window("clicks"), &rt, same), 2);
  t.Add("b", CompareTag(Tag("clicks"), Window("clicks"), &rt, half), 2);
  t.Add("c", CompareTag(Tag("clicks"), Window("clicks"), nullptr, half), 2);
  t.Add("d", CompareTag(Tag("clicks"), Window("clicks"), &rt, std::nullopt), 2);
  t.Add("e", CompareTag(Tag("clicks"), Window("clicks"), nullptr, std::nullopt), 2);
  EXPECT_EQ(t.users(), 4u) << "a user with neither value is not counted";
  EXPECT_EQ(t.count(Outcome::kEqual), 1u);
  EXPECT_EQ(t.count(Outcome::kDifferent), 1u);
  EXPECT_EQ(t.count(Outcome::kMissing), 1u);
  EXPECT_EQ(t.count(Outcome::kExtra), 1u);
  EXPECT_DOUBLE_EQ(t.ratio(Outcome::kEqual), 0.25);
  ASSERT_EQ(t.worst.size(), 2u);
  EXPECT_EQ(t.worst[0].uid, "c") << "missing and extra are the worst; ties by uid";
  EXPECT_EQ(t.worst[1].uid, "d");
  ASSERT_TRUE(t.mean_overlap());
  EXPECT_DOUBLE_EQ(*t.mean_overlap(), (1 + 0.5) / 2);
}

TEST(ConsistencySampleTest, TheSameUsersInEveryRunAndAboutTheShare) {
  int in = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string uid = "u" + std::to_string(i);
    EXPECT_EQ(InSample(uid, 0.1), InSample(uid, 0.1));
    EXPECT_TRUE(InSample(uid, 1));
    in += InSample(uid, 0.1);
  }
  EXPECT_GT(in, 1700);
  EXPECT_LT(in, 2300);
}

}  // namespace
}  // namespace portrait
