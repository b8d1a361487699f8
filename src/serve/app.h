// App: one running portrait — log, store, collector, processor, the features and the HTTP
// API wired together from a Config. Used by `portrait serve`, the end-to-end benchmark and
// tests that want a whole server in-process.
//
// Start() brings the parts up in order and records each started one in a list; it either
// returns a running App or an error naming what could not start (what did start is
// stopped again). Stop() (also run by the destructor) stops that list in reverse: HTTP and
// the pull sources first, then the features' services, then the processor and the archiver,
// then the retry queue, then the logs are made durable and the features close.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/config.h"
#include "core/dir_lock.h"
#include "core/erasure_list.h"
#include "core/metrics.h"
#include "delivery/retry.h"
#include "features/feature.h"
#include "ingest/collector.h"
#include "ingest/source.h"
#include "log/archive/archiver.h"
#include "log/log.h"
#include "serve/api.h"
#include "serve/http_server.h"
#include "store/profile_store.h"
#include "stream/processor.h"

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
  Collector& collector() { return *collector_; }
  // Re-reads the config file and puts what can be reloaded (decision rules) in force once
  // it checks out against the running config; on any error nothing changes. Answers the
  // JSON members saying what is in force. Other changed sections need a restart.
  Result<std::string> Reload();

 private:
  explicit App(Config config) : config_(std::move(config)) {}
  Status StartAll();
  // Records a started part; Stop() runs `stop` in reverse order of starting.
  void Started(std::string what, std::function<void()> stop);
  void RetentionLoop();
  void TrimOnce();

  Config config_;
  MetricsRegistry metrics_;
  std::unique_ptr<DirLock> lock_;  // released last
  std::unique_ptr<Log> log_;
  std::unique_ptr<Log> failed_;  // rejected events and Actions, one partition
  std::unique_ptr<ProfileStore> store_;
  std::unique_ptr<ErasureList> erasures_;
  ProfileView profile_view_;  // before the features, which hand it functions
  std::vector<std::unique_ptr<Feature>> features_;
  std::unique_ptr<Processor> processor_;
  std::unique_ptr<Collector> collector_;
  std::vector<std::unique_ptr<PullSource>> sources_;
  std::unique_ptr<Archiver> archiver_;
  RetryLogs retry_logs_;
  std::unique_ptr<Quarantine> quarantine_;
  std::unique_ptr<LogSink> quarantine_sink_;  // a dead-letter replay sends parked records back
  std::unique_ptr<RetryQueue> retry_;
  struct RouteTopic {
    std::unique_ptr<Log> log;
    std::unique_ptr<LogSink> sink;  // appends to `log`
  };
  std::map<std::string, RouteTopic> routes_;  // [[routes]] topics by name
  std::unique_ptr<Api> api_;
  std::unique_ptr<HttpServer> http_;
  std::vector<std::pair<std::string, std::function<void()>>> started_;  // in order of starting
  std::mutex reload_mu_;
  std::thread retention_;
  std::mutex retention_mu_;
  std::condition_variable retention_cv_;
  bool stopping_ = false;
};

}  // namespace portrait
