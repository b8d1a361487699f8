// Tag rules turn an event into exactly the Actions the config declares.
#include "fusion/rules.h"
#include "features/registry.h"

#include <gtest/gtest.h>

namespace portrait {
namespace {

TEST(RulesTest, ExampleConfigRulesProduceActions) {
  auto cfg = LoadConfig(std::string(PORTRAIT_SOURCE_DIR) + "/examples/portrait.toml");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  RuleSet rules(*cfg);
  Event e;
  e.uid = "u1";
  e.type = "buy";
  e.ts = 1700000000000;
  e.channel = "ads";
  e.props = {{"item_id", "111"}, {"category_id", "7"}};
  std::vector<Action> out;
  size_t skipped = 0;
  rules.Evaluate(e, &out, &skipped);
  EXPECT_EQ(skipped, 0u);
  ASSERT_EQ(out.size(), 4u);  // category_prefs, purchases, last_purchase_at, last_seen
  EXPECT_EQ(out[0].tag, "category_prefs");
  EXPECT_EQ(out[0].op, OpCode::kMapIncr);
  ASSERT_EQ(out[0].entries.size(), 1u);
  EXPECT_EQ(out[0].entries[0].key, "7");
  EXPECT_EQ(out[0].entries[0].number, 1);
  EXPECT_EQ(out[1].tag, "purchases");
  EXPECT_EQ(out[1].number, 1);
  EXPECT_EQ(out[2].tag, "last_purchase_at");
  EXPECT_EQ(out[2].op, OpCode::kNumberMax);
  EXPECT_EQ(out[2].number, 1700000000000.0);
  EXPECT_EQ(out[3].text, "2023-11-14T22:13:20.000Z");

  // The offline layer: rules of offline tags only, including offline-only rules.
  RuleSet offline(*cfg, RuleSet::Layer::kOffline);
  out.clear();
  offline.Evaluate(e, &out, &skipped);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].tag, "last_purchase_at");
  EXPECT_EQ(out[1].tag, "purchases_by_category_90d");
  EXPECT_EQ(out[1].entries[0].key, "7");

  e.type = "click";
  out.clear();
  rules.Evaluate(e, &out, &skipped);
  ASSERT_EQ(out[0].tag, "clicks");
  ASSERT_EQ(out[0].items.size(), 1u);
  EXPECT_EQ(out[0].items[0].json, R"({"category_id":7,"channel":"ads","et":1700000000000,"item_id":111})");
  EXPECT_EQ(out[0].items[0].sort, 1700000000000.0);
}

TEST(RulesTest, MissingOptionalInputSkipsTheRule) {
  auto cfg = ParseConfig(R"(
[events.buy.props]
amount = { type = "number", required = false }
[tags.spent]
type = "number"
[[rules]]
on = "buy"
tag = "spent"
op = "number.incr"
value = "$props.amount"
)", "t");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  RuleSet rules(*cfg);
  Event e;
  e.uid = "u";
  e.type = "buy";
  e.ts = 1;
  std::vector<Action> out;
  size_t skipped = 0;
  rules.Evaluate(e, &out, &skipped);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(skipped, 1u);
  e.props = {{"amount", "2.5"}};
  rules.Evaluate(e, &out, &skipped);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].number, 2.5);
}

}  // namespace
}  // namespace portrait
