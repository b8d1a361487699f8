#include "features/profiles/profiles_stage.h"

#include <simdjson.h>
#include <xxhash.h>

#include "core/json.h"
#include "features/profiles/profiles.h"

namespace portrait {
namespace {

constexpr Namespace kNamespaces[] = {
    {"profile", "the user's tags, applied action ids and freshness"},
    {"history", "the user's events, when [history] is on"},
    {"devices", "the devices the user logged in from (tag ~devices), whose pre-login profiles are erased with the user"},
};
constexpr size_t kMaxLinksRemembered = 1 << 20;

}  // namespace

ProfilesStage::ProfilesStage(const Config& config, ProfileStore* store)
    : config_(config), store_(store), rules_(config), devices_tag_(config.tags.Find(kDevicesTag)) {}

std::span<const Namespace> ProfilesStage::namespaces() const { return kNamespaces; }

void ProfilesStage::OnRecord(const Record& r, Batch& batch) {
  if (r.action) {
    if (config_.tags.Find(r.action->tag)) batch.actions.push_back(*r.action);
    return;
  }
  if (!r.event) return;
  const Event& e = *r.event;
  rules_.Evaluate(e, &batch.actions, &batch.skipped);
  if (!e.uid.empty() && !e.device_id.empty()) LinkDevice(e, batch);
  if (config_.history.enabled) {
    batch.history_config = &config_.history;
    batch.history.push_back({std::string(e.PartitionKey()), e.ts, e.id, e.type, std::string(r.payload)});
  }
}

void ProfilesStage::LinkDevice(const Event& e, Batch& batch) {
  if (!devices_tag_) return;
  uint64_t h = XXH3_64bits_withSeed(e.device_id.data(), e.device_id.size(), XXH3_64bits(e.uid.data(), e.uid.size()));
  if (linked_.count(h)) return;  // set.add of a known member changes nothing: skip the write
  if (linked_.size() >= kMaxLinksRemembered) linked_.clear();
  linked_.insert(h);
  Action a;
  a.uid = e.uid;
  a.tag = std::string(kDevicesTag);
  a.op = OpCode::kSetAdd;
  a.ts = e.ts;
  a.source = Source::kRealtime;
  std::string member;
  JsonWriter(&member).String(e.device_id);
  a.members.push_back(std::move(member));
  batch.actions.push_back(std::move(a));
}

Status ProfilesStage::LinkedIds(std::string_view uid, std::vector<std::string>* ids) {
  if (!devices_tag_) return Status::Ok();
  const std::string only[] = {std::string(kDevicesTag)};
  ASSIGN_OR_RETURN(Profile p, store_->Get(uid, only, NowMs()));
  simdjson::dom::parser parser;
  for (const TagValue& t : p.tags) {
    for (const std::string& m : t.state.members) {
      std::string_view device;
      if (!parser.parse(m).get_string().get(device)) ids->emplace_back(device);
    }
  }
  return Status::Ok();
}

Status ProfilesStage::Erase(const Erasure& e) {
  for (const std::string& id : e.ids) RETURN_IF_ERROR(store_->DeleteProfile(id, {}));
  linked_.clear();
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
