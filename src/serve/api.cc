#include "serve/api.h"

#include <chrono>

#include "core/json.h"
#include "fusion/fusion.h"

namespace portrait {

namespace {

HttpResponse Error(int status, std::string_view code, std::string_view message) {
  return {status, "application/json", JsonError(code, message)};
}

int HttpStatusFor(const Status& s) {
  switch (s.code()) {
    case StatusCode::kInvalidArgument: return 400;
    case StatusCode::kNotFound: return 404;
    case StatusCode::kTooLarge: return 413;
    case StatusCode::kUnavailable: return 503;
    default: return 500;
  }
}

std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t c = s.find(',', start);
    if (c == std::string::npos) c = s.size();
    if (c > start) out.push_back(s.substr(start, c - start));
    start = c + 1;
  }
  return out;
}

}  // namespace

Api::Api(const Config& config, Collector* collector, ProfileStore* store, MetricsRegistry* metrics)
    : config_(config), collector_(collector), store_(store), metrics_(metrics) {}

void Api::Count(std::string_view route, int status, double seconds) {
  std::string labels = "route=\"" + std::string(route) + "\"";
  metrics_->GetCounter("portrait_http_requests_total", "HTTP requests by route and status",
                       labels + ",code=\"" + std::to_string(status) + "\"")
      ->Inc();
  metrics_->GetHistogram("portrait_http_request_seconds", "HTTP request latency by route", labels)->Observe(seconds);
}

HttpResponse Api::Handle(HttpRequest& req) {
  auto start = std::chrono::steady_clock::now();
  std::string_view path = req.path;
  std::string route;
  HttpResponse resp;
  auto method_is = [&](std::string_view m) { return req.method == m; };
  if (path == "/v1/events") {
    route = "events";
    resp = method_is("POST") ? PostEvents(req) : Error(405, "method_not_allowed", "use POST for /v1/events");
  } else if (path.starts_with("/v1/profiles/") && path.size() > 13) {
    route = "profile";
    resp = method_is("GET") ? GetProfile(req, path.substr(13))
                            : Error(405, "method_not_allowed", "use GET for /v1/profiles/{uid}");
  } else if (path == "/healthz") {
    route = "healthz";
    resp = {200, "application/json", "{\"status\":\"ok\"}"};
  } else if (path == "/metrics") {
    route = "metrics";
    resp = {200, "text/plain; version=0.0.4", metrics_->RenderPrometheus()};
  } else {
    route = "unknown";
    resp = Error(404, "not_found", "no route " + std::string(path) +
                                       "; see /v1/events, /v1/profiles/{uid}, /healthz, /metrics");
  }
  Count(route, resp.status, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return resp;
}

HttpResponse Api::PostEvents(HttpRequest& req) {
  auto result = collector_->Ingest(req.body);
  if (!result.ok()) {
    return Error(HttpStatusFor(result.status()), "ingest_failed", result.status().message());
  }
  const IngestResult& r = *result;
  std::string body;
  JsonWriter w(&body);
  w.BeginObject();
  w.Key("accepted").Int(static_cast<int64_t>(r.accepted));
  w.Key("rejected").BeginArray();
  for (const Rejection& rej : r.rejected) {
    w.BeginObject().Key("index").Int(static_cast<int64_t>(rej.index));
    w.Key("reason").String(rej.reason).Key("error").String(rej.message).EndObject();
  }
  w.EndArray();
  int status = 200;
  if (r.accepted == 0 && !r.rejected.empty()) {
    status = 400;
    w.Key("error").BeginObject().Key("code").String(r.rejected[0].reason);
    w.Key("message").String(r.rejected.size() == 1 ? r.rejected[0].message
                                                   : "no event was accepted; first problem: " + r.rejected[0].message);
    w.EndObject();
  }
  w.EndObject();
  return {status, "application/json", std::move(body)};
}

HttpResponse Api::GetProfile(const HttpRequest& req, std::string_view uid) {
  std::vector<std::string> only;
  if (auto it = req.query.find("tags"); it != req.query.end()) {
    only = SplitComma(it->second);
    for (const auto& t : only) {
      if (!config_.tags.Find(t)) {
        std::string known;
        for (const auto& [name, _] : config_.tags.all()) known += (known.empty() ? "" : ", ") + name;
        return Error(400, "unknown_tag", "unknown tag \"" + t + "\"; known tags are: " + known);
      }
    }
  }
  TimestampMs now = NowMs();
  auto profile = store_->Get(uid, only, now);
  if (!profile.ok()) return Error(HttpStatusFor(profile.status()), "store_error", profile.status().message());
  if (profile->tags.empty()) return Error(404, "not_found", "no profile for user \"" + std::string(uid) + "\"");
  std::string body;
  JsonWriter w(&body);
  w.BeginObject().Key("uid").String(uid).Key("tags").BeginObject();
  for (const TagValue& t : profile->tags) {
    const TagConfig* cfg = config_.tags.Find(t.name);
    w.Key(t.name).BeginObject().Key("value");
    std::string value;
    fusion::RenderValue(t.state, *cfg, now, &value);
    w.Raw(value);
    w.Key("updated_at").Int(t.state.updated_at).EndObject();
  }
  w.EndObject().EndObject();
  return {200, "application/json", std::move(body)};
}

}  // namespace portrait
