// Quarantine: records whose store write fails for good, and the users who wait behind them
// (ARCHITECTURE.md "Per-user state, erasure and quarantine").
//
// A write that fails for good (the store refused it: not a lost connection, a timeout, a
// cluster moving slots, a full disk) would otherwise be retried forever and stop its whole
// partition. Instead the processor finds the record that fails (the batch is processed
// again one record at a time), puts it in the dead letters (sink "quarantine", with the
// reason and how to release it) and parks its owner (the uid, or the device id of a
// device-only event): that owner's later records join it in the dead letters, in log
// order, so per-user order holds; every other user flows on.
//
// Release: fix the cause, then replay the dead letters of the sink ("quarantine"). Each
// item goes back into the events topic, to its owner's partition, as a release record
// carrying the original bytes; the processor applies it at that place, in a batch of its
// own. The owner flows again once none of its records is parked. A released record that
// fails again is parked again with a new dead letter.
//
// What is parked is kept in a journal beside the dead letters (one synced line per park,
// release and erasure). A release counts once the store's checkpoint is past its release
// record, so a crash between the journal line and the store write releases it again at
// restart, and a crash after the write does not park it again. Thread-safe.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/metrics.h"
#include "core/status.h"
#include "core/types.h"
#include "log/log.h"

namespace portrait {

class Quarantine {
 public:
  static constexpr const char* kSink = "quarantine";

  // `journal` is created when missing; `dead` is the dead-letter topic (delivery/retry.h).
  static Result<std::unique_ptr<Quarantine>> Open(std::string journal, Log* dead, MetricsRegistry* metrics);

  // Works out what is parked from the journal; `checkpoint(p)` is the store's checkpoint of
  // partition p (which releases became durable). Before the processor starts.
  Status Load(const std::function<Result<std::optional<Offset>>(PartitionId)>& checkpoint);

  bool empty() const { return owners_.load(std::memory_order_relaxed) == 0; }
  bool Parked(std::string_view owner) const;

  enum class Standing { kNotParked, kOldest, kBehind };
  // Where the record (p, o) of `owner` stands: not parked (released already, or never), the
  // oldest parked record of its owner (it may be applied now), or behind an older one.
  Standing Of(std::string_view owner, PartitionId p, Offset o) const;

  // Puts the record in the dead letters with `reason` and parks its owner. A record that
  // is parked already changes nothing (a batch processed again after a crash).
  Status Park(std::string_view owner, PartitionId p, Offset o, std::string_view record, std::string_view reason);
  // Before a released record's write; its release record sits at (at_p, at_o).
  Status Releasing(std::string_view owner, PartitionId p, Offset o, PartitionId at_p, Offset at_o);
  // After that write: the record is no longer parked.
  void Released(std::string_view owner, PartitionId p, Offset o);
  // The released record failed again (or came back before an older one): a new dead
  // letter with `reason`; it stays parked.
  Status Refused(std::string_view owner, PartitionId p, Offset o, PartitionId at_p, Offset at_o,
                 std::string_view record, std::string_view reason);
  // Erasure: the parked records of `ids` are forgotten (their owners flow again).
  Status Forget(std::span<const std::string> ids);

  size_t parked_records() const { return records_.load(std::memory_order_relaxed); }

 private:
  Quarantine(std::string journal, Log* dead, MetricsRegistry* metrics);
  Status Journal(const std::string& lines);
  Status Bury(std::string_view owner, PartitionId p, Offset o, std::string_view record, std::string_view reason);
  void Count();  // with mu_ held

  using Place = std::pair<int32_t, int64_t>;  // (partition, offset) of a parked record
  const std::string journal_;
  Log* dead_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::set<Place>> parked_;  // owner -> its records
  std::atomic<size_t> owners_{0};   // kept by Count(), read without the lock
  std::atomic<size_t> records_{0};
  Counter* parked_total_;
  Counter* released_total_;
  Gauge* parked_now_;
  Gauge* owners_now_;
};

}  // namespace portrait
