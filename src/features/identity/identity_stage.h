// IdentityStage: links devices to users from events carrying both ids (identity.h). One per
// processor worker.
#pragma once

#include <string>
#include <unordered_map>

#include "core/config.h"
#include "features/identity/identity.h"
#include "store/profile_store.h"
#include "stream/stage.h"

namespace portrait {

class IdentityStage : public Stage {
 public:
  IdentityStage(const Config& config, ProfileStore* store);

  std::string_view name() const override { return "identity"; }
  std::span<const Namespace> namespaces() const override;
  void OnRecord(const Record& r, Batch& batch) override;
  Status LinkedIds(std::string_view uid, std::vector<std::string>* ids) override;
  // The links live in the profiles (internal tags), which the profiles stage erases.
  Status Erase(const Erasure& e) override;
  Result<std::vector<std::string>> Holding(std::string_view id) override;

 private:
  const IdentityConfig& cfg_;
  ProfileStore* store_;
  const TagConfig* owner_tag_;
  std::unordered_map<uint64_t, int64_t> linked_;  // (uid, device) -> best rank written since start, bounded
};

// The owner a device's `~owner` state names, or empty.
std::string OwnerOf(const fusion::TagState& owner);
// The device ids a user's `~devices` state holds.
std::vector<std::string> DevicesOf(const fusion::TagState& devices);
// Of the devices seen with `uid`, those it owns: their `~owner` is `uid`, and they are not
// users themselves (an id with devices of its own). Each once, never `uid`.
Result<std::vector<std::string>> OwnedDevices(ProfileStore& store, std::string_view uid,
                                              const fusion::TagState& devices, TimestampMs now);

}  // namespace portrait
