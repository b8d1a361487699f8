// CSV rows to events, as the file source maps them (the public Taobao behaviour format).
#include <gtest/gtest.h>

#include "ingest/sources/file_source.h"
#include "features/registry.h"

namespace portrait {
namespace {

TEST(CsvRowTest, TaobaoFormatMapsToEvents) {
  auto cfg = ParseConfig(R"(
[events.click.props]
item_id = "int"
category_id = "int"
note = { type = "string", required = false }
[events.buy.props]
item_id = "int"
category_id = "int"
[[sources]]
name = "taobao"
type = "file"
path = "/tmp/x.csv"
format = "csv"
columns = ["uid", "props.item_id", "props.category_id", "type", "ts"]
ts_unit = "s"
type_map = { pv = "click", buy = "buy" }
)", "t.toml");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  const SourceConfig& src = cfg->sources[0];
  auto json = CsvRowToJson("1,2268318,2520377,pv,1511544070", src, *cfg);
  ASSERT_TRUE(json.ok()) << json.status().ToString();
  EXPECT_EQ(*json, R"({"uid":"1","type":"click","ts":1511544070000,"props":{"item_id":2268318,"category_id":2520377}})");
  EXPECT_FALSE(CsvRowToJson("1,2,3,pv", src, *cfg).ok());
  EXPECT_FALSE(CsvRowToJson("1,2,3,pv,yesterday", src, *cfg).ok());
  // A non-numeric id stays a string, for validation to reject with its reason.
  EXPECT_EQ(*CsvRowToJson("1,abc,3,buy,1511544070", src, *cfg),
            R"({"uid":"1","type":"buy","ts":1511544070000,"props":{"item_id":"abc","category_id":3}})");
}

TEST(CsvRowTest, QuotedFieldsAndBadSourceConfig) {
  auto cfg = ParseConfig(R"(
[events.note.props]
text = "string"
[[sources]]
name = "n"
type = "file"
path = "/tmp/n.csv"
format = "csv"
columns = ["uid", "type", "ts", "props.text", ""]
)", "t.toml");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(*CsvRowToJson(R"(u1,note,1700000000000,"a, ""quoted"" text",ignored)", cfg->sources[0], *cfg),
            R"({"uid":"u1","type":"note","ts":1700000000000,"props":{"text":"a, \"quoted\" text"}})");
  Status st = ParseConfig(R"(
[events.e]
[[sources]]
name = "bad"
type = "file"
path = "/tmp/b.csv"
format = "csv"
columns = ["uid", "when"]
type_map = { x = "nope" }
)", "t.toml").status();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("column 2 must be uid"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("csv columns must include type, ts and uid"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("type_map.x must name a declared event type"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace portrait
