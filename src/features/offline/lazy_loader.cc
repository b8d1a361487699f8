#include "features/offline/lazy_loader.h"

#include "core/dates.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <map>

#include "ingest/operand.h"
#include "features/offline/offline_config.h"

namespace portrait {

bool OfflineRowToActions(simdjson::dom::element row, const TagRegistry& tags, const std::string& uid,
                         TimestampMs as_of, bool strict, std::vector<Action>* out, size_t* unknown,
                         std::string* problem) {
  simdjson::dom::object obj;
  if (row.get_object().get(obj)) {
    *problem = "an offline profile must be a JSON object {\"tag\": value, ...}, not " +
               std::string(JsonTypeName(row.type()));
    return false;
  }
  size_t first = out->size();
  for (auto field : obj) {
    const TagConfig* cfg = tags.FindDeclared(field.key);
    if (!cfg) {
      if (strict) {
        *problem = "tag \"" + std::string(field.key) + "\" is not declared in the config";
        out->resize(first);
        return false;
      }
      ++*unknown;
      continue;
    }
    if (field.value.is_null()) continue;  // no offline value for this user
    Action a;
    a.uid = uid;
    a.tag = cfg->name;
    a.op = cfg->load;
    a.ts = as_of;
    a.source = Source::kOffline;
    simdjson::dom::element value = field.value;
    BodyError err;
    if (!ReadOperand(*cfg, &value, nullptr, nullptr, &a, &err)) {
      *problem = "tag \"" + cfg->name + "\": " + err.message;
      out->resize(first);
      return false;
    }
    out->push_back(std::move(a));
  }
  return true;
}

LazyLoader::LazyLoader(const Config& config, ProfileStore* store, SnapshotCatalog* catalog, ErasureList* erasures,
                       MetricsRegistry* m)
    : config_(config), store_(store), catalog_(catalog), erasures_(erasures) {
  triggers_ = config.section<LazyLoadConfig>().triggers;
  const char* help = "Lazy loads of offline profiles on trigger events, by result";
  erased_ = m->GetCounter("portrait_lazy_loads_total", help, "result=\"erased\"");
  loaded_ = m->GetCounter("portrait_lazy_loads_total", help, "result=\"loaded\"");
  absent_ = m->GetCounter("portrait_lazy_loads_total", help, "result=\"absent\"");
  current_ = m->GetCounter("portrait_lazy_loads_total", help, "result=\"already_loaded\"");
  errors_ = m->GetCounter("portrait_lazy_load_errors_total", "Offline profiles that could not be read (tried again at the next trigger)");
  unknown_tags_ = m->GetCounter("portrait_lazy_load_unknown_tags_total", "Snapshot columns naming tags no longer in the config");
  seconds_ = m->GetHistogram("portrait_lazy_load_seconds", "Time to resolve the triggers of one processor batch");
}

Status LazyLoader::Load(std::span<const LoadTrigger> triggers, std::vector<Action>* out) {
  if (triggers.empty()) return Status::Ok();
  auto start = std::chrono::steady_clock::now();
  if (Status st = catalog_->Refresh(); !st.ok()) {
    spdlog::warn("lazy load: cannot read the completion log: {}", st.ToString());
  }
  // One decision per user: the latest trigger of the batch decides the day.
  std::map<std::string_view, const LoadTrigger*> latest;
  for (const auto& t : triggers) {
    auto [it, fresh] = latest.emplace(t.uid, &t);
    if (!fresh && t.ts >= it->second->ts) it->second = &t;
  }
  std::vector<std::string> uids;
  std::vector<const LoadTrigger*> which;
  std::vector<SnapshotInfo> wanted;
  if (erasures_) {
    if (Status st = erasures_->Refresh(); !st.ok()) return st;  // retried: never load past an unread erasure
  }
  for (const auto& [uid, t] : latest) {
    auto s = catalog_->NewestBefore(DateOf(t->ts));
    if (!s) continue;
    if (erasures_) {
      // A snapshot completed before the user's erasure still holds the user's old row.
      auto erased = erasures_->ErasedAt(uid);
      if (erased && ParseIsoUtcMs(s->completed_at).value_or(INT64_MIN) <= *erased) {
        erased_->Inc();
        continue;
      }
    }
    uids.emplace_back(uid);
    which.push_back(t);
    wanted.push_back(std::move(*s));
  }
  if (uids.empty()) return Status::Ok();
  ASSIGN_OR_RETURN(auto marks, store_->GetSnapshotMarks(uids));
  std::vector<Action> actions;
  for (size_t i = 0; i < uids.size(); ++i) {
    const SnapshotInfo& s = wanted[i];
    std::string mark = s.Mark();
    // Only a newer snapshot loads: a trigger of an earlier day (a late event) must not bring
    // an older snapshot's values back over a newer one's.
    if (!marks[i].empty() && !SnapshotMarkLess(marks[i], mark)) {
      current_->Inc();
      continue;
    }
    auto row = catalog_->Lookup(s, uids[i]);
    if (!row.ok()) {
      errors_->Inc();
      spdlog::error("lazy load of {}: {}", uids[i], row.status().ToString());
      continue;
    }
    actions.clear();
    if (*row) {
      simdjson::dom::element doc;
      std::string problem;
      size_t unknown = 0;
      if (parser_.parse(**row).get(doc) ||
          !OfflineRowToActions(doc, config_.tags, uids[i], SnapshotAsOf(s.date), false, &actions, &unknown, &problem)) {
        errors_->Inc();
        spdlog::error("lazy load of {} from snapshot {}: {}", uids[i], mark, problem.empty() ? "not JSON" : problem);
        continue;
      }
      unknown_tags_->Inc(unknown);
      loaded_->Inc();
    } else {
      absent_->Inc();
    }
    actions.push_back(SnapshotLoadedMark(uids[i], mark, SnapshotAsOf(s.date)));
    for (Action& a : actions) {
      a.partition = which[i]->partition;
      a.offset = which[i]->offset;
      out->push_back(std::move(a));
    }
  }
  seconds_->Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return Status::Ok();
}

}  // namespace portrait
