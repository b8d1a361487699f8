// Collector: turns request bodies into validated Events and appends them to the log.
//
// A body is one JSON event, a JSON array of events, or NDJSON (one event per line).
// Each event is validated against the behaviour model in config; an invalid one is
// rejected with its index and a reason, and never stops the valid ones around it.
// Ingest returns after the accepted events are durable in the log. An event whose id is in
// the window of recent ids is accepted but not logged again. Thread-safe: each thread uses
// its own parser.
#pragma once

#include <unordered_map>

#include <mutex>

#include <condition_variable>

#include <atomic>

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/event.h"
#include "core/metrics.h"
#include "core/status.h"
#include "log/log.h"
#include "ingest/recent_ids.h"
#include "delivery/retry.h"

namespace portrait {

struct Rejection {
  size_t index = 0;      // position of the event in the body (array index or line order)
  std::string reason;    // short code: malformed_json, too_deep, missing_field, wrong_type, ...
  std::string message;   // what is wrong, naming the field
  std::string payload;   // the rejected text, kept in the failed topic
};

struct IngestResult {
  size_t accepted = 0;     // valid events, including repeats
  size_t duplicates = 0;   // accepted events whose id was seen recently: not logged again
  std::vector<Rejection> rejected;
};

class Collector {
 public:
  // `failed` (optional) receives a record of every rejected event or Action.
  Collector(const Config& config, Log* log, Log* failed, MetricsRegistry* metrics);

  // `body` must have at least kPadding readable bytes after its end. `source` names where
  // the body came from in failed records ("http", "file:NAME", ...).
  Result<IngestResult> Ingest(std::string_view body, std::string_view source = "http");

  // Fills the window of recent ids from the newest records of the log (call once, before
  // the first Ingest, so that repeats across a restart are caught too).
  Status LoadRecentIds();

  // Parses and validates one event (for tests and tools); `json` needs no padding.
  Result<Event> ParseOne(std::string_view json);

  // Actions sent by other systems (POST /v1/actions): one, an array, or NDJSON; each is
  // checked against its tag (declared, operator allowed, operand shaped for the
  // operator) and logged; returns once durable. Same padding rule as Ingest.
  Result<IngestResult> IngestActions(std::string_view body, std::string_view source = "http");
  Result<Action> ParseAction(std::string_view json);

  // Logs the erasure of `uid`'s profile; returns once durable. The processor erases the
  // profile when it reaches the record, so a replay of the log erases it again.
  Status DeleteProfile(std::string_view uid);

  static constexpr size_t kPadding = 64;

  // [[routes]]: events of a route's types are also (or, exclusive, only) appended, as
  // JSON, to the route's topic. A copy the topic does not take goes to `retry` (sink
  // "route:TOPIC"), so the events topic and the request never wait on it.
  struct Route {
    LogSink* sink;  // its topic and, for the retry queue, its name
    bool exclusive;
  };
  void SetRoutes(std::map<std::string, std::vector<Route>> by_type, RetryQueue* retry);
  // How far the processor is behind the log (records); with [collector] max_lag, requests
  // past it are refused (Unavailable: 503 + Retry-After) and counted. Before serving.
  void SetLagProbe(std::function<int64_t()> lag) { lag_ = std::move(lag); }

 private:
  // Appends the routed copies of `events` to their topics, or queues them for retry.
  Status AppendRouted(const std::vector<const Event*>& events);
  void Parse(std::string_view body, std::vector<Event>* events, std::vector<size_t>* indexes,
             std::vector<Rejection>* rejected);
  void CountRejection(const Rejection& r, std::string_view what);
  void ParseActions(std::string_view body, std::vector<Action>* actions, std::vector<Rejection>* rejected);
  void KeepFailed(const std::vector<Rejection>& rejected, std::string_view source, std::string_view kind);
  Status AppendRecords(const std::vector<std::string>& payloads, const std::vector<PartitionId>& partitions);
  PartitionId PartitionOf(std::string_view key) const { return PartitionFor(key, log_->partitions()); }

  const Config& config_;
  Log* log_;
  Log* failed_;
  MetricsRegistry* metrics_;
  Counter* accepted_;
  Counter* actions_accepted_;
  Counter* deletions_;
  Counter* requests_;
  Counter* backpressure_;
  std::function<int64_t()> lag_;
  // Unavailable when the processor lags past [collector] max_lag.
  Status CheckLag();
  std::vector<std::unique_ptr<RecentIds>> recent_;  // per partition
  // Ids claimed by appends not yet durable (partition-mixed id hash -> request).
  std::mutex inflight_mu_;
  std::condition_variable inflight_cv_;
  std::unordered_map<uint64_t, uint64_t> inflight_;
  std::atomic<uint64_t> next_request_{0};
  Counter* inflight_waits_;
  std::map<std::string, std::vector<Route>> routes_;  // by event type
  RetryQueue* retry_ = nullptr;
  Counter* routed_;
  Counter* duplicates_;
  Counter* failed_kept_;
  Counter* failed_errors_;
};

}  // namespace portrait
