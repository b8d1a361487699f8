// Tag rules: which Actions an event produces, as declared by [[rules]] in config.
//
// Built once from a loaded Config (which already checked rule/tag consistency) and
// then read-only, so one RuleSet is shared by every processor worker.
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "core/action.h"
#include "core/config.h"
#include "core/event.h"

namespace portrait {

class RuleSet {
 public:
  enum class Layer { kRealtime, kOffline };
  // kRealtime: the rules the processor runs; kOffline: the rules of tags computed offline
  // (for `portrait batch`).
  explicit RuleSet(const Config& config, Layer layer = Layer::kRealtime);

  // Appends the event's Actions to `out`. A rule whose inputs the event lacks (an
  // optional prop) or holds in an unusable form is skipped and counted in `skipped`.
  void Evaluate(const Event& e, std::vector<Action>* out, size_t* skipped) const;

 private:
  struct Compiled {
    const RuleSpec* spec;
    const TagConfig* tag;
  };
  std::unordered_map<std::string, std::vector<Compiled>> by_type_;
};

}  // namespace portrait
