// Stage: what a feature plugs into the processor (ARCHITECTURE.md "The Stage contract").
//
// The processor knows no feature. Per batch it hands every log record (event, Action,
// erasure) in log order to each registered stage (OnRecord), then asks each stage, in
// registration order, to prepare its writes (BeforeWrite), puts the batch's Actions and
// history with the consumer offsets into one atomic store write, and after that write
// lets each stage publish what became durable (AfterWrite).
//
// A stage owns per-user state in named namespaces (namespaces()): the processor erases a
// user from every stage when it meets an erasure record (Erase, in log order), and a test
// can ask every stage whether it still holds anything of a user (Holding), so a new
// feature is covered by erasure by construction.
//
// Threading: each processor worker has its own instance of every stage (made by the
// feature's StageFactory), used by that worker's thread only.
//
// Failure: BeforeWrite and Erase are retried (with backoff) until they succeed or the
// processor stops, so they must be safe to run again: a crash between BeforeWrite and the
// batch's write replays the batch into them (state writes keyed so that a repeat changes
// nothing). OnRecord and AfterWrite cannot fail.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/action.h"
#include "core/event.h"
#include "fusion/records.h"
#include "core/status.h"
#include "core/types.h"
#include "store/profile_store.h"

namespace portrait {

// One log record as the processor hands it to the stages; exactly one of the pointers
// (by kind) is set. Valid during OnRecord only.
struct Record {
  RecordKind kind = RecordKind::kUnknown;
  PartitionId partition{-1};
  Offset offset{-1};
  std::string_view payload;          // the record's bytes in the log
  const Event* event = nullptr;      // kEvent
  const Action* action = nullptr;    // kAction (a logged Action from another system)
};

// A user's erasure as it is applied: the identities to forget (the user and every id the
// stages know as the same person, e.g. devices before login) and when it was asked for.
struct Erasure {
  std::string uid;
  std::vector<std::string> ids;  // uid first, then linked ids (devices), each once
  TimestampMs erased_at = 0;     // the erasure record's time
  PartitionId partition{-1};
  Offset offset{-1};
};

// The batch in the making. Stages append Actions and history entries; the processor owns
// the checkpoints and writes everything in one store write.
struct Batch {
  std::vector<Action> actions;         // pre-combined per (uid, tag) before the write
  std::vector<HistoryEntry> history;   // written with the Actions (idempotent by (uid, ts, id))
  const HistoryConfig* history_config = nullptr;  // set by the stage that adds history
  std::vector<Checkpoint> checkpoints;
  PartitionId partition{-1};  // of the record in hand: stages stamp the Actions they add
  Offset offset{-1};
  size_t skipped = 0;         // rule firings skipped for missing inputs (a metric)
};

// A per-user namespace of a stage: a short name and what it holds (for docs and reports).
struct Namespace {
  std::string_view name;
  std::string_view holds;
};

class Stage {
 public:
  virtual ~Stage() = default;
  virtual std::string_view name() const = 0;
  virtual std::span<const Namespace> namespaces() const = 0;

  // Once per batch, before its first record.
  virtual void BeginBatch() {}
  // Every record of the batch in log order (erasures excepted: see Erase).
  virtual void OnRecord(const Record& r, Batch& batch) = 0;
  // Adds this stage's changes to `batch`, or writes state that must precede the batch's
  // checkpoints. Retried until it succeeds.
  virtual Status BeforeWrite(Batch& batch) { return Status::Ok(); }
  // After the batch's write is durable: publish (feeds, outbox, metrics).
  virtual void AfterWrite(const Batch& batch) {}

  // Memory kept between batches. A stage that is its users' only writer
  // (StageContext::sole_owner) may write its state less often than every batch: it says so
  // here, writes all of it in a BeforeWrite of its choosing and then adds to
  // batch.checkpoints, for every partition it has seen, a Checkpoint of consumer
  // RecoveryConsumer(name()) at the batch's next offset: where its written memory ends.
  // The processor commits those with the batch (and, for a partition that has none yet,
  // one at the batches' checkpoint before the stage's first batch), trims the log no
  // further, and when the
  // stage is made again (a start, a crash, a quarantine) hands it the records from there
  // to the batches' checkpoint through Recover, in log order (erased and parked records
  // left out, erasures already applied), then EndRecovery (retried until it succeeds),
  // before any new batch. The store holds those records' effects already: recovering
  // rebuilds memory and must not write or publish anything twice.
  virtual bool KeepsMemory() const { return false; }
  virtual void Recover(const Record& r) {}
  virtual Status EndRecovery() { return Status::Ok(); }

  // Adds to `ids` the identities this stage knows belong to `uid` (devices, aliases).
  virtual Status LinkedIds(std::string_view uid, std::vector<std::string>* ids) { return Status::Ok(); }
  // Forgets every id of `e` in every namespace of this stage. Idempotent; retried.
  virtual Status Erase(const Erasure& e) = 0;
  // The names of this stage's namespaces that hold anything of `id`.
  virtual Result<std::vector<std::string>> Holding(std::string_view id) = 0;
};

// The consumer of the batches' checkpoints (Processor::kConsumer).
inline constexpr const char* kBatchConsumer = "processor";
// The consumer under which a stage that keeps memory checkpoints it (KeepsMemory).
inline std::string RecoveryConsumer(std::string_view stage) { return "processor/" + std::string(stage); }

// How a worker's stage is made: `worker` is the worker's index; `sole_owner` says the
// worker is the only writer of its users' state (the embedded log's fixed partitions), so
// a stage may cache state between batches.
struct StageContext {
  int worker = 0;
  bool sole_owner = false;
};
using StageFactory = std::function<std::unique_ptr<Stage>(const StageContext&)>;

}  // namespace portrait
