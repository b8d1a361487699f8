// Api: every HTTP route of portrait as one route table, and the middleware around it.
//
// The table holds the routes of serve itself (ingestion, failed events, dead letters,
// reload, health, metrics) and those each feature adds (Feature::AddRoutes). Handle()
// matches a request against it and runs, in order: CORS preflight answers; 404 (with the
// list of routes) and 405 (with the methods the path has); the scope check (with tokens
// configured, `write` and `admin` routes need `Authorization: Bearer <token>`); inflating
// gzip/deflate bodies; the handler; CORS headers; the request metrics by route. Errors are
// {"error": {"code", "message"}}. Thread-safe once the table is complete.
#pragma once

#include <functional>
#include <mutex>
#include <optional>

#include "core/config.h"
#include "core/http.h"
#include "core/json.h"
#include "core/metrics.h"
#include "delivery/retry.h"
#include "ingest/collector.h"
#include "log/log.h"

namespace portrait {

// Every route of portrait (serve's and every feature's) as a Markdown table, for the README
// (`portrait routes`); made without opening anything.
std::string RoutesMarkdown();
// The OpenAPI document of the same table (`portrait openapi`; GET /openapi.json).
std::string RoutesOpenApi();

inline constexpr const char* kPortraitVersion = "0.1.0";  // CMakeLists.txt project(VERSION)

class Api {
 public:
  Api(const Config& config, MetricsRegistry* metrics);

  // What serve's own routes use; any may be null (its routes then answer 404).
  struct Core {
    Collector* collector = nullptr;
    Log* failed = nullptr;
    RetryQueue* retry = nullptr;
    Log* dead = nullptr;
    // Re-reads the config and reloads what can be; answers the JSON members to report.
    std::function<Result<std::string>()> reload;
  };
  void AddCoreRoutes(Core core);
  RouteTable& routes() { return routes_; }
  // Adds /healthz and /metrics; call last, so the 404 hint lists them last.
  void AddHealthRoutes();

  HttpResponse Handle(HttpRequest& req);

 private:
  HttpResponse IngestAnswer(const Result<IngestResult>& result);
  HttpResponse GetFailed(const HttpRequest& req);
  HttpResponse GetDeadLetters(const HttpRequest& req);
  HttpResponse ReplayDeadLetters(const HttpRequest& req);
  HttpResponse PostReload();
  // The source a call comes from ("http" or "http:<name>"), or the error answer when
  // tokens are configured and the request has none that matches.
  // With tokens configured: 401 without a known bearer token, 403 when it lacks `need`.
  std::optional<HttpResponse> Authorize(const HttpRequest& req, Scope need, std::string* source) const;
  // The body, inflated if it came with Content-Encoding: gzip or deflate.
  std::optional<HttpResponse> Decode(HttpRequest& req) const;
  void AddCors(const HttpRequest& req, HttpResponse* resp) const;
  void Count(std::string_view route, int status, double seconds);

  const Config& config_;
  MetricsRegistry* metrics_;
  RouteTable routes_;
  std::once_flag openapi_once_;
  std::string openapi_;  // made at the first GET /openapi.json
  Core core_;
};

}  // namespace portrait
