#include "serve/app.h"

#include "batch/calibrate.h"

#include <filesystem>

#include "core/dir_lock.h"

#include <spdlog/spdlog.h>

namespace portrait {

Result<std::unique_ptr<App>> App::Start(Config config) {
  std::unique_ptr<App> app(new App(std::move(config)));
  const Config& cfg = app->config_;
  ASSIGN_OR_RETURN(app->lock_, DirLock::Acquire(cfg.data_dir));
  HttpServerOptions http;
  if (!ParseHostPort(cfg.server.listen, &http.host, &http.port)) {
    return Status::InvalidArgument("listen address \"" + cfg.server.listen + "\" must be HOST:PORT");
  }
  http.threads = cfg.server.threads;
  http.max_body_bytes = cfg.server.max_body_bytes;

  ASSIGN_OR_RETURN(app->log_, MakeLog(cfg.log, cfg.data_dir, "events", 0, &app->metrics_));
  ASSIGN_OR_RETURN(app->failed_, MakeLog(cfg.log, cfg.data_dir, "failed", 1, &app->metrics_));
  ASSIGN_OR_RETURN(app->store_, MakeProfileStore(cfg.store, cfg.data_dir, &cfg.tags, &app->metrics_));
  app->processor_ = std::make_unique<Processor>(cfg, app->log_.get(), app->store_.get(), &app->metrics_);
  ASSIGN_OR_RETURN(app->decisions_, OpenDecisions(cfg, app->store_.get(), &app->feed_, &app->metrics_));
  app->processor_->SetDecisions(app->decisions_.rules.get(), app->decisions_.outbox.get());
  RETURN_IF_ERROR(app->processor_->Start());
  if (cfg.archive.enabled) {
    std::string dir = ArchiveDir(cfg);
    app->archiver_ = std::make_unique<Archiver>(cfg.archive, dir, app->log_.get(), &app->metrics_);
    RETURN_IF_ERROR(app->archiver_->Start());
  }
  app->batch_ = std::make_unique<DailySchedule>(
      "batch", cfg.batch.at, [&cfg](const std::string& date) { return RunScheduledBatch(cfg, date); },
      "portrait_batch_runs_total", &app->metrics_);
  app->batch_->Start();
  App* self = app.get();
  app->calibrate_ = std::make_unique<DailySchedule>(
      "calibrate", cfg.channels.calibrate_at,
      [self, &cfg](const std::string& date) -> Status {
        auto report = Calibrate(cfg, self->store_->channels(), date);
        if (!report.ok()) return report.status();
        RecordCalibration(*report, &self->metrics_);
        spdlog::info("calibrate: {} done: {} new users, real-time error {} ({:.4f} %)", date, report->overall.calibrated,
                     report->overall.abs_error, 100 * report->overall.error_ratio());
        return Status::Ok();
      },
      "portrait_channel_calibration_runs_total", &app->metrics_);
  app->calibrate_->Start();
  app->collector_ = std::make_unique<Collector>(cfg, app->log_.get(), app->failed_.get(), &app->metrics_);
  RETURN_IF_ERROR(app->collector_->LoadRecentIds());
  // Retry and dead letters, and the [[routes]] topics (whose failed appends they retry).
  ASSIGN_OR_RETURN(app->retry_logs_, OpenRetryLogs(cfg, &app->metrics_));
  app->retry_ = std::make_unique<RetryQueue>(cfg.retry, app->retry_logs_.retry.get(), app->retry_logs_.dead.get(),
                                             &app->metrics_);
  std::map<std::string, std::vector<Collector::Route>> routes;
  for (const RouteConfig& rc : cfg.routes) {
    auto& topic = app->routes_[rc.topic];
    if (!topic.sink) {
      ASSIGN_OR_RETURN(topic.log, MakeLog(cfg.log, cfg.data_dir, rc.topic, 0, &app->metrics_));
      topic.sink = std::make_unique<LogSink>("route:" + rc.topic, topic.log.get());
      app->retry_->AddSink(topic.sink.get());
    }
    for (const std::string& type : rc.types) routes[type].push_back({topic.sink.get(), rc.exclusive});
  }
  app->collector_->SetRoutes(std::move(routes), app->retry_.get());
  if (app->decisions_.outbox && !cfg.decisions.webhook.empty()) {
    app->webhook_ = std::make_unique<WebhookSink>(cfg.decisions, &app->metrics_);
    app->retry_->AddSink(app->webhook_.get());
    app->dispatcher_ = std::make_unique<DecisionDispatcher>(app->decisions_.topic.get(), app->retry_.get(),
                                                            app->webhook_.get(), &app->metrics_);
  }
  RETURN_IF_ERROR(app->retry_->Start());
  if (app->dispatcher_) RETURN_IF_ERROR(app->dispatcher_->Start());
  for (const SourceConfig& sc : cfg.sources) {
    ASSIGN_OR_RETURN(auto source, MakeSource(sc, cfg, app->collector_.get(), cfg.data_dir, &app->metrics_));
    RETURN_IF_ERROR(source->Start());
    app->sources_.push_back(std::move(source));
  }
  app->api_ = std::make_unique<Api>(cfg, app->collector_.get(), app->store_.get(), app->failed_.get(), &app->metrics_);
  app->api_->SetDeadLetters(app->retry_.get(), app->retry_logs_.dead.get());
  {
    App* raw = app.get();
    app->api_->SetDecisions(app->store_->decisions(), app->decisions_.outbox ? &app->feed_ : nullptr,
                            [raw] { return raw->ReloadRules(); });
  }
  Api* api = app->api_.get();
  app->http_ = std::make_unique<HttpServer>(http, [api](HttpRequest& r) { return api->Handle(r); }, &app->metrics_);
  RETURN_IF_ERROR(app->http_->Start());
  if (!cfg.log.retention.empty() && cfg.log.backend == "embedded") {  // Kafka: the topics' own retention
    App* raw = app.get();
    app->retention_ = std::thread([raw] { raw->RetentionLoop(); });
  }
  return app;
}

Result<size_t> App::ReloadRules() {
  std::lock_guard lk(reload_mu_);
  Counter* ok = metrics_.GetCounter("portrait_config_reloads_total", "Rule reloads", "result=\"ok\"");
  Counter* failed = metrics_.GetCounter("portrait_config_reloads_total", "Rule reloads", "result=\"rejected\"");
  auto refuse = [&](const Status& st) -> Result<size_t> {
    failed->Inc();
    spdlog::error("reload of {} refused, the rules in force stay: {}", config_.path, st.message());
    return st;
  };
  if (!decisions_.rules) return refuse(Status::FailedPrecondition("this store keeps no rule state; decisions are off"));
  auto loaded = LoadConfig(config_.path);
  if (!loaded.ok()) return refuse(loaded.status());
  auto rules = DecisionRules::Compile(loaded->decisions.rules, config_);
  if (!rules.ok()) return refuse(rules.status());
  if (loaded->decisions.webhook != config_.decisions.webhook) {
    spdlog::warn("reload: [decisions] webhook changed; it takes effect at the next restart");
  }
  size_t n = (*rules)->specs().size();
  decisions_.rules->Set(std::move(rules).value());
  ok->Inc();
  spdlog::info("reload: {} decision rules in force from {}", n, config_.path);
  return n;
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
    if (consumed_by_processor) {
      // Only what the store holds durably may go: its checkpoints after a flush.
      Status st = store_->Flush();
      if (!st.ok()) {
        spdlog::error("retention: {}", st.ToString());
        return;
      }
    }
    Counter* deleted = metrics_.GetCounter("portrait_log_retention_deleted_bytes_total",
                                           "Bytes of log segments deleted by retention", "topic=\"" + topic + "\"");
    for (int p = 0; p < log.partitions(); ++p) {
      Offset keep = log.EndOffset(PartitionId(p));
      if (consumed_by_processor) {
        auto cp = store_->GetCheckpoint(Processor::kConsumer, PartitionId(p));
        if (!cp.ok()) return;
        keep = cp->value_or(Offset(0));
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
  {
    std::lock_guard lk(retention_mu_);
    stopping_ = true;
  }
  retention_cv_.notify_all();
  if (retention_.joinable()) retention_.join();
  if (http_) http_->Stop();
  for (auto& s : sources_) s->Stop();
  if (batch_) batch_->Stop();
  if (calibrate_) calibrate_->Stop();
  if (processor_) processor_->Stop();
  if (archiver_) archiver_->Stop();
  if (dispatcher_) dispatcher_->Stop();
  if (retry_) retry_->Stop();
  if (log_) log_->Close();
  if (failed_) failed_->Close();
  if (decisions_.topic) decisions_.topic->Close();
  for (auto& [name, topic] : routes_) topic.log->Close();
  if (retry_logs_.retry) retry_logs_.retry->Close();
  if (retry_logs_.dead) retry_logs_.dead->Close();
}

}  // namespace portrait
