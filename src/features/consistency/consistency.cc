#include "features/consistency/consistency.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>

#include "core/daily_schedule.h"
#include "features/consistency/consistency_config.h"
#include "features/consistency/consistency_report.h"

namespace portrait {
namespace {

// GET /v1/consistency?date=D[&sample=S][&examples=N]
HttpResponse GetConsistency(const Config& config, ProfileStore* store, MetricsRegistry* metrics,
                            const HttpRequest& req) {
  auto param = [&](const char* name) -> std::string {
    auto it = req.query.find(name);
    return it == req.query.end() ? std::string() : it->second;
  };
  const std::string date = param("date");
  if (date.empty()) return Error(400, "missing_field", "date=YYYY-MM-DD is required (the snapshot's day)");
  ConsistencyOptions options;
  options.sample = config.section<ConsistencyConfig>().sample;
  options.examples = static_cast<size_t>(config.section<ConsistencyConfig>().examples);
  if (std::string s = param("sample"); !s.empty()) {
    double v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || !(v > 0 && v <= 1)) {
      return Error(400, "invalid_value", "sample must be a number above 0 and at most 1, got \"" + s + "\"");
    }
    options.sample = v;
  }
  if (std::string s = param("examples"); !s.empty()) {
    int v = -1;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || v < 0 || v > 100) {
      return Error(400, "invalid_value", "examples must be an integer from 0 to 100, got \"" + s + "\"");
    }
    options.examples = static_cast<size_t>(v);
  }
  auto report = RunConsistency(config, store, date, options);
  if (!report.ok()) return Error(HttpStatusFor(report.status()), "consistency_failed", report.status().message());
  RecordConsistency(*report, metrics);
  return {200, "application/json", report->ToJson()};
}

class ConsistencyFeature : public Feature {
 public:
  std::string_view name() const override { return "consistency"; }
  std::vector<ConfigSection> ConfigSections() const override { return ConsistencyConfigSections(); }

  Status Open(const FeatureHost& host) override {
    host_ = host;
    return Status::Ok();
  }

  void AddRoutes(RouteTable& routes) override {
    routes.Add({"GET", "/v1/consistency", Scope::kAdmin,
                "compares real-time tags with the batch's snapshot of day `?date=D` (`&sample=0.01&examples=5`)",
                [this](RouteCall& c) { return GetConsistency(*host_.config, host_.store, host_.metrics, c.http); },
                "consistency"});
  }

  Status Start() override {
    const ConsistencyConfig& cfg = host_.config->section<ConsistencyConfig>();
    schedule_ = std::make_unique<DailySchedule>(
        "consistency", cfg.at,
        [this](const std::string& date) -> Status {
          if (host_.held) {
            // One report per group: the store and the snapshots are shared, so any process
            // would find the same.
            auto held = host_.held();
            if (std::none_of(held.begin(), held.end(), [](PartitionId p) { return p.value == 0; })) return Status::Ok();
          }
          const ConsistencyConfig& c = host_.config->section<ConsistencyConfig>();
          auto report = RunConsistency(*host_.config, host_.store, date,
                                       {c.sample, static_cast<size_t>(c.examples)});
          if (!report.ok()) return report.status();
          RecordConsistency(*report, host_.metrics);
          for (const TagTally& t : report->tags) {
            spdlog::info("consistency {}: tag {}: {} users, {:.4f} % equal, {} missing, {} extra, {} different, {} later",
                         date, t.tag, t.users(), 100 * t.ratio(Outcome::kEqual), t.count(Outcome::kMissing),
                         t.count(Outcome::kExtra), t.count(Outcome::kDifferent), t.count(Outcome::kLater));
          }
          return Status::Ok();
        },
        "portrait_consistency_runs_total", host_.metrics);
    schedule_->Start();
    return Status::Ok();
  }

  void Stop() override {
    if (schedule_) schedule_->Stop();
  }

 private:
  FeatureHost host_;
  std::unique_ptr<DailySchedule> schedule_;
};

}  // namespace

std::unique_ptr<Feature> MakeConsistencyFeature() { return std::make_unique<ConsistencyFeature>(); }

}  // namespace portrait
