// App: one running portrait — log, store, processor, collector and HTTP API wired
// together from a Config. Used by `portrait serve`, the end-to-end benchmark and tests
// that want a whole server in-process. Start() either returns a running App or an error
// naming what could not start; Stop() (also run by the destructor) shuts down in order:
// HTTP and the pull sources first, then the processor, then the logs (made durable) and
// the store.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "batch/batch.h"
#include "core/config.h"
#include "core/dir_lock.h"
#include "core/metrics.h"
#include "log/log.h"
#include "pipeline/archive.h"
#include "pipeline/collector.h"
#include "pipeline/decisions.h"
#include "pipeline/webhook.h"
#include "pipeline/processor.h"
#include "pipeline/retry.h"
#include "pipeline/source.h"
#include "serve/api.h"
#include "serve/http_server.h"
#include "store/profile_store.h"

namespace portrait {

class App {
 public:
  static Result<std::unique_ptr<App>> Start(Config config);
  ~App();
  void Stop();

  int port() const { return http_->port(); }
  const Config& config() const { return config_; }
  MetricsRegistry& metrics() { return metrics_; }
  Processor& processor() { return *processor_; }
  ProfileStore& store() { return *store_; }
  DecisionFeed& decision_feed() { return feed_; }
  // Re-reads the config file and puts its decision rules in force once they check out
  // against the running config; on any error the old rules stay. Returns how many rules
  // are in force. Other changed sections need a restart (logged).
  Result<size_t> ReloadRules();
  Collector& collector() { return *collector_; }

 private:
  explicit App(Config config) : config_(std::move(config)) {}
  void RetentionLoop();
  void TrimOnce();

  Config config_;
  MetricsRegistry metrics_;
  std::unique_ptr<DirLock> lock_;  // released last
  std::unique_ptr<Log> log_;
  std::unique_ptr<Log> failed_;  // rejected events and Actions, one partition
  std::unique_ptr<ProfileStore> store_;
  std::unique_ptr<Processor> processor_;
  DecisionFeed feed_;
  DecisionWiring decisions_;  // rules in force, the `decisions` topic and its outbox
  std::unique_ptr<WebhookSink> webhook_;
  std::unique_ptr<DecisionDispatcher> dispatcher_;
  std::mutex reload_mu_;
  std::unique_ptr<Collector> collector_;
  std::vector<std::unique_ptr<PullSource>> sources_;
  std::unique_ptr<Archiver> archiver_;
  std::unique_ptr<DailySchedule> batch_;      // [batch] at
  std::unique_ptr<DailySchedule> calibrate_;  // [channels] calibrate_at
  RetryLogs retry_logs_;
  std::unique_ptr<RetryQueue> retry_;
  struct RouteTopic {
    std::unique_ptr<Log> log;
    std::unique_ptr<LogSink> sink;  // appends to `log`
  };
  std::map<std::string, RouteTopic> routes_;  // [[routes]] topics by name
  std::unique_ptr<Api> api_;
  std::unique_ptr<HttpServer> http_;
  std::thread retention_;
  std::mutex retention_mu_;
  std::condition_variable retention_cv_;
  bool stopping_ = false;
};

}  // namespace portrait
