#include "serve/replay.h"

#include <spdlog/spdlog.h>

#include <thread>

#include "core/dir_lock.h"
#include "core/erasure_list.h"
#include "core/event.h"
#include "features/registry.h"
#include "log/log.h"
#include "stream/processor.h"
#include "fusion/records.h"
#include "store/profile_store.h"

namespace portrait {

namespace {

// The first record of partition `p` whose event (or Action) time is >= t, else its end.
Result<Offset> FirstAtOrAfter(Log& log, PartitionId p, TimestampMs t) {
  int64_t end = log.EndOffset(p).value;
  ASSIGN_OR_RETURN(auto reader, log.OpenReader(p, log.StartOffset(p)));
  std::vector<LogRecord> recs;
  Event e;
  Action a;
  while (reader->position().value < end) {
    RETURN_IF_ERROR(reader->Read(4 << 20, &recs));
    if (recs.empty()) break;
    for (const auto& rec : recs) {
      TimestampMs ts = INT64_MIN;
      switch (PeekRecordKind(rec.payload)) {
        case RecordKind::kEvent:
          if (DecodeEvent(rec.payload, &e).ok()) ts = e.ts;
          break;
        case RecordKind::kAction:
          if (DecodeActionRecord(rec.payload, &a).ok()) ts = a.ts;
          break;
        default:
          break;
      }
      if (ts >= t) return rec.offset;
    }
  }
  return Offset(end);
}

}  // namespace

Status Replay(const Config& config, const ReplayFrom& from, MetricsRegistry* metrics, ReplayStats* stats,
              const ProgressFn& progress) {
  ASSIGN_OR_RETURN(auto lock, DirLock::Acquire(config.data_dir));
  ASSIGN_OR_RETURN(auto log, MakeLog(config.log, config.data_dir, "events", 0, metrics));
  ASSIGN_OR_RETURN(auto store, MakeProfileStore(config.store, config.data_dir, &config.tags, metrics));
  std::vector<Checkpoint> start;
  for (int p = 0; p < log->partitions(); ++p) {
    PartitionId pid(p);
    int64_t end = log->EndOffset(pid).value;
    Offset at(0);
    if (from.time) {
      ASSIGN_OR_RETURN(at, FirstAtOrAfter(*log, pid, *from.time));
    } else {
      at = Offset(std::clamp<int64_t>(from.offset.value_or(0), log->StartOffset(pid).value, end));
    }
    stats->records += end - at.value;
    start.push_back({Processor::kConsumer, pid, at});
  }
  spdlog::info("replay: erasing derived state, then {} log records", stats->records);
  RETURN_IF_ERROR(store->EraseAll());
  RETURN_IF_ERROR(store->Apply({}, start));
  // Every feature's stage runs again. Decision rules remember the events they have seen
  // and the decisions topic the ids it holds, so the replay decides nothing twice;
  // erasures are applied again at their place in the log.
  ASSIGN_OR_RETURN(auto erasures, ErasureList::Open(ErasureListPath(config)));
  FeatureHost host;
  host.config = &config;
  host.events = log.get();
  host.store = store.get();
  host.metrics = metrics;
  host.erasures = erasures.get();
  auto features = MakeFeatures();
  std::vector<StageFactory> stages;
  for (auto& f : features) {
    RETURN_IF_ERROR(f->Open(host).WithContext(std::string(f->name())));
    if (StageFactory s = f->stage()) stages.push_back(std::move(s));
  }
  Processor processor(config.processor, &config.tags, log.get(), store.get(), metrics, std::move(stages));
  processor.SetErasureList(erasures.get());
  RETURN_IF_ERROR(processor.Start());
  while (!processor.CaughtUp()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (!progress) continue;
    int64_t done = 0;
    for (const Checkpoint& c : start) done += std::max<int64_t>(0, processor.Processed(c.partition).value - c.next.value);
    progress(static_cast<uint64_t>(done), static_cast<uint64_t>(stats->records));
  }
  processor.Stop();
  log->Close();
  for (auto it = features.rbegin(); it != features.rend(); ++it) (*it)->Close();
  return Status::Ok();
}

}  // namespace portrait
