#include "pipeline/processor.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <unordered_map>

#include "fusion/fusion.h"
#include "pipeline/records.h"

namespace portrait {

Processor::Processor(const Config& config, Log* log, ProfileStore* store, MetricsRegistry* m)
    : config_(config), log_(log), store_(store), rules_(config) {
  if (config.lazy_load.enabled && !config.lazy_load.triggers.empty()) {
    snapshots_ = std::make_unique<SnapshotCatalog>(SnapshotDir(config));
  }
  metrics_ = m;
  for (int i = 0; i < log->partitions(); ++i) processed_.push_back(std::make_unique<std::atomic<int64_t>>(0));
  events_ = m->GetCounter("portrait_processor_events_total", "Events turned into Actions");
  actions_ = m->GetCounter("portrait_processor_actions_total", "Actions produced by tag rules (before combining)");
  skipped_ = m->GetCounter("portrait_processor_rules_skipped_total", "Rule firings skipped for missing or unusable inputs");
  bad_records_ = m->GetCounter("portrait_processor_bad_records_total", "Log records that could not be decoded");
  deletions_ = m->GetCounter("portrait_processor_profile_deletions_total", "Profiles erased");
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
    for (int w = 0; w < config_.processor.workers; ++w) {
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
  num_workers_ = std::min(config_.processor.workers, log_->partitions());
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

bool Processor::WriteUntilDone(const char* what, const std::function<Status()>& write) {
  for (int attempt = 0;; ++attempt) {
    Status st = write();
    if (st.ok()) return true;
    store_errors_->Inc();
    spdlog::error("processor: {} failed (attempt {}): {}", what, attempt + 1, st.ToString());
    if (stop_.load()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(5000, 50 << std::min(attempt, 6))));
  }
}

// One worker's batch in the making.
struct Processor::Work {
  std::vector<Action> actions;
  std::vector<Action> combined;
  std::vector<Checkpoint> checkpoints;
  std::unordered_map<std::string, size_t> slot;  // uid \x1f tag -> index in combined
  Event event;
  std::vector<HistoryEntry> history;
  size_t skipped = 0;
  std::unique_ptr<LazyLoader> loader;  // this worker's, when lazy loading is on
  std::vector<LoadTrigger> triggers;
  std::unique_ptr<NewUserTracker> new_users;  // when [channels] is on and the store keeps them
  std::unique_ptr<DecisionEngine> decisions;  // when decisions are wired and the store keeps their state
  std::shared_ptr<const DecisionRules> rules;  // in force for the batch in the making
  std::vector<Decision> decided;
};

void Processor::InitWork(Work& w) {
  if (snapshots_) w.loader = std::make_unique<LazyLoader>(config_, store_, snapshots_.get(), metrics_);
  if (config_.channels.enabled && store_->channels()) {
    w.new_users = std::make_unique<NewUserTracker>(config_.channels, store_->channels(), metrics_);
  }
  if (decision_rules_ && outbox_ && store_->decisions()) {
    // A worker of the embedded log is the only writer of its users' states: it may keep them.
    size_t cache = log_->HasGroups() ? 0 : config_.decisions.cache_users;
    w.decisions = std::make_unique<DecisionEngine>(config_, store_, store_->decisions(), metrics_, cache);
    w.rules = decision_rules_->Get();
  }
}

bool Processor::Flush(Work& w) {
  if (!w.triggers.empty()) {
    if (!WriteUntilDone("lazy load (store read)", [&] { return w.loader->Load(w.triggers, &w.actions); })) return false;
    w.triggers.clear();
  }
  // Before the batch's checkpoints: a crash in between replays sightings, which changes
  // nothing the second time.
  if (w.new_users) {
    if (!WriteUntilDone("new-user registry write", [&] { return w.new_users->Flush(); })) return false;
  }
  // Decisions before the profile write (see the header); the profile tests see the batch's
  // Actions on top of the stored profile.
  if (w.decisions && !w.decisions->empty()) {
    if (!WriteUntilDone("decisions", [&]() -> Status {
          w.decided.clear();
          RETURN_IF_ERROR(w.decisions->Evaluate(*w.rules, w.actions, &w.decided));
          size_t fresh = 0;
          RETURN_IF_ERROR(outbox_->Publish(w.decided, &fresh));
          return w.decisions->Commit(*w.rules, w.decided);
        })) {
      return false;
    }
  }
  w.combined.clear();
  w.slot.clear();
  for (Action& a : w.actions) {
    const TagConfig* cfg = config_.tags.Find(a.tag);
    std::string k = a.uid;
    k.push_back('\x1f');
    k += a.tag;
    auto [it, fresh] = w.slot.emplace(std::move(k), w.combined.size());
    bool may_combine = store_->AppliesBatchesAtomically() || !fusion::NeedsExactlyOnce(a.op);
    if (!fresh && cfg && may_combine && fusion::TryCombine(w.combined[it->second], a, *cfg)) continue;
    it->second = w.combined.size();
    w.combined.push_back(std::move(a));
  }
  actions_->Inc(w.actions.size());
  w.actions.clear();
  // History writes are idempotent: a batch that is retried or replayed only rewrites them.
  if (!WriteUntilDone("store write", [&] {
        return store_->ApplyWithHistory(w.combined, w.history, config_.history, w.checkpoints);
      })) {
    return false;  // nothing was committed; the next start replays this batch
  }
  for (const Checkpoint& c : w.checkpoints) processed_[c.partition.value]->store(c.next.value);
  w.checkpoints.clear();
  w.history.clear();
  return true;
}

bool Processor::Handle(Work& w, PartitionId p, std::span<const LogRecord> records, Offset next) {
  // The rules in force when a batch starts hold for all of it (a reload takes the next).
  if (w.decisions && w.decisions->empty()) w.rules = decision_rules_->Get();
  for (const LogRecord& rec : records) {
    size_t first_new = w.actions.size();
    Status ds;
    switch (PeekRecordKind(rec.payload)) {
      case RecordKind::kEvent:
        ds = DecodeEvent(rec.payload, &w.event);
        if (ds.ok()) {
          rules_.Evaluate(w.event, &w.actions, &w.skipped);
          if (w.new_users) w.new_users->Add(w.event);
          if (w.decisions) w.decisions->Add(*w.rules, w.event);
          if (w.loader && w.loader->IsTrigger(w.event.type)) {
            w.triggers.push_back({std::string(w.event.PartitionKey()), w.event.ts, p, rec.offset});
          }
          if (config_.history.enabled) {
            w.history.push_back({std::string(w.event.PartitionKey()), w.event.ts, w.event.id, w.event.type,
                                 std::string(rec.payload)});
          }
        }
        break;
      case RecordKind::kAction: {
        Action a;
        ds = DecodeActionRecord(rec.payload, &a);
        if (ds.ok() && config_.tags.Find(a.tag)) w.actions.push_back(std::move(a));
        break;
      }
      case RecordKind::kDeleteProfile: {
        std::string uid;
        TimestampMs ts;
        ds = DecodeDeleteRecord(rec.payload, &uid, &ts);
        if (!ds.ok()) break;
        // Everything before the deletion is written first, then the deletion itself.
        w.checkpoints.push_back({kConsumer, p, rec.offset});
        if (!Flush(w)) return false;
        Checkpoint after{kConsumer, p, Offset(rec.offset.value + 1)};
        if (!WriteUntilDone("profile deletion", [&] { return store_->DeleteProfile(uid, {&after, 1}); })) return false;
        processed_[p.value]->store(after.next.value);
        deletions_->Inc();
        break;
      }
      case RecordKind::kUnknown:
        ds = Status::Corruption("unknown record kind");
        break;
    }
    if (!ds.ok()) {
      bad_records_->Inc();
      spdlog::error("processor: partition {} offset {}: {}", p.value, rec.offset.value, ds.ToString());
      continue;
    }
    for (size_t k = first_new; k < w.actions.size(); ++k) {
      w.actions[k].partition = p;
      w.actions[k].offset = rec.offset;
    }
  }
  w.checkpoints.push_back({kConsumer, p, next});
  return true;
}

void Processor::FinishBatch(Work& w, size_t n_events, std::chrono::steady_clock::time_point start) {
  events_->Inc(n_events);
  skipped_->Inc(w.skipped);
  w.skipped = 0;
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

  const size_t max_events = config_.processor.batch_max_events;
  std::vector<LogRecord> records;
  Work w;
  InitWork(w);
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
      if (!Handle(w, mine[i], records, readers[i]->position())) return;
      n_events += records.size();
    }
    if (n_events == 0) {
      log_->WaitForData(epoch, std::chrono::milliseconds(50));
      continue;
    }
    if (!w.checkpoints.empty() && !Flush(w)) return;
    FinishBatch(w, n_events, start);
    if (worker == 0) {
      int64_t lag = 0;
      for (int p = 0; p < log_->partitions(); ++p) lag += log_->EndOffset(PartitionId(p)).value - processed_[p]->load();
      lag_->Set(lag);
    }
  }
}

void Processor::RunMember(GroupMember* member) {
  const size_t max_events = config_.processor.batch_max_events;
  std::vector<PartitionBatch> batches;
  std::vector<PartitionOffset> done;
  Work w;
  InitWork(w);
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
      if (!Handle(w, b.partition, b.records, next)) return;
      n_events += b.records.size();
      done.push_back({b.partition, next});
    }
    if (!Flush(w)) return;
    // Only now that the store holds the work does the group learn it is done.
    if (Status cs = member->Commit(done); !cs.ok()) spdlog::warn("processor: {}", cs.ToString());
    FinishBatch(w, n_events, start);
  }
}

}  // namespace portrait
