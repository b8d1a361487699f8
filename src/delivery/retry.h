// Retry and dead letters for downstream steps ("sinks": a webhook, a routed topic, ...).
//
// A sink that fails does not hold up the stream: the item (its key, payload and error)
// is appended to the `retry` topic and the caller moves on. The retry topic has one
// partition per backoff step; step k holds items that failed k+1 times and waits a fixed
// time for them (config [retry]), so each partition is in due order and one slow step
// never delays another. A worker delivers each item when it is due; after the configured
// number of failed attempts the item goes to the `dead` topic with its last error, where
// `GET /v1/dlq`, `portrait dlq list` show it and `portrait dlq replay` (or
// `POST /v1/dlq:replay`) sends it round again. Offsets into the retry topic are committed
// only after an item is delivered or durably moved on, so a crash re-delivers at most the
// items in hand: sinks must be idempotent per (key, payload).
#pragma once

#include <atomic>
#include <map>
#include <set>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/config.h"
#include "core/metrics.h"
#include "log/log.h"

namespace portrait {

struct RetryItem {
  std::string sink;               // which sink takes it
  std::string key;                // e.g. the user id
  std::string payload;
  std::string error;              // the last failure
  int failures = 0;               // failed deliveries so far
  TimestampMs first_failed_ms = 0;
  TimestampMs due_ms = 0;         // not delivered again before
};

void EncodeRetryItem(const RetryItem& item, std::string* out);
Status DecodeRetryItem(std::string_view in, RetryItem* item);
std::string RetryItemToJson(const RetryItem& item, Offset offset);

class Sink {
 public:
  virtual ~Sink() = default;
  virtual const std::string& name() const = 0;
  virtual Status Deliver(std::string_view key, std::string_view payload) = 0;
};

// A sink that appends each payload to a log topic, to the partition of its key (routed
// copies of events).
class LogSink : public Sink {
 public:
  LogSink(std::string name, Log* log) : name_(std::move(name)), log_(log) {}
  const std::string& name() const override { return name_; }
  Status Deliver(std::string_view key, std::string_view payload) override;
  Log* log() const { return log_; }

 private:
  std::string name_;
  Log* log_;
};

// The retry and dead-letter topics of a data dir. They are always embedded (also with
// [log] backend = "kafka"): they hold what this process could not deliver yet.
struct RetryLogs {
  std::unique_ptr<Log> retry;
  std::unique_ptr<Log> dead;
  std::string replay_marks;  // which dead items were replayed (RetryQueue::SetReplayMarks)
  std::string quarantine_journal;  // what the processor parked (stream/quarantine.h)
};
Result<RetryLogs> OpenRetryLogs(const Config& config, MetricsRegistry* metrics, bool read_only = false);

class RetryQueue {
 public:
  static constexpr const char* kConsumer = "retry";
  static constexpr const char* kReplayConsumer = "dlq-replay";

  // `retry` needs config.attempts - 1 partitions (at least 1), `dead` one.
  RetryQueue(const RetryConfig& config, Log* retry, Log* dead, MetricsRegistry* metrics);
  ~RetryQueue();

  void AddSink(Sink* sink);  // before Start
  // Where the offsets of dead items already replayed are kept (one file whatever the
  // filters of the replays); without it they are kept in memory only. Before ReplayDead.
  void SetReplayMarks(std::string path) { replay_marks_ = std::move(path); }
  Status Start();
  void Stop();

  // Delivers now; if that fails, queues the item for its first retry. Ok once the item is
  // delivered or durably queued (an error only if the retry topic cannot be written).
  Status Deliver(Sink& sink, std::string_view key, std::string_view payload);

  // Queues an item whose first delivery failed elsewhere (with `error`) for its first retry.
  Status Enqueue(std::string_view sink, std::string_view key, std::string_view payload, std::string_view error);

  // Sends every dead item of `sink` ("" = all) not replayed before back to the first
  // retry step with its failures reset; returns how many. Each dead item is replayed at
  // most once, whatever the filters: running it twice, or filtered after unfiltered, sends
  // nothing the second time.
  Result<size_t> ReplayDead(std::string_view sink);

  static int Steps(const RetryConfig& c) { return std::max(1, c.attempts - 1); }

 private:
  Status Queue(RetryItem item);  // to its step, or dead when out of attempts
  void Run();

  RetryConfig config_;
  Log* retry_;
  Log* dead_;
  std::map<std::string, Sink*, std::less<>> sinks_;
  std::mutex replay_mu_;
  std::string replay_marks_;
  std::set<int64_t> replayed_;  // with no marks file
  std::thread thread_;
  std::atomic<bool> stop_{false};
  Counter* first_failures_;
  Counter* retried_ok_;
  Counter* retried_failed_;
  Counter* dead_items_;
  Gauge* waiting_;
};

// The newest `limit` dead items, newest first.
Result<std::vector<std::pair<Offset, RetryItem>>> ReadLatestDead(Log& dead, size_t limit);

}  // namespace portrait
