// Processor: consumes the log and runs every registered Stage over it (stream/stage.h).
//
// On the embedded log, `workers` threads each own the partitions p with p % workers ==
// worker, so one user's records are processed in order by one thread. On a log with
// consumer groups (Kafka), each worker is a group member and holds what the group gives it;
// a partition it is given starts at the store's checkpoint for it, and the group's offset
// is committed after the store has applied the work.
//
// A worker reads a batch, decodes each record once and hands it to every stage in log
// order; then each stage's BeforeWrite, in registration order; then the batch's Actions,
// pre-combined per (uid, tag) with the fusion operators, and its history go to the store
// with the next offsets in one atomic write; then each stage's AfterWrite. On restart it
// resumes from the stored offsets, so every record is applied exactly once to the profile
// store (stages make their own writes idempotent). A failed write is retried with backoff;
// the batch is never skipped.
//
// An erasure record is applied at its place: everything before it is written first, then
// the user and the ids the stages link to it go on the erasure list, then every stage
// erases them, then its offset is checkpointed, so a replay of the log erases again at the
// same point. Records of a listed identity with a time before its erasure are not handed
// to the stages at all (a linked device's events may sit in a partition processed later).
//
// A write that fails for good (the store refused it; not a transient error) is not retried
// forever: the batch is processed again one record at a time, the record that fails goes
// to the quarantine (stream/quarantine.h) and its owner's later records wait behind it,
// while every other user flows on. Without a quarantine, every failed write is retried.
//
// The processor includes no feature: what it runs is the list of StageFactory it is given.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <span>
#include <thread>
#include <vector>

#include "core/config.h"
#include "core/erasure_list.h"
#include "core/metrics.h"
#include "log/log.h"
#include "log/repeats.h"
#include "store/profile_store.h"
#include "stream/quarantine.h"
#include "stream/stage.h"

namespace portrait {

class Processor {
 public:
  static constexpr const char* kConsumer = kBatchConsumer;

  // `tags` (for pre-combining Actions) must outlive the processor.
  Processor(const ProcessorConfig& config, const TagRegistry* tags, Log* log, ProfileStore* store,
            MetricsRegistry* metrics, std::vector<StageFactory> stages);
  ~Processor();

  // Erasures are put on `list` (durably) before any stage forgets the user. Before Start;
  // `list` outlives the processor.
  void SetErasureList(ErasureList* list) { erasures_ = list; }
  // Records whose write fails for good go there (before Start; outlives the processor).
  void SetQuarantine(Quarantine* q) { quarantine_ = q; }
  // With consumer groups: events repeating an id among the `window` records before them in
  // their partition are not processed (log/repeats.h): several processes' collectors log
  // into one log, and a client's retry may reach another process. Before Start.
  void DropRepeats(size_t window) { repeat_window_ = window; }

  // True for a store error that retrying will not fix (the store refused the write).
  static bool FailsForGood(const Status& st);

  Status Start();
  void Stop();

  // Offsets processed so far, per partition (for lag metrics, tests and benchmarks).
  Offset Processed(PartitionId p) const { return Offset(processed_[p.value]->load()); }
  // True when every partition is processed up to the log's current end.
  bool CaughtUp() const;
  // The consumers whose checkpoints hold back log retention: the processor's, and that of
  // every stage that keeps memory between batches (Stage::KeepsMemory). After Start.
  const std::vector<std::string>& Consumers() const { return consumers_; }
  // The partitions this process holds now: all of them on the embedded log, the group's
  // share for its workers with consumer groups. After Start; thread-safe.
  std::vector<PartitionId> Held() const;
  // Log records not yet processed, all partitions (this process's view: with consumer
  // groups only the partitions it holds are current).
  int64_t Lag() const;

 private:
  struct Work;
  void Run(int worker);                  // embedded log: a fixed share of the partitions
  void RunMember(GroupMember* member);   // logs with consumer groups: what the group gives
  // Hands one partition's records to the stages (an erasure is applied at its place);
  // false when the processor stopped first.
  bool Handle(Work& w, PartitionId p, std::span<const LogRecord> records, Offset next);
  // The stages' writes, then the batch's Actions and history with its checkpoints in one
  // store write, then the stages' publishing; false when the processor stopped first.
  bool Flush(Work& w);
  bool Erase(Work& w, std::string_view uid, TimestampMs ts, PartitionId p, Offset at);
  // Applies a quarantined record sent back at (p, at), in a batch of its own.
  bool Release(Work& w, std::string_view payload, PartitionId p, Offset at);
  // After a write failed for good: the records again, one per write; a record that fails
  // for good is quarantined, its owner parked. kAgain: an erasure failed, which is never
  // skipped; the records from the checkpoint on are to be tried again.
  enum class Isolated { kDone, kAgain, kStopped };
  Isolated Isolate(Work& w, PartitionId p, std::span<const LogRecord> records);
  // Writes the checkpoint just past the record at `at` (nothing else); false if stopped.
  bool CheckpointPast(PartitionId p, Offset at);
  // Puts one record in the quarantine and checkpoints past it.
  bool Quarantined(Work& w, PartitionId p, const LogRecord& rec, std::string_view owner, std::string_view why);
  std::unique_ptr<Work> MakeWork(int worker);
  // Rebuilds the memory of stages made anew (Stage::KeepsMemory) from the log; false if
  // the processor stopped first.
  bool Recover(Work& w);
  // An idle worker lets its stages that keep memory save it on time (their checkpoints
  // hold back log retention); false if the processor stopped first.
  bool SaveWhileIdle(Work& w);
  // New stages for the worker, the batch in the making dropped (as after a crash).
  void Renew(Work& w);
  // True when the record belongs to an identity erased after the record's time.
  bool ErasedBefore(const Record& r) const;
  void FinishBatch(Work& w, size_t n_events, std::chrono::steady_clock::time_point start);
  // Runs `write` until it succeeds, backing off up to 5 s between attempts; false if the
  // processor was stopped first (then nothing of it was committed), or, with `for_good`
  // and a quarantine, when the write failed for good (the error is put in *for_good).
  bool WriteUntilDone(std::string_view what, const std::function<Status()>& write, Status* for_good = nullptr);

  const ProcessorConfig config_;
  const TagRegistry* tags_;
  Log* log_;
  ProfileStore* store_;
  std::vector<StageFactory> stage_factories_;
  ErasureList* erasures_ = nullptr;
  Quarantine* quarantine_ = nullptr;
  size_t repeat_window_ = 0;
  Counter* repeats_;
  std::vector<std::unique_ptr<std::atomic<int64_t>>> processed_;
  std::vector<std::string> consumers_;
  int num_workers_ = 1;
  std::vector<std::unique_ptr<GroupMember>> members_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};

  Counter* events_;
  Counter* actions_;
  Counter* skipped_;
  Counter* bad_records_;
  Counter* store_errors_;
  Counter* deletions_;
  Counter* erased_skipped_;
  Counter* recovered_;
  Histogram* batch_seconds_;
  Gauge* lag_;
  std::vector<Gauge*> partition_lag_;
};

}  // namespace portrait
