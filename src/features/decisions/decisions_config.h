// The decisions feature's config section, [decisions] with its [[decisions.rules]]
// (decisions_config.cc). The rules are the reloadable part.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/config.h"

namespace portrait {

// [decisions]: real-time marketing decisions. Each rule watches the events of `on` per
// (user, key) where the key is the triggering event's prop `key`, and decides `action` when
// at least `at_least` of them fall within `within` of each other by event time (or, with
// `after`, when an `after` event precedes an `on` event within `within`), the profile tests
// hold, and no decision of the rule for that (user, key) lies within `cooldown`.
struct ProfileTest {
  std::string tag;
  std::optional<ValueTemplate> key;  // map entry or set member; none = the tag as a whole
  bool present = false;              // `when` (true) or `unless` (false)
};

struct DecisionRuleSpec {
  std::string where;  // "FILE:LINE:COL" for messages
  std::string name;
  std::vector<std::string> on;  // event types that count and trigger evaluation
  std::string key;              // prop of those events that must be equal; "" = one key per user
  int at_least = 1;
  std::string after;            // sequence rules: this event type first (same key), then one of `on`
  int64_t within_ms = 0;
  std::vector<ProfileTest> profile;
  int64_t cooldown_ms = 0;      // default: within
  std::string action;
  ValueTemplate payload;        // an object (may be empty) rendered from the triggering event
  // Every event type the rule reads: on + after.
  std::vector<std::string> Types() const;
  // How far back in event time the rule can still match or be cooled down.
  int64_t HorizonMs() const { return within_ms + cooldown_ms; }
};

struct DecisionsConfig {
  std::string webhook;              // "http[s]://host:port/path": each decision is POSTed there; empty = none
  int webhook_timeout_ms = 2000;
  std::string webhook_ca_file;      // PEM CAs for an https:// webhook; empty = the system's
  size_t keep_per_user = 100;       // newest decisions GET /v1/decisions/{uid} serves
  int64_t keep_ms = 30LL * 86'400'000;   // and for how long (wall clock)
  size_t max_entries_per_user = 1000;    // rule state per user: events remembered, at most
  size_t cache_users = 100'000;          // per processor worker (embedded log): states kept decoded between batches
  // Embedded log: how often the cached states are written (and checkpointed); after a
  // crash the records since are read again from the log. 0 (the default): every batch.
  int64_t state_save_interval_ms = 0;
  std::vector<DecisionRuleSpec> rules;
};

std::vector<ConfigSection> DecisionsConfigSections();

// The first event type of `r` (in `cfg`) that does not declare the rule's key prop; empty
// when every one does. Checked when the file is read and again when a reload compiles
// rules against the running config.
std::string TypeMissingKey(const DecisionRuleSpec& r, const Config& cfg);

}  // namespace portrait
