#include "features/channels/channels.h"

#include <spdlog/fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/daily_schedule.h"
#include "features/channels/calibrate.h"
#include "features/channels/channels_api.h"
#include "features/channels/channels_config.h"
#include "features/channels/new_users.h"

namespace portrait {
namespace {

constexpr Namespace kNamespaces[] = {
    {"registry", "kept on erasure: that the id was seen, when first and through which channel (so it is not new again)"},
};

class ChannelsStage : public Stage {
 public:
  ChannelsStage(const ChannelsConfig& config, ChannelStore* store, MetricsRegistry* metrics)
      : tracker_(config, store, metrics) {}

  std::string_view name() const override { return "channels"; }
  std::span<const Namespace> namespaces() const override { return kNamespaces; }

  void OnRecord(const Record& r, Batch&) override {
    if (r.event) tracker_.Add(*r.event);
  }
  Status BeforeWrite(Batch&) override { return tracker_.Flush(); }
  Status Erase(const Erasure&) override { return Status::Ok(); }  // the registry is kept (channels.h)
  Result<std::vector<std::string>> Holding(std::string_view) override { return std::vector<std::string>(); }

 private:
  NewUserTracker tracker_;
};

class ChannelsFeature : public Feature {
 public:
  std::string_view name() const override { return "channels"; }
  std::vector<ConfigSection> ConfigSections() const override { return ChannelsConfigSections(); }

  Status Open(const FeatureHost& host) override {
    host_ = host;
    ASSIGN_OR_RETURN(owned_, OpenChannelStore(host.store));
    store_ = owned_.get();
    return Status::Ok();
  }

  StageFactory stage() override {
    if (!host_.config->section<ChannelsConfig>().enabled || !store_) return nullptr;
    return [this](const StageContext&) {
      return std::make_unique<ChannelsStage>(host_.config->section<ChannelsConfig>(), store_, host_.metrics);
    };
  }

  void AddRoutes(RouteTable& routes) override {
    routes.Add({"GET", "/v1/channels/new-users", Scope::kRead,
                "new users per channel and bucket (`?product=&from=&to=&granularity=hour|day&format=json|csv`)",
                [this](RouteCall& c) { return GetNewUsers(host_.config->section<ChannelsConfig>(), store_, c.http); }, "channel_new_users"});
    routes.Add({"POST", "/v1/channels:calibrate", Scope::kAdmin,
                "recomputes day `?date=D` from the archive and corrects the served figures",
                [this](RouteCall& c) { return PostCalibrate(*host_.config, store_, host_.metrics, c.http); },
                "channel_calibrate"});
  }

  Status Start() override {
    schedule_ = std::make_unique<DailySchedule>(
        "calibrate", host_.config->section<ChannelsConfig>().calibrate_at,
        [this](const std::string& date) -> Status {
          Result<CalibrationReport> report = Status::Ok();
          if (host_.held) {
            // Across processes each scans the partitions it holds; the one finishing the
            // day's last scan calibrates it.
            std::vector<int> partitions, waiting_for;
            for (PartitionId p : host_.held()) partitions.push_back(p.value);
            auto shared = CalibrateShare(*host_.config, store_, date, partitions, &waiting_for);
            if (!shared.ok()) return shared.status();
            if (!*shared) {
              spdlog::warn("calibrate: {}: {} partition(s) scanned, waiting for {} more (scanned by the processes "
                           "holding them, or run `portrait calibrate --date {} --partitions {}`)",
                           date, partitions.size(), waiting_for.size(), date, fmt::join(waiting_for, ","));
              return Status::Ok();
            }
            report = std::move(**shared);
          } else {
            report = Calibrate(*host_.config, store_, date);
          }
          if (!report.ok()) return report.status();
          RecordCalibration(*report, host_.metrics);
          spdlog::info("calibrate: {} done: {} new users, real-time error {} ({:.4f} %)", date,
                       report->overall.calibrated, report->overall.abs_error, 100 * report->overall.error_ratio());
          return Status::Ok();
        },
        "portrait_channel_calibration_runs_total", host_.metrics);
    schedule_->Start();
    return Status::Ok();
  }

  void Stop() override {
    if (schedule_) schedule_->Stop();
  }

 private:
  FeatureHost host_;
  std::unique_ptr<ChannelStore> owned_;
  ChannelStore* store_ = nullptr;
  std::unique_ptr<DailySchedule> schedule_;
};

}  // namespace

std::unique_ptr<Feature> MakeChannelsFeature() { return std::make_unique<ChannelsFeature>(); }

}  // namespace portrait
