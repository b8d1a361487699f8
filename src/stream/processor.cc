#include "stream/processor.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <unordered_map>

#include "fusion/records.h"
#include "fusion/fusion.h"

namespace portrait {

Processor::Processor(const ProcessorConfig& config, const TagRegistry* tags, Log* log, ProfileStore* store,
                     MetricsRegistry* m, std::vector<StageFactory> stages)
    : config_(config), tags_(tags), log_(log), store_(store), stage_factories_(std::move(stages)) {
  for (int i = 0; i < log->partitions(); ++i) processed_.push_back(std::make_unique<std::atomic<int64_t>>(0));
  events_ = m->GetCounter("portrait_processor_events_total", "Events turned into Actions");
  actions_ = m->GetCounter("portrait_processor_actions_total", "Actions produced by tag rules (before combining)");
  skipped_ = m->GetCounter("portrait_processor_rules_skipped_total", "Rule firings skipped for missing or unusable inputs");
  bad_records_ = m->GetCounter("portrait_processor_bad_records_total", "Log records that could not be decoded");
  deletions_ = m->GetCounter("portrait_processor_profile_deletions_total", "Profiles erased");
  erased_skipped_ = m->GetCounter("portrait_processor_erased_records_skipped_total",
                                  "Records of erased identities from before their erasure, not applied");
  store_errors_ = m->GetCounter("portrait_processor_store_errors_total", "Failed store writes (retried)");
  batch_seconds_ = m->GetHistogram("portrait_processor_batch_seconds", "Time to process one batch");
  lag_ = m->GetGauge("portrait_processor_lag_events", "Log records not yet processed, all partitions");
}

Processor::~Processor() { Stop(); }

Status Processor::Start() {
  if (log_->HasGroups()) {
    // Each worker is a member of the processor group; the group spreads the partitions over
    // every running process. A partition starts where the store says it has applied up to.
    auto start_at = [this](PartitionId p) -> std::optional<Offset> {
      auto cp = store_->GetCheckpoint(kConsumer, p);
      if (!cp.ok()) {
        spdlog::warn("processor: checkpoint of partition {}: {}; starting from the group's offset", p.value,
                     cp.status().ToString());
        return std::nullopt;
      }
      if (*cp) processed_[p.value]->store((*cp)->value);
      return *cp;
    };
    for (int w = 0; w < config_.workers; ++w) {
      ASSIGN_OR_RETURN(auto member, log_->JoinGroup(kConsumer, start_at));
      members_.push_back(std::move(member));
    }
    for (auto& m : members_) threads_.emplace_back([this, raw = m.get()] { RunMember(raw); });
    return Status::Ok();
  }
  for (int p = 0; p < log_->partitions(); ++p) {
    ASSIGN_OR_RETURN(auto cp, store_->GetCheckpoint(kConsumer, PartitionId(p)));
    int64_t from = cp ? cp->value : 0;
    int64_t end = log_->EndOffset(PartitionId(p)).value;
    if (from > end) {
      return Status::FailedPrecondition(
          "partition " + std::to_string(p) + ": the store has processed up to offset " + std::to_string(from) +
          " but the log ends at " + std::to_string(end) +
          "; the log lost acknowledged records (fsync = \"none\" and a machine crash?) or belongs to another data dir");
    }
    int64_t start = log_->StartOffset(PartitionId(p)).value;
    if (from < start) {
      return Status::FailedPrecondition("partition " + std::to_string(p) + ": the store has processed up to offset " +
                                        std::to_string(from) + " but the log keeps only offsets from " +
                                        std::to_string(start) + "; run `portrait replay` to rebuild from what is kept");
    }
    processed_[p]->store(from);
  }
  num_workers_ = std::min(config_.workers, log_->partitions());
  for (int w = 0; w < num_workers_; ++w) threads_.emplace_back([this, w] { Run(w); });
  return Status::Ok();
}

void Processor::Stop() {
  stop_.store(true);
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
  members_.clear();  // leaves the group: the partitions move to the other processes at once
}

bool Processor::CaughtUp() const {
  for (int p = 0; p < log_->partitions(); ++p) {
    if (processed_[p]->load() < log_->EndOffset(PartitionId(p)).value) return false;
  }
  return true;
}

bool Processor::WriteUntilDone(std::string_view what, const std::function<Status()>& write) {
  for (int attempt = 0;; ++attempt) {
    Status st = write();
    if (st.ok()) return true;
    store_errors_->Inc();
    spdlog::error("processor: {} failed (attempt {}): {}", what, attempt + 1, st.ToString());
    if (stop_.load()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(5000, 50 << std::min(attempt, 6))));
  }
}

// One worker's batch in the making, and its stages.
struct Processor::Work {
  std::vector<std::unique_ptr<Stage>> stages;
  Batch batch;
  std::vector<Action> combined;
  std::unordered_map<std::string, size_t> slot;  // uid \x1f tag -> index in combined
  Event event;
  Action action;
  bool begun = false;  // BeginBatch called for the batch in the making
  bool check_erasures = false;  // the erasure list is not empty
};

bool Processor::ErasedBefore(const Record& r) const {
  if (r.event) return erasures_->ErasedAfter(r.event->uid, r.event->device_id, r.event->ts);
  if (r.action) return erasures_->ErasedAfter(r.action->uid, {}, r.action->ts);
  return false;
}

std::unique_ptr<Processor::Work> Processor::MakeWork(int worker) {
  auto w = std::make_unique<Work>();
  StageContext ctx{worker, !log_->HasGroups()};
  for (const StageFactory& make : stage_factories_) {
    if (auto stage = make(ctx)) w->stages.push_back(std::move(stage));
  }
  return w;
}

bool Processor::Flush(Work& w) {
  Batch& b = w.batch;
  for (auto& stage : w.stages) {
    if (!WriteUntilDone(stage->name(), [&] { return stage->BeforeWrite(b); })) return false;
  }
  w.combined.clear();
  w.slot.clear();
  for (Action& a : b.actions) {
    const TagConfig* cfg = tags_->Find(a.tag);
    std::string k = a.uid;
    k.push_back('\x1f');
    k += a.tag;
    auto [it, fresh] = w.slot.emplace(std::move(k), w.combined.size());
    bool may_combine = store_->AppliesBatchesAtomically() || !fusion::NeedsExactlyOnce(a.op);
    if (!fresh && cfg && may_combine && fusion::TryCombine(w.combined[it->second], a, *cfg)) continue;
    it->second = w.combined.size();
    w.combined.push_back(std::move(a));
  }
  actions_->Inc(b.actions.size());
  b.actions.clear();
  static const HistoryConfig kNoHistory;
  const HistoryConfig& hc = b.history_config ? *b.history_config : kNoHistory;
  // History writes are idempotent: a batch that is retried or replayed only rewrites them.
  if (!WriteUntilDone("store write", [&] { return store_->ApplyWithHistory(w.combined, b.history, hc, b.checkpoints); })) {
    return false;  // nothing was committed; the next start replays this batch
  }
  for (const Checkpoint& c : b.checkpoints) processed_[c.partition.value]->store(c.next.value);
  for (auto& stage : w.stages) stage->AfterWrite(b);
  b.checkpoints.clear();
  b.history.clear();
  w.begun = false;
  return true;
}

bool Processor::Erase(Work& w, std::string_view uid, TimestampMs ts, PartitionId p, Offset at) {
  Erasure e;
  e.uid = uid;
  e.erased_at = ts;
  e.partition = p;
  e.offset = at;
  e.ids.push_back(e.uid);
  for (auto& stage : w.stages) {
    if (!WriteUntilDone(std::string(stage->name()) + " links", [&] { return stage->LinkedIds(uid, &e.ids); })) {
      return false;
    }
  }
  std::sort(e.ids.begin() + 1, e.ids.end());
  e.ids.erase(std::unique(e.ids.begin() + 1, e.ids.end()), e.ids.end());
  e.ids.erase(std::remove(e.ids.begin() + 1, e.ids.end(), e.uid), e.ids.end());
  if (erasures_ && !WriteUntilDone("erasure list", [&] { return erasures_->Add(e.ids, ts); })) return false;
  for (auto& stage : w.stages) {
    if (!WriteUntilDone(std::string(stage->name()) + " erasure", [&] { return stage->Erase(e); })) return false;
  }
  Checkpoint after{kConsumer, p, Offset(at.value + 1)};
  if (!WriteUntilDone("erasure checkpoint", [&] { return store_->Apply({}, {&after, 1}); })) return false;
  processed_[p.value]->store(after.next.value);
  deletions_->Inc();
  return true;
}

bool Processor::Handle(Work& w, PartitionId p, std::span<const LogRecord> records, Offset next) {
  Batch& b = w.batch;
  if (!w.begun) {
    for (auto& stage : w.stages) stage->BeginBatch();
    w.begun = true;
    if (erasures_) {
      // Erasures applied by other processes (other partitions' owners) become visible here.
      if (Status st = erasures_->Refresh(); !st.ok()) spdlog::warn("processor: {}", st.ToString());
      w.check_erasures = !erasures_->empty();
    }
  }
  b.partition = p;
  for (const LogRecord& rec : records) {
    Record r;
    r.kind = PeekRecordKind(rec.payload);
    r.partition = p;
    r.offset = rec.offset;
    r.payload = rec.payload;
    b.offset = rec.offset;
    Status ds;
    switch (r.kind) {
      case RecordKind::kEvent:
        ds = DecodeEvent(rec.payload, &w.event);
        r.event = &w.event;
        break;
      case RecordKind::kAction:
        ds = DecodeActionRecord(rec.payload, &w.action);
        r.action = &w.action;
        break;
      case RecordKind::kDeleteProfile: {
        std::string uid;
        TimestampMs ts;
        ds = DecodeDeleteRecord(rec.payload, &uid, &ts);
        if (!ds.ok()) break;
        // Everything before the erasure is written first, then the erasure itself.
        b.checkpoints.push_back({kConsumer, p, rec.offset});
        if (!Flush(w)) return false;
        if (!Erase(w, uid, ts, p, rec.offset)) return false;
        for (auto& stage : w.stages) stage->BeginBatch();
        w.begun = true;
        w.check_erasures = erasures_ && !erasures_->empty();
        b.partition = p;
        continue;
      }
      default:
        ds = Status::Corruption("unknown record kind");
        break;
    }
    if (!ds.ok()) {
      bad_records_->Inc();
      spdlog::error("processor: partition {} offset {}: {}", p.value, rec.offset.value, ds.ToString());
      continue;
    }
    // An identity's records from before its erasure are not applied, wherever they sit in
    // the log: a device's partition may be processed after its user's erasure (or replayed).
    if (w.check_erasures && ErasedBefore(r)) {
      erased_skipped_->Inc();
      continue;
    }
    size_t first_new = b.actions.size();
    for (auto& stage : w.stages) stage->OnRecord(r, b);
    for (size_t k = first_new; k < b.actions.size(); ++k) {
      b.actions[k].partition = p;
      b.actions[k].offset = rec.offset;
    }
  }
  b.checkpoints.push_back({kConsumer, p, next});
  return true;
}

void Processor::FinishBatch(Work& w, size_t n_events, std::chrono::steady_clock::time_point start) {
  events_->Inc(n_events);
  skipped_->Inc(w.batch.skipped);
  w.batch.skipped = 0;
  batch_seconds_->Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

void Processor::Run(int worker) {
  std::vector<PartitionId> mine;
  for (int p = worker; p < log_->partitions(); p += num_workers_) mine.push_back(PartitionId(p));
  std::vector<std::unique_ptr<LogReader>> readers(mine.size());
  auto open = [&](size_t i) -> bool {
    auto r = log_->OpenReader(mine[i], Offset(processed_[mine[i].value]->load()));
    if (!r.ok()) {
      spdlog::error("processor: cannot read partition {}: {}", mine[i].value, r.status().ToString());
      return false;
    }
    readers[i] = std::move(r).value();
    return true;
  };
  for (size_t i = 0; i < mine.size(); ++i) open(i);

  const size_t max_events = config_.batch_max_events;
  std::vector<LogRecord> records;
  std::unique_ptr<Work> w = MakeWork(worker);
  while (!stop_.load()) {
    uint64_t epoch = log_->DataEpoch();
    auto start = std::chrono::steady_clock::now();
    size_t n_events = 0;
    for (size_t i = 0; i < mine.size() && n_events < max_events; ++i) {
      if (!readers[i] && !open(i)) continue;
      // Budget the read by bytes; records are about 100-200 bytes each.
      Status st = readers[i]->Read((max_events - n_events) * 128, &records);
      if (!st.ok()) {
        spdlog::error("processor: partition {}: {}", mine[i].value, st.ToString());
        bad_records_->Inc();
        readers[i].reset();
        continue;
      }
      if (records.empty()) continue;
      if (!Handle(*w, mine[i], records, readers[i]->position())) return;
      n_events += records.size();
    }
    if (n_events == 0) {
      log_->WaitForData(epoch, std::chrono::milliseconds(50));
      continue;
    }
    if (!w->batch.checkpoints.empty() && !Flush(*w)) return;
    FinishBatch(*w, n_events, start);
    if (worker == 0) {
      int64_t lag = 0;
      for (int p = 0; p < log_->partitions(); ++p) lag += log_->EndOffset(PartitionId(p)).value - processed_[p]->load();
      lag_->Set(lag);
    }
  }
}

void Processor::RunMember(GroupMember* member) {
  const size_t max_events = config_.batch_max_events;
  std::vector<PartitionBatch> batches;
  std::vector<PartitionOffset> done;
  std::unique_ptr<Work> w = MakeWork(0);
  while (!stop_.load()) {
    Status st = member->Poll(max_events, std::chrono::milliseconds(100), &batches);
    if (!st.ok()) {
      spdlog::error("processor: {}", st.ToString());
      continue;
    }
    if (batches.empty()) continue;
    auto start = std::chrono::steady_clock::now();
    size_t n_events = 0;
    done.clear();
    for (const PartitionBatch& b : batches) {
      Offset next(b.records.back().offset.value + 1);
      if (!Handle(*w, b.partition, b.records, next)) return;
      n_events += b.records.size();
      done.push_back({b.partition, next});
    }
    if (!Flush(*w)) return;
    // Only now that the store holds the work does the group learn it is done.
    if (Status cs = member->Commit(done); !cs.ok()) spdlog::warn("processor: {}", cs.ToString());
    FinishBatch(*w, n_events, start);
  }
}

}  // namespace portrait
