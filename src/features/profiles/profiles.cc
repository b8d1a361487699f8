// The profiles feature: its stage (profiles_stage.cc) and its routes.
#include "features/profiles/profiles.h"

#include <simdjson.h>

#include <optional>

#include "core/event.h"
#include "core/json.h"
#include "features/profiles/profiles_stage.h"
#include "fusion/fusion.h"
#include "ingest/collector.h"

namespace portrait {
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

class ProfilesFeature : public Feature {
 public:
  std::string_view name() const override { return "profiles"; }

  Status Open(const FeatureHost& host) override {
    host_ = host;
    return Status::Ok();
  }

  StageFactory stage() override {
    return [this](const StageContext&) { return std::make_unique<ProfilesStage>(*host_.config, host_.store); };
  }

  void AddRoutes(RouteTable& routes) override {
    routes.Add({"GET", "/v1/profiles/{uid}", Scope::kRead, "the user's tags (`?tags=a,b` picks some) and freshness",
                [this](RouteCall& c) { return GetProfile(c.http, c.param(0)); }, "profile", "", "", "Profile"});
    routes.Add({"DELETE", "/v1/profiles/{uid}", Scope::kAdmin,
                "erases the user from every feature (logged, applied in log order; durable before the answer)",
                [this](RouteCall& c) { return DeleteProfile(c.param(0)); }, "profile_delete"});
    routes.Add({"GET", "/v1/profiles/{uid}/tags/{tag}", Scope::kRead, "one tag of the user",
                [this](RouteCall& c) { return GetTag(c.param(0), c.param(1)); }, "profile_tag"});
    routes.Add({"POST", "/v1/profiles:batchGet", Scope::kRead, "`{\"uids\": [...], \"tags\": [...]}` → `{\"profiles\": [...]}`",
                [this](RouteCall& c) { return BatchGet(c.http); }, "profiles_batch", "",
                R"({"type":"object","required":["uids"],"properties":{"uids":{"type":"array","items":{"type":"string"},"maxItems":1000},"tags":{"type":"array","items":{"type":"string"}}}})",
                R"({"type":"object","properties":{"profiles":{"type":"array","items":{"$ref":"#/components/schemas/Profile"}}}})"});
    routes.Add({"GET", "/v1/users/{uid}/events", Scope::kRead, "the user's event history, newest first (`?type=&from=&to=&limit=`)",
                [this](RouteCall& c) { return GetHistory(c.http, c.param(0)); }, "history"});
  }

 private:
  const Config& config() const { return *host_.config; }

  Status CheckTagNames(const std::vector<std::string>& names) const {
    for (const auto& t : names) {
      if (!config().tags.FindDeclared(t)) {
        return Status::InvalidArgument("unknown tag \"" + t + "\"; known tags are: " + config().tags.DeclaredNames());
      }
    }
    return Status::Ok();
  }

  void RenderFreshness(const Profile& p, JsonWriter& w) const {
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

  // The person `id` names (features/feature.h ProfileView), and its merged profile.
  Result<std::pair<PersonIds, Profile>> ReadPerson(std::string_view id, std::span<const std::string> only,
                                                   TimestampMs now) {
    PersonIds person{std::string(id), {}, {}};
    if (host_.profile_view) {
      ASSIGN_OR_RETURN(person, host_.profile_view->Resolve(id));
    }
    std::vector<std::string> ids = {person.uid};
    ids.insert(ids.end(), person.merged.begin(), person.merged.end());
    ASSIGN_OR_RETURN(Profile p, GetMerged(*host_.store, ids, only, now, config().tags));
    p.uid = person.uid;
    return std::make_pair(std::move(person), std::move(p));
  }

  void RenderProfile(const Profile& p, const PersonIds* person, TimestampMs now, JsonWriter& w) const {
    w.BeginObject().Key("uid").String(p.uid).Key("tags").BeginObject();
    for (const TagValue& t : p.tags) {
      const TagConfig* cfg = config().tags.FindDeclared(t.name);
      if (!cfg) continue;
      w.Key(t.name).BeginObject().Key("value");
      std::string value;
      fusion::RenderValue(t.state, *cfg, now, &value);
      w.Raw(value);
      w.Key("updated_at").Int(t.state.updated_at).EndObject();
    }
    w.EndObject();
    RenderFreshness(p, w);
    if (person && host_.profile_view) {
      if (Status st = host_.profile_view->RenderMembers(*person, w); !st.ok()) {
        w.Key("incomplete").String(st.message());
      }
    }
    w.EndObject();
  }

  static bool HasDeclaredTags(const Profile& p, const TagRegistry& tags) {
    for (const TagValue& t : p.tags) {
      if (tags.FindDeclared(t.name)) return true;
    }
    return false;
  }

  HttpResponse GetProfile(const HttpRequest& req, std::string_view uid) {
    std::vector<std::string> only;
    if (auto it = req.query.find("tags"); it != req.query.end()) {
      only = SplitComma(it->second);
      if (Status st = CheckTagNames(only); !st.ok()) return Error(400, "unknown_tag", st.message());
    }
    TimestampMs now = NowMs();
    auto read = ReadPerson(uid, only, now);
    if (!read.ok()) return Error(HttpStatusFor(read.status()), "store_error", read.status().message());
    auto& [person, profile] = *read;
    if (!HasDeclaredTags(profile, config().tags)) {
      return Error(404, "not_found", "no profile for user \"" + std::string(uid) + "\"");
    }
    std::string body;
    JsonWriter w(&body);
    RenderProfile(profile, &person, now, w);
    return {200, "application/json", std::move(body)};
  }

  HttpResponse GetTag(std::string_view uid, std::string_view tag) {
    std::vector<std::string> only = {std::string(tag)};
    if (Status st = CheckTagNames(only); !st.ok()) return Error(400, "unknown_tag", st.message());
    TimestampMs now = NowMs();
    auto read = ReadPerson(uid, only, now);
    if (!read.ok()) return Error(HttpStatusFor(read.status()), "store_error", read.status().message());
    auto& [person, profile] = *read;
    if (profile.tags.empty()) {
      return Error(404, "not_found", "user \"" + std::string(uid) + "\" has no tag \"" + std::string(tag) + "\"");
    }
    const TagValue& t = profile.tags[0];
    std::string body, value;
    fusion::RenderValue(t.state, *config().tags.Find(t.name), now, &value);
    JsonWriter w(&body);
    w.BeginObject().Key("uid").String(person.uid).Key("tag").String(tag).Key("value").Raw(value);
    if (!person.resolved_from.empty()) w.Key("resolved_from").String(person.resolved_from);
    w.Key("updated_at").Int(t.state.updated_at);
    RenderFreshness(profile, w);
    w.EndObject();
    return {200, "application/json", std::move(body)};
  }

  HttpResponse BatchGet(const HttpRequest& req) {
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
    if (!host_.profile_view) {
      auto profiles = host_.store->GetMany(uids, only, now);
      if (!profiles.ok()) return Error(HttpStatusFor(profiles.status()), "store_error", profiles.status().message());
      for (const Profile& profile : *profiles) RenderProfile(profile, nullptr, now, w);
    } else {
      for (const std::string& uid : uids) {
        auto read = ReadPerson(uid, only, now);
        if (!read.ok()) return Error(HttpStatusFor(read.status()), "store_error", read.status().message());
        RenderProfile(read->second, &read->first, now, w);
      }
    }
    w.EndArray().EndObject();
    return {200, "application/json", std::move(body)};
  }

  HttpResponse DeleteProfile(std::string_view uid) {
    if (!host_.collector) return Error(503, "unavailable", "this process takes no writes");
    Status st = host_.collector->DeleteProfile(uid);
    if (!st.ok()) return Error(HttpStatusFor(st), "delete_failed", st.message());
    std::string body;
    JsonWriter w(&body);
    w.BeginObject().Key("deleted").String(uid).EndObject();
    return {200, "application/json", std::move(body)};
  }

  HttpResponse GetHistory(const HttpRequest& req, std::string_view uid) {
    HistoryQuery q;
    auto number = [&](const char* name, int64_t lo, int64_t hi, int64_t* out) -> std::optional<HttpResponse> {
      auto it = req.query.find(name);
      if (it == req.query.end()) return std::nullopt;
      char* end = nullptr;
      long long v = std::strtoll(it->second.c_str(), &end, 10);
      if (it->second.empty() || *end != '\0' || v < lo || v > hi) {
        return Error(400, "invalid_value", std::string(name) + " must be an integer from " + std::to_string(lo) +
                                               " to " + std::to_string(hi));
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
      if (!config().events.count(it->second)) {
        return Error(400, "unknown_type", "unknown event type \"" + it->second + "\"");
      }
      q.type = it->second;
    }
    if (!config().history.enabled) return Error(404, "not_found", "event history is off ([history] enabled = false)");
    auto events = host_.store->ReadHistory(uid, q, config().history, NowMs());
    if (!events.ok()) return Error(HttpStatusFor(events.status()), "store_error", events.status().message());
    std::string body;
    JsonWriter w(&body);
    w.BeginObject().Key("uid").String(uid).Key("events").BeginArray();
    Event ev;
    for (const auto& e : *events) {
      if (!DecodeEvent(e.event, &ev).ok()) {
        return Error(500, "store_error", "history of " + std::string(uid) + " is unreadable");
      }
      w.Raw(EventToJson(ev));
    }
    w.EndArray().EndObject();
    return {200, "application/json", std::move(body)};
  }

  FeatureHost host_;
};

}  // namespace

std::unique_ptr<Feature> MakeProfilesFeature() { return std::make_unique<ProfilesFeature>(); }

}  // namespace portrait
