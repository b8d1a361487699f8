#include "features/decisions/dispatcher.h"

#include <spdlog/spdlog.h>

#include "features/decisions/decisions.h"

namespace portrait {

DecisionDispatcher::DecisionDispatcher(Log* topic, RetryQueue* retry, Sink* sink, MetricsRegistry* m)
    : topic_(topic), retry_(retry), sink_(sink) {
  dispatched_ = m->GetCounter("portrait_decisions_dispatched_total", "Decisions handed to the webhook sink");
  lag_ = m->GetGauge("portrait_decisions_dispatch_lag", "Decisions in the topic not yet handed to the webhook sink");
}

DecisionDispatcher::~DecisionDispatcher() { Stop(); }

Status DecisionDispatcher::Start() {
  if (topic_->HasGroups()) {
    ASSIGN_OR_RETURN(member_, topic_->JoinGroup(kConsumer, [](PartitionId) { return std::optional<Offset>(); }));
    thread_ = std::thread([this] { RunMember(member_.get()); });
  } else {
    thread_ = std::thread([this] { Run(); });
  }
  return Status::Ok();
}

void DecisionDispatcher::Stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
  member_.reset();
}

bool DecisionDispatcher::Dispatch(std::string_view payload) {
  Status st = retry_->Deliver(*sink_, DecisionIdOf(payload), payload);
  if (!st.ok()) {
    spdlog::error("decisions: cannot deliver or queue a decision: {}", st.ToString());
    return false;
  }
  dispatched_->Inc();
  return true;
}

void DecisionDispatcher::Run() {
  const int n = topic_->partitions();
  std::vector<std::unique_ptr<LogReader>> readers(static_cast<size_t>(n));
  std::vector<LogRecord> recs;
  while (!stop_.load()) {
    uint64_t epoch = topic_->DataEpoch();
    bool any = false, stuck = false;
    int64_t lag = 0;
    for (int p = 0; p < n && !stop_.load(); ++p) {
      PartitionId pid(p);
      auto& reader = readers[static_cast<size_t>(p)];
      if (!reader) {
        auto from = topic_->CommittedOffset(kConsumer, pid);
        if (!from.ok()) continue;
        auto r = topic_->OpenReader(pid, std::max(*from, topic_->StartOffset(pid)));
        if (!r.ok()) {
          spdlog::error("decisions: partition {}: {}", p, r.status().ToString());
          continue;
        }
        reader = std::move(r).value();
      }
      if (Status st = reader->Read(1 << 20, &recs); !st.ok()) {
        spdlog::error("decisions: partition {}: {}", p, st.ToString());
        reader.reset();
        continue;
      }
      for (const LogRecord& rec : recs) {
        if (stop_.load() || !Dispatch(rec.payload)) {
          stuck = true;
          reader.reset();  // read again from the committed offset
          break;
        }
        if (Status cs = topic_->CommitOffset(kConsumer, pid, Offset(rec.offset.value + 1)); !cs.ok()) {
          spdlog::error("decisions: commit: {}", cs.ToString());
        }
        any = true;
      }
      if (reader) lag += topic_->EndOffset(pid).value - reader->position().value;
    }
    lag_->Set(lag);
    if (stuck) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    } else if (!any) {
      topic_->WaitForData(epoch, std::chrono::milliseconds(200));
    }
  }
}

void DecisionDispatcher::RunMember(GroupMember* member) {
  std::vector<PartitionBatch> batches;
  std::vector<PartitionOffset> done;
  while (!stop_.load()) {
    if (Status st = member->Poll(256, std::chrono::milliseconds(200), &batches); !st.ok()) {
      spdlog::error("decisions: {}", st.ToString());
      continue;
    }
    done.clear();
    for (const PartitionBatch& b : batches) {
      Offset next = b.records.front().offset;
      for (const LogRecord& rec : b.records) {
        while (!stop_.load() && !Dispatch(rec.payload)) std::this_thread::sleep_for(std::chrono::milliseconds(500));
        if (stop_.load()) break;
        next = Offset(rec.offset.value + 1);
      }
      done.push_back({b.partition, next});
    }
    if (!done.empty()) {
      if (Status cs = member->Commit(done); !cs.ok()) spdlog::warn("decisions: {}", cs.ToString());
    }
  }
}

DecisionTail::~DecisionTail() { Stop(); }

Status DecisionTail::Start() {
  for (int p = 0; p < topic_->partitions(); ++p) {
    ASSIGN_OR_RETURN(auto reader, topic_->OpenReader(PartitionId(p), topic_->EndOffset(PartitionId(p))));
    readers_.push_back(std::move(reader));
  }
  thread_ = std::thread([this] { Run(); });
  return Status::Ok();
}

void DecisionTail::Stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
  readers_.clear();
}

void DecisionTail::Run() {
  std::vector<LogRecord> recs;
  while (!stop_.load()) {
    bool any = false;
    for (auto& reader : readers_) {
      if (Status st = reader->Read(1 << 20, &recs); !st.ok()) {
        spdlog::warn("decisions: live stream: {}", st.ToString());
        continue;
      }
      for (const LogRecord& rec : recs) {
        // A decision made again by the next holder of a partition (its first holder died
        // after publishing, before its checkpoint) is in the topic twice: shown once.
        if (seen_.Add(IdWindow::Hash(DecisionIdOf(rec.payload)))) continue;
        feed_->Publish(std::string(rec.payload));
      }
      any |= !recs.empty();
    }
    if (!any) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace portrait
