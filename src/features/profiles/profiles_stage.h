// ProfilesStage: the processor stage of the profiles feature (see profiles.h). One per
// processor worker.
#pragma once

#include <string>

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
  Status Erase(const Erasure& e) override;
  Result<std::vector<std::string>> Holding(std::string_view id) override;

 private:
  const Config& config_;
  ProfileStore* store_;
  RuleSet rules_;
};

}  // namespace portrait
