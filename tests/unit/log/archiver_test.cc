// The archive shared by several processes: each pass over a partition runs under a lease
// on it, so two archivers that both believe they hold a partition (as a stalled process does
// after the group moved it) take turns, and every event is archived exactly once.
#include "log/archive/archiver.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <thread>

#include "core/dir_lock.h"
#include "core/event.h"
#include "log/archive/archive_files.h"
#include "log/embedded/segment_log.h"
#include "temp_dir.h"

namespace portrait {
namespace {

using testing_util::TempDir;

std::map<std::string, int> ArchivedIds(const std::string& dir) {
  std::map<std::string, int> ids;
  auto parts = ListArchive(dir, "", "9999-12-31");
  EXPECT_TRUE(parts.ok());
  std::string text;
  for (const auto& [p, files] : *parts) {
    for (const std::string& f : files) {
      EXPECT_TRUE(ReadGzip(f, &text).ok());
      for (size_t at = text.find("\"id\":\""); at != std::string::npos; at = text.find("\"id\":\"", at + 1)) {
        size_t from = at + 6;
        ++ids[text.substr(from, text.find('"', from) - from)];
      }
    }
  }
  return ids;
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

TEST(SharedArchiveTest, TwoArchiversBelievingTheyHoldEveryPartitionArchiveEachEventOnce) {
  TempDir dir;
  MetricsRegistry metrics_a, metrics_b, metrics_log;
  auto log = OpenLog(dir.path() + "/log", 4, &metrics_log);
  ASSERT_TRUE(log);
  ArchiveConfig config;
  config.flush_seconds = 1;
  const std::string archive = dir.path() + "/archive";
  auto all = [] { return std::vector<PartitionId>{PartitionId(0), PartitionId(1), PartitionId(2), PartitionId(3)}; };
  Archiver a(config, archive, log.get(), &metrics_a), b(config, archive, log.get(), &metrics_b);
  a.ShareWithGroup(all, 1000);
  b.ShareWithGroup(all, 1000);
  ASSERT_TRUE(a.Start().ok());
  ASSERT_TRUE(b.Start().ok());

  constexpr int kEvents = 6000;
  std::vector<std::string> payloads(kEvents);
  for (int n = 0; n < kEvents; n += 200) {  // in rounds, while both archivers pass over the partitions
    std::vector<LogEntry> entries;
    for (int i = n; i < n + 200; ++i) {
      Event e;
      e.id = "a" + std::to_string(i);
      e.uid = "u" + std::to_string(i % 97);
      e.type = "click";
      e.ts = 1700000000000 + static_cast<int64_t>(i) * 60'000;  // spread over many hours
      EncodeEvent(e, &payloads[i]);
      entries.push_back({PartitionFor(e.uid, 4), payloads[i]});
    }
    ASSERT_TRUE(log->Append(entries).ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::map<std::string, int> ids;
  for (int i = 0; i < 200 && (ids = ArchivedIds(archive)).size() < kEvents; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  a.Stop();
  b.Stop();
  ids = ArchivedIds(archive);
  EXPECT_EQ(ids.size(), size_t{kEvents});
  int twice = 0;
  for (const auto& [id, n] : ids) twice += n != 1;
  EXPECT_EQ(twice, 0) << "events archived more than once";
}

// While another process holds a partition's lease, this one does not touch that partition
// (it would write part files from an offset the other is about to move); it archives the
// partition once the lease is free.
TEST(SharedArchiveTest, APartitionLeasedElsewhereIsLeftUntilTheLeaseIsFree) {
  TempDir dir;
  MetricsRegistry metrics, metrics_log;
  auto log = OpenLog(dir.path() + "/log", 2, &metrics_log);
  ASSERT_TRUE(log);
  const std::string archive = dir.path() + "/archive";
  auto other = DirLock::Acquire(archive + "/_leases/0");  // another process is on partition 0
  ASSERT_TRUE(other.ok());
  std::vector<std::string> payloads(100);
  std::vector<LogEntry> entries;
  std::map<int, int> per_partition;
  for (int i = 0; i < 100; ++i) {
    Event e;
    e.id = "l" + std::to_string(i);
    e.uid = "u" + std::to_string(i);
    e.type = "click";
    e.ts = 1700000000000 + i;
    EncodeEvent(e, &payloads[i]);
    entries.push_back({PartitionFor(e.uid, 2), payloads[i]});
    ++per_partition[entries.back().partition.value];
  }
  ASSERT_TRUE(log->Append(entries).ok());
  ArchiveConfig config;
  config.flush_seconds = 1;
  Archiver a(config, archive, log.get(), &metrics);
  a.ShareWithGroup([] { return std::vector<PartitionId>{PartitionId(0), PartitionId(1)}; }, 1000);
  ASSERT_TRUE(a.Start().ok());
  auto archived = [&] { return ArchivedIds(archive).size(); };
  for (int i = 0; i < 100 && archived() < size_t(per_partition[1]); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // another pass or two
  EXPECT_EQ(archived(), size_t(per_partition[1])) << "only partition 1: partition 0 is leased elsewhere";
  EXPECT_EQ(log->CommittedOffset(Archiver::kConsumer, PartitionId(0))->value, 0);
  other->reset();  // the other process is done (or died: the kernel drops its flock)
  for (int i = 0; i < 100 && archived() < 100; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  a.Stop();
  EXPECT_EQ(archived(), 100u);
}

}  // namespace
}  // namespace portrait
