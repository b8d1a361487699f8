// The collector: body shapes, per-event validation with reasons, and that valid events
// around invalid ones are kept and logged.
#include "pipeline/collector.h"

#include <gtest/gtest.h>

#include "log/embedded/segment_log.h"
#include "pipeline/failed.h"
#include "temp_dir.h"

namespace portrait {
namespace {

constexpr const char* kConfig = R"(
[server]
max_json_depth = 8
[events.click]
allow_unknown_props = false
[events.click.props]
item_id = "int"
price = { type = "number", required = false, min = 0 }
name = { type = "string", required = false, max_len = 5 }
[events.APPSTART]
)";

class CollectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cfg = ParseConfig(kConfig, "t.toml");
    ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
    config_ = std::move(cfg).value();
    SegmentLogOptions o;
    o.dir = dir_.path();
    o.partitions = 4;
    log_ = std::move(OpenSegmentLog(o, &metrics_).value());
    SegmentLogOptions f;
    f.dir = dir_.path() + "/failed";
    f.partitions = 1;
    failed_ = std::move(OpenSegmentLog(f, &metrics_).value());
    collector_ = std::make_unique<Collector>(config_, log_.get(), failed_.get(), &metrics_);
  }

  IngestResult Ingest(std::string body) {
    body.reserve(body.size() + Collector::kPadding);
    auto r = collector_->Ingest(body);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : IngestResult{};
  }

  int64_t Logged() {
    int64_t n = 0;
    for (int p = 0; p < log_->partitions(); ++p) n += log_->EndOffset(PartitionId(p)).value;
    return n;
  }

  testing_util::TempDir dir_;
  MetricsRegistry metrics_;
  Config config_;
  std::unique_ptr<Log> log_;
  std::unique_ptr<Log> failed_;
  std::unique_ptr<Collector> collector_;
};

TEST_F(CollectorTest, AcceptsSingleArrayAndNdjson) {
  EXPECT_EQ(Ingest(R"({"uid":"u","type":"click","ts":1700000000000,"props":{"item_id":1}})").accepted, 1u);
  EXPECT_EQ(Ingest("{\n  \"uid\": \"u\",\n  \"type\": \"APPSTART\",\n  \"ts\": 1700000000000\n}\n").accepted, 1u);
  EXPECT_EQ(Ingest(R"([{"uid":"u","type":"APPSTART","ts":1700000000000},{"uid":7,"type":"APPSTART","ts":1700000000001}])").accepted, 2u);
  EXPECT_EQ(Ingest("{\"uid\":\"a\",\"type\":\"APPSTART\",\"ts\":1700000000000}\n\n{\"device_id\":\"d\",\"type\":\"APPSTART\",\"ts\":1700000000000}\r\n").accepted, 2u);
  EXPECT_EQ(Logged(), 5);  // the array's first event repeats the pretty-printed one
}

TEST_F(CollectorTest, RejectsEachBadEventWithReasonAndKeepsTheRest) {
  std::string body =
      R"({"uid":"u","type":"click","ts":1700000000000,"props":{"item_id":1}})" "\n"
      R"({"uid":"u","type":"click","ts":1700000000000,"props":{"item_id":"one"}})" "\n"
      R"({"uid":"u","type":"click","ts":1700000000000)" "\n"
      R"({"uid":"u","type":"view","ts":1700000000000})" "\n"
      R"({"uid":"u","type":"click","ts":1700000000,"props":{"item_id":1}})" "\n"
      R"({"type":"APPSTART","ts":1700000000000})" "\n"
      R"({"uid":"u","type":"click","ts":1700000000000,"props":{"item_id":1,"color":"red"}})" "\n"
      R"({"uid":"u","type":"click","ts":1700000000000,"props":{"item_id":1,"price":-1}})" "\n"
      R"({"uid":"u","type":"click","ts":1700000000000,"props":{"item_id":1,"name":"toolong"}})" "\n"
      R"({"uid":"u","type":"APPSTART","ts":1700000000000,"extra":1})" "\n"
      R"({"uid":"u","type":"APPSTART","ts":1700000000000,"props":{"a":[[[[[[[[[[1]]]]]]]]]]}})" "\n"
      R"([1])" "\n"
      R"({"uid":"u","type":"APPSTART","ts":"yesterday"})" "\n"
      R"({"uid":"u","type":"click","ts":1700000000001,"props":{"item_id":2}})" "\n";
  IngestResult r = Ingest(body);
  EXPECT_EQ(r.accepted, 2u);
  std::vector<std::pair<size_t, std::string>> got;
  for (const auto& rej : r.rejected) got.emplace_back(rej.index, rej.reason);
  std::vector<std::pair<size_t, std::string>> want = {
      {1, "wrong_type"},   {2, "malformed_json"}, {3, "unknown_type"},  {4, "invalid_value"},
      {5, "missing_field"}, {6, "unknown_field"}, {7, "invalid_value"}, {8, "invalid_value"},
      {9, "unknown_field"}, {10, "too_deep"},     {11, "not_object"},   {12, "wrong_type"}};
  EXPECT_EQ(got, want);
  EXPECT_NE(r.rejected[0].message.find("props.item_id must be an integer, not string"), std::string::npos);
  EXPECT_NE(r.rejected[2].message.find("declared types are: APPSTART, click"), std::string::npos);
  EXPECT_NE(r.rejected[3].message.find("seconds given?"), std::string::npos);
  EXPECT_EQ(Logged(), 2);
  EXPECT_EQ(metrics_.GetCounter("portrait_events_rejected_total", "", "reason=\"invalid_value\"")->value(), 3u);

  // Every rejected event is kept with its original text, reason and source.
  auto kept = ReadLatestFailed(*failed_, 100);
  ASSERT_TRUE(kept.ok()) << kept.status().ToString();
  ASSERT_EQ(kept->size(), 12u);
  const FailedRecord& newest = kept->front().second;
  EXPECT_EQ(newest.reason, "wrong_type");
  EXPECT_EQ(newest.kind, "event");
  EXPECT_EQ(newest.source, "http");
  EXPECT_EQ(newest.payload, R"({"uid":"u","type":"APPSTART","ts":"yesterday"})");
  const FailedRecord& malformed = kept->at(10).second;  // second oldest
  EXPECT_EQ(malformed.reason, "malformed_json");
  EXPECT_EQ(malformed.payload, R"({"uid":"u","type":"click","ts":1700000000000)");
  EXPECT_EQ(ReadLatestFailed(*failed_, 3)->size(), 3u);
}

TEST_F(CollectorTest, MalformedArrayRejectsWholeBody) {
  IngestResult r = Ingest(R"([{"uid":"u","type":"APPSTART","ts":1700000000000}, {oops}])");
  EXPECT_EQ(r.accepted, 0u);
  ASSERT_EQ(r.rejected.size(), 1u);
  EXPECT_EQ(r.rejected[0].reason, "malformed_json");
  EXPECT_EQ(Logged(), 0);
}

TEST_F(CollectorTest, RepeatedIdsAreLoggedOnce) {
  std::string a = R"({"uid":"u","type":"APPSTART","ts":1700000000000})";
  std::string b = R"({"id":"x1","uid":"v","type":"APPSTART","ts":1700000000000})";
  IngestResult r = Ingest(a + "\n" + a + "\n" + b);
  EXPECT_EQ(r.accepted, 3u);
  EXPECT_EQ(r.duplicates, 1u);
  r = Ingest(b + "\n" + R"({"id":"x1","uid":"v","type":"APPSTART","ts":1700000000001})");  // same id, other content
  EXPECT_EQ(r.duplicates, 2u);
  EXPECT_EQ(Logged(), 2);
  // A new collector over the same log remembers them once it has loaded the window.
  Collector again(config_, log_.get(), failed_.get(), &metrics_);
  ASSERT_TRUE(again.LoadRecentIds().ok());
  std::string body = a;
  body.reserve(body.size() + Collector::kPadding);
  EXPECT_EQ(again.Ingest(body)->duplicates, 1u);
  EXPECT_EQ(Logged(), 2);
}

TEST_F(CollectorTest, EmptyBodyIsRejected) {
  IngestResult r = Ingest("  \n ");
  ASSERT_EQ(r.rejected.size(), 1u);
  EXPECT_EQ(r.rejected[0].reason, "empty_body");
}

TEST_F(CollectorTest, DerivesStableIdsAndNormalisesIds) {
  auto a = collector_->ParseOne(R"({"uid":42,"type":"APPSTART","ts":1700000000000,"channel":3})");
  auto b = collector_->ParseOne(R"({"ts":1700000000000,"channel":"3","type":"APPSTART","uid":"42"})");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->uid, "42");
  EXPECT_EQ(a->channel, "3");
  EXPECT_EQ(a->id, b->id);
  auto c = collector_->ParseOne(R"({"id":"mine","uid":"42","type":"APPSTART","ts":1700000000000})");
  EXPECT_EQ(c->id, "mine");
}

}  // namespace
}  // namespace portrait
