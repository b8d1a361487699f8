#include "features/decisions/decisions_feature.h"

#include <spdlog/spdlog.h>

#include <map>

#include "core/json.h"
#include "delivery/webhook.h"
#include "features/decisions/decisions.h"
#include "features/decisions/decisions_config.h"
#include "delivery/topic_feed.h"

namespace portrait {
namespace {

constexpr Namespace kNamespaces[] = {
    {"rule_state", "the recent events the rules may still match and the decisions cooling down"},
    {"decisions", "the user's recent decisions (GET /v1/decisions/{uid})"},
};

class DecisionsStage : public Stage {
 public:
  // `lazy`: the worker is its users' only writer; states are saved every `save_every_ms`
  // (Stage::KeepsMemory) instead of with every batch.
  DecisionsStage(const Config& config, ProfileStore* profiles, DecisionStore* store, const DecisionRuleBook* book,
                 DecisionOutbox* outbox, MetricsRegistry* metrics, size_t cache_users, int64_t save_every_ms)
      : engine_(config, profiles, store, metrics, cache_users, save_every_ms > 0),
        store_(store),
        book_(book),
        outbox_(outbox),
        save_every_ms_(cache_users > 0 ? save_every_ms : 0) {}

  std::string_view name() const override { return "decisions"; }
  std::span<const Namespace> namespaces() const override { return kNamespaces; }
  bool KeepsMemory() const override { return save_every_ms_ > 0; }

  // The rules in force when a batch starts hold for all of it (a reload takes the next).
  void BeginBatch() override {
    if (engine_.empty()) rules_ = book_->Get();
  }

  void OnRecord(const Record& r, Batch&) override {
    if (r.event) engine_.Add(*rules_, *r.event);
  }

  // Decisions before the profile write: a crash in between replays events the rule state
  // has already seen, which decides nothing again. A retry (the same batch) goes on where
  // the last attempt stopped and sends again what it decided (the outbox drops repeats).
  Status BeforeWrite(Batch& batch) override {
    for (const Checkpoint& c : batch.checkpoints) {
      if (c.consumer == kBatchConsumer) covered_[c.partition.value] = c.next;
    }
    // Lazy: a save round starts every save_every_ms_ (or at once when the cache is full)
    // and writes a slice per batch; its checkpoint (where the states it wrote end) goes
    // with the batch that writes its last slice.
    using Mode = DecisionEngine::SaveMode;
    Mode mode = Mode::kNone;
    if (KeepsMemory()) {
      if (engine_.MustSave()) mode = Mode::kAll;
      else if (engine_.saving() > 0) mode = Mode::kSome;
      else if ((engine_.unsaved() > 0 || !engine_.empty()) && SteadyMs() - saved_at_ms_ >= save_every_ms_) mode = Mode::kBegin;
    }
    if (engine_.empty() && mode == Mode::kNone) return Status::Ok();
    if (!rules_) rules_ = book_->Get();
    RETURN_IF_ERROR(engine_.Evaluate(*rules_, batch.actions, &decided_));
    size_t fresh = 0;
    RETURN_IF_ERROR(outbox_->Publish(decided_, &fresh));
    RETURN_IF_ERROR(engine_.Commit(*rules_, decided_, mode));
    decided_.clear();
    if (mode == Mode::kBegin || mode == Mode::kAll) round_ = covered_;
    if (mode != Mode::kNone && engine_.saving() == 0) {
      saved_at_ms_ = SteadyMs();
      for (const auto& [p, next] : round_) batch.checkpoints.push_back({RecoveryConsumer(name()), PartitionId(p), next});
    }
    return Status::Ok();
  }

  void Recover(const Record& r) override {
    if (!rules_) rules_ = book_->Get();
    if (r.event) engine_.Add(*rules_, *r.event);
    covered_[r.partition.value] = Offset(r.offset.value + 1);
  }

  // Decisions the outbox holds count as made; the states are saved with the next batch.
  Status EndRecovery() override {
    if (!rules_) rules_ = book_->Get();
    RETURN_IF_ERROR(engine_.Recover(*rules_, [&](const Decision& d) { return outbox_->Published(d.uid, d.id); }));
    saved_at_ms_ = 0;
    return Status::Ok();
  }

  Status Erase(const Erasure& e) override {
    for (const std::string& id : e.ids) {
      RETURN_IF_ERROR(store_->EraseUser(id));
      engine_.Forget(id);
    }
    return Status::Ok();
  }

  Result<std::vector<std::string>> Holding(std::string_view id) override {
    std::vector<std::string> out;
    std::vector<std::string> states;
    const std::string ids[] = {std::string(id)};
    RETURN_IF_ERROR(store_->ReadRuleStates(ids, &states));
    if (!states.empty() && !states[0].empty()) out.push_back("rule_state");
    ASSIGN_OR_RETURN(auto recent, store_->RecentDecisions(id, 1));
    if (!recent.empty()) out.push_back("decisions");
    return out;
  }

 private:

  DecisionEngine engine_;
  DecisionStore* store_;
  const DecisionRuleBook* book_;
  DecisionOutbox* outbox_;
  const int64_t save_every_ms_;
  int64_t saved_at_ms_ = 0;
  std::map<int, Offset> covered_;  // per partition: the records before it are in memory
  std::map<int, Offset> round_;    // covered_ when the save round in progress began
  std::shared_ptr<const DecisionRules> rules_;
  std::vector<Decision> decided_;
};

class DecisionsFeature : public Feature {
 public:
  std::string_view name() const override { return "decisions"; }
  std::vector<ConfigSection> ConfigSections() const override { return DecisionsConfigSections(); }

  Status Open(const FeatureHost& host) override {
    host_ = host;
    // Across processes the stream is fed from the topic, which every process's decisions reach.
    const bool tail = host.serving && host.events->HasGroups();
    ASSIGN_OR_RETURN(wiring_, OpenDecisions(*host.config, host.store, host.serving && !tail ? &feed_ : nullptr,
                                            host.metrics));
    if (tail && wiring_.topic) tail_ = std::make_unique<TopicTail>("decisions", wiring_.topic.get(), &feed_, DecisionIdOf);
    const DecisionsConfig& cfg = host.config->section<DecisionsConfig>();
    if (host.serving && wiring_.outbox && !cfg.webhook.empty() && host.retry) {
      WebhookOptions options;
      options.timeout_ms = cfg.webhook_timeout_ms;
      options.ca_file = cfg.webhook_ca_file;
      webhook_ = std::make_unique<WebhookSink>(cfg.webhook, options, host.metrics);
      host.retry->AddSink(webhook_.get());
      dispatcher_ = std::make_unique<TopicDispatcher>(
          "decisions", wiring_.topic.get(), "webhook", host.retry, webhook_.get(), DecisionIdOf,
          TopicDispatcher::Metrics{
              host.metrics->GetCounter("portrait_decisions_dispatched_total", "Decisions handed to the webhook sink"),
              host.metrics->GetGauge("portrait_decisions_dispatch_lag",
                                     "Decisions in the topic not yet handed to the webhook sink")});
    }
    return Status::Ok();
  }

  StageFactory stage() override {
    if (!wiring_.outbox) return nullptr;
    return [this](const StageContext& ctx) {
      // A worker of the embedded log is the only writer of its users' states: it may keep them.
      const DecisionsConfig& cfg = host_.config->section<DecisionsConfig>();
      size_t cache = ctx.sole_owner ? cfg.cache_users : 0;
      return std::make_unique<DecisionsStage>(*host_.config, host_.store, wiring_.store.get(), wiring_.rules.get(),
                                              wiring_.outbox.get(), host_.metrics, cache,
                                              ctx.sole_owner ? cfg.state_save_interval_ms : 0);
    };
  }

  void AddRoutes(RouteTable& routes) override {
    routes.Add({"GET", "/v1/decisions/stream", Scope::kRead,
                "decisions as they are made, as Server-Sent Events (`?uid=`, `?rule=`)",
                [this](RouteCall& c) { return Stream(c.http); }, "decision_stream", "text/event-stream"});
    routes.Add({"GET", "/v1/decisions/{uid}", Scope::kRead, "the user's recent decisions, newest first (`?limit=N`)",
                [this](RouteCall& c) { return Recent(c.http, c.param(0)); }, "decisions"});
  }

  Status Start() override {
    if (tail_) RETURN_IF_ERROR(tail_->Start());
    if (dispatcher_) return dispatcher_->Start();
    return Status::Ok();
  }

  void Stop() override {
    if (dispatcher_) dispatcher_->Stop();
    if (tail_) tail_->Stop();
  }

  void Close() override {
    if (wiring_.topic) wiring_.topic->Close();
  }

  Status Reload(const Config& loaded, std::string* summary) override {
    if (!wiring_.rules) {
      return Status::FailedPrecondition("this store keeps no rule state; decisions are off");
    }
    ASSIGN_OR_RETURN(auto rules, DecisionRules::Compile(loaded.section<DecisionsConfig>().rules, *host_.config));
    if (loaded.section<DecisionsConfig>().webhook != host_.config->section<DecisionsConfig>().webhook) {
      spdlog::warn("reload: [decisions] webhook changed; it takes effect at the next restart");
    }
    size_t n = rules->specs().size();
    wiring_.rules->Set(std::move(rules));
    *summary += "\"decision_rules\":" + std::to_string(n);
    return Status::Ok();
  }

 private:
  HttpResponse Recent(const HttpRequest& req, std::string_view uid) {
    size_t limit;
    if (auto bad = ParseLimit(req, &limit)) return *bad;
    DecisionStore* store = wiring_.store.get();
    if (!store) return Error(404, "not_found", "this server makes no decisions (its store keeps no rule state)");
    auto got = store->RecentDecisions(uid, limit);
    if (!got.ok()) return Error(HttpStatusFor(got.status()), "store_error", got.status().message());
    std::string out;
    JsonWriter w(&out);
    w.BeginObject().Key("uid").String(uid).Key("decisions").BeginArray();
    for (const std::string& json : *got) w.Raw(json);
    w.EndArray().EndObject();
    return {200, "application/json", std::move(out)};
  }

  HttpResponse Stream(const HttpRequest& req) {
    if (!wiring_.outbox) return Error(404, "not_found", "this server makes no decisions");
    std::string uid, rule;
    if (auto it = req.query.find("uid"); it != req.query.end()) uid = it->second;
    if (auto it = req.query.find("rule"); it != req.query.end()) rule = it->second;
    // Decisions are written by Decision::ToJson: "uid" and "rule" are plain JSON strings.
    std::string uid_needle, rule_needle;
    if (!uid.empty()) AppendJsonString(&(uid_needle = "\"uid\":"), uid);
    if (!rule.empty()) AppendJsonString(&(rule_needle = "\"rule\":"), rule);
    return feed_.Serve("portrait decisions", "decision", DecisionIdOf, [uid_needle, rule_needle](std::string_view j) {
      return (uid_needle.empty() || j.find(uid_needle) != std::string_view::npos) &&
             (rule_needle.empty() || j.find(rule_needle) != std::string_view::npos);
    });
  }

  FeatureHost host_;
  DecisionFeed feed_;
  std::unique_ptr<TopicTail> tail_;
  DecisionWiring wiring_;
  std::unique_ptr<WebhookSink> webhook_;
  std::unique_ptr<TopicDispatcher> dispatcher_;
};

}  // namespace

std::unique_ptr<Feature> MakeDecisionsFeature() { return std::make_unique<DecisionsFeature>(); }

}  // namespace portrait
