// DecisionDispatcher reads the `decisions` topic as consumer "webhook" and hands each record
// to the RetryQueue for the webhook sink (keyed by the decision id, which the sink sends as
// Idempotency-Key); it commits its offset after each record is delivered or durably
// queued, so a decision reaches the webhook once unless the process dies between the
// POST and that commit (then the receiver sees the same Idempotency-Key again).
#pragma once

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "core/metrics.h"
#include "delivery/retry.h"
#include "log/log.h"
#include "log/repeats.h"

namespace portrait {

class DecisionDispatcher {
 public:
  static constexpr const char* kConsumer = "webhook";
  DecisionDispatcher(Log* topic, RetryQueue* retry, Sink* sink, MetricsRegistry* metrics);
  ~DecisionDispatcher();
  Status Start();
  void Stop();

 private:
  void Run();                           // embedded log: every partition, named offsets
  void RunMember(GroupMember* member);  // logs with consumer groups
  // Hands one record to the retry queue; false if it could not even be queued.
  bool Dispatch(std::string_view payload);

  Log* topic_;
  RetryQueue* retry_;
  Sink* sink_;
  std::unique_ptr<GroupMember> member_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  Counter* dispatched_;
  Gauge* lag_;
};

class DecisionFeed;

// DecisionTail: with several processes (consumer groups), the decisions of every process
// reach this one's live stream by reading the `decisions` topic from its end, each
// partition with its own reader, and publishing each record to the feed (the outbox then
// publishes to no feed itself, so a local decision is not shown twice).
class DecisionTail {
 public:
  DecisionTail(Log* topic, DecisionFeed* feed) : topic_(topic), feed_(feed), seen_(100'000) {}
  ~DecisionTail();
  Status Start();  // from the topic's current end
  void Stop();

 private:
  void Run();

  Log* topic_;
  DecisionFeed* feed_;
  std::vector<std::unique_ptr<LogReader>> readers_;
  IdWindow seen_;  // the ids of the newest decisions shown
  std::thread thread_;
  std::atomic<bool> stop_{false};
};

}  // namespace portrait
