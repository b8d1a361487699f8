// Processor: consumes the log, turns events into Actions through the tag rules (and
// takes logged Actions as they are), and applies them to the profile store; a logged
// profile deletion is applied in log order, after everything before it.
//
// On the embedded log, `workers` threads each own the partitions p with p % workers ==
// worker, so one user's events are processed in order by one thread. On a log with
// consumer groups (Kafka), each worker is a group member and holds what the group gives it;
// a partition it is given starts at the store's checkpoint for it, and the group's offset
// is committed after the store has applied the work. A worker reads a batch, pre-combines the
// batch's Actions per (uid, tag) with the fusion operators, and hands them to the store
// together with the next offsets in one atomic write; on restart it resumes from the
// stored offsets, so every event is applied exactly once. A failed store write is
// retried with backoff; the batch is never skipped. Trigger events ([lazy_load]) load the
// user's offline profile (LazyLoader) into the same store write as the batch. Decision
// rules (pipeline/decisions.h) run on the batch before its profile write: their state and
// the decisions are written first, so a crash in between replays events the rule state
// has already seen, which decides nothing again.
#pragma once

#include <atomic>
#include <chrono>
#include <span>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "core/config.h"
#include "core/metrics.h"
#include "log/log.h"
#include "pipeline/decisions.h"
#include "pipeline/new_users.h"
#include "pipeline/offline.h"
#include "pipeline/rules.h"
#include "store/profile_store.h"

namespace portrait {

class Processor {
 public:
  static constexpr const char* kConsumer = "processor";

  Processor(const Config& config, Log* log, ProfileStore* store, MetricsRegistry* metrics);
  ~Processor();

  // Decisions: rules in force and where decisions go. Before Start; both outlive the
  // processor. Without it (or a store without a DecisionStore) no decisions are made.
  void SetDecisions(const DecisionRuleBook* rules, DecisionOutbox* outbox) {
    decision_rules_ = rules;
    outbox_ = outbox;
  }

  Status Start();
  void Stop();

  // Offsets processed so far, per partition (for lag metrics, tests and benchmarks).
  Offset Processed(PartitionId p) const { return Offset(processed_[p.value]->load()); }
  // True when every partition is processed up to the log's current end.
  bool CaughtUp() const;

 private:
  struct Work;
  void Run(int worker);                  // embedded log: a fixed share of the partitions
  void RunMember(GroupMember* member);   // logs with consumer groups: what the group gives
  // Turns one partition's records into Actions of `w` (a profile deletion is written at
  // its place); false when the processor stopped first.
  bool Handle(Work& w, PartitionId p, std::span<const LogRecord> records, Offset next);
  // Pre-combines the Actions of `w` per (uid, tag) and writes them with its checkpoints
  // in one store write, retried until it succeeds; false when the processor stopped first.
  bool Flush(Work& w);
  void InitWork(Work& w);
  void FinishBatch(Work& w, size_t n_events, std::chrono::steady_clock::time_point start);
  // Runs `write` until it succeeds, backing off up to 5 s between attempts; false if the
  // processor was stopped first (then nothing of it was committed).
  bool WriteUntilDone(const char* what, const std::function<Status()>& write);

  const Config& config_;
  Log* log_;
  ProfileStore* store_;
  RuleSet rules_;
  std::unique_ptr<SnapshotCatalog> snapshots_;  // null when lazy loading is off
  const DecisionRuleBook* decision_rules_ = nullptr;
  DecisionOutbox* outbox_ = nullptr;
  std::vector<std::unique_ptr<std::atomic<int64_t>>> processed_;
  int num_workers_ = 1;
  std::vector<std::unique_ptr<GroupMember>> members_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};

  MetricsRegistry* metrics_;
  Counter* events_;
  Counter* actions_;
  Counter* skipped_;
  Counter* bad_records_;
  Counter* store_errors_;
  Counter* deletions_;
  Histogram* batch_seconds_;
  Gauge* lag_;
};

}  // namespace portrait
