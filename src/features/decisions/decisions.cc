#include "features/decisions/decisions.h"

#include <spdlog/spdlog.h>
#include <xxhash.h>

#include <algorithm>
#include <set>

#include "core/coding.h"
#include "core/json.h"
#include "fusion/fusion.h"
#include "fusion/rules.h"
#include "features/decisions/decisions_config.h"

namespace portrait {

namespace {
constexpr uint8_t kRuleStateFormat = 3;  // 2: without the events' ids and payloads
constexpr int64_t kStateTtlMarginMs = 3'600'000;  // an hour beyond the longest horizon
}  // namespace

std::string Decision::ToJson() const {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("id").String(id).Key("rule").String(rule).Key("action").String(action);
  w.Key("uid").String(uid).Key("key").String(key).Key("at").Int(at).Key("at_iso").String(FormatIsoUtc(at));
  w.Key("decided_at").Int(decided_ms).Key("event_id").String(event_id).Key("payload").Raw(payload.empty() ? "{}" : payload);
  w.EndObject();
  return out;
}

std::string DecisionId(std::string_view rule, std::string_view uid, std::string_view key, TimestampMs at) {
  std::string buf;
  Writer w(&buf);
  w.Bytes(rule);
  w.Bytes(uid);
  w.Bytes(key);
  w.SignedVarint(at);
  XXH128_hash_t h = XXH3_128bits(buf.data(), buf.size());
  char hex[35];
  std::snprintf(hex, sizeof hex, "d-%016llx%016llx", static_cast<unsigned long long>(h.high64),
                static_cast<unsigned long long>(h.low64));
  return hex;
}

std::string_view DecisionIdOf(std::string_view json) {
  constexpr std::string_view kHead = "{\"id\":\"";
  if (!json.starts_with(kHead)) return {};
  json.remove_prefix(kHead.size());
  size_t end = json.find('"');
  return end == std::string_view::npos ? std::string_view() : json.substr(0, end);
}

// ---- rules ----

Result<std::shared_ptr<const DecisionRules>> DecisionRules::Compile(const std::vector<DecisionRuleSpec>& specs,
                                                                    const Config& running) {
  auto rules = std::make_shared<DecisionRules>();
  std::string problems;
  auto problem = [&](const DecisionRuleSpec& r, const std::string& what) {
    if (!problems.empty()) problems += "\n";
    problems += r.where + ": decision rule \"" + r.name + "\": " + what;
  };
  int64_t horizon = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    const DecisionRuleSpec& r = specs[i];
    for (const std::string& type : r.Types()) {
      if (!running.events.count(type)) {
        problem(r, "event type \"" + type + "\" is not declared in the running config (new event types need a restart)");
      }
    }
    if (std::string type = TypeMissingKey(r, running); !type.empty()) {
      problem(r, "key \"" + r.key + "\" is not a prop of event type \"" + type + "\" in the running config");
    }
    for (const ProfileTest& t : r.profile) {
      if (!running.tags.Find(t.tag)) problem(r, "tag \"" + t.tag + "\" is not declared in the running config");
    }
    horizon = std::max(horizon, r.HorizonMs());
    for (const std::string& type : r.Types()) rules->by_type_[type].push_back(i);
  }
  if (!problems.empty()) return Status::InvalidArgument(problems);
  rules->specs_ = specs;
  rules->ttl_ms_ = horizon + kStateTtlMarginMs;
  return std::shared_ptr<const DecisionRules>(std::move(rules));
}

const std::vector<size_t>* DecisionRules::ForType(std::string_view type) const {
  auto it = by_type_.find(type);
  return it == by_type_.end() ? nullptr : &it->second;
}

const DecisionRuleSpec* DecisionRules::Find(std::string_view name) const {
  for (const auto& r : specs_) {
    if (r.name == name) return &r;
  }
  return nullptr;
}

// ---- state ----

size_t RuleState::entries() const {
  size_t n = 0;
  for (const Group& g : groups) n += g.seen.size() + g.fired.size();
  return n;
}

void EncodeRuleState(const RuleState& s, std::string* out) {
  out->clear();
  Writer w(out);
  w.U8(kRuleStateFormat);
  w.SignedVarint(s.newest);
  // Rule names once, groups refer to them by index.
  std::vector<std::string_view> names;
  std::vector<uint64_t> name_of(s.groups.size());
  for (size_t i = 0; i < s.groups.size(); ++i) {
    auto it = std::find(names.begin(), names.end(), s.groups[i].rule);
    name_of[i] = static_cast<uint64_t>(it - names.begin());
    if (it == names.end()) names.push_back(s.groups[i].rule);
  }
  w.Varint(names.size());
  for (std::string_view n : names) w.Bytes(n);
  w.Varint(s.groups.size());
  for (size_t i = 0; i < s.groups.size(); ++i) {
    const RuleState::Group& g = s.groups[i];
    w.Varint(name_of[i]);
    w.Bytes(g.key);
    w.Varint(g.seen.size());
    // Ascending times as small varints: the first below the newest time, then each above
    // the one before; `first` in bit 0.
    for (size_t j = 0; j < g.seen.size(); ++j) {
      const RuleState::Seen& e = g.seen[j];
      TimestampMs delta = j == 0 ? s.newest - e.ts : e.ts - g.seen[j - 1].ts;
      w.Varint((static_cast<uint64_t>(delta) << 1) | (e.first ? 1 : 0));
      w.Fixed32(e.id);
      w.Bytes(e.event_id);
      w.Bytes(e.payload);
    }
    w.Varint(g.fired.size());
    for (TimestampMs f : g.fired) w.SignedVarint(s.newest - f);
  }
}

Status DecodeRuleState(std::string_view in, RuleState* s) {
  *s = RuleState();
  Reader r(in);
  const uint8_t format = r.U8();
  if (format != kRuleStateFormat && format != 2) return Status::Corruption("rule state: unknown format");
  s->newest = r.SignedVarint();
  std::vector<std::string> names(std::min<uint64_t>(r.Varint(), in.size()));
  for (auto& n : names) n = r.Bytes();
  uint64_t groups = r.Varint();
  for (uint64_t i = 0; i < groups && r.ok(); ++i) {
    RuleState::Group& g = s->groups.emplace_back();
    uint64_t name = r.Varint();
    if (name >= names.size()) return Status::Corruption("rule state: bad rule index");
    g.rule = names[name];
    g.key = r.Bytes();
    uint64_t n = r.Varint();
    for (uint64_t j = 0; j < n && r.ok(); ++j) {
      RuleState::Seen e;
      uint64_t v = r.Varint();
      auto delta = static_cast<TimestampMs>(v >> 1);
      e.ts = j == 0 ? s->newest - delta : g.seen.back().ts + delta;
      e.first = (v & 1) != 0;
      e.id = r.Fixed32();
      if (format == kRuleStateFormat) {
        e.event_id = r.Bytes();
        e.payload = r.Bytes();
      }
      g.seen.push_back(e);
    }
    uint64_t f = r.Varint();
    for (uint64_t j = 0; j < f && r.ok(); ++j) g.fired.push_back(s->newest - r.SignedVarint());
  }
  if (!r.ok() || !r.done()) return Status::Corruption("rule state: truncated");
  return Status::Ok();
}

// ---- feed ----

// ---- outbox ----

DecisionOutbox::DecisionOutbox(Log* topic, size_t dedup_window, DecisionFeed* feed, MetricsRegistry* m)
    : topic_(topic), feed_(feed) {
  window_ = std::max<size_t>(1, dedup_window / static_cast<size_t>(topic->partitions()));
  for (int p = 0; p < topic->partitions(); ++p) recent_.push_back(std::make_unique<RecentIds>(window_));
  published_ = m->GetCounter("portrait_decisions_total", "Decisions appended to the decisions topic");
  repeated_ = m->GetCounter("portrait_decisions_repeated_total",
                            "Decisions made again (replay, retried batch) and not sent twice");
}

Status DecisionOutbox::LoadRecentIds() {
  std::vector<LogRecord> recs;
  for (int p = 0; p < topic_->partitions(); ++p) {
    int64_t end = topic_->EndOffset(PartitionId(p)).value;
    int64_t from = std::max(topic_->StartOffset(PartitionId(p)).value, end - static_cast<int64_t>(window_));
    ASSIGN_OR_RETURN(auto reader, topic_->OpenReader(PartitionId(p), Offset(std::max<int64_t>(0, from))));
    while (reader->position().value < end) {
      RETURN_IF_ERROR(reader->Read(4 << 20, &recs));
      if (recs.empty()) break;
      for (const auto& rec : recs) {
        std::string_view id = DecisionIdOf(rec.payload);
        if (!id.empty()) recent_[p]->Insert(RecentIds::Hash(id));
      }
    }
  }
  return Status::Ok();
}

bool DecisionOutbox::Published(std::string_view uid, std::string_view id) const {
  return recent_[PartitionFor(uid, topic_->partitions()).value]->Holds(RecentIds::Hash(id));
}

Status DecisionOutbox::Publish(std::span<const Decision> decisions, size_t* fresh) {
  *fresh = 0;
  std::vector<std::string> payloads;
  std::vector<LogEntry> entries;
  std::vector<std::pair<int, uint64_t>> inserted;
  payloads.reserve(decisions.size());
  for (const Decision& d : decisions) {
    PartitionId p = PartitionFor(d.uid, topic_->partitions());
    uint64_t h = RecentIds::Hash(d.id);
    if (!recent_[p.value]->Insert(h)) {
      repeated_->Inc();
      continue;
    }
    inserted.emplace_back(p.value, h);
    payloads.push_back(d.json);
    entries.push_back({p, {}});
  }
  for (size_t i = 0; i < entries.size(); ++i) entries[i].payload = payloads[i];
  if (entries.empty()) return Status::Ok();
  if (Status st = topic_->Append(entries); !st.ok()) {
    for (auto [p, h] : inserted) recent_[p]->Erase(h);  // the retry must not look like a repeat
    return st;
  }
  published_->Inc(entries.size());
  *fresh = entries.size();
  if (feed_) {
    for (const std::string& json : payloads) feed_->Publish(json);
  }
  return Status::Ok();
}

Result<DecisionWiring> OpenDecisions(const Config& config, ProfileStore* store, DecisionFeed* feed,
                                     MetricsRegistry* metrics) {
  DecisionWiring w;
  ASSIGN_OR_RETURN(w.store, OpenDecisionStore(store));
  if (!w.store) return w;
  ASSIGN_OR_RETURN(auto rules, DecisionRules::Compile(config.section<DecisionsConfig>().rules, config));
  w.rules = std::make_unique<DecisionRuleBook>(std::move(rules));
  ASSIGN_OR_RETURN(w.topic, MakeLog(config.log, config.data_dir, "decisions", 0, metrics));
  w.outbox = std::make_unique<DecisionOutbox>(w.topic.get(), config.collector.dedup_window, feed, metrics);
  RETURN_IF_ERROR(w.outbox->LoadRecentIds());
  return w;
}

// ---- engine ----

DecisionEngine::DecisionEngine(const Config& config, ProfileStore* profiles, DecisionStore* store, MetricsRegistry* m,
                               size_t cache_users, bool lazy)
    : config_(config), profiles_(profiles), store_(store), cache_users_(cache_users), lazy_(lazy && cache_users > 0) {
  evaluated_ = m->GetCounter("portrait_decision_rule_evaluations_total", "Events evaluated by a decision rule");
  skipped_ = m->GetCounter("portrait_decision_rule_skipped_total", "Rule evaluations skipped: the event lacks the rule's key");
  late_ = m->GetCounter("portrait_decision_events_late_total",
                        "Events older than a rule's window behind the user's newest event (cannot match)");
  repeats_ = m->GetCounter("portrait_decision_events_repeated_total", "Events a rule had already seen (repeat or replay)");
  suppressed_ = m->GetCounter("portrait_decisions_cooled_down_total", "Matches suppressed by the rule's cooldown");
  profile_failed_ = m->GetCounter("portrait_decisions_profile_unmet_total", "Matches whose profile tests did not hold");
  state_entries_ = m->GetGauge("portrait_decision_state_entries_last_batch",
                               "Rule state entries (events and decisions) of the users of the last batch");
}

void DecisionEngine::Add(const DecisionRules& rules, const Event& e) {
  if (rules.ForType(e.type) && !e.PartitionKey().empty()) events_.push_back(e);
}

void DecisionEngine::Clear() {
  events_.clear();
  next_ = 0;
  loaded_ = false;
  profile_cache_.clear();
  pending_by_uid_.clear();
  FlushCounts();
}

void DecisionEngine::FlushCounts() {
  evaluated_->Inc(tally_.evaluated);
  skipped_->Inc(tally_.skipped);
  late_->Inc(tally_.late);
  repeats_->Inc(tally_.repeats);
  suppressed_->Inc(tally_.suppressed);
  profile_failed_->Inc(tally_.profile_failed);
  tally_ = Tally();
}

namespace {

bool CooledDown(const std::vector<TimestampMs>& fired, TimestampMs at, int64_t cooldown) {
  int64_t gap = std::max<int64_t>(cooldown, 1);
  auto it = std::lower_bound(fired.begin(), fired.end(), at - gap + 1);
  return it != fired.end() && *it < at + gap;
}

RuleState::Group& GroupOf(RuleState* s, std::string_view rule, std::string_view key) {
  for (auto& g : s->groups) {
    if (g.rule == rule && g.key == key) return g;
  }
  RuleState::Group& g = s->groups.emplace_back();
  g.rule = rule;
  g.key = key;
  return g;
}

}  // namespace

void DecisionEngine::Apply(const DecisionRules& rules, const Event& e, RuleState* state, const ProfileCheck& profile_ok,
                           std::vector<Decision>* out) {
  undo_.groups = state->groups.size();
  undo_.newest = state->newest;
  undo_.seen.clear();
  undo_.fired.clear();
  const std::vector<size_t>* which = rules.ForType(e.type);
  if (!which) return;
  const auto h = static_cast<uint32_t>(RecentIds::Hash(e.id));
  std::vector<size_t> closing;
  for (size_t i : *which) {
    const DecisionRuleSpec& r = rules.specs()[i];
    ++tally_.evaluated;
    std::string key;
    if (!r.key.empty()) {
      std::string_view raw = e.Prop(r.key);
      if (raw.empty()) {
        ++tally_.skipped;
        continue;
      }
      key = PropText(raw);
    }
    if (state->newest != INT64_MIN && e.ts < state->newest - r.within_ms) {
      ++tally_.late;
      continue;
    }
    RuleState::Group& g = GroupOf(state, r.name, key);
    const size_t gi = static_cast<size_t>(&g - state->groups.data());
    RuleState::Seen seen{e.ts, h, !r.after.empty() && e.type == r.after, {}, {}};
    auto pos = std::lower_bound(g.seen.begin(), g.seen.end(), seen);
    if (pos != g.seen.end() && pos->ts == seen.ts && pos->id == seen.id) {
      ++tally_.repeats;
      continue;
    }
    // Kept for the decision this event may close, whenever that is made.
    const bool may_close = r.after.empty() || !seen.first;
    if (may_close) {
      seen.event_id = e.id;
      EvalTemplate(r.payload, e, &seen.payload);
    }
    const size_t at_index = static_cast<size_t>(pos - g.seen.begin());
    g.seen.insert(pos, std::move(seen));
    undo_.seen.emplace_back(gi, at_index);
    // The events that close a match holding this event (indexes into g.seen), earliest
    // first; each one that is not cooled down is decided.
    closing.clear();
    const int64_t w = r.within_ms;
    if (r.after.empty()) {
      const size_t n = static_cast<size_t>(r.at_least);
      for (size_t a = at_index >= n - 1 ? at_index - (n - 1) : 0; a <= at_index; ++a) {
        size_t b = a + n - 1;
        if (b >= g.seen.size()) break;
        if (g.seen[b].ts - g.seen[a].ts <= w) closing.push_back(b);
      }
    } else if (g.seen[at_index].first) {  // an `after` event: completes `on` events up to `within` later
      for (size_t k = 0; k < g.seen.size(); ++k) {
        const auto& s = g.seen[k];
        if (!s.first && s.ts >= e.ts && s.ts - e.ts <= w) closing.push_back(k);
      }
    } else {
      for (const auto& s : g.seen) {
        if (s.first && s.ts <= e.ts && e.ts - s.ts <= w) {
          closing.push_back(at_index);
          break;
        }
      }
    }
    for (size_t c : closing) {
      const RuleState::Seen& by = g.seen[c];
      const TimestampMs at = by.ts;
      if (CooledDown(g.fired, at, r.cooldown_ms)) {
        ++tally_.suppressed;
        continue;
      }
      Decision d;
      d.uid = std::string(e.PartitionKey());
      d.id = DecisionId(r.name, d.uid, key, at);
      d.rule = r.name;
      d.action = r.action;
      d.key = key;
      d.at = at;
      if (by.event_id.empty()) {  // a state kept by an older version: the arriving event's
        d.event_id = e.id;
        EvalTemplate(r.payload, e, &d.payload);
      } else {
        d.event_id = by.event_id;
        d.payload = by.payload;
      }
      if (profile_ok && !profile_ok(r, e, d)) {
        ++tally_.profile_failed;
        break;
      }
      g.fired.insert(std::upper_bound(g.fired.begin(), g.fired.end(), at), at);
      undo_.fired.emplace_back(gi, at);
      d.decided_ms = NowMs();
      d.json = d.ToJson();
      out->push_back(std::move(d));
    }
  }
  state->newest = std::max(state->newest, e.ts);
}

void DecisionEngine::TakeBack(const Undo& u, RuleState* s) const {
  for (auto it = u.fired.rbegin(); it != u.fired.rend(); ++it) {
    auto& fired = s->groups[it->first].fired;
    auto f = std::lower_bound(fired.begin(), fired.end(), it->second);
    if (f != fired.end() && *f == it->second) fired.erase(f);
  }
  for (auto it = u.seen.rbegin(); it != u.seen.rend(); ++it) {
    auto& seen = s->groups[it->first].seen;
    seen.erase(seen.begin() + static_cast<ptrdiff_t>(it->second));
  }
  s->groups.resize(u.groups);
  s->newest = u.newest;
}

void DecisionEngine::Prune(const DecisionRules& rules, RuleState* s) const {
  auto& groups = s->groups;
  for (auto& g : groups) {
    const DecisionRuleSpec* r = rules.Find(g.rule);
    if (!r) {  // a rule removed by a reload
      g.seen.clear();
      g.fired.clear();
      continue;
    }
    TimestampMs events_from = s->newest - 2 * r->within_ms;  // a late event's partners
    g.seen.erase(g.seen.begin(), std::lower_bound(g.seen.begin(), g.seen.end(), RuleState::Seen{events_from, 0, false, {}, {}}));
    // Only an event at most `within` behind the newest can still close a match (a late
    // event that completes it is no older than that): the older ones keep time and hash.
    for (auto& e : g.seen) {
      if (e.ts >= s->newest - r->within_ms) break;
      e.event_id.clear();
      e.payload.clear();
    }
    TimestampMs fired_from = s->newest - r->HorizonMs();
    g.fired.erase(g.fired.begin(), std::lower_bound(g.fired.begin(), g.fired.end(), fired_from));
  }
  std::erase_if(groups, [](const RuleState::Group& g) { return g.seen.empty() && g.fired.empty(); });
  const size_t cap = config_.section<DecisionsConfig>().max_entries_per_user;
  size_t n = s->entries();
  if (n <= cap) return;
  // Over the cap: drop the oldest events (across groups) until it fits.
  std::vector<TimestampMs> times;
  for (const auto& g : groups) {
    for (const auto& e : g.seen) times.push_back(e.ts);
  }
  size_t drop = std::min(times.size(), n - cap);
  if (drop == 0) return;
  std::nth_element(times.begin(), times.begin() + static_cast<ptrdiff_t>(drop - 1), times.end());
  TimestampMs cut = times[drop - 1];
  for (auto& g : groups) std::erase_if(g.seen, [&](const RuleState::Seen& e) { return e.ts <= cut; });
  std::erase_if(groups, [](const RuleState::Group& g) { return g.seen.empty() && g.fired.empty(); });
}

bool DecisionEngine::ProfileOk(const DecisionRuleSpec& rule, const Event& e, std::span<const Action> pending) {
  if (rule.profile.empty()) return true;
  const std::string uid(e.PartitionKey());
  auto cached = profile_cache_.find(uid);
  if (cached == profile_cache_.end()) {
    auto got = profiles_->Get(uid, {}, NowMs());
    if (!got.ok()) {
      profile_error_ = got.status();
      return false;
    }
    cached = profile_cache_.emplace(uid, std::move(got).value()).first;
    if (pending_by_uid_.empty()) {
      for (size_t i = 0; i < pending.size(); ++i) pending_by_uid_.emplace(pending[i].uid, i);
    }
  }
  const Profile& p = cached->second;
  std::string json, text;
  for (const ProfileTest& t : rule.profile) {
    const TagConfig* cfg = config_.tags.Find(t.tag);
    if (!cfg) return false;
    fusion::TagState st;
    st.type = cfg->type;
    auto it = std::lower_bound(p.tags.begin(), p.tags.end(), t.tag, [](const TagValue& v, const std::string& n) { return v.name < n; });
    if (it != p.tags.end() && it->name == t.tag) st = it->state;
    auto [from, to] = pending_by_uid_.equal_range(uid);
    std::vector<size_t> mine;
    for (auto i = from; i != to; ++i) {
      if (pending[i->second].tag == t.tag) mine.push_back(i->second);
    }
    std::sort(mine.begin(), mine.end());
    for (size_t i : mine) fusion::Apply(st, pending[i], *cfg);
    bool present = st.present;
    if (present && t.key) {
      if (!EvalTemplate(*t.key, e, &json, &text)) return false;  // the event lacks what the test reads
      present = cfg->type == TagType::kMap ? st.map.count(text) > 0 : st.members.count(json) > 0;
    } else if (present) {
      switch (cfg->type) {
        case TagType::kNumber: present = st.number != 0; break;
        case TagType::kMap: present = !st.map.empty(); break;
        case TagType::kSet: present = !st.members.empty(); break;
        case TagType::kList: present = !st.items.empty(); break;
        case TagType::kString: present = !st.text.empty(); break;
      }
    }
    if (present != t.present) return false;
  }
  return true;
}

Status DecisionEngine::LoadStates() {
  touched_.clear();
  std::vector<std::string> missing;
  {
    std::unordered_map<std::string_view, bool> batch_users;
    for (const Event& e : events_) {
      if (!batch_users.emplace(e.PartitionKey(), true).second) continue;
      touched_.emplace_back(e.PartitionKey());
      if (!states_.count(touched_.back())) missing.push_back(touched_.back());
    }
  }
  if (missing.empty()) return Status::Ok();
  std::vector<std::string> states;
  RETURN_IF_ERROR(store_->ReadRuleStates(missing, &states));
  for (size_t i = 0; i < missing.size(); ++i) {
    RuleState& st = states_[missing[i]];
    if (states[i].empty()) continue;
    if (Status ds = DecodeRuleState(states[i], &st); !ds.ok()) {
      spdlog::error("decisions: rule state of {}: {}; starting it afresh", missing[i], ds.ToString());
      st = RuleState();
    }
  }
  return Status::Ok();
}

Status DecisionEngine::Evaluate(const DecisionRules& rules, std::span<const Action> pending, std::vector<Decision>* out) {
  profile_cache_.clear();
  pending_by_uid_.clear();
  profile_error_ = Status::Ok();
  if (!loaded_) {
    RETURN_IF_ERROR(LoadStates());
    loaded_ = true;
  }
  RuleState* state = nullptr;
  std::string_view state_of;
  auto profile_ok = [&](const DecisionRuleSpec& r, const Event& ev, const Decision&) { return ProfileOk(r, ev, pending); };
  for (; next_ < events_.size(); ++next_) {
    const Event& e = events_[next_];
    if (!state || state_of != e.PartitionKey()) {
      state = &states_.find(std::string(e.PartitionKey()))->second;
      state_of = e.PartitionKey();
    }
    const size_t first = out->size();
    Apply(rules, e, state, profile_ok, out);
    if (!profile_error_.ok()) {  // this event is taken back; a retry starts with it
      TakeBack(undo_, state);
      out->resize(first);
      return profile_error_.WithContext("decisions: reading the profile of " + std::string(e.PartitionKey()));
    }
  }
  return Status::Ok();
}

Status DecisionEngine::Recover(const DecisionRules& rules, const std::function<bool(const Decision&)>& published) {
  RETURN_IF_ERROR(LoadStates());
  std::vector<Decision> out;
  auto decided = [&](const DecisionRuleSpec&, const Event&, const Decision& d) { return published(d); };
  for (const Event& e : events_) {
    Apply(rules, e, &states_.find(std::string(e.PartitionKey()))->second, decided, &out);
    out.clear();
  }
  for (const std::string& uid : touched_) {
    Prune(rules, &states_[uid]);
    unsaved_.insert(uid);
  }
  touched_.clear();
  tally_ = Tally();  // counted when they were first processed
  Clear();
  return Status::Ok();
}

void DecisionEngine::BeginSave() {
  for (auto& uid : unsaved_) saving_.insert(uid);
  unsaved_.clear();
}

Status DecisionEngine::Commit(const DecisionRules& rules, std::span<const Decision> decided, SaveMode save) {
  std::vector<RuleStateWrite> writes;
  int64_t entries = 0;
  auto write = [&](const std::string& uid) {
    RuleState& st = states_[uid];
    RuleStateWrite& w = writes.emplace_back();
    w.uid = uid;
    if (!st.groups.empty()) EncodeRuleState(st, &w.state);
  };
  for (const std::string& uid : touched_) {
    RuleState& st = states_[uid];
    Prune(rules, &st);
    entries += static_cast<int64_t>(st.entries());
    if (lazy_) unsaved_.insert(uid);
    else write(uid);
  }
  if (lazy_ && (save == SaveMode::kBegin || save == SaveMode::kAll)) BeginSave();
  if (lazy_ && save == SaveMode::kAll) {
    writes.reserve(saving_.size());
    for (const std::string& uid : saving_) write(uid);
  } else if (lazy_ && save != SaveMode::kNone) {
    // A slice of the round: each state written is the newest, so it also covers changes
    // made since the round began.
    // As many as the batch changed (at least 256; an idle call kSaveSlice): a round costs
    // a batch no more than writing its own states would.
    const size_t slice = touched_.empty() ? kSaveSlice : std::max<size_t>(256, touched_.size());
    size_t n = 0;
    for (auto it = saving_.begin(); it != saving_.end() && n < slice; ++it, ++n) write(*it);
  }
  std::vector<StoredDecision> stored;
  stored.reserve(decided.size());
  for (const Decision& d : decided) stored.push_back({d.uid, d.id, d.at, d.json});
  if (!writes.empty() || !stored.empty()) {
    RETURN_IF_ERROR(store_->WriteRuleStates(writes, rules.StateTtlMs(), stored, config_.section<DecisionsConfig>()));
  }
  state_entries_->Set(entries);
  if (lazy_ && save != SaveMode::kNone) {
    for (const RuleStateWrite& w : writes) {
      saving_.erase(w.uid);
      unsaved_.erase(w.uid);
    }
  }
  if (states_.size() > cache_users_ && (!lazy_ || (unsaved_.empty() && saving_.empty()))) {
    states_.clear();  // over the cache's bound (or no cache): read them again when they come back
  } else {
    for (const RuleStateWrite& w : writes) {
      if (w.state.empty()) states_.erase(w.uid);
    }
  }
  touched_.clear();
  Clear();
  return Status::Ok();
}

}  // namespace portrait
