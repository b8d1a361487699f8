#include "features/profiles/profiles_stage.h"

#include "core/json.h"
#include "features/profiles/profiles.h"

namespace portrait {
namespace {

constexpr Namespace kNamespaces[] = {
    {"profile", "the user's tags, applied action ids and freshness"},
    {"history", "the user's events, when [history] is on"},
};

}  // namespace

ProfilesStage::ProfilesStage(const Config& config, ProfileStore* store)
    : config_(config), store_(store), rules_(config) {}

std::span<const Namespace> ProfilesStage::namespaces() const { return kNamespaces; }

void ProfilesStage::OnRecord(const Record& r, Batch& batch) {
  if (r.action) {
    if (config_.tags.Find(r.action->tag)) batch.actions.push_back(*r.action);
    return;
  }
  if (!r.event) return;
  const Event& e = *r.event;
  rules_.Evaluate(e, &batch.actions, &batch.skipped);
  if (config_.history.enabled) {
    batch.history_config = &config_.history;
    batch.history.push_back({std::string(e.PartitionKey()), e.ts, e.id, e.type, std::string(r.payload)});
  }
}

Status ProfilesStage::Erase(const Erasure& e) {
  for (const std::string& id : e.ids) RETURN_IF_ERROR(store_->DeleteProfile(id, {}));
  return Status::Ok();
}

Result<std::vector<std::string>> ProfilesStage::Holding(std::string_view id) {
  std::vector<std::string> out;
  ASSIGN_OR_RETURN(Profile p, store_->Get(id, {}, NowMs()));
  if (!p.tags.empty() || !p.meta.snapshot.empty()) out.push_back("profile");
  HistoryQuery q;
  q.limit = 1;
  HistoryConfig cfg = config_.history;
  cfg.retention_ms = 0;
  ASSIGN_OR_RETURN(auto history, store_->ReadHistory(id, q, cfg, NowMs()));
  if (!history.empty()) out.push_back("history");
  return out;
}

}  // namespace portrait
