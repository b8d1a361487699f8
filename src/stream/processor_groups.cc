// The processor on a log with consumer groups (Kafka): each worker is a group member and
// processes what the group gives it (processor.h).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <thread>

#include "stream/processor.h"
#include "stream/processor_work.h"

namespace portrait {

std::vector<PartitionId> Processor::Held() const {
  std::vector<PartitionId> held;
  if (!log_->HasGroups()) {
    for (int p = 0; p < log_->partitions(); ++p) held.push_back(PartitionId(p));
    return held;
  }
  for (const auto& m : members_) {
    for (PartitionId p : m->Assignment()) held.push_back(p);
  }
  std::sort(held.begin(), held.end());
  return held;
}

void Processor::RunMember(GroupMember* member) {
  const size_t max_events = config_.batch_max_events;
  std::vector<PartitionBatch> batches;
  std::vector<PartitionOffset> done;
  std::unique_ptr<Work> w = MakeWork(0);
  std::optional<RepeatFilter> repeats;
  if (repeat_window_ > 0) repeats.emplace(log_, repeat_window_, repeats_);
  while (!stop_.load()) {
    Status st = member->Poll(max_events, std::chrono::milliseconds(100), &batches);
    if (!st.ok()) {
      spdlog::error("processor: {}", st.ToString());
      continue;
    }
    if (repeats) repeats->Retain(member->Assignment());
    if (batches.empty()) continue;
    auto start = std::chrono::steady_clock::now();
    size_t n_events = 0;
    done.clear();
    // Every batch is filtered before any is handled: a failed write sends all of them,
    // filtered, to Isolate.
    for (PartitionBatch& b : batches) {
      done.push_back({b.partition, Offset(b.records.back().offset.value + 1)});
      n_events += b.records.size();
      for (int attempt = 0; repeats; ++attempt) {
        Status fs = repeats->Filter(b.partition, &b.records);
        if (fs.ok()) break;
        spdlog::error("processor: {} (attempt {})", fs.ToString(), attempt + 1);
        std::this_thread::sleep_for(std::chrono::milliseconds(std::min(5000, 100 << std::min(attempt, 6))));
        if (stop_.load()) return;
      }
    }
    for (size_t i = 0; i < batches.size(); ++i) {
      const PartitionBatch& b = batches[i];
      const Offset next = done[i].next;
      if (!Handle(*w, b.partition, b.records, next)) {
        if (w->failed.ok()) return;  // stopped
        break;
      }
    }
    if (w->failed.ok() && !Flush(*w) && w->failed.ok()) return;  // stopped
    if (!w->failed.ok()) {  // a write failed for good: the batch again, one record at a time
      Renew(*w);
      for (const PartitionBatch& b : batches) {
        for (Isolated done = Isolated::kAgain; done != Isolated::kDone;) {
          done = Isolate(*w, b.partition, b.records);
          if (done == Isolated::kStopped) return;
        }
      }
    }
    // Only now that the store holds the work does the group learn it is done.
    if (Status cs = member->Commit(done); !cs.ok()) spdlog::warn("processor: {}", cs.ToString());
    FinishBatch(*w, n_events, start);
  }
}

}  // namespace portrait
