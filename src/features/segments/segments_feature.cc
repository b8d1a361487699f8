// The segments feature (segments.h): its config, stage, re-checks, routes and delivery.
#include <spdlog/spdlog.h>

#include <charconv>
#include <condition_variable>
#include <set>
#include <thread>

#include "core/json.h"
#include "delivery/webhook.h"
#include "features/segments/segments.h"
#include "features/segments/segments_stage.h"

namespace portrait {
namespace {

class SegmentsFeature : public Feature {
 public:
  std::string_view name() const override { return "segments"; }
  std::vector<ConfigSection> ConfigSections() const override { return SegmentsConfigSections(); }

  Status Open(const FeatureHost& host) override {
    host_ = host;
    ASSIGN_OR_RETURN(auto store, OpenSegmentStore(host.store->handles()));
    if (!store) return Status::Ok();  // a store that keeps nothing beside the profiles
    const Config& config = *host.config;
    ASSIGN_OR_RETURN(auto topic, MakeLog(config.log, config.data_dir, "segments", 0, host.metrics));
    // Across processes the stream is fed from the topic, which every process's changes reach.
    const bool tail = host.serving && host.events->HasGroups();
    core_ = std::make_unique<SegmentsCore>(config, host.store, std::move(store), std::move(topic),
                                           host.serving && !tail ? &feed_ : nullptr, host.metrics);
    if (tail) tail_ = std::make_unique<TopicTail>("segments", core_->topic(), &feed_, SegmentChangeIdOf);
    const SegmentsConfig& cfg = config.section<SegmentsConfig>();
    if (host.serving && !cfg.webhook.empty() && host.retry) {
      WebhookOptions options;
      options.timeout_ms = cfg.webhook_timeout_ms;
      options.ca_file = cfg.webhook_ca_file;
      webhook_ = std::make_unique<WebhookSink>(cfg.webhook, options, host.metrics);
      webhook_->SetName("segments-webhook");
      host.retry->AddSink(webhook_.get());
      dispatcher_ = std::make_unique<TopicDispatcher>(
          "segments", core_->topic(), "webhook", host.retry, webhook_.get(), SegmentChangeIdOf,
          TopicDispatcher::Metrics{
              host.metrics->GetCounter("portrait_segment_changes_dispatched_total",
                                       "Segment changes handed to the webhook sink"),
              host.metrics->GetGauge("portrait_segment_changes_dispatch_lag",
                                     "Segment changes in the topic not yet handed to the webhook sink")});
    }
    if (host.profile_view) {
      host.profile_view->AddMember([this](const PersonIds& p, JsonWriter& w) { return RenderMember(p, w); });
    }
    return Status::Ok();
  }

  StageFactory stage() override {
    if (!core_) return nullptr;
    return [this](const StageContext&) { return std::make_unique<SegmentsStage>(core_.get()); };
  }

  void AddRoutes(RouteTable& routes) override {
    routes.Add({"GET", "/v1/segments", Scope::kRead, "the declared segments, their definitions and member counts",
                [this](RouteCall&) { return List(); }, "segments"});
    routes.Add({"GET", "/v1/segments/stream", Scope::kRead,
                "users entering and leaving segments as Server-Sent Events (`?segment=`)",
                [this](RouteCall& c) { return Stream(c.http); }, "segment_stream", "text/event-stream"});
    routes.Add({"GET", "/v1/segments/{name}/members", Scope::kRead,
                "a segment's members in uid order (`?after=&limit=`, `?format=json|ndjson|csv`)",
                [this](RouteCall& c) { return Members(c.http, c.param(0)); }, "segment_members"});
  }

  Status Start() override {
    if (!core_) return Status::Ok();
    if (tail_) RETURN_IF_ERROR(tail_->Start());
    if (dispatcher_) RETURN_IF_ERROR(dispatcher_->Start());
    if (host_.serving) recheck_ = std::thread([this] { RecheckLoop(); });
    return Status::Ok();
  }

  void Stop() override {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (recheck_.joinable()) recheck_.join();
    if (dispatcher_) dispatcher_->Stop();
    if (tail_) tail_->Stop();
  }

  void Close() override {
    if (core_ && core_->topic()) core_->topic()->Close();
  }

  Status Reload(const Config& loaded, std::string* summary) override {
    if (!core_) return Status::FailedPrecondition("this store keeps no segment state; segments are off");
    const auto& next = loaded.section<SegmentsConfig>().segments;
    auto before = core_->segments();
    core_->SetSegments(next);  // first: a re-check that takes the stale names sees the new definitions
    for (const SegmentDef& old : before->defs) {
      bool same = false;
      for (const SegmentDef& d : next) same = same || (d.name == old.name && d.ToJson() == old.ToJson());
      if (!same) core_->MarkStale(old.name);  // changed or removed: its members are checked again
    }
    cv_.notify_all();
    *summary += "\"segments\":" + std::to_string(next.size());
    return Status::Ok();
  }

 private:
  void RecheckLoop() {
    const int64_t interval = host_.config->section<SegmentsConfig>().recheck_interval_ms;
    std::unique_lock lk(mu_);
    while (!stop_) {
      cv_.wait_for(lk, std::chrono::milliseconds(interval));
      if (stop_) break;
      lk.unlock();
      std::function<bool(std::string_view)> held;
      if (host_.held) {
        std::vector<PartitionId> mine = host_.held();
        std::set<int> set;
        for (PartitionId p : mine) set.insert(p.value);
        const int n = host_.events->partitions();
        held = [set, n](std::string_view uid) { return set.count(PartitionFor(uid, n).value) > 0; };
      }
      size_t checked = 0;
      if (Status st = core_->Recheck(NowMs(), held, &checked); !st.ok()) {
        spdlog::warn("segments: re-check: {}", st.ToString());
      }
      lk.lock();
    }
  }

  Status RenderMember(const PersonIds& p, JsonWriter& w) {
    if (!core_) return Status::Ok();
    const std::string one[] = {p.uid};
    ASSIGN_OR_RETURN(auto all, core_->store()->Get(one));
    auto set = core_->segments();
    w.Key("segments").BeginArray();
    for (const auto& [name, entry] : all[0]) {
      if (set->Find(name)) w.String(name);
    }
    w.EndArray();
    return Status::Ok();
  }

  HttpResponse Off() const {
    return Error(404, "not_found", "this server keeps no segments (its store keeps nothing beside the profiles)");
  }

  HttpResponse List() {
    if (!core_) return Off();
    auto set = core_->segments();
    std::string body;
    JsonWriter w(&body);
    w.BeginObject().Key("segments").BeginArray();
    for (const SegmentDef& d : set->defs) {
      auto n = core_->store()->Count(d.name);
      if (!n.ok()) return Error(HttpStatusFor(n.status()), "store_error", n.status().message());
      w.BeginObject().Key("name").String(d.name).Key("members").Int(static_cast<int64_t>(*n));
      w.Key("definition").Raw(d.ToJson()).EndObject();
    }
    w.EndArray().EndObject();
    return {200, "application/json", std::move(body)};
  }

  HttpResponse Members(const HttpRequest& req, std::string_view name) {
    if (!core_) return Off();
    auto set = core_->segments();
    if (!set->Find(name)) {
      std::string known;
      for (const SegmentDef& d : set->defs) known += (known.empty() ? "" : ", ") + d.name;
      return Error(404, "unknown_segment", "no segment \"" + std::string(name) + "\"; declared: " +
                                               (known.empty() ? std::string("none") : known));
    }
    size_t limit = 1000;
    if (auto it = req.query.find("limit"); it != req.query.end()) {
      const std::string& v = it->second;
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), limit);
      if (ec != std::errc() || p != v.data() + v.size() || limit < 1 || limit > 100000) {
        return Error(400, "invalid_value", "limit must be an integer from 1 to 100000");
      }
    }
    std::string after, format = "json";
    if (auto it = req.query.find("after"); it != req.query.end()) after = it->second;
    if (auto it = req.query.find("format"); it != req.query.end()) format = it->second;
    if (format != "json" && format != "ndjson" && format != "csv") {
      return Error(400, "invalid_value", "format must be json, ndjson or csv");
    }
    auto page = core_->store()->Members(name, after, limit);
    if (!page.ok()) return Error(HttpStatusFor(page.status()), "store_error", page.status().message());
    const bool more = page->size() == limit;
    std::string body;
    if (format == "json") {
      JsonWriter w(&body);
      w.BeginObject().Key("segment").String(name).Key("members").BeginArray();
      for (const std::string& u : *page) w.String(u);
      w.EndArray().Key("next");
      if (more) w.String(page->back());
      else w.Null();
      w.EndObject();
      return {200, "application/json", std::move(body)};
    }
    for (const std::string& u : *page) {
      if (format == "ndjson") {
        JsonWriter w(&body);
        w.BeginObject().Key("uid").String(u).EndObject();
        body += '\n';
      } else {
        // RFC 4180: a field with a quote, comma or line break is quoted, quotes doubled.
        if (u.find_first_of("\",\r\n") == std::string::npos) {
          body += u;
        } else {
          body += '"';
          for (char c : u) body += c == '"' ? std::string("\"\"") : std::string(1, c);
          body += '"';
        }
        body += "\r\n";
      }
    }
    if (format == "csv") body = "uid\r\n" + body;
    HttpResponse resp{200, format == "csv" ? "text/csv" : "application/x-ndjson", std::move(body)};
    if (more) resp.headers.emplace_back("X-Next-After", page->back());
    return resp;
  }

  HttpResponse Stream(const HttpRequest& req) {
    if (!core_) return Off();
    std::string needle;
    if (auto it = req.query.find("segment"); it != req.query.end()) {
      needle = "\"segment\":";
      AppendJsonString(&needle, it->second);
    }
    return feed_.Serve("portrait segments", "segment", SegmentChangeIdOf, [needle](std::string_view j) {
      return needle.empty() || j.find(needle) != std::string_view::npos;
    });
  }

  FeatureHost host_;
  LiveFeed feed_;
  std::unique_ptr<SegmentsCore> core_;
  std::unique_ptr<TopicTail> tail_;
  std::unique_ptr<WebhookSink> webhook_;
  std::unique_ptr<TopicDispatcher> dispatcher_;
  std::thread recheck_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
};

}  // namespace

std::unique_ptr<Feature> MakeSegmentsFeature() { return std::make_unique<SegmentsFeature>(); }

}  // namespace portrait
