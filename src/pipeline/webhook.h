// Decision delivery: the webhook sink and the dispatcher that feeds it from the
// `decisions` topic.
//
// WebhookSink POSTs a decision's JSON to [decisions] webhook (plain HTTP/1.1, one
// connection per request, `Idempotency-Key: <decision id>`); any 2xx answer is delivered,
// anything else (refused, timed out, 4xx/5xx) is an error and the RetryQueue takes it on
// (retry topic with backoff, dead letters after the last attempt).
//
// DecisionDispatcher reads the decisions topic as consumer "webhook" and hands each record
// to the RetryQueue; it commits its offset after each record is delivered or durably
// queued, so a decision reaches the webhook once unless the process dies between the
// POST and that commit (then the receiver sees the same Idempotency-Key again).
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/config.h"
#include "core/metrics.h"
#include "log/log.h"
#include "pipeline/retry.h"

namespace portrait {

// One HTTP/1.1 POST; the answer's status code, or an error naming what failed.
Result<int> HttpPost(const std::string& host, int port, const std::string& path, std::string_view body,
                     const std::vector<std::pair<std::string, std::string>>& headers, int timeout_ms);

class WebhookSink : public Sink {
 public:
  static constexpr const char* kName = "webhook";
  WebhookSink(const DecisionsConfig& config, MetricsRegistry* metrics);
  const std::string& name() const override { return name_; }
  // `payload` is a decision's JSON.
  Status Deliver(std::string_view key, std::string_view payload) override;

 private:
  std::string name_ = kName;
  std::string url_, host_, path_;
  int port_ = 80;
  int timeout_ms_;
  Counter* posted_;
  Histogram* seconds_;
};

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

}  // namespace portrait
