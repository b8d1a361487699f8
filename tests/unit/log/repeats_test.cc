// Repeats dropped by a partition's holder: the records kept are a function of the log
// alone, whatever the batches it is read in and wherever a new holder takes over.
#include "log/repeats.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include "core/event.h"
#include "log/embedded/segment_log.h"
#include "temp_dir.h"

namespace portrait {
namespace {

using testing_util::TempDir;

TEST(IdWindowTest, HoldsTheIdsOfTheLastRecordsCountingRepeatsAndRecordsWithoutIds) {
  IdWindow w(3);
  EXPECT_FALSE(w.Add(7));
  EXPECT_TRUE(w.Add(7));   // window: 7 7
  EXPECT_FALSE(w.Add(0));  // 7 7 -
  EXPECT_TRUE(w.Add(7)) << "the second 7 still holds it after the first left";  // 7 - 7
  EXPECT_FALSE(w.Add(8));  // - 7 8
  EXPECT_FALSE(w.Add(9));  // 7 8 9
  EXPECT_FALSE(w.Add(0));  // 8 9 -
  EXPECT_FALSE(w.Add(7)) << "out of the window";
}

TEST(IdWindowTest, CollidingHashesSurviveRemovalsInTheProbeRun) {
  // Hashes with one home slot make one probe run; removing from its middle must keep the rest.
  IdWindow w(4);
  const uint64_t a = 1 << 20, b = 2 << 20, c = 3 << 20;
  EXPECT_FALSE(w.Add(a));
  EXPECT_FALSE(w.Add(b));
  EXPECT_FALSE(w.Add(c));
  EXPECT_FALSE(w.Add(0));
  EXPECT_FALSE(w.Add(0));  // a leaves: b c - -
  EXPECT_TRUE(w.Add(c));   // b leaves: c - - c
  EXPECT_FALSE(w.Add(a));  // - - c a
  EXPECT_TRUE(w.Add(c));   // - c a c
  EXPECT_FALSE(w.Add(b));  // c a c b
}

std::string EventRecord(const std::string& id) {
  Event e;
  e.id = id;
  e.uid = "u";
  e.type = "click";
  e.ts = 1;
  std::string out;
  EncodeEvent(e, &out);
  return out;
}

// The definition: record i is dropped when an event among the `window` records before it
// (i - window .. i - 1) has its id.
std::vector<int64_t> Expected(const std::vector<std::string>& ids, size_t window) {
  std::vector<int64_t> kept;
  for (size_t i = 0; i < ids.size(); ++i) {
    bool repeat = false;
    for (size_t j = i >= window ? i - window : 0; j < i && !ids[i].empty(); ++j) repeat |= ids[j] == ids[i];
    if (!repeat) kept.push_back(static_cast<int64_t>(i));
  }
  return kept;
}

RC_GTEST_PROP(RepeatFilterProperty, KeptRecordsDependOnTheLogAloneAcrossBatchesAndTakeovers, ()) {
  const auto ids = *rc::gen::container<std::vector<std::string>>(
      rc::gen::oneOf(rc::gen::just(std::string()),  // a record without an id (not an event)
                     rc::gen::map(rc::gen::inRange(0, 12), [](int n) { return "e" + std::to_string(n); })));
  const size_t window = *rc::gen::inRange<size_t>(1, 8);
  TempDir dir;
  SegmentLogOptions o;
  o.dir = dir.path();
  o.partitions = 1;
  o.fsync = FsyncPolicy::kNone;
  MetricsRegistry metrics;
  auto log = OpenSegmentLog(o, &metrics, nullptr);
  RC_ASSERT(log.ok());
  std::vector<std::string> payloads;
  for (const std::string& id : ids) payloads.push_back(id.empty() ? std::string("\x7f", 1) : EventRecord(id));
  std::vector<LogEntry> entries;
  for (const auto& p : payloads) entries.push_back({PartitionId(0), p});
  if (!entries.empty()) RC_ASSERT((*log)->Append(entries).ok());

  Counter* skipped = metrics.GetCounter("skipped", "test");
  std::vector<int64_t> kept;
  auto filter = std::make_unique<RepeatFilter>(log->get(), window, skipped);
  auto reader = (*log)->OpenReader(PartitionId(0), Offset(0));
  RC_ASSERT(reader.ok());
  size_t i = 0;
  while (i < ids.size()) {
    // A batch of any size; sometimes a new holder (a fresh filter) takes over before it.
    size_t n = *rc::gen::inRange<size_t>(1, 6);
    if (*rc::gen::inRange(0, 4) == 0) filter = std::make_unique<RepeatFilter>(log->get(), window, skipped);
    std::vector<LogRecord> batch;
    auto r = (*log)->OpenReader(PartitionId(0), Offset(static_cast<int64_t>(i)));
    RC_ASSERT(r.ok());
    std::vector<LogRecord> recs;
    std::vector<std::string> held;  // the payloads outlive the reader's next read
    while (batch.size() < n && i + batch.size() < ids.size()) {
      RC_ASSERT((*r)->Read(1, &recs).ok());
      for (const auto& rec : recs) {
        if (batch.size() < n) {
          held.push_back(std::string(rec.payload));
          batch.push_back({rec.offset, {}});
        }
      }
    }
    for (size_t k = 0; k < batch.size(); ++k) batch[k].payload = held[k];
    RC_ASSERT(filter->Filter(PartitionId(0), &batch).ok());
    for (const auto& rec : batch) kept.push_back(rec.offset.value);
    i += n;
  }
  RC_ASSERT(kept == Expected(ids, window));
}

}  // namespace
}  // namespace portrait
