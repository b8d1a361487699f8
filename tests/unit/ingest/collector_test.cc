// The collector: body shapes, per-event validation with reasons, and that valid events
// around invalid ones are kept and logged.
#include "ingest/collector.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <thread>

#include "log/embedded/segment_log.h"
#include "ingest/failed.h"
#include "temp_dir.h"
#include "features/registry.h"

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

// Control bytes are separators in stored records (the channel registry's, for one): an id,
// product or channel holding one is refused with its place; the events around it are kept.
TEST_F(CollectorTest, IdsWithControlBytesAreRefusedAndTheRestKept) {
  std::string body = R"({"uid":"a\u001fb","type":"APPSTART","ts":1700000000000})" "\n"
                     R"({"uid":"ok","type":"APPSTART","ts":1700000000000,"channel":"ads\u0000"})" "\n"
                     R"({"uid":"ok","type":"APPSTART","ts":1700000000000,"product":"app\n"})" "\n"
                     R"({"uid":"}braces{ are fine","type":"APPSTART","ts":1700000000000})";
  IngestResult r = Ingest(body);
  EXPECT_EQ(r.accepted, 1u);
  ASSERT_EQ(r.rejected.size(), 3u);
  EXPECT_EQ(r.rejected[0].reason, "invalid_value");
  EXPECT_NE(r.rejected[0].message.find("field \"uid\" holds the control byte 0x1f at 1"), std::string::npos)
      << r.rejected[0].message;
  EXPECT_NE(r.rejected[1].message.find("\"channel\""), std::string::npos) << r.rejected[1].message;
  EXPECT_NE(r.rejected[2].message.find("\"product\""), std::string::npos) << r.rejected[2].message;
  EXPECT_FALSE(collector_->DeleteProfile(std::string("x\x01", 2)).ok());
}

// A log whose next Append waits at a gate and then fails (a disk that fills during it).
class GateLog : public Log {
 public:
  explicit GateLog(Log* inner) : inner_(inner) {}
  void Arm() { armed_ = true; }
  void Open() {
    {
      std::lock_guard lk(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }
  bool waiting() const { return waiting_; }
  int partitions() const override { return inner_->partitions(); }
  Status Append(std::span<const LogEntry> entries, std::vector<Offset>* offsets = nullptr) override {
    if (armed_.exchange(false)) {
      waiting_ = true;
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return open_; });
      return Status::Unavailable("log write: No space left on device");
    }
    return inner_->Append(entries, offsets);
  }
  Result<std::unique_ptr<LogReader>> OpenReader(PartitionId p, Offset from) override { return inner_->OpenReader(p, from); }
  Offset EndOffset(PartitionId p) const override { return inner_->EndOffset(p); }
  Offset StartOffset(PartitionId p) const override { return inner_->StartOffset(p); }
  Result<uint64_t> Trim(PartitionId p, Offset k, int64_t a, uint64_t b) override { return inner_->Trim(p, k, a, b); }
  Status CommitOffset(std::string_view c, PartitionId p, Offset n) override { return inner_->CommitOffset(c, p, n); }
  Result<Offset> CommittedOffset(std::string_view c, PartitionId p) override { return inner_->CommittedOffset(c, p); }
  uint64_t DataEpoch() const override { return inner_->DataEpoch(); }
  void WaitForData(uint64_t seen, std::chrono::milliseconds t) override { inner_->WaitForData(seen, t); }
  void Close() override {}

 private:
  Log* inner_;
  std::atomic<bool> armed_{false}, waiting_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

// A second request carrying an id whose first append is not durable yet waits for it: the
// first fails, so the second logs the event itself (once) instead of answering 200 for an
// event that was never kept.
TEST_F(CollectorTest, ARepeatOfAnIdInFlightWaitsForItsAppend) {
  GateLog gate(log_.get());
  Collector c(config_, &gate, failed_.get(), &metrics_);
  std::string body = R"({"id":"same","uid":"u","type":"APPSTART","ts":1700000000000})";
  body.reserve(body.size() + Collector::kPadding);
  gate.Arm();
  std::thread first([&] { EXPECT_FALSE(c.Ingest(body).ok()) << "its append failed"; });
  while (!gate.waiting()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::atomic<bool> second_done{false};
  Result<IngestResult> second = Status::Internal("not run");
  std::thread repeat([&] {
    second = c.Ingest(body);
    second_done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(second_done.load()) << "answered before the first append of its id was durable";
  gate.Open();
  first.join();
  repeat.join();
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->accepted, 1u);
  EXPECT_EQ(second->duplicates, 0u) << "the first request's event was never logged";
  EXPECT_EQ(Logged(), 1);
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

namespace portrait {
namespace {

// [[routes]]: copies of routed types go, as JSON, to their topic (exclusive ones only
// there); a topic that fails to take them leaves the copies in the retry topic, and the
// request still succeeds.
TEST_F(CollectorTest, RoutedEventsReachTheirTopicOrWaitInTheRetryTopic) {
  auto open = [&](const std::string& name, int partitions) {
    SegmentLogOptions o;
    o.dir = dir_.path() + "/" + name;
    o.partitions = partitions;
    return std::move(OpenSegmentLog(o, &metrics_).value());
  };
  auto orders = open("orders", 2);
  auto starts = open("starts", 2);
  auto retry = open("retry", RetryQueue::Steps(config_.retry));
  auto dead = open("dead", 1);
  RetryQueue queue(config_.retry, retry.get(), dead.get(), &metrics_);  // not started: items stay queued
  LogSink orders_sink("route:orders", orders.get()), starts_sink("route:starts", starts.get());
  std::map<std::string, std::vector<Collector::Route>> routes;
  routes["click"].push_back({&orders_sink, false});
  routes["APPSTART"].push_back({&starts_sink, true});
  collector_->SetRoutes(routes, &queue);

  IngestResult r = Ingest(R"({"uid":"u1","type":"click","ts":1700000000001,"props":{"item_id":7}}
{"uid":"u2","type":"APPSTART","ts":1700000000002}
)");
  EXPECT_EQ(r.accepted, 2u);
  EXPECT_EQ(Logged(), 1) << "the exclusive APPSTART is not in the events topic";
  auto all = [](Log& log) {
    std::vector<std::string> out;
    for (int p = 0; p < log.partitions(); ++p) {
      EXPECT_TRUE(ReadTail(log, PartitionId(p), 100, [&](Offset, std::string_view payload) {
                    out.emplace_back(payload);
                    return Status::Ok();
                  }).ok());
    }
    return out;
  };
  std::vector<std::string> got = all(*orders);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_NE(got[0].find(R"("uid":"u1")"), std::string::npos) << got[0];
  EXPECT_NE(got[0].find(R"("item_id":7)"), std::string::npos) << got[0];
  ASSERT_EQ(all(*starts).size(), 1u);

  // The orders topic stops taking appends: the request still succeeds, the copy waits.
  orders->Close();
  r = Ingest(R"({"uid":"u3","type":"click","ts":1700000000003,"props":{"item_id":8}})");
  EXPECT_EQ(r.accepted, 1u);
  EXPECT_EQ(Logged(), 2);
  std::vector<RetryItem> waiting;
  ASSERT_TRUE(ReadTail(*retry, PartitionId(0), 10, [&](Offset, std::string_view payload) {
                RetryItem item;
                RETURN_IF_ERROR(DecodeRetryItem(payload, &item));
                waiting.push_back(item);
                return Status::Ok();
              }).ok());
  ASSERT_EQ(waiting.size(), 1u);
  EXPECT_EQ(waiting[0].sink, "route:orders");
  EXPECT_EQ(waiting[0].key, "u3");
  EXPECT_NE(waiting[0].payload.find(R"("item_id":8)"), std::string::npos);
  EXPECT_NE(waiting[0].error.find("closed"), std::string::npos) << waiting[0].error;
}

}  // namespace
}  // namespace portrait
