// ProfilesStage: the processor stage of the profiles feature (see profiles.h). One per
// processor worker.
#pragma once

#include <string>
#include <unordered_set>

#include "core/config.h"
#include "fusion/rules.h"
#include "store/profile_store.h"
#include "stream/stage.h"

namespace portrait {

class ProfilesStage : public Stage {
 public:
  ProfilesStage(const Config& config, ProfileStore* store);

  std::string_view name() const override { return "profiles"; }
  std::span<const Namespace> namespaces() const override;
  void OnRecord(const Record& r, Batch& batch) override;
  Status LinkedIds(std::string_view uid, std::vector<std::string>* ids) override;
  Status Erase(const Erasure& e) override;
  Result<std::vector<std::string>> Holding(std::string_view id) override;

 private:
  void LinkDevice(const Event& e, Batch& batch);

  const Config& config_;
  ProfileStore* store_;
  RuleSet rules_;
  const TagConfig* devices_tag_;  // null when the config has none (tests that build one by hand)
  std::unordered_set<uint64_t> linked_;  // (uid, device) pairs written since start, bounded
};

}  // namespace portrait
