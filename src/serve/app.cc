#include "serve/app.h"

#include <spdlog/spdlog.h>

#include "features/registry.h"

namespace portrait {

Result<std::unique_ptr<App>> App::Start(Config config) {
  std::unique_ptr<App> app(new App(std::move(config)));
  Status st = app->StartAll();
  if (!st.ok()) {
    app->Stop();
    return st;
  }
  return app;
}

void App::Started(std::string what, std::function<void()> stop) { started_.emplace_back(std::move(what), std::move(stop)); }

Status App::StartAll() {
  const Config& cfg = config_;
  ASSIGN_OR_RETURN(lock_, DirLock::Acquire(cfg.data_dir));
  HttpServerOptions http;
  if (!ParseHostPort(cfg.server.listen, &http.host, &http.port)) {
    return Status::InvalidArgument("listen address \"" + cfg.server.listen + "\" must be HOST:PORT");
  }
  http.threads = cfg.server.threads;
  http.max_body_bytes = cfg.server.max_body_bytes;
  http.max_connections = cfg.server.max_connections;
  http.max_streams = cfg.server.max_streams;
  http.stream_buffer_bytes = cfg.server.stream_buffer_bytes;
  http.stream_heartbeat_ms = cfg.server.stream_heartbeat_ms;
  http.stream_idle_timeout_ms = cfg.server.stream_idle_timeout_ms;

  ASSIGN_OR_RETURN(log_, MakeLog(cfg.log, cfg.data_dir, "events", 0, &metrics_));
  Started("events log", [this] { log_->Close(); });
  ASSIGN_OR_RETURN(failed_, MakeLog(cfg.log, cfg.data_dir, "failed", 1, &metrics_));
  Started("failed log", [this] { failed_->Close(); });
  ASSIGN_OR_RETURN(store_, MakeProfileStore(cfg.store, cfg.data_dir, &cfg.tags, &metrics_));
  ASSIGN_OR_RETURN(erasures_, ErasureList::Open(ErasureListPath(cfg)));

  collector_ = std::make_unique<Collector>(cfg, log_.get(), failed_.get(), &metrics_);
  RETURN_IF_ERROR(collector_->LoadRecentIds());
  // Retry and dead letters, and the [[routes]] topics (whose failed appends they retry).
  ASSIGN_OR_RETURN(retry_logs_, OpenRetryLogs(cfg, &metrics_));
  Started("retry topics", [this] {
    retry_logs_.retry->Close();
    retry_logs_.dead->Close();
  });
  retry_ = std::make_unique<RetryQueue>(cfg.retry, retry_logs_.retry.get(), retry_logs_.dead.get(), &metrics_);
  retry_->SetReplayMarks(retry_logs_.replay_marks);
  std::map<std::string, std::vector<Collector::Route>> routes;
  for (const RouteConfig& rc : cfg.routes) {
    auto& topic = routes_[rc.topic];
    if (!topic.sink) {
      ASSIGN_OR_RETURN(topic.log, MakeLog(cfg.log, cfg.data_dir, rc.topic, 0, &metrics_));
      Log* raw = topic.log.get();
      Started("route topic " + rc.topic, [raw] { raw->Close(); });
      topic.sink = std::make_unique<LogSink>("route:" + rc.topic, topic.log.get());
      retry_->AddSink(topic.sink.get());
    }
    for (const std::string& type : rc.types) routes[type].push_back({topic.sink.get(), rc.exclusive});
  }
  collector_->SetRoutes(std::move(routes), retry_.get());

  // The features open their state and topics; their stages make up the processor.
  FeatureHost host;
  host.config = &cfg;
  host.events = log_.get();
  host.store = store_.get();
  host.metrics = &metrics_;
  host.collector = collector_.get();
  host.retry = retry_.get();
  host.erasures = erasures_.get();
  host.serving = true;
  host.profile_view = &profile_view_;
  if (log_->HasGroups()) host.held = [this] { return processor_->Held(); };
  features_ = MakeFeatures();
  std::vector<StageFactory> stages;
  for (auto& f : features_) {
    RETURN_IF_ERROR(f->Open(host).WithContext(std::string(f->name())));
    Feature* raw = f.get();
    Started(std::string(f->name()) + " (close)", [raw] { raw->Close(); });
    if (StageFactory s = f->stage()) stages.push_back(std::move(s));
  }
  processor_ = std::make_unique<Processor>(cfg.processor, &cfg.tags, log_.get(), store_.get(), &metrics_,
                                           std::move(stages));
  processor_->SetErasureList(erasures_.get());
  // With groups, the holders of partitions drop repeats (their window: the collectors' share).
  const size_t repeat_window =
      log_->HasGroups() ? std::max<size_t>(1, cfg.collector.dedup_window / static_cast<size_t>(log_->partitions())) : 0;
  processor_->DropRepeats(repeat_window);
  ASSIGN_OR_RETURN(quarantine_, Quarantine::Open(retry_logs_.quarantine_journal, retry_logs_.dead.get(), &metrics_));
  processor_->SetQuarantine(quarantine_.get());
  quarantine_sink_ = std::make_unique<LogSink>(Quarantine::kSink, log_.get());
  retry_->AddSink(quarantine_sink_.get());
  RETURN_IF_ERROR(processor_->Start());
  Started("processor", [this] { processor_->Stop(); });
  // Backpressure from the processor's lag; with consumer groups this process does not see
  // the other processes' progress, so the topic's own limits apply there.
  if (!log_->HasGroups()) collector_->SetLagProbe([this] { return processor_->Lag(); });
  if (cfg.archive.enabled) {
    archiver_ = std::make_unique<Archiver>(cfg.archive, ArchiveDir(cfg), log_.get(), &metrics_);
    archiver_->SetErasures(erasures_.get(), cfg.privacy.erase_archive_within_ms);
    if (log_->HasGroups()) {
      archiver_->ShareWithGroup([p = processor_.get()] { return p->Held(); }, repeat_window);
    }
    RETURN_IF_ERROR(archiver_->Start());
    Started("archiver", [this] { archiver_->Stop(); });
  }
  RETURN_IF_ERROR(retry_->Start());
  Started("retry queue", [this] { retry_->Stop(); });
  for (auto& f : features_) {
    RETURN_IF_ERROR(f->Start().WithContext(std::string(f->name())));
    Feature* raw = f.get();
    Started(std::string(f->name()), [raw] { raw->Stop(); });
  }
  for (const SourceConfig& sc : cfg.sources) {
    ASSIGN_OR_RETURN(auto source, MakeSource(sc, cfg, collector_.get(), cfg.data_dir, &metrics_));
    RETURN_IF_ERROR(source->Start());
    PullSource* raw = source.get();
    Started("source " + sc.name, [raw] { raw->Stop(); });
    sources_.push_back(std::move(source));
  }

  api_ = std::make_unique<Api>(cfg, &metrics_);
  api_->AddCoreRoutes({collector_.get(), failed_.get(), retry_.get(), retry_logs_.dead.get(), [this] { return Reload(); }});
  for (auto& f : features_) f->AddRoutes(api_->routes());
  api_->AddHealthRoutes();
  Api* api = api_.get();
  http_ = std::make_unique<HttpServer>(http, [api](HttpRequest& r) { return api->Handle(r); }, &metrics_);
  RETURN_IF_ERROR(http_->Start());
  Started("http", [this] { http_->Stop(); });
  if (cfg.server.tokens.empty()) {
    spdlog::warn("no [server] tokens: every route, profiles and erasure included, is open to anyone who can reach {}{}",
                 cfg.server.listen,
                 cfg.server.listen.starts_with("127.") || cfg.server.listen.starts_with("localhost:") ||
                         cfg.server.listen.starts_with("[::1]:")
                     ? " (loopback only)"
                     : "; set tokens before listening beyond loopback");
  } else {
    spdlog::info("{} bearer token(s) configured; every route but /healthz{} needs one", cfg.server.tokens.size(),
                 cfg.server.open_metrics ? " and /metrics" : "");
  }
  if (!cfg.log.retention.empty() && cfg.log.backend == "embedded") {  // Kafka: the topics' own retention
    retention_ = std::thread([this] { RetentionLoop(); });
    Started("retention", [this] {
      {
        std::lock_guard lk(retention_mu_);
        stopping_ = true;
      }
      retention_cv_.notify_all();
      if (retention_.joinable()) retention_.join();
    });
  }
  return Status::Ok();
}

Result<std::string> App::Reload() {
  std::lock_guard lk(reload_mu_);
  Counter* ok = metrics_.GetCounter("portrait_config_reloads_total", "Rule reloads", "result=\"ok\"");
  Counter* failed = metrics_.GetCounter("portrait_config_reloads_total", "Rule reloads", "result=\"rejected\"");
  auto refuse = [&](const Status& st) -> Result<std::string> {
    failed->Inc();
    spdlog::error("reload of {} refused, what is in force stays: {}", config_.path, st.message());
    return st;
  };
  auto loaded = LoadConfig(config_.path);
  if (!loaded.ok()) return refuse(loaded.status());
  std::string summary;
  for (auto& f : features_) {
    std::string part;
    Status st = f->Reload(*loaded, &part);
    if (!st.ok()) return refuse(st);
    if (!part.empty()) summary += (summary.empty() ? "" : ",") + part;
  }
  ok->Inc();
  spdlog::info("reload: {} from {}", summary, config_.path);
  return summary;
}

void App::RetentionLoop() {
  std::unique_lock lk(retention_mu_);
  while (!retention_cv_.wait_for(lk, std::chrono::milliseconds(config_.log.retention_check_ms), [&] { return stopping_; })) {
    lk.unlock();
    TrimOnce();
    lk.lock();
  }
}

void App::TrimOnce() {
  auto trim = [&](Log& log, const std::string& topic, bool consumed_by_processor) {
    auto it = config_.log.retention.find(topic);
    if (it == config_.log.retention.end()) return;
    // Only what the store holds durably may go (DurableCheckpoints: read, then flush).
    std::vector<Offset> durable(log.partitions(), Offset(0));
    if (consumed_by_processor) {
      auto cps = DurableCheckpoints(*store_, Processor::kConsumer, log.partitions(), processor_->Consumers());
      if (!cps.ok()) {
        spdlog::error("retention: {}", cps.status().ToString());
        return;
      }
      durable = std::move(cps).value();
    }
    Counter* deleted = metrics_.GetCounter("portrait_log_retention_deleted_bytes_total",
                                           "Bytes of log segments deleted by retention", "topic=\"" + topic + "\"");
    for (int p = 0; p < log.partitions(); ++p) {
      Offset keep = log.EndOffset(PartitionId(p));
      if (consumed_by_processor) {
        keep = durable[p];
        if (archiver_) {  // nor what the archive has not written yet
          auto archived = log.CommittedOffset(Archiver::kConsumer, PartitionId(p));
          if (!archived.ok()) return;
          keep = std::min(keep, *archived);
        }
      }
      auto bytes = log.Trim(PartitionId(p), keep, it->second.age_ms, it->second.bytes);
      if (bytes.ok()) deleted->Inc(*bytes);
      else spdlog::error("retention of {} partition {}: {}", topic, p, bytes.status().ToString());
    }
  };
  trim(*log_, "events", true);
  trim(*failed_, "failed", false);
}

App::~App() { Stop(); }

void App::Stop() {
  while (!started_.empty()) {
    auto stop = std::move(started_.back().second);
    started_.pop_back();
    stop();
  }
}

}  // namespace portrait
