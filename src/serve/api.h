// Api: the HTTP routes of portrait, as a pure request -> response function.
//
//   POST   /v1/events                     one event, a JSON array, or NDJSON; answers once durable
//   POST   /v1/actions                    Actions from other systems, same shapes, same answer
//   GET    /v1/profiles/{uid}             the user's tags (?tags=a,b to pick some) and freshness
//   GET    /v1/profiles/{uid}/tags/{tag}  one tag
//   POST   /v1/profiles:batchGet          {"uids": [...], "tags": [...]} -> {"profiles": [...]}
//   DELETE /v1/profiles/{uid}             logs the erasure; answers once durable
//   GET    /v1/failed?limit=N             the newest rejected events and Actions
//   GET    /v1/snapshots                  the completion log of offline snapshots
//   GET    /v1/users/{uid}/events         event history, newest first (?type=&from=&to=&limit=)
//   GET    /v1/channels/new-users         new users per channel and bucket (?product=&from=&to=
//                                         &granularity=hour|day&format=json|csv)
//   POST   /v1/channels:calibrate?date=D  recomputes day D from the archive (channels_api.cc)
//   GET    /v1/decisions/{uid}            the user's recent decisions, newest first (?limit=N)
//   GET    /v1/decisions/stream           decisions as they are made (Server-Sent Events; ?uid=, ?rule=)
//   POST   /v1/admin/reload               re-reads the config file's decision rules (decisions_api.cc)
//   GET  /healthz              liveness
//   GET  /metrics              Prometheus text format
// Writes (POST events/actions, DELETE) need `Authorization: Bearer <token>` when
// [server] tokens are set; bodies may be gzip or deflate; browsers from [server]
// cors_origins get CORS headers and preflight answers. Errors are
// {"error": {"code", "message"}} with a 4xx/5xx status. Thread-safe.
#pragma once

#include <optional>

#include "core/config.h"
#include "core/json.h"
#include "core/metrics.h"
#include "log/log.h"
#include "pipeline/collector.h"
#include "pipeline/decisions.h"
#include "serve/http_server.h"
#include "store/profile_store.h"

namespace portrait {

// An error answer {"error": {"code", "message"}}, and the HTTP status of a Status.
HttpResponse Error(int status, std::string_view code, std::string_view message);
int HttpStatusFor(const Status& s);

class Api {
 public:
  Api(const Config& config, Collector* collector, ProfileStore* store, Log* failed, MetricsRegistry* metrics);
  // GET /v1/dlq and POST /v1/dlq:replay.
  void SetDeadLetters(RetryQueue* retry, Log* dead) {
    retry_ = retry;
    dead_ = dead;
  }
  // The decision routes: recent decisions from `store`, the live `feed`, and `reload`
  // (answers how many rules are in force, or why the new ones were refused).
  void SetDecisions(DecisionStore* store, DecisionFeed* feed, std::function<Result<size_t>()> reload) {
    decision_store_ = store;
    feed_ = feed;
    reload_ = std::move(reload);
  }
  HttpResponse Handle(HttpRequest& req);

 private:
  HttpResponse PostEvents(HttpRequest& req);
  HttpResponse PostActions(HttpRequest& req);
  HttpResponse IngestAnswer(const Result<IngestResult>& result);
  HttpResponse GetProfile(const HttpRequest& req, std::string_view uid);
  HttpResponse GetTag(std::string_view uid, std::string_view tag);
  HttpResponse BatchGet(const HttpRequest& req);
  HttpResponse DeleteProfile(std::string_view uid);
  HttpResponse GetFailed(const HttpRequest& req);
  HttpResponse GetDeadLetters(const HttpRequest& req);
  HttpResponse GetSnapshots();
  std::optional<HttpResponse> ParseLimit(const HttpRequest& req, size_t* limit);
  HttpResponse ReplayDeadLetters(const HttpRequest& req);
  HttpResponse GetHistory(const HttpRequest& req, std::string_view uid);
  HttpResponse GetNewUsers(const HttpRequest& req);
  HttpResponse PostCalibrate(const HttpRequest& req);
  HttpResponse GetDecisions(const HttpRequest& req, std::string_view uid);
  HttpResponse StreamDecisions(const HttpRequest& req);
  HttpResponse PostReload();
  Status CheckTagNames(const std::vector<std::string>& names) const;
  // The source a write comes from ("http" or "http:<name>"), or an error response when
  // tokens are configured and the request has none that matches.
  std::optional<HttpResponse> Authorize(const HttpRequest& req, std::string* source) const;
  // The body, inflated if it came with Content-Encoding: gzip or deflate.
  std::optional<HttpResponse> Decode(HttpRequest& req) const;
  void AddCors(const HttpRequest& req, HttpResponse* resp) const;
  void RenderProfile(const Profile& p, TimestampMs now, JsonWriter& w) const;
  void RenderFreshness(const Profile& p, JsonWriter& w) const;
  void Count(std::string_view route, int status, double seconds);

  const Config& config_;
  Collector* collector_;
  ProfileStore* store_;
  Log* failed_;
  RetryQueue* retry_ = nullptr;
  Log* dead_ = nullptr;
  DecisionStore* decision_store_ = nullptr;
  DecisionFeed* feed_ = nullptr;
  std::function<Result<size_t>()> reload_;
  MetricsRegistry* metrics_;
};

}  // namespace portrait
