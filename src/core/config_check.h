// Reading config sections: the checker that collects every problem as FILE:LINE:COL, the
// typed property declaration each section lists its keys with, and the section
// declaration a feature registers (Feature::ConfigSections). Used by core's sections and
// by each feature's own, next to its code.
#pragma once

#include <toml++/toml.h>

#include <algorithm>
#include <functional>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/status.h"

namespace portrait {

// Collects every problem in the file with its position, so one run shows them all.
class ConfigChecker {
 public:
  explicit ConfigChecker(std::string file) : file_(std::move(file)) {}

  std::string Where(const toml::source_region& r) const {
    return file_ + ":" + std::to_string(r.begin.line) + ":" + std::to_string(r.begin.column);
  }
  void Error(const toml::node& at, std::string_view msg) { Error(at.source(), msg); }
  void Error(const toml::source_region& r, std::string_view msg) {
    errors_.push_back(Where(r) + ": " + std::string(msg));
  }
  void ErrorNoPos(std::string_view msg) { errors_.push_back(file_ + ": " + std::string(msg)); }
  bool ok() const { return errors_.empty(); }
  Status ToStatus() const {
    std::string m;
    for (const auto& e : errors_) {
      if (!m.empty()) m += "\n";
      m += e;
    }
    return Status::InvalidArgument(m);
  }

  // Reports keys of `t` that are not in `known`.
  void KnownKeys(const toml::table& t, std::string_view what, std::initializer_list<std::string_view> known) {
    KnownKeys(t, what, std::span<const std::string_view>(known.begin(), known.size()));
  }
  void KnownKeys(const toml::table& t, std::string_view what, std::span<const std::string_view> known) {
    for (auto&& [k, v] : t) {
      if (std::find(known.begin(), known.end(), k.str()) != known.end()) continue;
      std::string list;
      for (auto n : known) {
        if (!list.empty()) list += ", ";
        list += n;
      }
      Error(k.source(), std::string(what) + ": unknown key \"" + std::string(k.str()) +
                            "\"; known keys are: " + list);
    }
  }

  template <typename T>
  std::optional<T> Get(const toml::table& t, std::string_view key, std::string_view what,
                       std::string_view type_name) {
    const toml::node* n = t.get(key);
    if (!n) return std::nullopt;
    auto v = n->value<T>();
    if (!v) {
      Error(*n, std::string(what) + ": \"" + std::string(key) + "\" must be " + std::string(type_name));
      return std::nullopt;
    }
    return v;
  }

  std::optional<int64_t> GetInt(const toml::table& t, std::string_view key, std::string_view what,
                                int64_t min, int64_t max) {
    const toml::node* n = t.get(key);
    if (!n) return std::nullopt;
    if (!n->is_integer()) {
      Error(*n, std::string(what) + ": \"" + std::string(key) + "\" must be an integer");
      return std::nullopt;
    }
    int64_t v = n->as_integer()->get();
    if (v < min || v > max) {
      Error(*n, std::string(what) + ": \"" + std::string(key) + "\" must be between " +
                    std::to_string(min) + " and " + std::to_string(max) + ", not " + std::to_string(v));
      return std::nullopt;
    }
    return v;
  }

  // A duration: "30d" style string, or an integer number of seconds.
  std::optional<int64_t> GetDurationMs(const toml::table& t, std::string_view key, std::string_view what) {
    const toml::node* n = t.get(key);
    if (!n) return std::nullopt;
    if (n->is_integer() && n->as_integer()->get() >= 0) return n->as_integer()->get() * 1000;
    if (auto s = n->value<std::string>()) {
      if (auto ms = ParseDurationMs(*s)) return ms;
    }
    Error(*n, std::string(what) + ": \"" + std::string(key) +
                  "\" must be a duration such as \"30d\", \"12h\", \"15m\", \"90s\", \"250ms\" "
                  "or a number of seconds");
    return std::nullopt;
  }

  const std::string& file() const { return file_; }

 private:
  std::string file_;
  std::vector<std::string> errors_;
};

// A top-level section of the config file declared by a feature: `key` ([key], or [[key]]
// when `array`), and how it is read into the Config (into the feature's own struct, through
// Config::mutable_section). `parse` runs after core's sections, so it may check references
// to event types and tags; it gets `node` null when the file has no such section and
// `always` is set (for defaults that depend on other sections). An empty `key` reads no
// section at all: `parse` always runs (a feature adding what it needs, such as its
// internal tags).
struct ConfigSection {
  std::string_view key;
  bool array = false;
  bool always = false;
  std::function<void(ConfigChecker& c, const toml::node* node, Config* config)> parse;
};

// One typed property of a section: its key, its help line, its bounds (in `read`), and
// whether a reload may change it; the default is the section struct's initial value.
template <typename S>
struct Property {
  std::string_view key;
  std::string_view help;
  bool reloadable = false;
  std::function<void(ConfigChecker& c, const toml::table& t, std::string_view what, S* s)> read;
};

template <typename S, typename M>
Property<S> IntProperty(std::string_view key, M S::*member, int64_t min, int64_t max, std::string_view help,
                        bool reloadable = false) {
  return {key, help, reloadable, [=](ConfigChecker& c, const toml::table& t, std::string_view what, S* s) {
            if (auto v = c.GetInt(t, key, what, min, max)) s->*member = static_cast<M>(*v);
          }};
}

template <typename S>
Property<S> BoolProperty(std::string_view key, bool S::*member, std::string_view help, bool reloadable = false) {
  return {key, help, reloadable, [=](ConfigChecker& c, const toml::table& t, std::string_view what, S* s) {
            if (auto v = c.Get<bool>(t, key, what, "true or false")) s->*member = *v;
          }};
}

template <typename S>
Property<S> DurationProperty(std::string_view key, int64_t S::*member, std::string_view help, bool reloadable = false) {
  return {key, help, reloadable, [=](ConfigChecker& c, const toml::table& t, std::string_view what, S* s) {
            if (auto v = c.GetDurationMs(t, key, what)) s->*member = *v;
          }};
}

// A string; `check` (optional) returns what is wrong with a value, or "" when it is fine.
template <typename S>
Property<S> StringProperty(std::string_view key, std::string S::*member, std::string_view type_name,
                           std::string_view help, std::function<std::string(const std::string&)> check = nullptr,
                           bool reloadable = false) {
  return {key, help, reloadable, [=](ConfigChecker& c, const toml::table& t, std::string_view what, S* s) {
            auto v = c.Get<std::string>(t, key, what, type_name);
            if (!v) return;
            if (check) {
              std::string problem = check(*v);
              if (!problem.empty()) {
                c.Error(*t.get(key), std::string(what) + ": " + problem);
                return;
              }
            }
            s->*member = *v;
          }};
}

// A time of day "HH:MM" (UTC).
template <typename S>
Property<S> ClockProperty(std::string_view key, std::string S::*member, std::string_view example,
                          std::string_view help) {
  std::string problem = std::string(key) + " must be a time of day \"HH:MM\" (UTC), such as \"" + std::string(example) + "\"";
  return StringProperty<S>(key, member, "a time of day \"HH:MM\" (UTC)", help,
                           [problem](const std::string& v) { return ParseClockMinutes(v) ? std::string() : problem; });
}

// Reads every property of `props` from `t` into `s`, and names keys that are neither a
// property nor in `more_keys` (keys the section reads itself).
template <typename S>
void ReadProperties(ConfigChecker& c, const toml::table& t, std::string_view what, std::span<const Property<S>> props,
                    S* s, std::initializer_list<std::string_view> more_keys = {}) {
  std::vector<std::string_view> known;
  for (const auto& p : props) known.push_back(p.key);
  known.insert(known.end(), more_keys.begin(), more_keys.end());
  c.KnownKeys(t, what, known);
  for (const auto& p : props) p.read(c, t, what, s);
}

// Core's behaviour model and tag rules (config_model.cc).
void ParseEventsSection(ConfigChecker& c, const toml::table& t, Config* cfg);
void ParseTagsSection(ConfigChecker& c, const toml::table& t, Config* cfg);
void ParseRulesSection(ConfigChecker& c, const toml::array& arr, Config* cfg);

// `$uid`, `$ts`, `$props.NAME`, ... (without the `$`).
std::optional<FieldRef> ParseFieldRef(std::string_view s);
// A literal, a "$field", or a table of those.
std::optional<ValueTemplate> ParseTemplate(ConfigChecker& c, const toml::node& n, const std::string& what);
// One event type name or an array of them, each declared in `cfg`.
std::vector<std::string> ReadTypeList(ConfigChecker& c, const toml::node& n, const std::string& what, const Config& cfg);

}  // namespace portrait
