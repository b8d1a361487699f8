#include "features/segments/segments_stage.h"

#include <simdjson.h>
#include <spdlog/spdlog.h>
#include <xxhash.h>

#include <algorithm>
#include <unordered_map>

#include "core/event.h"
#include "core/json.h"
#include "fusion/fusion.h"

namespace portrait {
namespace {

constexpr Namespace kNamespaces[] = {
    {"segments", "the segments the user is a member of, and since when"},
};

// The profile's tag `name`, added (empty, in name order) when missing.
fusion::TagState& TagOf(Profile& p, const std::string& name) {
  auto it = std::lower_bound(p.tags.begin(), p.tags.end(), name,
                             [](const TagValue& v, const std::string& n) { return v.name < n; });
  if (it == p.tags.end() || it->name != name) it = p.tags.insert(it, TagValue{name, {}});
  return it->state;
}

// A change's id: the same for the same (segment, user, change, position), whatever bytes the
// user id holds, so a change made again after a crash is recognised downstream.
std::string ChangeId(std::string_view segment, std::string_view uid, bool entered, std::string_view suffix) {
  std::string key;
  for (std::string_view part : {segment, uid, entered ? std::string_view("enter") : std::string_view("leave"), suffix}) {
    key += std::to_string(part.size());
    key += ':';
    key += part;
  }
  XXH128_hash_t h = XXH3_128bits(key.data(), key.size());
  char buf[40];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(h.high64),
                static_cast<unsigned long long>(h.low64));
  return buf;
}

}  // namespace

const SegmentDef* SegmentSet::Find(std::string_view name) const {
  for (const SegmentDef& d : defs) {
    if (d.name == name) return &d;
  }
  return nullptr;
}

std::string SegmentChange::ToJson() const {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("id").String(id).Key("segment").String(segment).Key("uid").String(uid);
  w.Key("change").String(entered ? "enter" : "leave").Key("at").Int(at).Key("reason").String(reason).EndObject();
  return out;
}

std::string_view SegmentChangeIdOf(std::string_view json) {
  // ToJson writes "id" first: hex digits, no escapes.
  constexpr std::string_view kHead = "{\"id\":\"";
  if (!json.starts_with(kHead)) return {};
  size_t end = json.find('"', kHead.size());
  return end == std::string_view::npos ? std::string_view() : json.substr(kHead.size(), end - kHead.size());
}

SegmentsCore::SegmentsCore(const Config& config, ProfileStore* profiles, std::unique_ptr<SegmentStore> store,
                           std::unique_ptr<Log> topic, LiveFeed* feed, MetricsRegistry* m)
    : config_(config), profiles_(profiles), store_(std::move(store)), topic_(std::move(topic)), feed_(feed) {
  entered_ = m->GetCounter("portrait_segment_entered_total", "Users who entered a segment");
  left_ = m->GetCounter("portrait_segment_left_total", "Users who left a segment");
  evaluated_ = m->GetCounter("portrait_segment_evaluations_total", "Users whose segments were evaluated");
  SetSegments(config.section<SegmentsConfig>().segments);
}

void SegmentsCore::SetSegments(std::vector<SegmentDef> defs) {
  auto set = std::make_shared<SegmentSet>();
  set->tags = SegmentTags(defs);
  set->defs = std::move(defs);
  std::atomic_store(&segments_, std::shared_ptr<const SegmentSet>(std::move(set)));
}

void SegmentsCore::MarkStale(std::string segment) {
  std::lock_guard lk(stale_mu_);
  stale_.push_back(std::move(segment));
}

Status SegmentsCore::Publish(std::vector<SegmentChange>& changes) {
  if (changes.empty()) return Status::Ok();
  std::vector<std::string> payloads;
  std::vector<LogEntry> entries;
  for (const SegmentChange& c : changes) payloads.push_back(c.ToJson());
  for (size_t i = 0; i < changes.size(); ++i) {
    entries.push_back({PartitionFor(changes[i].uid, topic_->partitions()), payloads[i]});
  }
  RETURN_IF_ERROR(topic_->Append(entries));
  for (const SegmentChange& c : changes) (c.entered ? entered_ : left_)->Inc();
  if (feed_) {
    for (const std::string& p : payloads) feed_->Publish(p);
  }
  return Status::Ok();
}

void SegmentsCore::Pending(std::span<const std::string> uids) {
  std::lock_guard lk(mu_);
  for (const std::string& u : uids) ++pending_[u];
}

void SegmentsCore::Written(std::span<const std::string> uids) {
  std::lock_guard lk(mu_);
  for (const std::string& u : uids) {
    auto it = pending_.find(u);
    if (it != pending_.end() && --it->second <= 0) pending_.erase(it);
  }
}

Status SegmentsCore::Erase(std::string_view uid) {
  std::lock_guard lk(mu_);
  return store_->EraseUser(uid);
}

Status SegmentsCore::Evaluate(std::span<const std::string> uids, std::vector<Profile>& profiles, TimestampMs now,
                              std::string_view id_suffix, std::string_view reason) {
  std::lock_guard lk(mu_);
  return EvaluateLocked(uids, profiles, now, id_suffix, reason);
}

Status SegmentsCore::EvaluateLocked(std::span<const std::string> uids, std::vector<Profile>& profiles, TimestampMs now,
                                    std::string_view id_suffix, std::string_view reason) {
  auto set = segments();
  ASSIGN_OR_RETURN(auto current, store_->Get(uids));
  std::vector<SegmentWrite> writes;
  std::vector<SegmentChange> changes;
  for (size_t i = 0; i < uids.size(); ++i) {
    for (const SegmentDef& def : set->defs) {
      const Membership m = EvaluateSegment(def, profiles[i], config_.tags, now);
      auto old = current[i].find(def.name);
      const bool was = old != current[i].end();
      if (!m.member && !was) continue;
      if (m.member && was && old->second.recheck_at == m.recheck_at) continue;
      SegmentWrite w{uids[i], def.name, m.member, {was ? old->second.since : now, m.recheck_at},
                     was ? old->second.recheck_at : 0};
      writes.push_back(w);
      if (m.member != was) {
        changes.push_back({ChangeId(def.name, uids[i], m.member, id_suffix), def.name, uids[i], m.member, now,
                           std::string(reason)});
      }
    }
    // A segment no longer declared (a reload removed it): its members leave.
    for (const auto& [name, entry] : current[i]) {
      if (set->Find(name)) continue;
      writes.push_back({uids[i], name, false, {}, entry.recheck_at});
      changes.push_back({ChangeId(name, uids[i], false, id_suffix), name, uids[i], false, now, "reload"});
    }
  }
  evaluated_->Inc(uids.size());
  // The changes are durable in the topic before the membership says they happened: a crash
  // between the two makes them again, with the same ids.
  RETURN_IF_ERROR(Publish(changes));
  return store_->Write(writes);
}

Status SegmentsCore::Recheck(TimestampMs now, const std::function<bool(std::string_view)>& held, size_t* checked) {
  *checked = 0;
  auto set = segments();
  std::vector<std::string> stale;
  {
    std::lock_guard lk(stale_mu_);
    stale.swap(stale_);
  }
  std::vector<std::string> uids;
  std::string suffix = "t" + std::to_string(now);
  for (const SegmentDef& def : set->defs) {
    ASSIGN_OR_RETURN(auto due, store_->Due(def.name, now, 10000));
    for (std::string& u : due) uids.push_back(std::move(u));
  }
  for (const std::string& name : stale) {
    for (std::string after;;) {
      ASSIGN_OR_RETURN(auto page, store_->Members(name, after, 10000));
      if (page.empty()) break;
      after = page.back();
      for (std::string& u : page) uids.push_back(std::move(u));
    }
  }
  std::sort(uids.begin(), uids.end());
  uids.erase(std::unique(uids.begin(), uids.end()), uids.end());
  std::erase_if(uids, [&](const std::string& u) { return held && !held(u); });
  if (uids.empty()) return Status::Ok();
  // Under the membership lock, profiles read there: a batch evaluated but not written yet
  // (its users pending) would be undone by the profile from before it, so those users wait
  // for the next round; an erasure cannot slip between the read and the write.
  std::lock_guard lk(mu_);
  std::erase_if(uids, [&](const std::string& u) { return pending_.count(u) > 0; });
  for (size_t at = 0; at < uids.size(); at += 500) {
    std::span<const std::string> chunk(uids.data() + at, std::min<size_t>(500, uids.size() - at));
    ASSIGN_OR_RETURN(auto profiles, profiles_->GetMany(chunk, set->tags, now));
    RETURN_IF_ERROR(EvaluateLocked(chunk, profiles, now, suffix, stale.empty() ? "time" : "reload"));
    *checked += chunk.size();
  }
  return Status::Ok();
}

std::span<const Namespace> SegmentsStage::namespaces() const { return kNamespaces; }

void SegmentsStage::OnRecord(const Record& r, Batch&) {
  last_partition_ = r.partition;
  last_offset_ = r.offset;
}

Status SegmentsStage::BeforeWrite(Batch& batch) {
  auto set = core_->segments();
  if (set->defs.empty() || batch.actions.empty()) return Status::Ok();
  // The users whose Actions touch a tag the segments read, with those Actions in order.
  std::vector<std::string> uids;
  std::unordered_map<std::string_view, size_t> index;
  for (const Action& a : batch.actions) {
    if (!std::binary_search(set->tags.begin(), set->tags.end(), a.tag)) continue;
    if (index.emplace(a.uid, uids.size()).second) uids.push_back(a.uid);
  }
  if (uids.empty()) return Status::Ok();
  if (now_ == 0) now_ = NowMs();  // a retry evaluates at the same time
  const TimestampMs now = now_;
  if (evaluated_.empty()) {
    evaluated_ = uids;
    core_->Pending(evaluated_);
  }
  ASSIGN_OR_RETURN(auto profiles, core_->profiles()->GetMany(uids, set->tags, now));
  for (const Action& a : batch.actions) {
    auto it = index.find(a.uid);
    if (it == index.end() || !std::binary_search(set->tags.begin(), set->tags.end(), a.tag)) continue;
    const TagConfig* cfg = core_->tags().Find(a.tag);
    if (!cfg) continue;
    Action applied = a;
    if (applied.written_ms == 0) applied.written_ms = now;
    fusion::Apply(TagOf(profiles[it->second], a.tag), applied, *cfg);
  }
  return core_->Evaluate(uids, profiles, now,
                         std::to_string(last_partition_.value) + "-" + std::to_string(last_offset_.value), "profile");
}

void SegmentsStage::AfterWrite(const Batch&) {
  core_->Written(evaluated_);
  evaluated_.clear();
}

Status SegmentsStage::Erase(const Erasure& e) {
  for (const std::string& id : e.ids) RETURN_IF_ERROR(core_->Erase(id));
  return Status::Ok();
}

Result<std::vector<std::string>> SegmentsStage::Holding(std::string_view id) {
  const std::string one[] = {std::string(id)};
  ASSIGN_OR_RETURN(auto all, core_->store()->Get(one));
  if (all[0].empty()) return std::vector<std::string>{};
  return std::vector<std::string>{"segments"};
}

}  // namespace portrait
