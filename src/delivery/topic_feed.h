// What a feature that publishes records to a topic of its own (decisions, segment changes)
// needs around it: a live feed for Server-Sent Events, a tail that feeds it from the topic
// when several processes publish, and a dispatcher that hands every record to a sink
// through the RetryQueue.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/http.h"
#include "core/metrics.h"
#include "delivery/retry.h"
#include "log/log.h"
#include "log/repeats.h"

namespace portrait {

// The id of a record (its idempotency key and SSE id), read from its JSON.
using RecordIdOf = std::function<std::string_view(std::string_view json)>;

// Every published record goes to every subscriber (which must not block). Thread-safe.
class LiveFeed {
 public:
  using Listener = std::function<void(const std::string& json)>;
  uint64_t Subscribe(Listener l);
  void Unsubscribe(uint64_t id);
  void Publish(const std::string& json);
  size_t subscribers() const;

  // A Server-Sent Events answer subscribed to this feed: `banner` as its first comment,
  // then each record that `keep` accepts as `event: EVENT`, `id:` its id, `data:` its JSON.
  HttpResponse Serve(std::string_view banner, std::string event, RecordIdOf id_of,
                     std::function<bool(std::string_view json)> keep);

 private:
  mutable std::mutex mu_;
  uint64_t next_ = 1;
  std::map<uint64_t, Listener> listeners_;
};

// Reads `topic` as consumer `consumer` and hands each record to the RetryQueue for `sink`
// (keyed by its id, which a webhook sends as Idempotency-Key); commits its offset after
// each record is delivered or durably queued, so a record reaches the sink once unless the
// process dies between the delivery and that commit (then the receiver sees the same key
// again). Embedded log: every partition, named offsets; with consumer groups, a member.
class TopicDispatcher {
 public:
  struct Metrics {
    Counter* dispatched = nullptr;
    Gauge* lag = nullptr;
  };
  TopicDispatcher(std::string what, Log* topic, std::string consumer, RetryQueue* retry, Sink* sink, RecordIdOf id_of,
                  Metrics metrics);
  ~TopicDispatcher();
  Status Start();
  void Stop();

 private:
  void Run();
  void RunMember(GroupMember* member);
  bool Dispatch(std::string_view payload);  // false if it could not even be queued

  std::string what_;
  Log* topic_;
  std::string consumer_;
  RetryQueue* retry_;
  Sink* sink_;
  RecordIdOf id_of_;
  Metrics metrics_;
  std::unique_ptr<GroupMember> member_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
};

// With several processes (consumer groups), the records of every process reach this one's
// live feed by reading the topic from its end, each partition with its own reader, and
// publishing each record once by id (a record published again by the next holder of a
// partition after a takeover is in the topic twice).
class TopicTail {
 public:
  TopicTail(std::string what, Log* topic, LiveFeed* feed, RecordIdOf id_of)
      : what_(std::move(what)), topic_(topic), feed_(feed), id_of_(std::move(id_of)), seen_(100'000) {}
  ~TopicTail();
  Status Start();  // from the topic's current end
  void Stop();

 private:
  void Run();

  std::string what_;
  Log* topic_;
  LiveFeed* feed_;
  RecordIdOf id_of_;
  std::vector<std::unique_ptr<LogReader>> readers_;
  IdWindow seen_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
};

}  // namespace portrait
