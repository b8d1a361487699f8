// The consistency report over a real RocksDB profile store, a real snapshot and an archive
// file of the day: which users it compares and what it finds for each.
#include <gtest/gtest.h>

#include <filesystem>

#include "features/consistency/consistency_report.h"
#include "core/config_check.h"
#include "features/consistency/consistency_config.h"
#include "fusion/fusion.h"
#include "log/archive/archive_files.h"
#include "store/rocksdb/rocksdb_store.h"
#include "store/snapshot.h"
#include "temp_dir.h"

namespace portrait {
namespace {

constexpr const char* kConfig = R"(
[events.click.props]
item_id = "int"
[events.buy.props]
item_id = "int"
[tags.clicks]
type = "list"
size_limit = 10
sort_by = "et"
dedup_by = ["item_id", "et"]
offline = { window = "30d", load = "list.rpushl" }
[tags.last_buy]
type = "number"
offline = { window = "30d", load = "number.max" }
[[rules]]
on = "click"
tag = "clicks"
op = "list.rpush"
value = { item_id = "$props.item_id", et = "$ts" }
[[rules]]
on = "buy"
tag = "last_buy"
op = "number.max"
value = "$ts"
)";

const std::string kDate = "2023-11-15";
constexpr TimestampMs kDay = 1'700'006'400'000;

class ConsistencyReportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = ParseConfigWith(kConfig, "report_test.toml", ConsistencyConfigSections());
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    config_ = std::move(c).value();
    config_.data_dir = dir_.path();
    auto s = OpenRocksDbStore({dir_.path() + "/db", 8}, &config_.tags, &metrics_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
  }

  void Click(const std::string& uid, int item, TimestampMs et) {
    Action a;
    a.uid = uid;
    a.tag = "clicks";
    a.op = OpCode::kListRpush;
    a.ts = et;
    auto item_made = fusion::MakeListItem({{{"item_id", std::to_string(item)}, {"et", std::to_string(et)}}},
                                          *config_.tags.Find("clicks"), et, Source::kRealtime);
    ASSERT_TRUE(item_made.ok());
    a.items.push_back(std::move(item_made).value());
    ASSERT_TRUE(store_->Apply({&a, 1}, {}).ok());
  }
  static std::string Item(int item, TimestampMs et) {
    return R"({"item_id":)" + std::to_string(item) + R"(,"et":)" + std::to_string(et) + "}";
  }

  testing_util::TempDir dir_;
  Config config_;
  MetricsRegistry metrics_;
  std::unique_ptr<ProfileStore> store_;
};

TEST_F(ConsistencyReportTest, FindsEachKindOfGapAmongSnapshotAndArchiveUsers) {
  Click("same", 1, kDay + 1);
  Click("same", 2, kDay + 2);
  Click("same", 3, kDay + 86'400'000 + 5);  // the next day: not held against the snapshot
  Click("short", 1, kDay + 1);
  Click("active", 9, kDay + 9);   // real time only, with an archived event of the day: extra
  Click("unseen", 9, kDay + 9);   // real time only, nothing archived that day: not seen

  auto writer = SnapshotWriter::Create(dir_.path() + "/snapshots", kDate, "batch");
  ASSERT_TRUE(writer.ok()) << writer.status().ToString();
  ASSERT_TRUE((*writer)->Put("same", "{\"clicks\":[" + Item(1, kDay + 1) + "," + Item(2, kDay + 2) + "]}").ok());
  ASSERT_TRUE((*writer)->Put("short", "{\"clicks\":[" + Item(1, kDay + 1) + "," + Item(4, kDay + 4) + "]}").ok());
  ASSERT_TRUE((*writer)->Put("gone", "{\"clicks\":[" + Item(5, kDay + 5) + "],\"last_buy\":1700006400005}").ok());
  ASSERT_TRUE((*writer)->Commit(3).ok());
  std::string archived = R"({"uid":"active","type":"click","ts":1700006400009,"props":{"item_id":9}})" "\n"
                         R"({"uid":"same","type":"click","ts":1700006400001,"props":{"item_id":1}})" "\n";
  const std::string hour = dir_.path() + "/archive/date=" + kDate + "/hour=00";
  std::filesystem::create_directories(hour);
  ASSERT_TRUE(WriteGzipFile(hour + "/part-0-0.ndjson.gz", archived, 1).ok());

  auto report = RunConsistency(config_, store_.get(), kDate, {1.0, 5});
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->snapshot.version, 1);
  EXPECT_EQ(report->snapshot_users, 3u);
  EXPECT_EQ(report->archive_only_users, 1u);
  EXPECT_TRUE(report->archive_read);
  ASSERT_EQ(report->tags.size(), 2u);
  const TagTally& clicks = report->tags[0];
  ASSERT_EQ(clicks.tag, "clicks");
  EXPECT_EQ(clicks.users(), 4u);
  EXPECT_EQ(clicks.count(Outcome::kEqual), 1u);
  EXPECT_EQ(clicks.count(Outcome::kDifferent), 1u);
  EXPECT_EQ(clicks.count(Outcome::kMissing), 1u);
  EXPECT_EQ(clicks.count(Outcome::kExtra), 1u);
  ASSERT_EQ(clicks.worst.size(), 3u);
  EXPECT_EQ(clicks.worst[0].uid, "active");
  EXPECT_EQ(clicks.worst[1].uid, "gone");
  EXPECT_EQ(clicks.worst[2].uid, "short");
  EXPECT_EQ(clicks.worst[2].comparison.realtime, R"([{"et":1700006400001,"item_id":1}])") << "canonical: keys sorted";
  const TagTally& last_buy = report->tags[1];
  EXPECT_EQ(last_buy.users(), 1u);
  EXPECT_EQ(last_buy.count(Outcome::kMissing), 1u);

  std::string json = report->ToJson();
  EXPECT_NE(json.find(R"("tag":"clicks","type":"list","users":4,"equal":1,"missing":1,"extra":1,"different":1)"),
            std::string::npos)
      << json;
  RecordConsistency(*report, &metrics_);
  std::string text = metrics_.RenderPrometheus();
  EXPECT_NE(text.find(R"(portrait_consistency_users{tag="clicks",outcome="different"} 1)"), std::string::npos) << text;
  EXPECT_NE(text.find(R"(portrait_consistency_equal_ppm{tag="clicks"} 250000)"), std::string::npos) << text;

  // A sample compares a subset, the same every time.
  auto sampled = RunConsistency(config_, store_.get(), kDate, {0.5, 5});
  ASSERT_TRUE(sampled.ok());
  uint64_t want = InSample("same", 0.5) + InSample("short", 0.5) + InSample("gone", 0.5);
  EXPECT_EQ(sampled->snapshot_users, want);
}

TEST_F(ConsistencyReportTest, ErrorsNameWhatIsMissing) {
  auto none = RunConsistency(config_, store_.get(), kDate, {});
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("no complete snapshot of 2023-11-15"), std::string::npos)
      << none.status().message();
  EXPECT_NE(none.status().message().find("portrait batch --date 2023-11-15"), std::string::npos);
  auto bad = RunConsistency(config_, store_.get(), "15.11.2023", {});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("YYYY-MM-DD"), std::string::npos);
  auto zero = RunConsistency(config_, store_.get(), kDate, {0.0, 5});
  ASSERT_FALSE(zero.ok());
  EXPECT_NE(zero.status().message().find("sample"), std::string::npos);
}

}  // namespace
}  // namespace portrait
