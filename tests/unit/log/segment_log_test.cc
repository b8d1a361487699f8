// The embedded log: ordering, restart, segment rolling, torn-tail recovery, checksums,
// and group commit under concurrent appenders, for every fsync policy.
#include "log/embedded/segment_log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "temp_dir.h"

namespace portrait {
namespace {

using testing_util::TempDir;

class SegmentLogTest : public ::testing::TestWithParam<FsyncPolicy> {
 protected:
  std::unique_ptr<Log> Open(uint64_t segment_bytes = 1 << 20, SegmentLogRecovery* rec = nullptr) {
    SegmentLogOptions o;
    o.dir = dir_.path();
    o.partitions = 2;
    o.fsync = GetParam();
    o.fsync_max_delay_ms = 1;
    o.segment_bytes = segment_bytes;
    auto log = OpenSegmentLog(o, &metrics_, rec);
    EXPECT_TRUE(log.ok()) << log.status().ToString();
    return std::move(log).value();
  }

  static std::vector<std::string> ReadAll(Log& log, PartitionId p, Offset from = Offset(0)) {
    auto reader = log.OpenReader(p, from);
    EXPECT_TRUE(reader.ok()) << reader.status().ToString();
    std::vector<std::string> out;
    std::vector<LogRecord> recs;
    while (true) {
      Status st = (*reader)->Read(256, &recs);
      EXPECT_TRUE(st.ok()) << st.ToString();
      if (!st.ok() || recs.empty()) break;
      for (auto& r : recs) out.emplace_back(r.payload);
    }
    return out;
  }

  static Status AppendN(Log& log, PartitionId p, int from, int n) {
    std::vector<std::string> payloads;
    for (int i = from; i < from + n; ++i) payloads.push_back("record-" + std::to_string(i));
    std::vector<LogEntry> entries;
    for (auto& s : payloads) entries.push_back({p, s});
    return log.Append(entries);
  }

  TempDir dir_;
  MetricsRegistry metrics_;
};

TEST_P(SegmentLogTest, AppendsReadBackInOrderAcrossRestartAndSegments) {
  {
    auto log = Open(/*segment_bytes=*/200);  // forces many segments (a roll happens between appends)
    for (int i = 0; i < 50; i += 5) ASSERT_TRUE(AppendN(*log, PartitionId(0), i, 5).ok());
    ASSERT_TRUE(AppendN(*log, PartitionId(1), 0, 3).ok());
    EXPECT_EQ(log->EndOffset(PartitionId(0)), Offset(50));
  }
  auto log = Open(200);
  ASSERT_TRUE(AppendN(*log, PartitionId(0), 50, 10).ok());
  auto all = ReadAll(*log, PartitionId(0));
  ASSERT_EQ(all.size(), 60u);
  for (int i = 0; i < 60; ++i) EXPECT_EQ(all[i], "record-" + std::to_string(i));
  EXPECT_EQ(ReadAll(*log, PartitionId(1)).size(), 3u);
  auto tail = ReadAll(*log, PartitionId(0), Offset(42));
  ASSERT_EQ(tail.size(), 18u);
  EXPECT_EQ(tail[0], "record-42");
  EXPECT_GT(std::distance(std::filesystem::directory_iterator(dir_.path() + "/p-0000"),
                          std::filesystem::directory_iterator()),
            5);
}

TEST_P(SegmentLogTest, TornTailIsDroppedAndReported) {
  {
    auto log = Open();
    ASSERT_TRUE(AppendN(*log, PartitionId(0), 0, 10).ok());
  }
  std::string seg = dir_.path() + "/p-0000/00000000000000000000.log";
  auto size = std::filesystem::file_size(seg);
  std::filesystem::resize_file(seg, size - 3);  // a write cut short by a crash
  SegmentLogRecovery rec;
  auto log = Open(1 << 20, &rec);
  EXPECT_GT(rec.dropped_bytes, 0u);
  ASSERT_EQ(rec.notes.size(), 1u);
  EXPECT_NE(rec.notes[0].find("after offset 8"), std::string::npos) << rec.notes[0];
  EXPECT_EQ(log->EndOffset(PartitionId(0)), Offset(9));
  // New appends continue right after the last intact record.
  ASSERT_TRUE(AppendN(*log, PartitionId(0), 100, 1).ok());
  auto all = ReadAll(*log, PartitionId(0));
  ASSERT_EQ(all.size(), 10u);
  EXPECT_EQ(all[8], "record-8");
  EXPECT_EQ(all[9], "record-100");
}

TEST_P(SegmentLogTest, CorruptRecordIsAnErrorNeverServed) {
  {
    auto log = Open(/*segment_bytes=*/100);
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(AppendN(*log, PartitionId(0), i, 1).ok());
  }
  // Flip a payload byte in the first (closed) segment.
  std::string seg = dir_.path() + "/p-0000/00000000000000000000.log";
  int fd = ::open(seg.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  char c = 'X';
  ASSERT_EQ(::pwrite(fd, &c, 1, 18), 1);
  ::close(fd);
  auto log = Open(100);
  auto reader = log->OpenReader(PartitionId(0), Offset(0));
  ASSERT_TRUE(reader.ok());
  std::vector<LogRecord> recs;
  Status st = (*reader)->Read(1 << 20, &recs);
  EXPECT_EQ(st.code(), StatusCode::kCorruption) << st.ToString();
  EXPECT_NE(st.message().find("checksum mismatch at offset 0"), std::string::npos) << st.message();
  EXPECT_TRUE(recs.empty());
}

TEST_P(SegmentLogTest, ConcurrentAppendersAllDurableAndOrderedPerWriter) {
  auto log = Open(4096);
  constexpr int kThreads = 4, kPerThread = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string payload = std::to_string(t) + ":" + std::to_string(i);
        LogEntry e{PartitionId(t % 2), payload};
        ASSERT_TRUE(log->Append({&e, 1}).ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  std::map<int, int> next;
  size_t total = 0;
  for (int p = 0; p < 2; ++p) {
    for (const auto& s : ReadAll(*log, PartitionId(p))) {
      int t = std::stoi(s.substr(0, s.find(':')));
      int i = std::stoi(s.substr(s.find(':') + 1));
      EXPECT_EQ(i, next[t]++) << "writer " << t << " out of order";
      ++total;
    }
  }
  EXPECT_EQ(total, static_cast<size_t>(kThreads * kPerThread));
}

TEST_P(SegmentLogTest, ConsumerOffsetsPersist) {
  {
    auto log = Open();
    EXPECT_EQ(*log->CommittedOffset("c", PartitionId(1)), Offset(0));
    ASSERT_TRUE(log->CommitOffset("c", PartitionId(1), Offset(7)).ok());
    ASSERT_TRUE(log->CommitOffset("c", PartitionId(0), Offset(3)).ok());
  }
  auto log = Open();
  EXPECT_EQ(*log->CommittedOffset("c", PartitionId(1)), Offset(7));
  EXPECT_EQ(*log->CommittedOffset("c", PartitionId(0)), Offset(3));
}

TEST_P(SegmentLogTest, ReaderPastEndIsRefused) {
  auto log = Open();
  ASSERT_TRUE(AppendN(*log, PartitionId(0), 0, 2).ok());
  auto reader = log->OpenReader(PartitionId(0), Offset(5));
  EXPECT_EQ(reader.status().code(), StatusCode::kFailedPrecondition);
}

TEST_P(SegmentLogTest, WaitForDataWakesOnAppend) {
  auto log = Open();
  uint64_t epoch = log->DataEpoch();
  std::thread t([&] { ASSERT_TRUE(AppendN(*log, PartitionId(0), 0, 1).ok()); });
  log->WaitForData(epoch, std::chrono::seconds(10));
  t.join();
  EXPECT_NE(log->DataEpoch(), epoch);
}

TEST_P(SegmentLogTest, RetentionTrimsOldSegmentsButNeverUnconsumedOnes) {
  {
    auto log = Open(/*segment_bytes=*/200);
    for (int i = 0; i < 100; i += 5) ASSERT_TRUE(AppendN(*log, PartitionId(0), i, 5).ok());
    // Size: everything may go but what holds offset 60 or later (and the active segment).
    auto deleted = log->Trim(PartitionId(0), Offset(60), 0, 1);
    ASSERT_TRUE(deleted.ok()) << deleted.status().ToString();
    EXPECT_GT(*deleted, 0u);
    Offset start = log->StartOffset(PartitionId(0));
    EXPECT_GT(start.value, 0);
    EXPECT_LE(start.value, 60);
    auto rest = ReadAll(*log, PartitionId(0), start);
    EXPECT_EQ(rest.back(), "record-99");
    EXPECT_EQ(rest.front(), "record-" + std::to_string(start.value));
    // Age: nothing is old yet, so nothing more goes.
    EXPECT_EQ(*log->Trim(PartitionId(0), Offset(100), 3'600'000, 0), 0u);
  }
  // Reopened, the log starts where retention left it; old segments aged past the limit go.
  auto log = Open(200);
  Offset start = log->StartOffset(PartitionId(0));
  EXPECT_GT(start.value, 0);
  EXPECT_EQ(log->OpenReader(PartitionId(0), Offset(0)).status().code(), StatusCode::kNotFound);
  for (const auto& e : std::filesystem::directory_iterator(dir_.path() + "/p-0000")) {
    std::filesystem::last_write_time(e.path(), std::filesystem::file_time_type::clock::now() - std::chrono::hours(48));
  }
  EXPECT_GT(*log->Trim(PartitionId(0), Offset(100), 3'600'000, 0), 0u);
  EXPECT_EQ(log->EndOffset(PartitionId(0)), Offset(100));
  ASSERT_TRUE(AppendN(*log, PartitionId(0), 100, 1).ok());  // the active segment stayed
  EXPECT_EQ(ReadAll(*log, PartitionId(0), log->StartOffset(PartitionId(0))).back(), "record-100");
}

INSTANTIATE_TEST_SUITE_P(Policies, SegmentLogTest,
                         ::testing::Values(FsyncPolicy::kAlways, FsyncPolicy::kBatch, FsyncPolicy::kNone),
                         [](const auto& info) { return std::string(FsyncPolicyName(info.param)); });

}  // namespace
}  // namespace portrait
