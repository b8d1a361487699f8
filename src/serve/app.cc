#include "serve/app.h"

#include <filesystem>

#include "core/dir_lock.h"

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
  RETURN_IF_ERROR(app->processor_->Start());
  app->collector_ = std::make_unique<Collector>(cfg, app->log_.get(), app->failed_.get(), &app->metrics_);
  RETURN_IF_ERROR(app->collector_->LoadRecentIds());
  for (const SourceConfig& sc : cfg.sources) {
    ASSIGN_OR_RETURN(auto source, MakeSource(sc, cfg, app->collector_.get(), cfg.data_dir, &app->metrics_));
    RETURN_IF_ERROR(source->Start());
    app->sources_.push_back(std::move(source));
  }
  app->api_ = std::make_unique<Api>(cfg, app->collector_.get(), app->store_.get(), app->failed_.get(), &app->metrics_);
  Api* api = app->api_.get();
  app->http_ = std::make_unique<HttpServer>(http, [api](HttpRequest& r) { return api->Handle(r); }, &app->metrics_);
  RETURN_IF_ERROR(app->http_->Start());
  return app;
}

App::~App() { Stop(); }

void App::Stop() {
  if (http_) http_->Stop();
  for (auto& s : sources_) s->Stop();
  if (processor_) processor_->Stop();
  if (log_) log_->Close();
  if (failed_) failed_->Close();
}

}  // namespace portrait
