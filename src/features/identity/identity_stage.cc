#include "features/identity/identity_stage.h"

#include <simdjson.h>

#include <algorithm>
#include <xxhash.h>

#include "core/json.h"
#include "fusion/fusion.h"

namespace portrait {
namespace {

constexpr Namespace kNamespaces[] = {
    {"devices", "the devices the user logged in from (tag ~devices, in the user's profile)"},
    {"owner", "the user a device belongs to (tag ~owner, in the device's profile)"},
};
constexpr size_t kMaxLinksRemembered = 1 << 20;

std::string JsonString(std::string_view s) {
  std::string out;
  JsonWriter(&out).String(s);
  return out;
}

}  // namespace

std::string OwnerOf(const fusion::TagState& owner) {
  if (!owner.present || owner.items.empty()) return {};
  simdjson::dom::parser parser;
  std::string_view uid;
  if (parser.parse(owner.items.back().json)["uid"].get_string().get(uid)) return {};
  return std::string(uid);
}

std::vector<std::string> DevicesOf(const fusion::TagState& devices) {
  std::vector<std::string> out;
  simdjson::dom::parser parser;
  for (const std::string& m : devices.members) {
    std::string_view device;
    if (!parser.parse(m).get_string().get(device)) out.emplace_back(device);
  }
  return out;
}

IdentityStage::IdentityStage(const Config& config, ProfileStore* store)
    : cfg_(config.section<IdentityConfig>()), store_(store), owner_tag_(config.tags.Find(kOwnerTag)) {}

std::span<const Namespace> IdentityStage::namespaces() const { return kNamespaces; }

void IdentityStage::OnRecord(const Record& r, Batch& batch) {
  if (!r.event || !cfg_.enabled || !owner_tag_) return;
  const Event& e = *r.event;
  if (e.uid.empty() || e.device_id.empty() || e.uid == e.device_id) return;
  // A link already written with a better rank changes nothing: skip its writes.
  const int64_t rank = cfg_.latest_wins ? e.ts : -e.ts;
  uint64_t h = XXH3_64bits_withSeed(e.device_id.data(), e.device_id.size(), XXH3_64bits(e.uid.data(), e.uid.size()));
  auto seen = linked_.find(h);
  if (seen != linked_.end() && seen->second >= rank) return;
  if (seen == linked_.end() && linked_.size() >= kMaxLinksRemembered) linked_.clear();
  linked_[h] = rank;

  Action devices;
  devices.uid = e.uid;
  devices.tag = std::string(kDevicesTag);
  devices.op = OpCode::kSetAdd;
  devices.ts = e.ts;
  devices.source = Source::kRealtime;
  devices.members.push_back(JsonString(e.device_id));
  batch.actions.push_back(std::move(devices));

  // The device's owner: one item per user, ranked so that the kept one is the first link
  // (rank -ts) or the newest (rank ts); equal times keep the greater uid.
  const std::pair<std::string, std::string> fields[] = {
      {"uid", JsonString(e.uid)},
      {"rank", std::to_string(rank)},
  };
  auto item = fusion::MakeListItem(fields, *owner_tag_, e.ts, Source::kRealtime);
  if (!item.ok()) return;
  Action owner;
  owner.uid = e.device_id;
  owner.tag = std::string(kOwnerTag);
  owner.op = OpCode::kListRpush;
  owner.ts = e.ts;
  owner.source = Source::kRealtime;
  owner.items.push_back(std::move(*item));
  batch.actions.push_back(std::move(owner));
}

Result<std::vector<std::string>> OwnedDevices(ProfileStore& store, std::string_view uid,
                                              const fusion::TagState& devices, TimestampMs now) {
  std::vector<std::string> candidates = DevicesOf(devices);
  std::sort(candidates.begin(), candidates.end());
  candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
  std::erase(candidates, std::string(uid));
  const std::string links[] = {std::string(kDevicesTag), std::string(kOwnerTag)};
  ASSIGN_OR_RETURN(auto profiles, store.GetMany(candidates, links, now));
  std::vector<std::string> out;
  for (size_t i = 0; i < candidates.size(); ++i) {
    bool owned = false, is_user = false;
    for (const TagValue& t : profiles[i].tags) {
      if (t.name == kOwnerTag) owned = OwnerOf(t.state) == uid;
      if (t.name == kDevicesTag && t.state.present) is_user = true;
    }
    if (owned && !is_user) out.push_back(std::move(candidates[i]));
  }
  return out;
}

// The devices the user owns are erased with it; a device another user owns is not.
Status IdentityStage::LinkedIds(std::string_view uid, std::vector<std::string>* ids) {
  const std::string devices_only[] = {std::string(kDevicesTag)};
  const TimestampMs now = NowMs();
  ASSIGN_OR_RETURN(Profile p, store_->Get(uid, devices_only, now));
  if (p.tags.empty()) return Status::Ok();
  ASSIGN_OR_RETURN(auto owned, OwnedDevices(*store_, uid, p.tags[0].state, now));
  for (std::string& d : owned) ids->push_back(std::move(d));
  return Status::Ok();
}

Status IdentityStage::Erase(const Erasure&) {
  linked_.clear();
  return Status::Ok();
}

Result<std::vector<std::string>> IdentityStage::Holding(std::string_view id) {
  const std::string only[] = {std::string(kDevicesTag), std::string(kOwnerTag)};
  ASSIGN_OR_RETURN(Profile p, store_->Get(id, only, NowMs()));
  std::vector<std::string> out;
  for (const TagValue& t : p.tags) out.push_back(t.name == kDevicesTag ? "devices" : "owner");
  return out;
}

}  // namespace portrait
