// WebhookSink: a Sink that POSTs each item's JSON to one URL (plain HTTP/1.1, one
// connection per request, `Idempotency-Key: <item key>`); any 2xx answer is delivered,
// anything else (refused, timed out, 4xx/5xx) is an error and the RetryQueue takes it on
// (retry topic with backoff, dead letters after the last attempt). Thread-safe.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/config.h"
#include "core/metrics.h"
#include "log/log.h"
#include "delivery/retry.h"

namespace portrait {

// One HTTP/1.1 POST; the answer's status code, or an error naming what failed.
Result<int> HttpPost(const std::string& host, int port, const std::string& path, std::string_view body,
                     const std::vector<std::pair<std::string, std::string>>& headers, int timeout_ms);

class WebhookSink : public Sink {
 public:
  static constexpr const char* kName = "webhook";
  // `url` is "http://host[:port]/path"; one POST may take `timeout_ms`.
  WebhookSink(std::string url, int timeout_ms, MetricsRegistry* metrics);
  const std::string& name() const override { return name_; }
  // Another name for the retry queue (one per sink; "webhook" by default). Before AddSink.
  void SetName(std::string name) { name_ = std::move(name); }
  // POSTs `payload` (JSON) with `key` as its Idempotency-Key.
  Status Deliver(std::string_view key, std::string_view payload) override;

 private:
  std::string name_ = kName;
  std::string url_, host_, path_;
  int port_ = 80;
  int timeout_ms_;
  Counter* posted_;
  Histogram* seconds_;
};

}  // namespace portrait
