#include "features/offline/offline.h"

#include <spdlog/spdlog.h>

#include "core/daily_schedule.h"
#include "core/json.h"
#include "features/offline/batch.h"
#include "features/offline/lazy_loader.h"
#include "features/offline/offline_config.h"
#include "store/snapshot.h"

namespace portrait {
namespace {

constexpr Namespace kNamespaces[] = {
    {"snapshot rows", "the user's rows in immutable snapshots: masked by the erasure list, gone when retired"},
};

class LazyLoadStage : public Stage {
 public:
  LazyLoadStage(const Config& config, ProfileStore* store, SnapshotCatalog* catalog, ErasureList* erasures,
                MetricsRegistry* metrics)
      : loader_(config, store, catalog, erasures, metrics), catalog_(catalog), erasures_(erasures) {}

  std::string_view name() const override { return "lazy load"; }
  std::span<const Namespace> namespaces() const override { return kNamespaces; }

  void OnRecord(const Record& r, Batch& batch) override {
    if (r.event && loader_.IsTrigger(r.event->type)) {
      triggers_.push_back({std::string(r.event->PartitionKey()), r.event->ts, r.partition, r.offset});
    }
  }

  Status BeforeWrite(Batch& batch) override {
    if (triggers_.empty()) return Status::Ok();
    RETURN_IF_ERROR(loader_.Load(triggers_, &batch.actions));
    triggers_.clear();
    return Status::Ok();
  }

  // Nothing to write: the processor has put the ids on the erasure list, which masks the
  // snapshots' rows; the load mark went with the profile.
  Status Erase(const Erasure&) override { return Status::Ok(); }

  Result<std::vector<std::string>> Holding(std::string_view id) override {
    std::vector<std::string> out;
    RETURN_IF_ERROR(catalog_->Refresh());
    if (erasures_) {
      RETURN_IF_ERROR(erasures_->Refresh());
      if (erasures_->ErasedAt(id)) return out;  // masked
    }
    auto rows = catalog_->List();
    for (const SnapshotInfo& s : rows) {
      if (!s.retired_at.empty()) continue;
      ASSIGN_OR_RETURN(auto row, catalog_->Lookup(s, id));
      if (row) {
        out.push_back("snapshot rows");
        break;
      }
    }
    return out;
  }

 private:
  LazyLoader loader_;
  SnapshotCatalog* catalog_;
  ErasureList* erasures_;
  std::vector<LoadTrigger> triggers_;
};

class OfflineFeature : public Feature {
 public:
  std::string_view name() const override { return "offline"; }
  std::vector<ConfigSection> ConfigSections() const override { return OfflineConfigSections(); }

  Status Open(const FeatureHost& host) override {
    host_ = host;
    const Config& cfg = *host.config;
    if (cfg.section<LazyLoadConfig>().enabled && !cfg.section<LazyLoadConfig>().triggers.empty()) {
      catalog_ = std::make_unique<SnapshotCatalog>(SnapshotDir(cfg));
    }
    return Status::Ok();
  }

  StageFactory stage() override {
    if (!catalog_) return nullptr;
    return [this](const StageContext&) {
      return std::make_unique<LazyLoadStage>(*host_.config, host_.store, catalog_.get(), host_.erasures,
                                             host_.metrics);
    };
  }

  void AddRoutes(RouteTable& routes) override {
    routes.Add({"GET", "/v1/snapshots", Scope::kRead, "the completion log of offline snapshots, oldest first",
                [this](RouteCall&) { return GetSnapshots(); }, "snapshots"});
  }

  Status Start() override {
    const Config* cfg = host_.config;
    // With consumer groups each process computes the partitions it holds; the last part
    // finished commits the snapshot.
    auto held = host_.held;
    schedule_ = std::make_unique<DailySchedule>(
        "batch", cfg->section<BatchConfig>().at,
        [cfg, held](const std::string& date) {
          std::vector<int> partitions;
          if (held) {
            for (PartitionId p : held()) partitions.push_back(p.value);
            if (partitions.empty()) return Status::Ok();  // holds none now
          }
          return RunScheduledBatch(*cfg, date, std::move(partitions));
        },
        "portrait_batch_runs_total", host_.metrics);
    schedule_->Start();
    return Status::Ok();
  }

  void Stop() override {
    if (schedule_) schedule_->Stop();
  }

 private:
  HttpResponse GetSnapshots() {
    auto rows = ReadCompletionLog(SnapshotDir(*host_.config));
    if (!rows.ok()) return Error(500, "snapshot_error", rows.status().message());
    std::string body;
    JsonWriter w(&body);
    w.BeginObject().Key("snapshots").BeginArray();
    for (const auto& r : *rows) w.Raw(r.ToJson());
    w.EndArray().EndObject();
    return {200, "application/json", std::move(body)};
  }

  FeatureHost host_;
  std::unique_ptr<SnapshotCatalog> catalog_;
  std::unique_ptr<DailySchedule> schedule_;
};

}  // namespace

std::unique_ptr<Feature> MakeOfflineFeature() { return std::make_unique<OfflineFeature>(); }

}  // namespace portrait
