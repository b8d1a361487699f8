// Fusion operators: each operator's effect, list bounding and ordering, the codecs.
#include "fusion/fusion.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace portrait::fusion {
namespace {

using testing_util::ClickList;
using testing_util::Click;

TEST(ListTest, KeepsNewestSortedDedupedAndBounded) {
  TagConfig cfg = ClickList(3);
  TagState s;
  Apply(s, Click(cfg, 1, 100), cfg);
  Apply(s, Click(cfg, 2, 300), cfg);
  Apply(s, Click(cfg, 3, 200), cfg);
  Apply(s, Click(cfg, 2, 300), cfg);  // duplicate
  Apply(s, Click(cfg, 4, 50), cfg);   // older than everything kept once full
  ASSERT_EQ(s.items.size(), 3u);
  EXPECT_EQ(s.items[0].sort, 100);
  EXPECT_EQ(s.items[1].sort, 200);
  EXPECT_EQ(s.items[2].sort, 300);
  Apply(s, Click(cfg, 5, 400), cfg);
  ASSERT_EQ(s.items.size(), 3u);
  EXPECT_EQ(s.items.front().sort, 200);
  EXPECT_EQ(s.items.back().sort, 400);
}

TEST(ListTest, RendersInConfiguredOrder) {
  TagConfig cfg = ClickList(10);
  TagState s;
  Apply(s, Click(cfg, 1, 100), cfg);
  Apply(s, Click(cfg, 2, 200), cfg);
  std::string out;
  RenderValue(s, cfg, 0, &out);
  EXPECT_EQ(out, R"([{"item_id":1,"et":100},{"item_id":2,"et":200}])");
  cfg.descending = true;
  out.clear();
  RenderValue(s, cfg, 0, &out);
  EXPECT_EQ(out, R"([{"item_id":2,"et":200},{"item_id":1,"et":100}])");
}

TEST(ListTest, SameKeyPrefersNewerTsThenRealtime) {
  TagConfig cfg = ClickList(10);
  TagState s;
  Action offline = Click(cfg, 1, 100, /*ts=*/500, Source::kOffline);
  Action realtime = Click(cfg, 1, 100, /*ts=*/500, Source::kRealtime);
  Apply(s, realtime, cfg);
  Apply(s, offline, cfg);
  ASSERT_EQ(s.items.size(), 1u);
  EXPECT_EQ(s.items[0].source, Source::kRealtime);
  Apply(s, Click(cfg, 1, 100, /*ts=*/600, Source::kOffline), cfg);
  EXPECT_EQ(s.items[0].ts, 600);
}

TEST(ListTest, MissingSortFieldIsRejected) {
  TagConfig cfg = ClickList(10);
  std::vector<std::pair<std::string, std::string>> fields = {{"item_id", "1"}};
  auto item = MakeListItem(fields, cfg, 1, Source::kRealtime);
  ASSERT_FALSE(item.ok());
  EXPECT_NE(item.status().message().find("sort_by field \"et\""), std::string::npos);
  fields.push_back({"et", "\"abc\""});
  item = MakeListItem(fields, cfg, 1, Source::kRealtime);
  ASSERT_FALSE(item.ok());
  EXPECT_NE(item.status().message().find("must be a number"), std::string::npos);
}

TEST(NumberTest, IncrMaxMinSet) {
  TagConfig cfg;
  cfg.name = "n";
  cfg.type = TagType::kNumber;
  TagState s;
  Action a;
  a.op = OpCode::kNumberIncr;
  a.number = 2;
  a.ts = 10;
  Apply(s, a, cfg);
  Apply(s, a, cfg);
  EXPECT_EQ(s.number, 4);
  a.op = OpCode::kNumberMax;
  a.number = 3;
  Apply(s, a, cfg);
  EXPECT_EQ(s.number, 4);
  a.number = 9;
  Apply(s, a, cfg);
  EXPECT_EQ(s.number, 9);
  a.op = OpCode::kNumberSet;
  a.number = 1;
  a.ts = 5;
  Apply(s, a, cfg);
  EXPECT_EQ(s.number, 1);
  EXPECT_EQ(s.updated_at, 10);  // the greatest ts, not the last one
}

TEST(StringTest, LastWriterWinsByTs) {
  TagConfig cfg;
  cfg.name = "s";
  cfg.type = TagType::kString;
  TagState s;
  Action a;
  a.op = OpCode::kStringSet;
  a.text = "new";
  a.ts = 20;
  Apply(s, a, cfg);
  a.text = "old";
  a.ts = 10;
  Apply(s, a, cfg);
  EXPECT_EQ(s.text, "new");
}

TEST(MapTest, IncrPutDel) {
  TagConfig cfg;
  cfg.name = "m";
  cfg.type = TagType::kMap;
  TagState s;
  Action a;
  a.op = OpCode::kMapIncr;
  a.entries = {{"7", "", 1}, {"8", "", 2}};
  a.ts = 1;
  Apply(s, a, cfg);
  Apply(s, a, cfg);
  Action put;
  put.op = OpCode::kMapPut;
  put.entries = {{"name", "\"x\"", 0}};
  put.ts = 2;
  Apply(s, put, cfg);
  std::string out;
  RenderValue(s, cfg, 0, &out);
  EXPECT_EQ(out, R"({"7":2,"8":4,"name":"x"})");
  Action del;
  del.op = OpCode::kMapDel;
  del.entries = {{"8", "", 0}};
  Apply(s, del, cfg);
  out.clear();
  RenderValue(s, cfg, 0, &out);
  EXPECT_EQ(out, R"({"7":2,"name":"x"})");
}

TEST(TagDelTest, RemovesAndLaterWritesRecreate) {
  TagConfig cfg = ClickList(10);
  TagState s;
  Apply(s, Click(cfg, 1, 100), cfg);
  Action del;
  del.op = OpCode::kTagDel;
  Apply(s, del, cfg);
  EXPECT_FALSE(s.present);
  Apply(s, Click(cfg, 2, 200), cfg);
  EXPECT_TRUE(s.present);
  EXPECT_EQ(s.items.size(), 1u);
}

TEST(TtlTest, ExpiredTagIsNotLive) {
  TagConfig cfg = ClickList(10);
  cfg.ttl_ms = 1000;
  TagState s;
  Apply(s, Click(cfg, 1, 100, /*ts=*/5000), cfg);
  EXPECT_TRUE(IsLive(s, cfg, 5999));
  EXPECT_FALSE(IsLive(s, cfg, 6000));
}

TEST(CodecTest, StateRoundTripsForEveryType) {
  TagConfig list = ClickList(10);
  TagState s;
  Apply(s, Click(list, 1, 100), list);
  Apply(s, Click(list, 2, 50, 7, Source::kOffline), list);
  std::string buf;
  EncodeState(s, &buf);
  TagState back;
  ASSERT_TRUE(DecodeState(buf, &back).ok());
  EXPECT_EQ(back, s);

  TagConfig map;
  map.type = TagType::kMap;
  TagState m;
  Action a;
  a.op = OpCode::kMapIncr;
  a.entries = {{"k", "", 3}};
  Apply(m, a, map);
  buf.clear();
  EncodeState(m, &buf);
  ASSERT_TRUE(DecodeState(buf, &back).ok());
  EXPECT_EQ(back, m);
  // Every truncation is reported, never crashes.
  for (size_t n = 0; n < buf.size(); ++n) EXPECT_FALSE(DecodeState(buf.substr(0, n), &back).ok()) << n;
}

TEST(CodecTest, ActionRoundTrips) {
  TagConfig cfg = ClickList(10);
  Action a = Click(cfg, 1, 100);
  a.id = "abc";
  std::string buf;
  EncodeAction(a, &buf);
  Action back;
  ASSERT_TRUE(DecodeAction(buf, &back).ok());
  EXPECT_EQ(back.items, a.items);
  EXPECT_EQ(back.id, "abc");
  for (size_t n = 0; n < buf.size(); ++n) EXPECT_FALSE(DecodeAction(buf.substr(0, n), &back).ok()) << n;
}

// Pre-combining must not change a profile where a batch happens to be cut: fractional
// increments are applied one by one (their sum depends on grouping), whole ones combine;
// actions of two sources stay apart (real-time freshness takes real-time times only).
TEST(CombineTest, OnlyGroupingFreeIncrementsAndOneSourceCombine) {
  TagConfig num;
  num.name = "n";
  num.type = TagType::kNumber;
  auto incr = [](double v, Source s = Source::kRealtime) {
    Action a;
    a.tag = "n";
    a.op = OpCode::kNumberIncr;
    a.number = v;
    a.source = s;
    a.ts = 1;
    return a;
  };
  Action whole = incr(1);
  EXPECT_TRUE(TryCombine(whole, incr(2), num));
  EXPECT_EQ(whole.number, 3);
  Action frac = incr(0.1);
  EXPECT_FALSE(TryCombine(frac, incr(0.2), num));
  EXPECT_EQ(frac.number, 0.1) << "left unchanged";
  Action rt = incr(1);
  EXPECT_FALSE(TryCombine(rt, incr(1, Source::kOffline), num));
  // The sums that differ: applied one by one in log order is what a replay gives too.
  TagState a, b;
  for (double v : {0.1, 0.2, 0.3}) Apply(a, incr(v), num);
  Apply(b, incr(0.1), num);
  Action rest = incr(0.2);
  if (TryCombine(rest, incr(0.3), num)) Apply(b, rest, num);
  else {
    Apply(b, incr(0.2), num);
    Apply(b, incr(0.3), num);
  }
  EXPECT_EQ(a.number, b.number);
}

TEST(CombineTest, CombinedEqualsSequential) {
  TagConfig cfg = ClickList(3);
  Action a = Click(cfg, 1, 100);
  Action b = Click(cfg, 2, 200);
  Action c = Click(cfg, 1, 100);
  TagState seq;
  Apply(seq, a, cfg);
  Apply(seq, b, cfg);
  Apply(seq, c, cfg);
  Action comb = a;
  ASSERT_TRUE(TryCombine(comb, b, cfg));
  ASSERT_TRUE(TryCombine(comb, c, cfg));
  TagState one;
  Apply(one, comb, cfg);
  EXPECT_EQ(one.items, seq.items);
}

}  // namespace
}  // namespace portrait::fusion
