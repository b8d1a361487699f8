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

// A template's value for `e`: its JSON text, and as text (a JSON string unquoted, else the
// JSON). Objects render the fields that have a value. False when a field it reads is absent.
bool EvalTemplate(const ValueTemplate& t, const Event& e, std::string* json, std::string* text = nullptr);
// A prop's raw JSON as text: a string unquoted, anything else as written.
std::string PropText(std::string_view raw);

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
