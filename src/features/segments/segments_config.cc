#include "features/segments/segments_config.h"

#include "core/config_check.h"
#include "core/json.h"

namespace portrait {
namespace {

bool ValidName(const std::string& n) {
  if (n.empty() || n.size() > 64) return false;
  for (char c : n) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return false;
  }
  return true;
}

std::optional<double> Number(ConfigChecker& c, const toml::table& t, std::string_view key, std::string_view what) {
  const toml::node* n = t.get(key);
  if (!n) return std::nullopt;
  if (auto v = n->value<double>()) return *v;
  c.Error(*n, std::string(what) + ": \"" + std::string(key) + "\" must be a number");
  return std::nullopt;
}

void ParseCondition(ConfigChecker& c, const toml::node& node, const std::string& what, const Config& cfg,
                    SegmentDef* def) {
  const toml::table* t = node.as_table();
  if (!t) {
    c.Error(node, what + ": each condition must be a table such as { tag = \"clicks\", at_least = 3 }");
    return;
  }
  c.KnownKeys(*t, what, {"tag", "key", "at_least", "at_most", "equals", "within"});
  SegmentCondition cond;
  auto tag = c.Get<std::string>(*t, "tag", what, "a tag name");
  if (!tag) {
    if (!t->get("tag")) c.Error(node, what + ": \"tag\" is missing");
    return;
  }
  const TagConfig* tc = cfg.tags.FindDeclared(*tag);
  if (!tc) {
    c.Error(*t->get("tag"), what + ": unknown tag \"" + *tag + "\"; known tags are: " + cfg.tags.DeclaredNames());
    return;
  }
  cond.tag = *tag;
  if (auto key = c.Get<std::string>(*t, "key", what, "a string")) {
    if (tc->type != TagType::kMap) c.Error(*t->get("key"), what + ": \"key\" is for map tags; \"" + *tag + "\" is not one");
    cond.key = *key;
  }
  cond.at_least = Number(c, *t, "at_least", what);
  cond.at_most = Number(c, *t, "at_most", what);
  cond.equals = c.Get<std::string>(*t, "equals", what, "a string");
  if (auto ms = c.GetDurationMs(*t, "within", what)) {
    if (*ms <= 0) c.Error(*t->get("within"), what + ": \"within\" must be above zero");
    cond.within_ms = *ms;
  }
  if (cond.equals && (cond.at_least || cond.at_most)) {
    c.Error(node, what + ": \"equals\" compares a string; it cannot go with at_least or at_most");
  }
  if (cond.equals && tc->type != TagType::kString && cond.key.empty()) {
    c.Error(node, what + ": \"equals\" is for string tags or a map's key; \"" + *tag + "\" is a " +
                      std::string(TagTypeName(tc->type)));
  }
  if ((cond.at_least || cond.at_most) && tc->type == TagType::kString) {
    c.Error(node, what + ": \"" + *tag + "\" is a string tag; use equals or within");
  }
  def->when.push_back(std::move(cond));
}

void ParseSegments(ConfigChecker& c, const toml::array& arr, Config* cfg) {
  auto& out = cfg->mutable_section<SegmentsConfig>().segments;
  for (const toml::node& n : arr) {
    const toml::table* t = n.as_table();
    if (!t) {
      c.Error(n, "[[segments]]: each entry must be a table");
      continue;
    }
    c.KnownKeys(*t, "[[segments]]", {"name", "match", "when"});
    SegmentDef def;
    auto name = c.Get<std::string>(*t, "name", "[[segments]]", "a name");
    if (!name || !ValidName(*name)) {
      c.Error(n, "[[segments]]: \"name\" must be 1-64 letters, digits, '_' or '-'");
      continue;
    }
    def.name = *name;
    const std::string what = "[[segments]] \"" + def.name + "\"";
    for (const SegmentDef& other : out) {
      if (other.name == def.name) c.Error(n, what + ": declared twice");
    }
    if (auto match = c.Get<std::string>(*t, "match", what, "\"all\" or \"any\"")) {
      if (*match != "all" && *match != "any") c.Error(*t->get("match"), what + ": match must be \"all\" or \"any\"");
      def.any = *match == "any";
    }
    const toml::array* when = t->get_as<toml::array>("when");
    if (!when || when->empty()) {
      c.Error(n, what + ": \"when\" must list at least one condition, e.g. when = [{ tag = \"purchases\", at_least = 1 }]");
      continue;
    }
    for (const toml::node& cond : *when) ParseCondition(c, cond, what, *cfg, &def);
    out.push_back(std::move(def));
  }
}

const Property<SegmentsConfig> kChangeProperties[] = {
    StringProperty<SegmentsConfig>("webhook", &SegmentsConfig::webhook, "an http:// or https:// URL",
                                   "segment changes are POSTed here (retried, then dead letters); empty = off",
                                   [](const std::string& v) {
                                     return v.empty() || v.starts_with("http://") || v.starts_with("https://")
                                                ? std::string()
                                                : std::string("webhook must be an http:// or https:// URL");
                                   }),
    IntProperty<SegmentsConfig>("webhook_timeout_ms", &SegmentsConfig::webhook_timeout_ms, 100, 600000,
                                "one POST's time limit"),
    StringProperty<SegmentsConfig>("webhook_ca_file", &SegmentsConfig::webhook_ca_file, "a file path",
                                   "PEM certificates to verify an https:// webhook with; empty = the system's CAs"),
    DurationProperty<SegmentsConfig>("recheck_interval", &SegmentsConfig::recheck_interval_ms,
                                     "how often members whose time conditions lapse are checked"),
};

}  // namespace

std::string SegmentDef::ToJson() const {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("match").String(any ? "any" : "all").Key("when").BeginArray();
  for (const SegmentCondition& c : when) {
    w.BeginObject().Key("tag").String(c.tag);
    if (!c.key.empty()) w.Key("key").String(c.key);
    if (c.at_least) w.Key("at_least").Number(*c.at_least);
    if (c.at_most) w.Key("at_most").Number(*c.at_most);
    if (c.equals) w.Key("equals").String(*c.equals);
    if (c.within_ms > 0) w.Key("within_ms").Int(c.within_ms);
    w.EndObject();
  }
  w.EndArray().EndObject();
  return out;
}

std::vector<ConfigSection> SegmentsConfigSections() {
  return {{"segments", true, false,
           [](ConfigChecker& c, const toml::node* n, Config* cfg) {
             if (const toml::array* arr = n->as_array()) {
               ParseSegments(c, *arr, cfg);
             } else {
               c.Error(*n, "segments must be declared as [[segments]] tables");
             }
           }},
          {"segment_changes", false, false, [](ConfigChecker& c, const toml::node* n, Config* cfg) {
             ReadProperties<SegmentsConfig>(c, *n->as_table(), "[segment_changes]", kChangeProperties,
                                            &cfg->mutable_section<SegmentsConfig>());
             if (cfg->section<SegmentsConfig>().recheck_interval_ms < 100) {
               c.Error(*n, "[segment_changes]: recheck_interval must be at least 100ms");
             }
           }}};
}

}  // namespace portrait
