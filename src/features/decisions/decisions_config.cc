#include "features/decisions/decisions_config.h"

#include <algorithm>
#include <set>

#include "core/config_check.h"

namespace portrait {
namespace {

std::string CheckWebhook(const std::string& url) {
  std::string host, path;
  int port = 0;
  // https:// has the shape of http://; libcurl speaks TLS to it.
  if (url.empty() || ParseHttpUrl(url.starts_with("https://") ? "http://" + url.substr(8) : url, &host, &port, &path)) return "";
  return "webhook must be \"http://HOST:PORT/PATH\" or \"https://HOST:PORT/PATH\", not \"" + url + "\"";
}

const Property<DecisionsConfig> kProperties[] = {
    StringProperty<DecisionsConfig>("webhook", &DecisionsConfig::webhook,
                                    "a URL such as \"http://127.0.0.1:9000/decisions\"",
                                    "each decision is POSTed there (retry topic, then dead letters); restart to change",
                                    CheckWebhook),
    IntProperty<DecisionsConfig>("webhook_timeout_ms", &DecisionsConfig::webhook_timeout_ms, 10, 600'000,
                                 "how long one webhook POST may take"),
    StringProperty<DecisionsConfig>("webhook_ca_file", &DecisionsConfig::webhook_ca_file, "a file path",
                                    "PEM certificates to verify an https:// webhook with; empty = the system's CAs"),
    IntProperty<DecisionsConfig>("keep_per_user", &DecisionsConfig::keep_per_user, 1, 100'000,
                                 "newest decisions GET /v1/decisions/{uid} serves"),
    DurationProperty<DecisionsConfig>("keep", &DecisionsConfig::keep_ms, "and for how long (wall clock)"),
    IntProperty<DecisionsConfig>("max_entries_per_user", &DecisionsConfig::max_entries_per_user, 1, 1'000'000,
                                 "rule state per user: events remembered, at most"),
    IntProperty<DecisionsConfig>("cache_users", &DecisionsConfig::cache_users, 0, 100'000'000,
                                 "per processor worker (embedded log): rule states kept decoded between batches"),
    DurationProperty<DecisionsConfig>("state_save_interval", &DecisionsConfig::state_save_interval_ms,
                                      "embedded log: how often cached rule states are written; \"0s\" = every batch"),
};

// `unless` / `when`: [{ tag = "name", key = "$props.NAME" }, ...]
void ParseProfileTests(ConfigChecker& c, const toml::node& n, const std::string& what, bool present, const Config& cfg,
                       DecisionRuleSpec* r) {
  const toml::array* a = n.as_array();
  if (!a) {
    c.Error(n, what + ": must be an array of { tag = \"name\", key = \"$props.NAME\" } tables");
    return;
  }
  for (auto&& e : *a) {
    const toml::table* t = e.as_table();
    if (!t) {
      c.Error(e, what + ": each test is a table { tag = \"name\", key = ... }");
      continue;
    }
    c.KnownKeys(*t, what, {"tag", "key"});
    ProfileTest test;
    test.present = present;
    auto tag = c.Get<std::string>(*t, "tag", what, "a tag name");
    if (!tag) {
      if (!t->get("tag")) c.Error(e, what + ": needs tag = \"name\"");
      continue;
    }
    const TagConfig* tc = cfg.tags.FindDeclared(*tag);
    if (!tc) {
      c.Error(*t->get("tag"), what + ": tag \"" + *tag + "\" is not declared; add [tags." + *tag + "]");
      continue;
    }
    test.tag = *tag;
    if (const toml::node* k = t->get("key")) {
      if (tc->type != TagType::kMap && tc->type != TagType::kSet) {
        c.Error(*k, what + ": key tests a map entry or a set member; tag \"" + *tag + "\" is a " +
                        std::string(TagTypeName(tc->type)));
        continue;
      }
      test.key = ParseTemplate(c, *k, what + ": key");
      if (test.key && test.key->kind == ValueTemplate::Kind::kObject) {
        c.Error(*k, what + ": key must be a literal or a $field");
        continue;
      }
    }
    r->profile.push_back(std::move(test));
  }
}

void ParseDecisions(ConfigChecker& c, const toml::table& t, Config* cfg) {
  DecisionsConfig& d = cfg->mutable_section<DecisionsConfig>();
  ReadProperties<DecisionsConfig>(c, t, "[decisions]", kProperties, &d, {"rules"});
  if (d.state_save_interval_ms > 0 && cfg->log.backend == "kafka") {
    // Rebuilding the memory from the log needs the one owner of every partition.
    c.Error(*t.get("state_save_interval"),
            "[decisions]: state_save_interval needs [log] backend = \"embedded\"; with the kafka log a partition "
            "moves between processes, so rule states are saved every batch: set \"0s\"");
  }
  const toml::node* rn = t.get("rules");
  if (!rn) return;
  const toml::array* arr = rn->as_array();
  if (!arr) {
    c.Error(*rn, "[decisions]: rules must be an array of tables ([[decisions.rules]])");
    return;
  }
  std::set<std::string> names;
  for (size_t i = 0; i < arr->size(); ++i) {
    const toml::table* rt = (*arr)[i].as_table();
    std::string what = "decision rule #" + std::to_string(i + 1);
    if (!rt) {
      c.Error((*arr)[i], what + ": must be a table ([[decisions.rules]])");
      continue;
    }
    c.KnownKeys(*rt, what, {"name", "on", "key", "at_least", "after", "within", "cooldown", "when", "unless", "action",
                            "payload"});
    DecisionRuleSpec r;
    r.where = c.Where(rt->source());
    if (auto v = c.Get<std::string>(*rt, "name", what, "a string")) r.name = *v;
    if (r.name.empty() || r.name.find_first_of("\x1f\n\"") != std::string::npos) {
      c.Error(*rt, what + ": needs name = \"...\" (a non-empty name without quotes or control characters)");
      continue;
    }
    if (!names.insert(r.name).second) c.Error(*rt, what + ": the name \"" + r.name + "\" is used twice");
    what = "decision rule \"" + r.name + "\"";
    if (const toml::node* on = rt->get("on")) r.on = ReadTypeList(c, *on, what + ": on", *cfg);
    if (r.on.empty()) c.Error(*rt, what + ": needs on = \"event type\" (or an array of them)");
    if (auto v = c.Get<std::string>(*rt, "key", what, "a prop name")) {
      r.key = *v;
    }
    if (auto v = c.GetInt(*rt, "at_least", what, 1, 10'000)) r.at_least = static_cast<int>(*v);
    if (const toml::node* a = rt->get("after")) {
      auto types = ReadTypeList(c, *a, what + ": after", *cfg);
      if (types.size() == 1) r.after = types[0];
      if (std::find(r.on.begin(), r.on.end(), r.after) != r.on.end()) {
        c.Error(*a, what + ": after names a type that is also in on; a sequence needs two different types");
      }
      else if (a->as_array()) c.Error(*a, what + ": after names one event type");
      if (r.at_least != 1) c.Error(*a, what + ": a sequence rule (after) fires on one `on` event; drop at_least");
    }
    if (auto v = c.GetDurationMs(*rt, "within", what)) r.within_ms = *v;
    if ((r.at_least > 1 || !r.after.empty()) && r.within_ms <= 0) {
      c.Error(*rt, what + ": needs within = \"30m\" (the window the events must fall in)");
    }
    r.cooldown_ms = r.within_ms;
    if (auto v = c.GetDurationMs(*rt, "cooldown", what)) r.cooldown_ms = *v;
    if (std::string type = TypeMissingKey(r, *cfg); !type.empty()) {
      c.Error(*rt->get("key"), what + ": key \"" + r.key + "\" is not a prop of event type \"" + type +
                                   "\"; declare it under [events." + type + ".props]");
    }
    if (const toml::node* n = rt->get("when")) ParseProfileTests(c, *n, what + ": when", true, *cfg, &r);
    if (const toml::node* n = rt->get("unless")) ParseProfileTests(c, *n, what + ": unless", false, *cfg, &r);
    if (auto v = c.Get<std::string>(*rt, "action", what, "a string")) r.action = *v;
    if (r.action.empty()) c.Error(*rt, what + ": needs action = \"name\" (what the decision asks for, e.g. \"coupon\")");
    r.payload.kind = ValueTemplate::Kind::kObject;
    if (const toml::node* p = rt->get("payload")) {
      if (!p->is_table()) {
        c.Error(*p, what + ": payload must be a table of literals and $fields, e.g. { coupon = \"PHONE10\" }");
      } else if (auto v = ParseTemplate(c, *p, what + ": payload")) {
        r.payload = std::move(*v);
      }
    }
    d.rules.push_back(std::move(r));
  }
}

}  // namespace

std::vector<std::string> DecisionRuleSpec::Types() const {
  std::vector<std::string> out = on;
  if (!after.empty() && std::find(out.begin(), out.end(), after) == out.end()) out.push_back(after);
  return out;
}

std::string TypeMissingKey(const DecisionRuleSpec& r, const Config& cfg) {
  if (r.key.empty()) return "";
  for (const std::string& type : r.Types()) {
    auto it = cfg.events.find(type);
    if (it != cfg.events.end() && !it->second.FindProp(r.key)) return type;
  }
  return "";
}

std::vector<ConfigSection> DecisionsConfigSections() {
  return {{"decisions", false, false,
           [](ConfigChecker& c, const toml::node* n, Config* cfg) { ParseDecisions(c, *n->as_table(), cfg); }}};
}

}  // namespace portrait
