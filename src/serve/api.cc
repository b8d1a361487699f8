#include "serve/api.h"

#include <simdjson.h>
#include <zlib.h>

#include <chrono>

#include "core/event.h"
#include "core/json.h"
#include "core/openapi.h"
#include "features/registry.h"
#include "ingest/failed.h"

namespace portrait {

extern const char* const kDashboardHtml;  // generated from web/dashboard (src/serve/CMakeLists.txt)
extern const char* const kDashboardJs;
extern const char* const kDashboardCss;

Api::Api(const Config& config, MetricsRegistry* metrics) : config_(config), metrics_(metrics) {}

void Api::AddCoreRoutes(Core core) {
  core_ = std::move(core);
  routes_.Add({"POST", "/v1/events", Scope::kWrite,
               "one JSON event, a JSON array of events, or NDJSON; answers once the accepted events are durable",
               [this](RouteCall& c) {
                 if (!core_.collector) return Error(503, "unavailable", "this process takes no events");
                 return IngestAnswer(core_.collector->Ingest(c.http.body, c.source));
               },
               "events", "", "Event", "IngestAnswer"});
  routes_.Add({"POST", "/v1/actions", Scope::kWrite, "Actions from other systems (one, an array, or NDJSON), same answer",
               [this](RouteCall& c) {
                 if (!core_.collector) return Error(503, "unavailable", "this process takes no Actions");
                 return IngestAnswer(core_.collector->IngestActions(c.http.body, c.source));
               },
               "actions", "", "Action", "IngestAnswer"});
  // Failed payloads and dead letters are open to readers as before; the access-control
  // work gives them the admin scope.
  routes_.Add({"GET", "/v1/failed", Scope::kAdmin, "the newest rejected events and Actions with their payloads (`?limit=N`)",
               [this](RouteCall& c) { return GetFailed(c.http); }, "failed"});
  routes_.Add({"GET", "/v1/dlq", Scope::kAdmin, "the newest dead letters (`?limit=N`)",
               [this](RouteCall& c) { return GetDeadLetters(c.http); }, "dlq"});
  routes_.Add({"POST", "/v1/dlq:replay", Scope::kAdmin, "queues the dead letters not replayed before again (`?sink=NAME`)",
               [this](RouteCall& c) { return ReplayDeadLetters(c.http); }, "dlq_replay"});
  routes_.Add({"POST", "/v1/admin/reload", Scope::kAdmin,
               "re-reads the config file and puts its reloadable parts (decision rules, segments) in force; `kill -HUP` too",
               [this](RouteCall&) { return PostReload(); }, "reload"});
}

void Api::AddHealthRoutes() {
  routes_.Add({"GET", "/healthz", Scope::kPublic, "liveness: `{\"status\":\"ok\"}`",
               [](RouteCall&) { return HttpResponse{200, "application/json", "{\"status\":\"ok\"}"}; }, "healthz"});
  routes_.Add({"GET", "/metrics", config_.server.open_metrics ? Scope::kPublic : Scope::kRead,
               "Prometheus text format (no token needed with `[server] open_metrics = true`)",
               [this](RouteCall&) { return HttpResponse{200, "text/plain; version=0.0.4", metrics_->RenderPrometheus()}; },
               "metrics", "text/plain"});
  // The dashboard: static files, public; what it shows comes from the routes above, with
  // the token its user enters.
  auto page = [](const char* type, const char* body) {
    return [type, body](RouteCall&) {
      HttpResponse r{200, type, body};
      r.headers.emplace_back("Cache-Control", "no-cache");
      r.headers.emplace_back("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'");
      return r;
    };
  };
  routes_.Add({"GET", "/", Scope::kPublic, "the dashboard (pipeline health, channels, profiles, failures, snapshots)",
               page("text/html; charset=utf-8", kDashboardHtml), "dashboard", "text/html"});
  routes_.Add({"GET", "/ui/app.js", Scope::kPublic, "the dashboard's script", page("text/javascript; charset=utf-8", kDashboardJs),
               "dashboard_js", "text/javascript"});
  routes_.Add({"GET", "/ui/style.css", Scope::kPublic, "the dashboard's style sheet", page("text/css; charset=utf-8", kDashboardCss),
               "dashboard_css", "text/css"});
  // Last, so that it describes every route above (itself included).
  routes_.Add({"GET", "/openapi.json", Scope::kPublic, "the OpenAPI 3.1 document of every route (`portrait openapi` prints it)",
               [this](RouteCall&) {
                 std::call_once(openapi_once_, [this] { openapi_ = OpenApiDocument(routes_, kPortraitVersion); });
                 return HttpResponse{200, "application/json", openapi_};
               },
               "openapi"});
}

HttpResponse Api::Handle(HttpRequest& req) {
  auto start = std::chrono::steady_clock::now();
  std::string_view label;
  HttpResponse resp;
  if (req.method == "OPTIONS") {
    label = "preflight";
    resp = {204, "text/plain", "", {}};
    AddCors(req, &resp);
    resp.headers.emplace_back("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
    resp.headers.emplace_back("Access-Control-Allow-Headers", "Content-Type, Content-Encoding, Authorization");
    resp.headers.emplace_back("Access-Control-Max-Age", "600");
    Count(label, resp.status, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    return resp;
  }
  std::vector<std::string> params;
  bool path_known = false;
  std::string allowed;
  const Route* route = routes_.Match(req.method, req.path, &params, &path_known, &allowed);
  if (!route) {
    label = "unknown";
    resp = path_known ? Error(405, "method_not_allowed", "use " + allowed + " for " + req.path)
                      : Error(404, "not_found", "no route " + req.path + "; " + routes_.Hint());
  } else {
    label = route->label;
    RouteCall call{req, std::move(params), "http"};
    std::optional<HttpResponse> refused;
    if (route->scope != Scope::kPublic) refused = Authorize(req, route->scope, &call.source);
    if (!refused && !req.body.empty()) refused = Decode(req);
    resp = refused ? std::move(*refused) : route->handler(call);
  }
  AddCors(req, &resp);
  Count(label, resp.status, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return resp;
}

std::string RoutesOpenApi() {
  Config config;
  MetricsRegistry metrics;
  Api api(config, &metrics);
  api.AddCoreRoutes({});
  auto features = MakeFeatures();
  for (auto& f : features) f->AddRoutes(api.routes());
  api.AddHealthRoutes();
  return OpenApiDocument(api.routes(), kPortraitVersion);
}

std::string RoutesMarkdown() {
  Config config;
  MetricsRegistry metrics;
  Api api(config, &metrics);
  api.AddCoreRoutes({});
  auto features = MakeFeatures();  // AddRoutes only declares; nothing is opened
  for (auto& f : features) f->AddRoutes(api.routes());
  api.AddHealthRoutes();
  return api.routes().Markdown();
}

HttpResponse Api::PostReload() {
  if (!core_.reload) return Error(404, "not_found", "this server has nothing to reload");
  auto members = core_.reload();
  if (!members.ok()) return Error(400, "invalid_config", members.status().message());
  std::string out = "{\"reloaded\":true";
  if (!members->empty()) out += "," + *members;
  out += "}";
  return {200, "application/json", std::move(out)};
}

void Api::Count(std::string_view route, int status, double seconds) {
  std::string labels = "route=\"" + std::string(route) + "\"";
  metrics_->GetCounter("portrait_http_requests_total", "HTTP requests by route and status",
                       labels + ",code=\"" + std::to_string(status) + "\"")
      ->Inc();
  metrics_->GetHistogram("portrait_http_request_seconds", "HTTP request latency by route", labels)->Observe(seconds);
}

void Api::AddCors(const HttpRequest& req, HttpResponse* resp) const {
  auto origin = req.headers.find("origin");
  if (origin == req.headers.end() || config_.server.cors_origins.empty()) return;
  for (const auto& allowed : config_.server.cors_origins) {
    if (allowed == "*" || allowed == origin->second) {
      resp->headers.emplace_back("Access-Control-Allow-Origin", allowed == "*" ? "*" : origin->second);
      if (allowed != "*") resp->headers.emplace_back("Vary", "Origin");
      return;
    }
  }
}

std::optional<HttpResponse> Api::Authorize(const HttpRequest& req, Scope need, std::string* source) const {
  *source = "http";
  if (config_.server.tokens.empty()) return std::nullopt;
  auto unauthorized = [&](std::string message) {
    metrics_->GetCounter("portrait_http_unauthorized_total", "Calls refused for a missing or unknown token")->Inc();
    HttpResponse r = Error(401, "unauthorized", std::move(message));
    r.headers.emplace_back("WWW-Authenticate", "Bearer");
    return r;
  };
  auto h = req.headers.find("authorization");
  if (h == req.headers.end() || !h->second.starts_with("Bearer ")) {
    return unauthorized("this route needs \"Authorization: Bearer <token>\" with the " + std::string(ScopeName(need)) +
                        " scope");
  }
  std::string_view token = std::string_view(h->second).substr(7);
  const ApiToken* found = nullptr;
  for (const ApiToken& t : config_.server.tokens) {
    // Constant-time comparison, every token compared: no early exit that times a guess.
    unsigned diff = static_cast<unsigned>(t.secret.size() ^ token.size());
    for (size_t i = 0; i < t.secret.size(); ++i) {
      diff |= static_cast<unsigned char>(t.secret[i] ^ (i < token.size() ? token[i] : 0));
    }
    if (diff == 0 && !found) found = &t;
  }
  if (!found) return unauthorized("unknown bearer token");
  *source = "http:" + found->name;
  if ((found->scopes & ScopeBit(need)) == 0) {
    metrics_->GetCounter("portrait_http_forbidden_total", "Calls refused: the token lacks the route's scope")->Inc();
    return Error(403, "forbidden",
                 "token \"" + found->name + "\" lacks the " + std::string(ScopeName(need)) + " scope this route needs");
  }
  return std::nullopt;
}

std::optional<HttpResponse> Api::Decode(HttpRequest& req) const {
  auto enc = req.headers.find("content-encoding");
  if (enc == req.headers.end() || enc->second == "identity") return std::nullopt;
  if (enc->second != "gzip" && enc->second != "deflate") {
    return Error(415, "unsupported_encoding", "Content-Encoding \"" + enc->second + "\" is not supported; use gzip or deflate");
  }
  z_stream z{};
  // 15 + 32: zlib or gzip header, detected.
  if (inflateInit2(&z, 15 + 32) != Z_OK) return Error(500, "internal", "cannot start inflating");
  z.next_in = reinterpret_cast<Bytef*>(req.body.data());
  z.avail_in = static_cast<uInt>(req.body.size());
  std::string out;
  const size_t limit = config_.server.max_body_bytes;
  int rc = Z_OK;
  char buf[64 << 10];
  while (rc != Z_STREAM_END) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&z);
      return Error(400, "malformed_body", "the " + enc->second + " body cannot be inflated: " + (z.msg ? z.msg : "truncated"));
    }
    out.append(buf, sizeof buf - z.avail_out);
    if (out.size() > limit) {
      inflateEnd(&z);
      metrics_->GetCounter("portrait_http_bodies_too_large_total", "Request bodies refused for their size")->Inc();
      return Error(413, "body_too_large", "the inflated body exceeds the limit of " + std::to_string(limit) +
                                              " bytes ([server] max_body_bytes); split the batch");
    }
    if (rc == Z_OK && z.avail_in == 0 && z.avail_out != 0) {
      inflateEnd(&z);
      return Error(400, "malformed_body", "the " + enc->second + " body is truncated");
    }
  }
  inflateEnd(&z);
  out.reserve(out.size() + Collector::kPadding);
  req.body = std::move(out);
  return std::nullopt;
}

HttpResponse Api::IngestAnswer(const Result<IngestResult>& result) {
  if (!result.ok()) {
    HttpResponse r = Error(HttpStatusFor(result.status()), "ingest_failed", result.status().message());
    // Nothing of the request was logged (a log append is all or none): the same body again,
    // later, is safe.
    if (r.status == 503) r.headers.emplace_back("Retry-After", "1");
    return r;
  }
  const IngestResult& r = *result;
  std::string body;
  JsonWriter w(&body);
  w.BeginObject();
  w.Key("accepted").Int(static_cast<int64_t>(r.accepted));
  if (r.duplicates > 0) w.Key("duplicates").Int(static_cast<int64_t>(r.duplicates));
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

HttpResponse Api::GetFailed(const HttpRequest& req) {
  size_t limit;
  if (auto bad = ParseLimit(req, &limit)) return *bad;
  if (!core_.failed) return Error(404, "not_found", "this server keeps no failed topic");
  auto records = ReadLatestFailed(*core_.failed, limit);
  if (!records.ok()) return Error(500, "log_error", records.status().message());
  std::string body;
  JsonWriter w(&body);
  w.BeginObject().Key("failed").BeginArray();
  for (const auto& [offset, r] : *records) w.Raw(FailedToJson(r, offset));
  w.EndArray().EndObject();
  return {200, "application/json", std::move(body)};
}

HttpResponse Api::GetDeadLetters(const HttpRequest& req) {
  size_t limit;
  if (auto bad = ParseLimit(req, &limit)) return *bad;
  if (!core_.dead) return Error(404, "not_found", "this server keeps no dead-letter topic");
  auto items = ReadLatestDead(*core_.dead, limit);
  if (!items.ok()) return Error(500, "log_error", items.status().message());
  std::string body;
  JsonWriter w(&body);
  w.BeginObject().Key("dead").BeginArray();
  for (const auto& [offset, item] : *items) w.Raw(RetryItemToJson(item, offset));
  w.EndArray().EndObject();
  return {200, "application/json", std::move(body)};
}

HttpResponse Api::ReplayDeadLetters(const HttpRequest& req) {
  if (!core_.retry) return Error(404, "not_found", "this server keeps no dead-letter topic");
  std::string sink;
  if (auto it = req.query.find("sink"); it != req.query.end()) sink = it->second;
  auto n = core_.retry->ReplayDead(sink);
  if (!n.ok()) return Error(HttpStatusFor(n.status()), "replay_failed", n.status().message());
  std::string body;
  JsonWriter w(&body);
  w.BeginObject().Key("replayed").Int(static_cast<int64_t>(*n)).EndObject();
  return {200, "application/json", std::move(body)};
}

}  // namespace portrait
