// The decision routes of Api: recent decisions per user, the live stream, rule reload.
#include "core/json.h"
#include "serve/api.h"

namespace portrait {

HttpResponse Api::GetDecisions(const HttpRequest& req, std::string_view uid) {
  size_t limit;
  if (auto bad = ParseLimit(req, &limit)) return *bad;
  if (!decision_store_) return Error(404, "not_found", "this server makes no decisions (its store keeps no rule state)");
  auto got = decision_store_->RecentDecisions(uid, limit);
  if (!got.ok()) return Error(HttpStatusFor(got.status()), "store_error", got.status().message());
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("uid").String(uid).Key("decisions").BeginArray();
  for (const std::string& json : *got) w.Raw(json);
  w.EndArray().EndObject();
  return {200, "application/json", std::move(out)};
}

HttpResponse Api::StreamDecisions(const HttpRequest& req) {
  if (!feed_) return Error(404, "not_found", "this server makes no decisions");
  std::string uid, rule;
  if (auto it = req.query.find("uid"); it != req.query.end()) uid = it->second;
  if (auto it = req.query.find("rule"); it != req.query.end()) rule = it->second;
  auto stream = std::make_shared<HttpStream>();
  // Opens the stream at once, so a client knows it is subscribed before any decision.
  stream->Write(": portrait decisions\nretry: 1000\n\n");
  std::weak_ptr<HttpStream> weak = stream;
  uint64_t id = feed_->Subscribe([weak, uid, rule](const std::string& json) {
    auto s = weak.lock();
    if (!s) return;
    if (!uid.empty() || !rule.empty()) {
      std::string_view j = json;
      // Decisions are written by Decision::ToJson: "uid" and "rule" are plain JSON strings.
      if (!uid.empty()) {
        std::string needle = "\"uid\":";
        AppendJsonString(&needle, uid);
        if (j.find(needle) == std::string_view::npos) return;
      }
      if (!rule.empty()) {
        std::string needle = "\"rule\":";
        AppendJsonString(&needle, rule);
        if (j.find(needle) == std::string_view::npos) return;
      }
    }
    std::string event = "event: decision\nid: ";
    event += DecisionIdOf(json);
    event += "\ndata: ";
    event += json;
    event += "\n\n";
    s->Write(event);
  });
  DecisionFeed* feed = feed_;
  stream->OnEnd([feed, id] { feed->Unsubscribe(id); });
  HttpResponse resp{200, "text/event-stream", ""};
  resp.headers.emplace_back("Cache-Control", "no-cache");
  resp.headers.emplace_back("X-Accel-Buffering", "no");
  resp.stream = std::move(stream);
  return resp;
}

HttpResponse Api::PostReload() {
  if (!reload_) return Error(404, "not_found", "this server has nothing to reload");
  auto n = reload_();
  if (!n.ok()) return Error(400, "invalid_config", n.status().message());
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("reloaded").Bool(true).Key("decision_rules").Int(static_cast<int64_t>(*n)).EndObject();
  return {200, "application/json", std::move(out)};
}

}  // namespace portrait
