// WebhookSink: a Sink that POSTs each item's JSON to one http:// or https:// URL through
// libcurl, with `Idempotency-Key: <item key>`. Any 2xx answer is delivered; anything else
// (refused, timed out, a TLS failure, 3xx/4xx/5xx) is an error and the RetryQueue takes it
// on (retry topic with backoff, dead letters after the last attempt).
//
// Connections: a fixed pool of `connections` curl handles, each keeping its connection
// alive between POSTs (HTTP/1.1 keep-alive, TLS sessions reused), so a steady stream of
// items costs no connect per item. Thread-safe: up to `connections` Deliver calls run at
// once (the dispatcher and the retry queue's thread each hold one); further callers wait
// for a free handle. TLS peers are verified against the system's CAs, or `ca_file`.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "core/metrics.h"
#include "core/status.h"
#include "delivery/retry.h"

namespace portrait {

struct WebhookOptions {
  int timeout_ms = 2000;  // one POST, connecting included
  int connections = 4;    // handles in the pool: POSTs at once, connections kept alive
  std::string ca_file;    // PEM bundle to verify an https:// peer with; empty = the system's
};

class WebhookSink : public Sink {
 public:
  static constexpr const char* kName = "webhook";
  // `url` is "http[s]://host[:port]/path".
  WebhookSink(std::string url, WebhookOptions options, MetricsRegistry* metrics);
  WebhookSink(std::string url, int timeout_ms, MetricsRegistry* metrics)
      : WebhookSink(std::move(url), WebhookOptions{timeout_ms, WebhookOptions().connections, {}}, metrics) {}
  ~WebhookSink() override;
  WebhookSink(const WebhookSink&) = delete;
  WebhookSink& operator=(const WebhookSink&) = delete;

  const std::string& name() const override { return name_; }
  // Another name for the retry queue (one per sink; "webhook" by default). Before AddSink.
  void SetName(std::string name) { name_ = std::move(name); }
  // POSTs `payload` (JSON) with `key` as its Idempotency-Key (none when empty).
  Status Deliver(std::string_view key, std::string_view payload) override;

 private:
  class Pool;  // the curl handles, idle and in use

  std::string name_ = kName;
  std::string url_;
  WebhookOptions options_;
  std::unique_ptr<Pool> pool_;
  Counter* posted_;
  Counter* failed_;
  Histogram* seconds_;
};

}  // namespace portrait
