#include "core/coding.h"

#include <gtest/gtest.h>

#include <limits>

#include "core/event.h"
#include "core/json.h"

namespace portrait {
namespace {

TEST(CodingTest, VarintsRoundTrip) {
  std::string buf;
  Writer w(&buf);
  const int64_t values[] = {0, 1, -1, 127, 128, -129, std::numeric_limits<int64_t>::max(),
                            std::numeric_limits<int64_t>::min()};
  for (int64_t v : values) w.SignedVarint(v);
  w.Bytes("hello");
  Reader r(buf);
  for (int64_t v : values) EXPECT_EQ(r.SignedVarint(), v);
  EXPECT_EQ(r.Bytes(), "hello");
  EXPECT_TRUE(r.ok());
  EXPECT_TRUE(r.done());
}

TEST(CodingTest, TruncationIsReportedNotCrashed) {
  std::string buf;
  Writer(&buf).Bytes("a long enough string");
  Reader r(std::string_view(buf).substr(0, 5));
  r.Bytes();
  EXPECT_FALSE(r.ok());
}

TEST(EventCodingTest, RoundTripAndDerivedIdIsStable) {
  Event e;
  e.uid = "u1";
  e.type = "click";
  e.ts = 1700000000000;
  e.channel = "ads";
  e.props = {{"item_id", "1"}, {"name", "\"x\\\"y\""}};
  std::string id1 = DeriveEventId(e);
  e.id = id1;
  EXPECT_EQ(DeriveEventId(e), id1);  // the id itself does not feed the hash
  std::string buf;
  EncodeEvent(e, &buf);
  Event back;
  ASSERT_TRUE(DecodeEvent(buf, &back).ok());
  EXPECT_EQ(back.uid, "u1");
  EXPECT_EQ(back.Prop("name"), "\"x\\\"y\"");
  EXPECT_EQ(back.id, id1);
  e.ts += 1;
  EXPECT_NE(DeriveEventId(e), id1);
  for (size_t n = 0; n < buf.size(); ++n) EXPECT_FALSE(DecodeEvent(buf.substr(0, n), &back).ok());
}

TEST(JsonTest, EscapesAndUnescapes) {
  std::string out;
  AppendJsonString(&out, "a\"b\\c\n\x01");
  EXPECT_EQ(out, R"("a\"b\\c\n\u0001")");
  std::string back;
  ASSERT_TRUE(UnescapeJsonString(out, &back));
  EXPECT_EQ(back, "a\"b\\c\n\x01");
  ASSERT_TRUE(UnescapeJsonString(R"("\u00e9\ud83d\ude00")", &back));
  EXPECT_EQ(back, "\xc3\xa9\xf0\x9f\x98\x80");
  out.clear();
  AppendJsonNumber(&out, 3);
  AppendJsonNumber(&out, 0.5);
  EXPECT_EQ(out, "30.5");
  EXPECT_EQ(FormatIsoUtc(1700000000123), "2023-11-14T22:13:20.123Z");
}

}  // namespace
}  // namespace portrait
