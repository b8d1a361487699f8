// Archive compaction: a closed hour's part files become one file per partition, every
// event is read once through the reader the batch and calibration use (ListArchive +
// ReadGzip), and a compaction stopped between any two of its steps (as a kill -9 would
// stop it) neither loses nor doubles an event, before or after the next pass finishes it.
#include "log/archive/compaction.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "core/event.h"
#include "log/archive/archive_files.h"
#include "log/archive/archiver.h"
#include "log/embedded/segment_log.h"
#include "temp_dir.h"

namespace portrait {
namespace {

namespace fs = std::filesystem;
using testing_util::TempDir;

constexpr TimestampMs kT0 = 1700000000000;  // 2023-11-14 22:13 UTC: long closed
constexpr int64_t kHourMs = 3'600'000;

// Event id -> how many times the reader of the batch sees it.
std::map<std::string, int> ReadIds(const std::string& dir) {
  std::map<std::string, int> ids;
  auto parts = ListArchive(dir, "", "9999-12-31");
  EXPECT_TRUE(parts.ok());
  std::string text;
  for (const auto& [p, files] : *parts) {
    for (const std::string& f : files) {
      EXPECT_TRUE(ReadGzip(f, &text).ok()) << f;
      for (size_t at = text.find("\"id\":\""); at != std::string::npos; at = text.find("\"id\":\"", at + 1)) {
        size_t from = at + 6;
        ++ids[text.substr(from, text.find('"', from) - from)];
      }
    }
  }
  return ids;
}

// (hour dir, partition) -> files on disk (what a warehouse lists), and the .tmp files.
std::map<std::pair<std::string, int>, int> FilesOnDisk(const std::string& dir, int* tmps = nullptr) {
  std::map<std::pair<std::string, int>, int> n;
  if (tmps) *tmps = 0;
  for (const auto& f : fs::recursive_directory_iterator(dir)) {
    std::string name = f.path().filename().string();
    if (!name.starts_with("part-")) continue;
    if (name.ends_with(".tmp")) {
      if (tmps) ++*tmps;
      continue;
    }
    ++n[{f.path().parent_path().string(), std::atoi(name.c_str() + 5)}];
  }
  return n;
}

void ExpectEachOnce(const std::map<std::string, int>& ids, size_t total, const std::string& when) {
  EXPECT_EQ(ids.size(), total) << when << ": events lost";
  int twice = 0;
  for (const auto& [id, n] : ids) twice += n != 1;
  EXPECT_EQ(twice, 0) << when << ": events read more than once";
}

std::unique_ptr<Log> OpenLog(const std::string& dir, int partitions, MetricsRegistry* metrics) {
  SegmentLogOptions o;
  o.dir = dir;
  o.partitions = partitions;
  o.fsync = FsyncPolicy::kNone;
  auto log = OpenSegmentLog(o, metrics, nullptr);
  EXPECT_TRUE(log.ok()) << log.status().ToString();
  return log.ok() ? std::move(log).value() : nullptr;
}

// An archive written by hand the way flushes write it: partitions 0 and 1, hours H0 and
// H1, a part file per flush (first offsets 0, 10, 20, 30) of 10 events each, the part at
// 30 not committed yet (a crash may rewrite it). Returns the number of events.
size_t WriteFlushedArchive(const std::string& dir) {
  size_t total = 0;
  for (int p = 0; p < 2; ++p) {
    for (int64_t first = 0; first < 40; first += 10) {
      std::map<std::string, std::string> by_hour;
      for (int i = 0; i < 10; ++i) {
        Event e;
        e.id = "e" + std::to_string(p) + "-" + std::to_string(first + i);
        e.uid = "u" + std::to_string(p);
        e.type = "click";
        e.ts = kT0 + (i % 2) * kHourMs;
        by_hour[Archiver::HourPath(e.ts)] += EventToJson(e) + "\n";
        ++total;
      }
      for (const auto& [hour, lines] : by_hour) {
        fs::create_directories(dir + "/" + hour);
        EXPECT_TRUE(WriteGzipFile(dir + "/" + hour + "/" + PartFileName(p, first, first), lines, 1).ok());
      }
    }
  }
  return total;
}

const std::map<int, int64_t> kCommitted = {{0, 30}, {1, 30}};  // the parts at 30 are not

TEST(ArchiveCompactionTest, PartNamesSayWhatAMergedFileCovers) {
  auto flush = ParsePartName("part-3-120.ndjson.gz");
  ASSERT_TRUE(flush);
  EXPECT_EQ(flush->partition, 3);
  EXPECT_EQ(flush->lo, 120);
  EXPECT_FALSE(flush->merged);
  auto merged = ParsePartName(PartFileName(3, 0, 120));
  ASSERT_TRUE(merged);
  EXPECT_TRUE(merged->merged);
  EXPECT_EQ(merged->hi, 120);
  EXPECT_FALSE(ParsePartName("part-3-120.ndjson.gz.tmp"));
  EXPECT_FALSE(ParsePartName("part-x.ndjson.gz"));
  std::vector<std::string> covered;
  auto visible = VisibleParts({"part-0-0.ndjson.gz", "part-0-5.ndjson.gz", "part-0-0-5.ndjson.gz", "part-0-9.ndjson.gz",
                               "part-1-5.ndjson.gz", "part-0-0-9.ndjson.gz", "odd.ndjson.gz"},
                              &covered);
  EXPECT_EQ(visible, (std::vector<std::string>{"part-1-5.ndjson.gz", "part-0-0-9.ndjson.gz", "odd.ndjson.gz"}));
  EXPECT_EQ(covered.size(), 4u);
}

TEST(ArchiveCompactionTest, AClosedHourBecomesOneFilePerPartitionWithEveryEventOnce) {
  TempDir dir;
  const std::string archive = dir.path() + "/archive";
  const size_t total = WriteFlushedArchive(archive);
  ExpectEachOnce(ReadIds(archive), total, "before");
  ArchiveCompactor compactor(archive, CompactionOptions{1, 2 * kHourMs, 0});
  // Not closed yet (as of just after the hours): nothing is touched.
  CompactionStats early = compactor.Compact(kCommitted, kT0 + kHourMs);
  EXPECT_EQ(early.hours, 0u);
  CompactionStats stats = compactor.Compact(kCommitted, NowMs());
  EXPECT_EQ(stats.hours, 4u);    // 2 partitions x 2 hours
  EXPECT_EQ(stats.files, 12u);   // the committed parts 0, 10, 20 of each
  EXPECT_EQ(stats.removed, 12u);
  ExpectEachOnce(ReadIds(archive), total, "after");
  int tmps = 0;
  for (const auto& [hour_partition, n] : FilesOnDisk(archive, &tmps)) {
    EXPECT_EQ(n, 2) << hour_partition.first << " partition " << hour_partition.second
                    << ": the merged file and the part not committed yet";
  }
  EXPECT_EQ(tmps, 0);
  // The archive commits 30 and 40: the next pass merges the rest (and a late event's part).
  std::map<int, int64_t> later = {{0, 40}, {1, 40}};
  stats = compactor.Compact(later, NowMs());
  EXPECT_EQ(stats.hours, 4u);
  ExpectEachOnce(ReadIds(archive), total, "after the second pass");
  for (const auto& [hour_partition, n] : FilesOnDisk(archive)) EXPECT_EQ(n, 1) << hour_partition.first;
  EXPECT_EQ(compactor.Compact(later, NowMs()).hours, 0u) << "nothing left to merge";
}

// A kill -9 after each step: what it leaves reads as every event once, and the next pass
// (a restart: a new compactor) finishes it.
TEST(ArchiveCompactionTest, AStopBetweenAnyTwoStepsLosesAndDoublesNothing) {
  const std::vector<std::pair<CompactionStep, int>> stops = {
      {CompactionStep::kMergedWritten, 1}, {CompactionStep::kMergedVisible, 1}, {CompactionStep::kInputRemoved, 1},
      {CompactionStep::kInputRemoved, 2},  {CompactionStep::kMergedWritten, 3}, {CompactionStep::kMergedVisible, 4}};
  for (const auto& [step, nth] : stops) {
    const std::string when = "stopped at step " + std::to_string(static_cast<int>(step)) + " #" + std::to_string(nth);
    TempDir dir;
    const std::string archive = dir.path() + "/archive";
    const size_t total = WriteFlushedArchive(archive);
    {
      ArchiveCompactor crashing(archive, CompactionOptions{1, 2 * kHourMs, 0});
      int seen = 0;
      crashing.SetHook([&, step = step, nth = nth](CompactionStep s) { return !(s == step && ++seen == nth); });
      EXPECT_TRUE(crashing.Compact(kCommitted, NowMs()).stopped) << when;
    }
    ExpectEachOnce(ReadIds(archive), total, when);
    ArchiveCompactor restarted(archive, CompactionOptions{1, 2 * kHourMs, 0});
    CompactionStats stats = restarted.Compact({{0, 40}, {1, 40}}, NowMs());
    EXPECT_FALSE(stats.stopped);
    ExpectEachOnce(ReadIds(archive), total, when + ", then a full pass");
    int tmps = 0;
    for (const auto& [hour_partition, n] : FilesOnDisk(archive, &tmps)) EXPECT_EQ(n, 1) << when << " " << hour_partition.first;
    EXPECT_EQ(tmps, 0) << when << ": the leftover temporary file is removed";
  }
}

// A temporary file torn by a crash mid-write is never read, and the next pass removes it;
// merged-away inputs stay for the grace (a reader that listed them may still open them),
// unread, then go.
TEST(ArchiveCompactionTest, TornTemporariesAreSkippedAndInputsGoAfterTheGrace) {
  TempDir dir;
  const std::string archive = dir.path() + "/archive";
  const size_t total = WriteFlushedArchive(archive);
  const std::string hour = archive + "/" + Archiver::HourPath(kT0);
  std::ofstream(hour + "/" + PartFileName(0, 0, 20) + ".tmp") << "torn";
  ExpectEachOnce(ReadIds(archive), total, "with a torn temporary");
  ArchiveCompactor compactor(archive, CompactionOptions{1, 2 * kHourMs, 600'000});
  const TimestampMs now = NowMs();
  CompactionStats stats = compactor.Compact(kCommitted, now);
  EXPECT_EQ(stats.hours, 4u);
  EXPECT_EQ(stats.removed, 0u) << "inputs are kept during the grace";
  EXPECT_EQ(FilesOnDisk(archive)[std::pair(hour, 0)], 5) << "3 inputs, the merged file, the part not committed";
  EXPECT_FALSE(fs::exists(hour + "/" + PartFileName(0, 0, 20) + ".tmp"));
  ExpectEachOnce(ReadIds(archive), total, "during the grace");
  EXPECT_EQ(compactor.Compact(kCommitted, now + 60'000).removed, 0u);
  EXPECT_EQ(compactor.Compact(kCommitted, now + 600'000).removed, 12u);
  EXPECT_EQ(FilesOnDisk(archive)[std::pair(hour, 0)], 2);
  ExpectEachOnce(ReadIds(archive), total, "after the grace");
}

// Erased users' events from before their erasure are left out of the merged file, and the
// erasure rewrite still works on merged files.
TEST(ArchiveCompactionTest, MergedFilesLeaveOutErasedEvents) {
  TempDir dir;
  const std::string archive = dir.path() + "/archive";
  const size_t total = WriteFlushedArchive(archive);
  auto erasures = ErasureList::Open(dir.path() + "/erasures.list");
  ASSERT_TRUE(erasures.ok());
  const std::vector<std::string> erased = {"u1"};
  ASSERT_TRUE((*erasures)->Add(erased, kT0 + 10 * kHourMs).ok());
  ArchiveCompactor compactor(archive, CompactionOptions{1, 2 * kHourMs, 0});
  compactor.SetErasures(erasures->get());
  EXPECT_EQ(compactor.Compact(kCommitted, NowMs()).hours, 4u);
  auto ids = ReadIds(archive);
  size_t of_u1 = 0;
  for (const auto& [id, n] : ids) of_u1 += id.starts_with("e1-");
  EXPECT_EQ(of_u1, 10u) << "only the uncommitted part of partition 1 (not merged yet) still holds u1";
  EXPECT_EQ(ids.size(), total - 30);
}

// An erasure rewrite does not wait for the grace: the merged-away inputs of its partitions,
// which it does not rewrite (nobody reads them), are removed first.
TEST(ArchiveCompactionTest, AnErasureRewriteRemovesMergedAwayInputsAtOnce) {
  TempDir dir;
  const std::string archive = dir.path() + "/archive";
  const size_t total = WriteFlushedArchive(archive);
  ArchiveCompactor compactor(archive, CompactionOptions{1, 2 * kHourMs, 600'000});
  EXPECT_EQ(compactor.Compact(kCommitted, NowMs()).hours, 4u);
  EXPECT_EQ(compactor.RemoveCovered({0}), 6u) << "partition 0's 3 inputs in each of 2 hours";
  const std::string hour = archive + "/" + Archiver::HourPath(kT0);
  EXPECT_EQ(FilesOnDisk(archive)[std::pair(hour, 0)], 2);
  EXPECT_EQ(FilesOnDisk(archive)[std::pair(hour, 1)], 5) << "partition 1 is not this rewrite's";
  ExpectEachOnce(ReadIds(archive), total, "after");
}

// Through the archiver: events appended in rounds make a part file per flush; a restarted
// archiver with compaction on leaves one per partition and closed hour, every event once.
TEST(ArchiveCompactionTest, TheArchiverCompactsClosedHoursUnderItsLeases) {
  TempDir dir;
  MetricsRegistry metrics, metrics_log;
  auto log = OpenLog(dir.path() + "/log", 2, &metrics_log);
  ASSERT_TRUE(log);
  const std::string archive = dir.path() + "/archive";
  ArchiveConfig config;
  config.flush_seconds = 1;
  config.compact = false;
  config.compact_grace_ms = 0;
  std::vector<std::string> payloads(400);
  auto archived_all = [&] {
    for (int p = 0; p < 2; ++p) {
      if (log->CommittedOffset(Archiver::kConsumer, PartitionId(p))->value < log->EndOffset(PartitionId(p)).value) return false;
    }
    return true;
  };
  {
    Archiver a(config, archive, log.get(), &metrics);
    ASSERT_TRUE(a.Start().ok());
    for (int round = 0; round < 4; ++round) {
      std::vector<LogEntry> entries;
      for (int i = round * 100; i < round * 100 + 100; ++i) {
        Event e;
        e.id = "r" + std::to_string(i);
        e.uid = "u" + std::to_string(i % 13);
        e.type = "click";
        e.ts = kT0 + (i % 3) * kHourMs;
        EncodeEvent(e, &payloads[i]);
        entries.push_back({PartitionFor(e.uid, 2), payloads[i]});
      }
      ASSERT_TRUE(log->Append(entries).ok());
      for (int i = 0; i < 100 && !archived_all(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  size_t before = 0;
  for (const auto& [_, n] : FilesOnDisk(archive)) before += static_cast<size_t>(n);
  EXPECT_EQ(FilesOnDisk(archive).size(), 6u);
  EXPECT_EQ(before, 24u) << "a part file per flush, partition and hour";
  config.compact = true;
  Archiver b(config, archive, log.get(), &metrics);
  b.ShareWithGroup([] { return std::vector<PartitionId>{PartitionId(0), PartitionId(1)}; }, 1000);
  ASSERT_TRUE(b.Start().ok());  // its first pass compacts
  for (int i = 0; i < 100 && FilesOnDisk(archive).begin()->second > 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  b.Stop();
  for (const auto& [hour_partition, n] : FilesOnDisk(archive)) EXPECT_EQ(n, 1) << hour_partition.first;
  ExpectEachOnce(ReadIds(archive), 400, "compacted by the archiver");
  EXPECT_NE(metrics.RenderPrometheus().find("portrait_archive_compacted_files_total 24"), std::string::npos);
  EXPECT_NE(metrics.RenderPrometheus().find("portrait_archive_compacted_hours_total 6"), std::string::npos);
}

}  // namespace
}  // namespace portrait
