#include "stream/processor.h"
#include "stream/processor_work.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <unordered_map>

#include "fusion/records.h"
#include "fusion/fusion.h"
#include "stream/quarantine.h"

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
  recovered_ = m->GetCounter("portrait_processor_recovered_records_total",
                             "Records read again at a start to rebuild the memory of stages that keep it between saves");
  repeats_ = m->GetCounter("portrait_processor_repeats_skipped_total",
                           "Events not processed: their id repeats one shortly before in their partition (consumer groups)");
  erased_skipped_ = m->GetCounter("portrait_processor_erased_records_skipped_total",
                                  "Records of erased identities from before their erasure, not applied");
  store_errors_ = m->GetCounter("portrait_processor_store_errors_total", "Failed store writes (retried)");
  batch_seconds_ = m->GetHistogram("portrait_processor_batch_seconds", "Time to process one batch");
  lag_ = m->GetGauge("portrait_processor_lag_events", "Log records not yet processed, all partitions");
  for (int p = 0; p < log->partitions(); ++p) {
    partition_lag_.push_back(m->GetGauge("portrait_processor_partition_lag_events", "Log records not yet processed",
                                         "partition=\"" + std::to_string(p) + "\""));
  }
}

Processor::~Processor() { Stop(); }

Status Processor::Start() {
  consumers_ = {kConsumer};
  if (!log_->HasGroups()) {
    for (const StageFactory& make : stage_factories_) {
      auto stage = make(StageContext{0, true});
      if (stage && stage->KeepsMemory()) consumers_.push_back(RecoveryConsumer(stage->name()));
    }
  }
  if (quarantine_) {  // which releases the store holds (its checkpoints are past them)
    RETURN_IF_ERROR(quarantine_->Load([this](PartitionId p) { return store_->GetCheckpoint(kConsumer, p); }));
  }
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

int64_t Processor::Lag() const {
  int64_t lag = 0;
  for (int p = 0; p < log_->partitions(); ++p) {
    lag += std::max<int64_t>(0, log_->EndOffset(PartitionId(p)).value - processed_[p]->load());
  }
  return lag;
}

bool Processor::CaughtUp() const {
  for (int p = 0; p < log_->partitions(); ++p) {
    if (processed_[p]->load() < log_->EndOffset(PartitionId(p)).value) return false;
  }
  return true;
}

bool Processor::FailsForGood(const Status& st) {
  // Unavailable: connections, timeouts, cluster changes; IOError: the disk (full, gone);
  // Corruption and FailedPrecondition concern the whole store, not one record.
  switch (st.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kTooLarge:
    case StatusCode::kInternal:
      return true;
    default:
      return false;
  }
}

bool Processor::WriteUntilDone(std::string_view what, const std::function<Status()>& write, Status* for_good) {
  for (int attempt = 0;; ++attempt) {
    Status st = write();
    if (st.ok()) return true;
    store_errors_->Inc();
    if (for_good && quarantine_ && FailsForGood(st)) {
      spdlog::error("processor: {} failed for good: {}", what, st.ToString());
      *for_good = st;
      return false;
    }
    spdlog::error("processor: {} failed (attempt {}): {}", what, attempt + 1, st.ToString());
    if (stop_.load()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(5000, 50 << std::min(attempt, 6))));
  }
}

// One worker's batch in the making, and its stages.
namespace {

// Whose a record is: the user, or the device of a device-only event (its partition key).
std::string OwnerOf(const Record& r) {
  if (r.event) return std::string(r.event->PartitionKey());
  if (r.action) return r.action->uid;
  return {};
}

std::string OwnerOf(std::string_view payload) {
  Record r;
  Event e;
  Action a;
  switch (PeekRecordKind(payload)) {
    case RecordKind::kEvent:
      if (DecodeEvent(payload, &e).ok()) r.event = &e;
      break;
    case RecordKind::kAction:
      if (DecodeActionRecord(payload, &a).ok()) r.action = &a;
      break;
    default:
      break;
  }
  return OwnerOf(r);
}

}  // namespace

bool Processor::ErasedBefore(const Record& r) const {
  if (r.event) return erasures_->ErasedAfter(r.event->uid, r.event->device_id, r.event->ts);
  if (r.action) return erasures_->ErasedAfter(r.action->uid, {}, r.action->ts);
  return false;
}

std::unique_ptr<Processor::Work> Processor::MakeWork(int worker) {
  auto w = std::make_unique<Work>();
  w->worker = worker;
  Renew(*w);
  return w;
}

void Processor::Renew(Work& w) {
  w.stages.clear();
  StageContext ctx{w.worker, !log_->HasGroups()};
  for (const StageFactory& make : stage_factories_) {
    if (auto stage = make(ctx)) w.stages.push_back(std::move(stage));
  }
  w.batch = Batch();
  w.combined.clear();
  w.order.clear();
  w.begun = false;
  w.failed = Status::Ok();
  w.recover = !w.partitions.empty();
}

bool Processor::Flush(Work& w) {
  Batch& b = w.batch;
  for (auto& stage : w.stages) {
    if (!WriteUntilDone(stage->name(), [&] { return stage->BeforeWrite(b); }, &w.failed)) return false;
  }
  // Pre-combining: the Actions of one (uid, tag) in log order, each folded into the one
  // before where the operator allows. Sorting indexes (not a map of keys) allocates
  // nothing per Action and hands the store its writes in key order.
  w.combined.clear();
  w.order.resize(b.actions.size());
  for (uint32_t i = 0; i < w.order.size(); ++i) w.order[i] = i;
  std::stable_sort(w.order.begin(), w.order.end(), [&](uint32_t x, uint32_t y) {
    const Action& l = b.actions[x];
    const Action& r = b.actions[y];
    if (int c = l.uid.compare(r.uid); c != 0) return c < 0;
    return l.tag < r.tag;
  });
  const bool atomic = store_->AppliesBatchesAtomically();
  const TagConfig* cfg = nullptr;  // of the (uid, tag) in hand: the last combined Action's
  for (uint32_t i : w.order) {
    Action& a = b.actions[i];
    const bool same = !w.combined.empty() && w.combined.back().uid == a.uid && w.combined.back().tag == a.tag;
    if (!same) {
      cfg = tags_->Find(a.tag);
    } else if (cfg && (atomic || !fusion::NeedsExactlyOnce(a.op)) && fusion::TryCombine(w.combined.back(), a, *cfg)) {
      continue;
    }
    w.combined.push_back(std::move(a));
  }
  actions_->Inc(b.actions.size());
  b.actions.clear();
  static const HistoryConfig kNoHistory;
  const HistoryConfig& hc = b.history_config ? *b.history_config : kNoHistory;
  // History writes are idempotent: a batch that is retried or replayed only rewrites them.
  if (!WriteUntilDone("store write", [&] { return store_->ApplyWithHistory(w.combined, b.history, hc, b.checkpoints); },
                     &w.failed)) {
    return false;  // nothing was committed; the next start replays this batch
  }
  for (const Checkpoint& c : b.checkpoints) {
    if (c.consumer == kConsumer) processed_[c.partition.value]->store(c.next.value);
  }
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
  if (quarantine_ && !WriteUntilDone("quarantine", [&] { return quarantine_->Forget(e.ids); })) return false;
  for (auto& stage : w.stages) {
    if (!WriteUntilDone(std::string(stage->name()) + " erasure", [&] { return stage->Erase(e); })) return false;
  }
  if (!CheckpointPast(p, at)) return false;
  deletions_->Inc();
  return true;
}

bool Processor::CheckpointPast(PartitionId p, Offset at) {
  Checkpoint after{kConsumer, p, Offset(at.value + 1)};
  if (!WriteUntilDone("checkpoint", [&] { return store_->Apply({}, {&after, 1}); })) return false;
  processed_[p.value]->store(after.next.value);
  return true;
}

bool Processor::Quarantined(Work& w, PartitionId p, const LogRecord& rec, std::string_view owner,
                            std::string_view why) {
  Renew(w);  // the stages saw the record: they start again from the store, as after a crash
  if (!WriteUntilDone("quarantine", [&] { return quarantine_->Park(owner, p, rec.offset, rec.payload, why); })) {
    return false;
  }
  return CheckpointPast(p, rec.offset);
}

Processor::Isolated Processor::Isolate(Work& w, PartitionId p, std::span<const LogRecord> records) {
  for (const LogRecord& rec : records) {
    if (rec.offset.value < processed_[p.value]->load()) continue;  // written before the failure
    Offset next(rec.offset.value + 1);
    if (Handle(w, p, {&rec, 1}, next) && Flush(w)) continue;
    if (w.failed.ok()) return Isolated::kStopped;
    RecordKind kind = PeekRecordKind(rec.payload);
    if (kind != RecordKind::kEvent && kind != RecordKind::kAction) {
      // An erasure (or the checkpoint around it) is never skipped: retried as before.
      Renew(w);
      std::this_thread::sleep_for(std::chrono::seconds(1));
      return Isolated::kAgain;
    }
    std::string why = "store write failed for good: " + w.failed.ToString();
    if (!Quarantined(w, p, rec, OwnerOf(rec.payload), why)) return Isolated::kStopped;
  }
  return Isolated::kDone;
}

bool Processor::Release(Work& w, std::string_view payload, PartitionId p, Offset at) {
  auto checkpoint = [&] { return CheckpointPast(p, at); };
  ReleaseRecord rr;
  if (Status st = DecodeReleaseRecord(payload, &rr); !st.ok()) {
    bad_records_->Inc();
    spdlog::error("processor: partition {} offset {}: {}", p.value, at.value, st.ToString());
    return checkpoint();
  }
  const PartitionId from(rr.partition);
  const Offset was(rr.offset);
  Quarantine::Standing standing = quarantine_ ? quarantine_->Of(rr.owner, from, was) : Quarantine::Standing::kNotParked;
  if (standing == Quarantine::Standing::kNotParked) return checkpoint();  // released already (sent twice)
  if (standing == Quarantine::Standing::kBehind) {
    // Per-user order: it waits for the older one; a new dead letter lets it come back.
    if (!WriteUntilDone("quarantine", [&] {
          return quarantine_->Refused(rr.owner, from, was, p, at, rr.record,
                                      "released before an older quarantined record of the same user");
        })) {
      return false;
    }
    return checkpoint();
  }
  if (!WriteUntilDone("quarantine", [&] { return quarantine_->Releasing(rr.owner, from, was, p, at); })) return false;
  // The original record, applied here: its Actions carry this place in the log.
  LogRecord inner{at, rr.record};
  w.releasing = rr.owner;
  bool ok = Handle(w, p, {&inner, 1}, Offset(at.value + 1)) && Flush(w);
  w.releasing.clear();
  if (ok) {
    quarantine_->Released(rr.owner, from, was);
    return true;
  }
  if (w.failed.ok()) return false;  // stopped
  std::string why = "store write failed for good again after its release: " + w.failed.ToString();
  Renew(w);
  if (!WriteUntilDone("quarantine", [&] { return quarantine_->Refused(rr.owner, from, was, p, at, rr.record, why); })) {
    return false;
  }
  return checkpoint();
}

bool Processor::Recover(Work& w) {
  w.recover = false;
  bool any = false;
  for (auto& stage : w.stages) any = any || stage->KeepsMemory();
  if (!any) return true;
  if (erasures_) {
    if (Status st = erasures_->Refresh(); !st.ok()) spdlog::warn("processor: {}", st.ToString());
  }
  const bool check_erasures = erasures_ && !erasures_->empty();
  std::vector<LogRecord> records;
  size_t recovered = 0;
  for (PartitionId p : w.partitions) {
    const int64_t checkpoint = processed_[p.value]->load();
    int64_t from = checkpoint;
    for (auto& stage : w.stages) {
      if (!stage->KeepsMemory()) continue;
      std::optional<Offset> cp;
      if (!WriteUntilDone("recovery checkpoint", [&] {
            ASSIGN_OR_RETURN(cp, store_->GetCheckpoint(RecoveryConsumer(stage->name()), p));
            return Status::Ok();
          })) {
        return false;
      }
      if (cp) {
        from = std::min(from, cp->value);
        continue;
      }
      // None yet: the stage's state in the store is whole up to here (it never kept memory
      // with this store, or nothing was processed). Written now, so that a crash before
      // the stage's first save recovers from here, not from nothing.
      Checkpoint first{RecoveryConsumer(stage->name()), p, Offset(checkpoint)};
      if (!WriteUntilDone("recovery checkpoint", [&] { return store_->Apply({}, {&first, 1}); })) return false;
    }
    if (from >= checkpoint) continue;
    auto reader = log_->OpenReader(p, Offset(from));
    if (!reader.ok()) {
      spdlog::error("processor: recovering partition {} from offset {}: {}", p.value, from,
                    reader.status().ToString());
      continue;
    }
    while ((*reader)->position().value < checkpoint) {
      if (Status st = (*reader)->Read(1 << 20, &records); !st.ok() || records.empty()) {
        if (!st.ok()) spdlog::error("processor: recovering partition {}: {}", p.value, st.ToString());
        break;
      }
      for (const LogRecord& rec : records) {
        if (rec.offset.value >= checkpoint) break;
        std::string_view payload = rec.payload;
        ReleaseRecord rr;
        if (PeekRecordKind(payload) == RecordKind::kRelease) {
          if (!DecodeReleaseRecord(payload, &rr).ok()) continue;
          payload = rr.record;  // applied at the release's place
        }
        Record r;
        r.kind = PeekRecordKind(payload);
        r.partition = p;
        r.offset = rec.offset;
        r.payload = payload;
        if (r.kind == RecordKind::kEvent && DecodeEvent(payload, &w.event).ok()) {
          r.event = &w.event;
        } else if (r.kind == RecordKind::kAction && DecodeActionRecord(payload, &w.action).ok()) {
          r.action = &w.action;
        } else {
          continue;  // erasures were applied to the store when they were processed
        }
        if (check_erasures && ErasedBefore(r)) continue;
        if (quarantine_ && !quarantine_->empty() && rr.owner.empty() && quarantine_->Parked(OwnerOf(r))) continue;
        for (auto& stage : w.stages) {
          if (stage->KeepsMemory()) stage->Recover(r);
        }
        ++recovered;
      }
    }
  }
  for (auto& stage : w.stages) {
    if (stage->KeepsMemory() && !WriteUntilDone(std::string(stage->name()) + " recovery", [&] { return stage->EndRecovery(); })) {
      return false;
    }
  }
  recovered_->Inc(recovered);
  if (recovered > 0) spdlog::info("processor: worker {} rebuilt its stages' memory from {} records", w.worker, recovered);
  return true;
}

bool Processor::SaveWhileIdle(Work& w) {
  Batch& b = w.batch;
  if (!b.actions.empty() || !b.checkpoints.empty() || !w.failed.ok()) return true;
  for (auto& stage : w.stages) {
    if (!stage->KeepsMemory()) continue;
    if (!WriteUntilDone(stage->name(), [&] { return stage->BeforeWrite(b); })) return false;
  }
  if (b.checkpoints.empty()) return true;
  if (!WriteUntilDone("checkpoint", [&] { return store_->Apply({}, b.checkpoints); })) return false;
  b.checkpoints.clear();
  return true;
}

bool Processor::Handle(Work& w, PartitionId p, std::span<const LogRecord> records, Offset next) {
  Batch& b = w.batch;
  if (w.recover && !Recover(w)) return false;
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
      case RecordKind::kRelease: {
        b.checkpoints.push_back({kConsumer, p, rec.offset});
        if (!Flush(w)) return false;
        if (!Release(w, rec.payload, p, rec.offset)) return false;
        for (auto& stage : w.stages) stage->BeginBatch();
        w.begun = true;
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
    // A parked owner's records wait behind its quarantined one, in log order.
    if (quarantine_ && !quarantine_->empty()) {
      std::string owner = OwnerOf(r);
      if (owner != w.releasing && quarantine_->Parked(owner)) {
        if (!WriteUntilDone("quarantine", [&] {
              return quarantine_->Park(owner, p, rec.offset, rec.payload,
                                       "waits behind an earlier record of the same user that failed for good");
            })) {
          return false;
        }
        continue;
      }
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
  w->partitions = mine;
  w->recover = true;
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
      n_events += records.size();
      if (!Handle(*w, mine[i], records, readers[i]->position())) {
        if (w->failed.ok()) return;  // stopped
        break;
      }
    }
    if (n_events == 0) {
      if (!SaveWhileIdle(*w)) return;
      log_->WaitForData(epoch, std::chrono::milliseconds(50));
      continue;
    }
    if (w->failed.ok() && !w->batch.checkpoints.empty() && !Flush(*w) && w->failed.ok()) return;  // stopped
    if (!w->failed.ok()) {
      // A write failed for good: what was read since the last checkpoint, again one record
      // at a time, from new readers (the records of the batch are gone). Whatever is not
      // done here (a read error) the loop reads again as usual.
      Renew(*w);
      for (size_t i = 0; i < mine.size(); ++i) {
        if (!readers[i] || readers[i]->position().value <= processed_[mine[i].value]->load()) continue;
        const int64_t end = readers[i]->position().value;
        if (!open(i)) continue;
        while (readers[i] && readers[i]->position().value < end) {
          Status st = readers[i]->Read(64 << 10, &records);
          if (!st.ok() || records.empty()) {
            readers[i].reset();
            break;
          }
          while (!records.empty() && records.back().offset.value >= end) records.pop_back();
          Isolated done = Isolate(*w, mine[i], records);
          if (done == Isolated::kStopped) return;
          if (done == Isolated::kAgain) break;
        }
        // Anything read but not done is read again from the checkpoint.
        if (readers[i] && readers[i]->position().value != processed_[mine[i].value]->load()) readers[i].reset();
      }
    }
    FinishBatch(*w, n_events, start);
    if (worker == 0) {
      int64_t lag = 0;
      for (int p = 0; p < log_->partitions(); ++p) {
        int64_t behind = log_->EndOffset(PartitionId(p)).value - processed_[p]->load();
        partition_lag_[p]->Set(behind);
        lag += behind;
      }
      lag_->Set(lag);
    }
  }
}

}  // namespace portrait
