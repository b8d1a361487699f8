#include "features/consistency/consistency_report.h"

#include <simdjson.h>
#include <spdlog/spdlog.h>
#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <unordered_set>

#include "core/dates.h"
#include "core/erasure_list.h"
#include "core/event.h"
#include "core/json.h"
#include "features/consistency/consistency_config.h"
#include "log/archive/archive_files.h"

namespace portrait {
namespace {

constexpr size_t kChunk = 500;  // users read from the store at once

struct Run {
  const Config& config;
  ProfileStore* store;
  const ConsistencyOptions& options;
  std::vector<const TagConfig*> tags;
  std::vector<std::string> names;  // of `tags`, for GetMany
  ConsistencyReport* report;
  const ErasureList* erasures = nullptr;
  TimestampMs day_start = 0;

  // Users waiting to be compared, with their snapshot row ("" when they have none).
  std::vector<std::string> uids, rows;

  // An erasure on D or later: real time forgot the user, an older snapshot row did not.
  bool Skip(std::string_view uid) const {
    if (!InSample(uid, options.sample)) return true;
    if (!erasures) return false;
    auto at = erasures->ErasedAt(uid);
    return at && *at >= day_start;
  }

  Status Add(std::string_view uid, std::string_view row) {
    uids.emplace_back(uid);
    rows.emplace_back(row);
    return uids.size() >= kChunk ? Flush() : Status::Ok();
  }

  Status Flush() {
    if (uids.empty()) return Status::Ok();
    ASSIGN_OR_RETURN(auto profiles, store->GetMany(uids, names, report->tags.front().window.as_of));
    simdjson::dom::parser parser;
    for (size_t u = 0; u < uids.size(); ++u) {
      simdjson::dom::object row;
      const bool has_row = !rows[u].empty();
      if (has_row && parser.parse(rows[u]).get_object().get(row)) {
        return Status::Corruption("snapshot " + report->snapshot.Mark() + ": the row of \"" + uids[u] +
                                  "\" is not a JSON object");
      }
      for (size_t t = 0; t < tags.size(); ++t) {
        const fusion::TagState* rt = nullptr;
        for (const TagValue& tv : profiles[u].tags) {
          if (tv.name == tags[t]->name) rt = &tv.state;
        }
        std::optional<std::string> off;
        simdjson::dom::element v;
        if (has_row && !row[tags[t]->name].get(v)) off = simdjson::minify(v);
        TagTally& tally = report->tags[t];
        tally.Add(uids[u], CompareTag(*tags[t], tally.window, rt, off), options.examples);
      }
    }
    uids.clear();
    rows.clear();
    return Status::Ok();
  }
};

// The users with an archived event on `date` (uid, or device_id without one), sampled.
Status ArchiveUsers(const Config& config, const std::string& date, const Run& run,
                    std::unordered_set<std::string>* out, bool* read) {
  auto parts = ListArchive(ArchiveDir(config), date, date);
  if (!parts.ok()) return parts.status();
  *read = !parts->empty();
  simdjson::dom::parser parser;
  std::string buf;
  for (const auto& [_, files] : *parts) {
    for (const std::string& path : files) {
      RETURN_IF_ERROR(ReadGzip(path, &buf));
      simdjson::dom::document_stream stream;
      if (auto err = parser.parse_many(buf, std::max<size_t>(1 << 20, simdjson::dom::DEFAULT_BATCH_SIZE)).get(stream)) {
        return Status::Corruption(path + ": " + simdjson::error_message(err));
      }
      for (auto doc : stream) {
        simdjson::dom::object o;
        if (doc.get_object().get(o)) continue;  // the batch warns about such lines
        std::string_view uid;
        if (o["uid"].get(uid) || uid.empty()) {
          if (o["device_id"].get(uid)) continue;
        }
        if (!uid.empty() && !run.Skip(uid)) out->emplace(uid);
      }
    }
  }
  return Status::Ok();
}

void WriteTally(JsonWriter& w, const TagTally& t) {
  auto optional = [&](const char* key, std::optional<double> v) {
    w.Key(key);
    if (v) w.Number(*v);
    else w.Null();
  };
  w.BeginObject();
  w.Key("tag").String(t.tag);
  w.Key("type").String(TagTypeName(t.type));
  w.Key("users").Int(static_cast<int64_t>(t.users()));
  for (Outcome o : kOutcomes) w.Key(OutcomeName(o)).Int(static_cast<int64_t>(t.count(o)));
  w.Key("ratios").BeginObject();
  for (Outcome o : kOutcomes) w.Key(OutcomeName(o)).Number(t.ratio(o));
  w.EndObject();
  optional("overlap", t.mean_overlap());
  optional("rank_distance", t.mean_rank_distance());
  w.Key("window").BeginObject();
  w.Key("to").String(FormatIsoUtc(t.window.as_of));
  if (t.window.from != INT64_MIN) w.Key("from").String(FormatIsoUtc(t.window.from));
  w.Key("time_sorted").Bool(t.window.time_sorted);
  w.EndObject();
  w.Key("worst").BeginArray();
  for (const ConsistencyExample& e : t.worst) {
    const TagComparison& c = e.comparison;
    w.BeginObject();
    w.Key("uid").String(e.uid);
    w.Key("outcome").String(OutcomeName(c.outcome));
    w.Key("realtime");
    if (c.realtime.empty()) w.Null();
    else w.Raw(c.realtime);
    w.Key("offline");
    if (c.offline.empty()) w.Null();
    else w.Raw(c.offline);
    if (c.overlap >= 0) w.Key("overlap").Number(c.overlap);
    if (c.rank_distance >= 0) w.Key("rank_distance").Number(c.rank_distance);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
}

}  // namespace

bool InSample(std::string_view uid, double sample) {
  if (sample >= 1) return true;
  // The top 53 bits as a share in [0, 1); seeded apart from the log's partition hash.
  const uint64_t h = XXH3_64bits_withSeed(uid.data(), uid.size(), 0x636f6e73);
  return static_cast<double>(h >> 11) * 0x1.0p-53 < sample;
}

Result<ConsistencyReport> RunConsistency(const Config& config, ProfileStore* store, const std::string& date,
                                         const ConsistencyOptions& options) {
  auto t0 = std::chrono::steady_clock::now();
  auto day = DayStartMs(date);
  if (!day) return Status::InvalidArgument("date must be YYYY-MM-DD, got \"" + date + "\"");
  if (!(options.sample > 0 && options.sample <= 1)) {
    return Status::InvalidArgument("sample must be above 0 and at most 1 (0.01 = one user in 100), got " +
                                   std::to_string(options.sample));
  }
  if (!store) return Status::FailedPrecondition("consistency: no profile store");
  ConsistencyReport report;
  report.date = date;
  report.sample = options.sample;
  Run run{config, store, options, TagsInBothLayers(config), {}, &report, nullptr, 0, {}, {}};
  if (run.tags.empty()) {
    return Status::FailedPrecondition(
        "no tag is computed in both layers: a tag with offline = { window = \"30d\" } that also has a real-time rule "
        "(in " + config.path + "); nothing to compare");
  }
  const TimestampMs as_of = SnapshotAsOf(date);
  for (const TagConfig* t : run.tags) {
    run.names.push_back(t->name);
    TagTally tally;
    tally.tag = t->name;
    tally.type = t->type;
    tally.window = WindowFor(config, *t, as_of);
    report.tags.push_back(std::move(tally));
  }
  run.day_start = *day;

  const std::string dir = ConsistencySnapshotDir(config);
  SnapshotCatalog catalog(dir);
  RETURN_IF_ERROR(catalog.Refresh());
  auto snapshot = catalog.NewestOf(date);
  if (!snapshot) {
    return Status::NotFound("no complete snapshot of " + date + " in " + dir + "; run `portrait batch --date " + date +
                            "` first (`portrait snapshot list` shows the snapshots there)");
  }
  report.snapshot = *snapshot;
  ASSIGN_OR_RETURN(auto erasures, ErasureList::Open(ErasureListPath(config)));
  run.erasures = erasures->empty() ? nullptr : erasures.get();

  RETURN_IF_ERROR(catalog.ForEach(*snapshot, [&](std::string_view uid, std::string_view row) -> Status {
    if (run.Skip(uid)) return Status::Ok();
    ++report.snapshot_users;
    return run.Add(uid, row);
  }));
  RETURN_IF_ERROR(run.Flush());

  std::unordered_set<std::string> active;
  RETURN_IF_ERROR(ArchiveUsers(config, date, run, &active, &report.archive_read));
  if (!report.archive_read) {
    spdlog::warn("consistency {}: no archived event of the day in {}: only the snapshot's users are compared", date,
                 ArchiveDir(config));
  }
  std::vector<std::string> sorted(active.begin(), active.end());
  std::sort(sorted.begin(), sorted.end());  // the same order, so the same examples, every run
  for (const std::string& uid : sorted) {
    ASSIGN_OR_RETURN(auto row, catalog.Lookup(*snapshot, uid));
    if (row) continue;  // compared above
    ++report.archive_only_users;
    RETURN_IF_ERROR(run.Add(uid, ""));
  }
  RETURN_IF_ERROR(run.Flush());
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

std::string ConsistencyReport::ToJson() const {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject();
  w.Key("date").String(date);
  w.Key("snapshot").BeginObject().Key("date").String(snapshot.date).Key("version").Int(snapshot.version).EndObject();
  w.Key("sample").Number(sample);
  w.Key("users").BeginObject();
  w.Key("snapshot").Int(static_cast<int64_t>(snapshot_users));
  w.Key("archive_only").Int(static_cast<int64_t>(archive_only_users));
  w.EndObject();
  w.Key("archive_read").Bool(archive_read);
  w.Key("seconds").Number(seconds);
  w.Key("tags").BeginArray();
  for (const TagTally& t : tags) WriteTally(w, t);
  w.EndArray();
  w.EndObject();
  return out;
}

void RecordConsistency(const ConsistencyReport& report, MetricsRegistry* metrics) {
  metrics->GetCounter("portrait_consistency_reports_total",
                      "Consistency reports made (portrait consistency, the schedule or the API)")
      ->Inc();
  for (const TagTally& t : report.tags) {
    const std::string tag = "tag=\"" + t.tag + "\"";
    metrics->GetGauge("portrait_consistency_compared_users",
                      "Last consistency report: users with a value of the tag in real time or in the snapshot", tag)
        ->Set(static_cast<int64_t>(t.users()));
    for (Outcome o : kOutcomes) {
      metrics->GetGauge("portrait_consistency_users",
                        "Last consistency report: users per tag and outcome (equal, missing: only in the snapshot, "
                        "extra: only in real time, different, later: real time wrote it after the day)",
                        tag + ",outcome=\"" + std::string(OutcomeName(o)) + "\"")
          ->Set(static_cast<int64_t>(t.count(o)));
    }
    metrics->GetGauge("portrait_consistency_equal_ppm",
                      "Last consistency report: users equal in both layers, per million users compared", tag)
        ->Set(static_cast<int64_t>(t.ratio(Outcome::kEqual) * 1e6 + 0.5));
  }
}

}  // namespace portrait
