#include "serve/api.h"

#include "store/snapshot.h"

#include <zlib.h>

#include <chrono>

#include "core/event.h"
#include "core/json.h"
#include "fusion/fusion.h"
#include "pipeline/failed.h"
#include <simdjson.h>

namespace portrait {

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

namespace {

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

Api::Api(const Config& config, Collector* collector, ProfileStore* store, Log* failed, MetricsRegistry* metrics)
    : config_(config), collector_(collector), store_(store), failed_(failed), metrics_(metrics) {}

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
  if (method_is("OPTIONS")) {
    route = "preflight";
    resp = {204, "text/plain", "", {}};
    AddCors(req, &resp);
    resp.headers.emplace_back("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
    resp.headers.emplace_back("Access-Control-Allow-Headers", "Content-Type, Content-Encoding, Authorization");
    resp.headers.emplace_back("Access-Control-Max-Age", "600");
  } else if (path == "/v1/events") {
    route = "events";
    resp = method_is("POST") ? PostEvents(req) : Error(405, "method_not_allowed", "use POST for /v1/events");
  } else if (path == "/v1/actions") {
    route = "actions";
    resp = method_is("POST") ? PostActions(req) : Error(405, "method_not_allowed", "use POST for /v1/actions");
  } else if (path == "/v1/profiles:batchGet") {
    route = "profiles_batch";
    resp = method_is("POST") ? BatchGet(req)
                             : Error(405, "method_not_allowed", "use POST for /v1/profiles:batchGet");
  } else if (path.starts_with("/v1/profiles/") && path.size() > 13) {
    std::string_view rest = path.substr(13);
    size_t tags_at = rest.rfind("/tags/");
    if (tags_at != std::string_view::npos && tags_at > 0 && tags_at + 6 < rest.size()) {
      route = "profile_tag";
      resp = method_is("GET") ? GetTag(rest.substr(0, tags_at), rest.substr(tags_at + 6))
                              : Error(405, "method_not_allowed", "use GET for /v1/profiles/{uid}/tags/{tag}");
    } else if (method_is("GET")) {
      route = "profile";
      resp = GetProfile(req, rest);
    } else if (method_is("DELETE")) {
      route = "profile_delete";
      std::string source;
      auto denied = Authorize(req, &source);
      resp = denied ? *denied : DeleteProfile(rest);
    } else {
      route = "profile";
      resp = Error(405, "method_not_allowed", "use GET or DELETE for /v1/profiles/{uid}");
    }
  } else if (path.starts_with("/v1/users/") && path.ends_with("/events") && path.size() > 17) {
    route = "history";
    resp = method_is("GET") ? GetHistory(req, path.substr(10, path.size() - 17))
                            : Error(405, "method_not_allowed", "use GET for /v1/users/{uid}/events");
  } else if (path == "/v1/dlq") {
    route = "dlq";
    resp = method_is("GET") ? GetDeadLetters(req) : Error(405, "method_not_allowed", "use GET for /v1/dlq");
  } else if (path == "/v1/dlq:replay") {
    route = "dlq_replay";
    resp = method_is("POST") ? ReplayDeadLetters(req) : Error(405, "method_not_allowed", "use POST for /v1/dlq:replay");
  } else if (path == "/v1/snapshots") {
    route = "snapshots";
    resp = method_is("GET") ? GetSnapshots() : Error(405, "method_not_allowed", "use GET for /v1/snapshots");
  } else if (path == "/v1/channels/new-users") {
    route = "channel_new_users";
    resp = method_is("GET") ? GetNewUsers(req) : Error(405, "method_not_allowed", "use GET for /v1/channels/new-users");
  } else if (path == "/v1/channels:calibrate") {
    route = "channel_calibrate";
    std::string source;
    auto denied = Authorize(req, &source);
    resp = !method_is("POST") ? Error(405, "method_not_allowed", "use POST for /v1/channels:calibrate")
           : denied          ? *denied
                             : PostCalibrate(req);
  } else if (path == "/v1/decisions/stream") {
    route = "decision_stream";
    resp = method_is("GET") ? StreamDecisions(req) : Error(405, "method_not_allowed", "use GET for /v1/decisions/stream");
  } else if (path.starts_with("/v1/decisions/") && path.size() > 14) {
    route = "decisions";
    resp = method_is("GET") ? GetDecisions(req, path.substr(14))
                            : Error(405, "method_not_allowed", "use GET for /v1/decisions/{uid}");
  } else if (path == "/v1/admin/reload") {
    route = "reload";
    std::string source;
    auto denied = Authorize(req, &source);
    resp = !method_is("POST") ? Error(405, "method_not_allowed", "use POST for /v1/admin/reload")
           : denied          ? *denied
                             : PostReload();
  } else if (path == "/v1/failed") {
    route = "failed";
    resp = method_is("GET") ? GetFailed(req) : Error(405, "method_not_allowed", "use GET for /v1/failed");
  } else if (path == "/healthz") {
    route = "healthz";
    resp = {200, "application/json", "{\"status\":\"ok\"}"};
  } else if (path == "/metrics") {
    route = "metrics";
    resp = {200, "text/plain; version=0.0.4", metrics_->RenderPrometheus()};
  } else {
    route = "unknown";
    resp = Error(404, "not_found", "no route " + std::string(path) +
                                       "; see /v1/events, /v1/actions, /v1/profiles/{uid}, "
                                       "/v1/profiles/{uid}/tags/{tag}, /v1/profiles:batchGet, /v1/channels/new-users, "
                                       "/v1/decisions/{uid}, /v1/decisions/stream, /healthz, /metrics");
  }
  if (route != "preflight") AddCors(req, &resp);
  Count(route, resp.status, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return resp;
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

std::optional<HttpResponse> Api::Authorize(const HttpRequest& req, std::string* source) const {
  *source = "http";
  if (config_.server.tokens.empty()) return std::nullopt;
  auto h = req.headers.find("authorization");
  if (h == req.headers.end() || !h->second.starts_with("Bearer ")) {
    metrics_->GetCounter("portrait_http_unauthorized_total", "Writes refused for a missing or unknown token")->Inc();
    HttpResponse r = Error(401, "unauthorized", "this server needs \"Authorization: Bearer <token>\" for writes");
    r.headers.emplace_back("WWW-Authenticate", "Bearer");
    return r;
  }
  std::string_view token = std::string_view(h->second).substr(7);
  for (const auto& [name, expected] : config_.server.tokens) {
    // Constant-time comparison: no early exit on the first differing byte.
    unsigned diff = expected.size() ^ token.size();
    for (size_t i = 0; i < expected.size(); ++i) diff |= static_cast<unsigned char>(expected[i] ^ (i < token.size() ? token[i] : 0));
    if (diff == 0) {
      *source = "http:" + name;
      return std::nullopt;
    }
  }
  metrics_->GetCounter("portrait_http_unauthorized_total", "Writes refused for a missing or unknown token")->Inc();
  return Error(401, "unauthorized", "unknown bearer token");
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

HttpResponse Api::PostEvents(HttpRequest& req) {
  std::string source;
  if (auto denied = Authorize(req, &source)) return *denied;
  if (auto bad = Decode(req)) return *bad;
  return IngestAnswer(collector_->Ingest(req.body, source));
}

HttpResponse Api::PostActions(HttpRequest& req) {
  std::string source;
  if (auto denied = Authorize(req, &source)) return *denied;
  if (auto bad = Decode(req)) return *bad;
  return IngestAnswer(collector_->IngestActions(req.body, source));
}

HttpResponse Api::IngestAnswer(const Result<IngestResult>& result) {
  if (!result.ok()) {
    return Error(HttpStatusFor(result.status()), "ingest_failed", result.status().message());
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

Status Api::CheckTagNames(const std::vector<std::string>& names) const {
  for (const auto& t : names) {
    if (!config_.tags.Find(t)) {
      std::string known;
      for (const auto& [name, _] : config_.tags.all()) known += (known.empty() ? "" : ", ") + name;
      return Status::InvalidArgument("unknown tag \"" + t + "\"; known tags are: " + known);
    }
  }
  return Status::Ok();
}

void Api::RenderFreshness(const Profile& p, JsonWriter& w) const {
  w.Key("freshness").BeginObject().Key("realtime_updated_at");
  if (p.meta.realtime_updated_at > 0) w.Int(p.meta.realtime_updated_at);
  else w.Null();
  w.Key("snapshot");
  std::string date;
  int version = 0;
  if (ParseSnapshotMark(p.meta.snapshot, &date, &version)) {
    w.BeginObject().Key("date").String(date).Key("version").Int(version).EndObject();
  } else {
    w.Null();
  }
  w.EndObject();
}

void Api::RenderProfile(const Profile& p, TimestampMs now, JsonWriter& w) const {
  w.BeginObject().Key("uid").String(p.uid).Key("tags").BeginObject();
  for (const TagValue& t : p.tags) {
    const TagConfig* cfg = config_.tags.Find(t.name);
    w.Key(t.name).BeginObject().Key("value");
    std::string value;
    fusion::RenderValue(t.state, *cfg, now, &value);
    w.Raw(value);
    w.Key("updated_at").Int(t.state.updated_at).EndObject();
  }
  w.EndObject();
  RenderFreshness(p, w);
  w.EndObject();
}

HttpResponse Api::GetProfile(const HttpRequest& req, std::string_view uid) {
  std::vector<std::string> only;
  if (auto it = req.query.find("tags"); it != req.query.end()) {
    only = SplitComma(it->second);
    if (Status st = CheckTagNames(only); !st.ok()) return Error(400, "unknown_tag", st.message());
  }
  TimestampMs now = NowMs();
  auto profile = store_->Get(uid, only, now);
  if (!profile.ok()) return Error(HttpStatusFor(profile.status()), "store_error", profile.status().message());
  if (profile->tags.empty()) return Error(404, "not_found", "no profile for user \"" + std::string(uid) + "\"");
  std::string body;
  JsonWriter w(&body);
  RenderProfile(*profile, now, w);
  return {200, "application/json", std::move(body)};
}

HttpResponse Api::GetTag(std::string_view uid, std::string_view tag) {
  std::vector<std::string> only = {std::string(tag)};
  if (Status st = CheckTagNames(only); !st.ok()) return Error(400, "unknown_tag", st.message());
  TimestampMs now = NowMs();
  auto profile = store_->Get(uid, only, now);
  if (!profile.ok()) return Error(HttpStatusFor(profile.status()), "store_error", profile.status().message());
  if (profile->tags.empty()) {
    return Error(404, "not_found", "user \"" + std::string(uid) + "\" has no tag \"" + std::string(tag) + "\"");
  }
  const TagValue& t = profile->tags[0];
  std::string body, value;
  fusion::RenderValue(t.state, *config_.tags.Find(t.name), now, &value);
  JsonWriter w(&body);
  w.BeginObject().Key("uid").String(uid).Key("tag").String(tag).Key("value").Raw(value);
  w.Key("updated_at").Int(t.state.updated_at);
  RenderFreshness(*profile, w);
  w.EndObject();
  return {200, "application/json", std::move(body)};
}

HttpResponse Api::BatchGet(const HttpRequest& req) {
  constexpr size_t kMaxUids = 1000;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(req.body).get(doc)) {
    return Error(400, "malformed_json", "the body must be {\"uids\": [...], \"tags\": [...]}");
  }
  std::vector<std::string> uids, only;
  simdjson::dom::object obj;
  if (doc.get_object().get(obj)) return Error(400, "not_object", "the body must be a JSON object");
  for (auto f : obj) {
    std::vector<std::string>* dst = f.key == "uids" ? &uids : f.key == "tags" ? &only : nullptr;
    if (!dst) return Error(400, "unknown_field", "unknown field \"" + std::string(f.key) + "\"; use uids and tags");
    simdjson::dom::array arr;
    if (f.value.get_array().get(arr)) return Error(400, "wrong_type", std::string(f.key) + " must be an array of strings");
    for (auto v : arr) {
      if (!v.is_string()) return Error(400, "wrong_type", std::string(f.key) + " must be an array of strings");
      dst->emplace_back(v.get_string().value());
    }
  }
  if (uids.empty()) return Error(400, "missing_field", "uids must list at least one user");
  if (uids.size() > kMaxUids) {
    return Error(400, "too_many", "at most " + std::to_string(kMaxUids) + " uids per request");
  }
  if (Status st = CheckTagNames(only); !st.ok()) return Error(400, "unknown_tag", st.message());
  TimestampMs now = NowMs();
  std::string body;
  JsonWriter w(&body);
  w.BeginObject().Key("profiles").BeginArray();
  auto profiles = store_->GetMany(uids, only, now);
  if (!profiles.ok()) return Error(HttpStatusFor(profiles.status()), "store_error", profiles.status().message());
  for (const Profile& profile : *profiles) RenderProfile(profile, now, w);
  w.EndArray().EndObject();
  return {200, "application/json", std::move(body)};
}

HttpResponse Api::DeleteProfile(std::string_view uid) {
  Status st = collector_->DeleteProfile(uid);
  if (!st.ok()) return Error(HttpStatusFor(st), "delete_failed", st.message());
  std::string body;
  JsonWriter w(&body);
  w.BeginObject().Key("deleted").String(uid).EndObject();
  return {200, "application/json", std::move(body)};
}

HttpResponse Api::GetHistory(const HttpRequest& req, std::string_view uid) {
  HistoryQuery q;
  auto number = [&](const char* name, int64_t lo, int64_t hi, int64_t* out) -> std::optional<HttpResponse> {
    auto it = req.query.find(name);
    if (it == req.query.end()) return std::nullopt;
    char* end = nullptr;
    long long v = std::strtoll(it->second.c_str(), &end, 10);
    if (it->second.empty() || *end != '\0' || v < lo || v > hi) {
      return Error(400, "invalid_value", std::string(name) + " must be an integer from " + std::to_string(lo) + " to " +
                                             std::to_string(hi));
    }
    *out = v;
    return std::nullopt;
  };
  int64_t limit = 100;
  if (auto bad = number("limit", 1, 10000, &limit)) return *bad;
  if (auto bad = number("from", 0, INT64_MAX, &q.from)) return *bad;
  if (auto bad = number("to", 0, INT64_MAX, &q.to)) return *bad;
  q.limit = static_cast<size_t>(limit);
  if (auto it = req.query.find("type"); it != req.query.end()) {
    if (!config_.events.count(it->second)) return Error(400, "unknown_type", "unknown event type \"" + it->second + "\"");
    q.type = it->second;
  }
  if (!config_.history.enabled) return Error(404, "not_found", "event history is off ([history] enabled = false)");
  auto events = store_->ReadHistory(uid, q, config_.history, NowMs());
  if (!events.ok()) return Error(HttpStatusFor(events.status()), "store_error", events.status().message());
  std::string body;
  JsonWriter w(&body);
  w.BeginObject().Key("uid").String(uid).Key("events").BeginArray();
  Event ev;
  for (const auto& e : *events) {
    if (!DecodeEvent(e.event, &ev).ok()) return Error(500, "store_error", "history of " + std::string(uid) + " is unreadable");
    w.Raw(EventToJson(ev));
  }
  w.EndArray().EndObject();
  return {200, "application/json", std::move(body)};
}

// The `limit` query parameter (1 to 10000, default 100), or an error answer.
std::optional<HttpResponse> Api::ParseLimit(const HttpRequest& req, size_t* limit) {
  *limit = 100;
  if (auto it = req.query.find("limit"); it != req.query.end()) {
    char* end = nullptr;
    long v = std::strtol(it->second.c_str(), &end, 10);
    if (*end != '\0' || v < 1 || v > 10000) return Error(400, "invalid_value", "limit must be 1 to 10000");
    *limit = static_cast<size_t>(v);
  }
  return std::nullopt;
}

HttpResponse Api::GetFailed(const HttpRequest& req) {
  size_t limit;
  if (auto bad = ParseLimit(req, &limit)) return *bad;
  if (!failed_) return Error(404, "not_found", "this server keeps no failed topic");
  auto records = ReadLatestFailed(*failed_, limit);
  if (!records.ok()) return Error(500, "log_error", records.status().message());
  std::string body;
  JsonWriter w(&body);
  w.BeginObject().Key("failed").BeginArray();
  for (const auto& [offset, r] : *records) w.Raw(FailedToJson(r, offset));
  w.EndArray().EndObject();
  return {200, "application/json", std::move(body)};
}

HttpResponse Api::GetSnapshots() {
  auto rows = ReadCompletionLog(SnapshotDir(config_));
  if (!rows.ok()) return Error(500, "snapshot_error", rows.status().message());
  std::string body;
  JsonWriter w(&body);
  w.BeginObject().Key("snapshots").BeginArray();
  for (const auto& r : *rows) w.Raw(r.ToJson());
  w.EndArray().EndObject();
  return {200, "application/json", std::move(body)};
}

HttpResponse Api::GetDeadLetters(const HttpRequest& req) {
  size_t limit;
  if (auto bad = ParseLimit(req, &limit)) return *bad;
  if (!dead_) return Error(404, "not_found", "this server keeps no dead-letter topic");
  auto items = ReadLatestDead(*dead_, limit);
  if (!items.ok()) return Error(500, "log_error", items.status().message());
  std::string body;
  JsonWriter w(&body);
  w.BeginObject().Key("dead").BeginArray();
  for (const auto& [offset, item] : *items) w.Raw(RetryItemToJson(item, offset));
  w.EndArray().EndObject();
  return {200, "application/json", std::move(body)};
}

HttpResponse Api::ReplayDeadLetters(const HttpRequest& req) {
  if (!retry_) return Error(404, "not_found", "this server keeps no dead-letter topic");
  std::string sink;
  if (auto it = req.query.find("sink"); it != req.query.end()) sink = it->second;
  auto n = retry_->ReplayDead(sink);
  if (!n.ok()) return Error(HttpStatusFor(n.status()), "replay_failed", n.status().message());
  std::string body;
  JsonWriter w(&body);
  w.BeginObject().Key("replayed").Int(static_cast<int64_t>(*n)).EndObject();
  return {200, "application/json", std::move(body)};
}

}  // namespace portrait
