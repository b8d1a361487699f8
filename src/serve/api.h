// Api: the HTTP routes of portrait, as a pure request -> response function.
//
//   POST /v1/events            one event, a JSON array, or NDJSON; answers once durable
//   GET  /v1/profiles/{uid}    the user's tags (?tags=a,b to pick some)
//   GET  /healthz              liveness
//   GET  /metrics              Prometheus text format
// Errors are {"error": {"code", "message"}} with a 4xx/5xx status. Thread-safe.
#pragma once

#include "core/config.h"
#include "core/metrics.h"
#include "pipeline/collector.h"
#include "serve/http_server.h"
#include "store/profile_store.h"

namespace portrait {

class Api {
 public:
  Api(const Config& config, Collector* collector, ProfileStore* store, MetricsRegistry* metrics);
  HttpResponse Handle(HttpRequest& req);

 private:
  HttpResponse PostEvents(HttpRequest& req);
  HttpResponse GetProfile(const HttpRequest& req, std::string_view uid);
  void Count(std::string_view route, int status, double seconds);

  const Config& config_;
  Collector* collector_;
  ProfileStore* store_;
  MetricsRegistry* metrics_;
};

}  // namespace portrait
