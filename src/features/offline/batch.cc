#include "features/offline/batch.h"

#include "core/erasure_list.h"

#include <simdjson.h>
#include <spdlog/fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <filesystem>
#include <unordered_map>

#include "log/archive/archive_files.h"
#include "core/event.h"
#include "core/json.h"
#include "fusion/fusion.h"
#include "fusion/rules.h"
#include "features/offline/offline_config.h"

namespace portrait {

namespace fs = std::filesystem;

namespace {

bool ReadString(simdjson::dom::object& o, std::string_view key, std::string* out) {
  std::string_view v;
  if (o[key].get(v)) return false;
  out->assign(v);
  return true;
}

// One archived line (EventToJson's form) into `e` when its type is one of `types`; 0 if
// it is skipped, -1 if it is not an event. Reuses `e`'s strings, as most lines are alike.
int ParseArchived(simdjson::dom::element doc, const std::vector<std::string>& types, Event* e) {
  simdjson::dom::object o;
  std::string_view type;
  if (doc.get_object().get(o) || o["type"].get(type) || o["ts"].get(e->ts)) return -1;
  if (std::find(types.begin(), types.end(), type) == types.end()) return 0;
  e->type.assign(type);
  e->uid.clear();
  e->device_id.clear();
  e->product.clear();
  e->channel.clear();
  e->id.clear();
  ReadString(o, "id", &e->id);
  ReadString(o, "uid", &e->uid);
  ReadString(o, "device_id", &e->device_id);
  ReadString(o, "product", &e->product);
  ReadString(o, "channel", &e->channel);
  if (e->PartitionKey().empty()) return -1;
  size_t n = 0;
  simdjson::dom::object props;
  if (!o["props"].get(props)) {
    for (auto f : props) {
      if (n == e->props.size()) e->props.emplace_back();
      auto& [name, raw] = e->props[n++];
      name.assign(f.key);
      raw.clear();
      // As compact JSON text, the way the collector keeps props.
      std::string_view text;
      int64_t i = 0;
      if (!f.value.get(text)) {
        AppendJsonString(&raw, text);
      } else if (f.value.is_int64() && !f.value.get(i)) {
        char buf[24];
        raw.assign(buf, std::to_chars(buf, buf + sizeof buf, i).ptr);
      } else {
        raw = simdjson::minify(f.value);
      }
    }
  }
  e->props.resize(n);
  return 1;
}

// Everything one thread needs to compute its partitions.
struct Job {
  Job(const Config& c, const RuleSet& r) : config(c), rules(r) {}
  const Config& config;
  const RuleSet& rules;
  std::vector<const TagConfig*> tags;          // the offline tags
  std::unordered_map<std::string, size_t> index;  // tag name -> position in `tags`
  std::vector<TimestampMs> from;               // per tag: the first ts in its window
  std::vector<std::string> types;              // event types some offline rule listens on
  TimestampMs as_of = 0;
  TimestampMs earliest = 0;
  const ErasureList* erasures = nullptr;
  std::atomic<uint64_t> files{0}, events{0}, used{0}, bad_lines{0};
  ProgressFn progress;       // optional
  uint64_t total_files = 0;  // of the partitions computed

};

Status ComputePartition(Job& job, int partition, const std::vector<std::string>& files, SnapshotWriter* writer) {
  std::unordered_map<std::string, std::vector<fusion::TagState>> users;
  simdjson::dom::parser parser;
  std::string buf;
  Event e;
  std::vector<Action> actions;
  size_t skipped = 0;
  uint64_t events = 0, used = 0, bad = 0;
  for (const std::string& path : files) {
    RETURN_IF_ERROR(ReadGzip(path, &buf));
    const uint64_t read = job.files.fetch_add(1) + 1;
    if (job.progress) job.progress(read, job.total_files);
    simdjson::dom::document_stream stream;
    if (auto err = parser.parse_many(buf, std::max<size_t>(1 << 20, simdjson::dom::DEFAULT_BATCH_SIZE)).get(stream)) {
      return Status::Corruption(path + ": " + simdjson::error_message(err));
    }
    for (auto doc : stream) {
      ++events;
      simdjson::dom::element el;
      int parsed = doc.get(el) ? -1 : ParseArchived(el, job.types, &e);
      if (parsed < 0) {
        if (bad++ < 5) spdlog::warn("batch: {}: a line that is not an archived event; skipped", path);
        continue;
      }
      if (parsed == 0 || e.ts > job.as_of || e.ts < job.earliest) continue;
      // A snapshot part serves the users of one log partition: an archive written with
      // another partition count would put users where no lookup finds them.
      if (PartitionFor(e.PartitionKey(), job.config.log.partitions).value != partition) {
        return Status::FailedPrecondition(path + " (archive partition " + std::to_string(partition) + ") holds an event of \"" +
                                          std::string(e.PartitionKey()) + "\", which belongs to partition " +
                                          std::to_string(PartitionFor(e.PartitionKey(), job.config.log.partitions).value) +
                                          " with [log] partitions = " + std::to_string(job.config.log.partitions) +
                                          "; run the batch with the config the archive was written with");
      }
      if (job.erasures && job.erasures->ErasedAfter(e.uid, e.device_id, e.ts)) continue;
      actions.clear();
      job.rules.Evaluate(e, &actions, &skipped);
      bool took = false;
      for (const Action& a : actions) {
        size_t i = job.index.at(a.tag);
        if (e.ts < job.from[i]) continue;
        auto& states = users[a.uid];
        if (states.empty()) states.resize(job.tags.size());
        fusion::Apply(states[i], a, *job.tags[i]);
        took = true;
      }
      if (took) ++used;
    }
  }
  job.events.fetch_add(events);
  job.used.fetch_add(used);
  job.bad_lines.fetch_add(bad);
  std::string row, value;
  for (const auto& [uid, states] : users) {
    row.clear();
    JsonWriter w(&row);
    w.BeginObject();
    bool any = false;
    for (size_t i = 0; i < states.size(); ++i) {
      if (!fusion::IsLive(states[i], *job.tags[i], job.as_of)) continue;
      value.clear();
      fusion::RenderValue(states[i], *job.tags[i], job.as_of, &value);
      w.Key(job.tags[i]->name).Raw(value);
      any = true;
    }
    w.EndObject();
    if (any) RETURN_IF_ERROR(writer->Put(uid, row));
  }
  return Status::Ok();
}

}  // namespace

Result<BatchStats> RunBatch(const Config& config, const std::string& date, std::vector<int> partitions,
                            const ProgressFn& progress) {
  const int total = config.log.partitions;
  if (partitions.empty()) {
    for (int p = 0; p < total; ++p) partitions.push_back(p);
  }
  for (int p : partitions) {
    if (p < 0 || p >= total) {
      return Status::InvalidArgument("partition " + std::to_string(p) + " does not exist ([log] partitions = " +
                                     std::to_string(total) + ": 0 to " + std::to_string(total - 1) + ")");
    }
  }
  auto start = std::chrono::steady_clock::now();
  auto day = DayStartMs(date);
  if (!day) return Status::InvalidArgument("--date \"" + date + "\" is not a date YYYY-MM-DD");
  RuleSet rules(config, RuleSet::Layer::kOffline);
  Job job(config, rules);
  job.as_of = SnapshotAsOf(date);
  job.earliest = job.as_of;
  for (const auto& [name, tag] : config.tags.all()) {
    if (!tag.offline) continue;
    job.index[name] = job.tags.size();
    job.tags.push_back(&tag);
    TimestampMs from = tag.offline_window_ms > 0 ? job.as_of - tag.offline_window_ms + 1 : INT64_MIN;
    job.from.push_back(from);
    job.earliest = std::min(job.earliest, from);
  }
  if (job.tags.empty()) {
    return Status::FailedPrecondition("no tag is computed offline; give a tag offline = { window = \"30d\" } in " +
                                      config.path);
  }
  for (const RuleSpec& r : config.rules) {
    const TagConfig* t = config.tags.Find(r.tag);
    if (!r.offline || !t || !t->offline) continue;
    for (const auto& type : r.on) {
      if (std::find(job.types.begin(), job.types.end(), type) == job.types.end()) job.types.push_back(type);
    }
  }
  std::string first_date = job.earliest == INT64_MIN ? "" : DateOf(job.earliest);
  ASSIGN_OR_RETURN(auto parts, ListArchive(ArchiveDir(config), first_date, date));
  if (parts.empty()) {
    // Most likely the wrong archive dir or date: an empty snapshot would load nothing into
    // every profile and hide the mistake.
    return Status::FailedPrecondition("no archived events " + (first_date.empty() ? "" : "from " + first_date + " ") +
                                      "up to " + date + " in " + ArchiveDir(config) +
                                      " ([archive] dir, or --data-dir); no snapshot written");
  }
  ASSIGN_OR_RETURN(auto erasures, ErasureList::Open(ErasureListPath(config)));
  job.erasures = erasures->empty() ? nullptr : erasures.get();
  for (const auto& [p, files] : parts) {
    if (p < 0 || p >= total) {
      return Status::FailedPrecondition("the archive in " + ArchiveDir(config) + " has part files of partition " +
                                        std::to_string(p) + " but [log] partitions = " + std::to_string(total) +
                                        "; run the batch with the config the archive was written with");
    }
  }

  // Each partition's part on its own (also one with no archived events), so that several
  // runs, on several machines, can share the partitions of one snapshot.
  const std::vector<std::string> none;
  job.progress = progress;
  for (int p : partitions) {
    if (auto it = parts.find(p); it != parts.end()) job.total_files += it->second.size();
  }
  std::atomic<size_t> next{0};
  std::mutex mu;
  Status failure;
  auto run = [&] {
    for (size_t i; (i = next.fetch_add(1)) < partitions.size();) {
      auto it = parts.find(partitions[i]);
      Status st;
      auto writer = SnapshotWriter::CreatePart(SnapshotDir(config), date, partitions[i]);
      if (!writer.ok()) st = writer.status();
      if (st.ok()) st = ComputePartition(job, partitions[i], it == parts.end() ? none : it->second, writer->get());
      if (st.ok()) st = (*writer)->FinishPart();
      if (!st.ok()) {
        std::lock_guard<std::mutex> l(mu);
        if (failure.ok()) failure = st;
        next.store(partitions.size());
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 1; t < config.section<BatchConfig>().threads; ++t) threads.emplace_back(run);
  run();
  for (auto& t : threads) t.join();
  if (!failure.ok()) return failure.WithContext("batch " + date);

  BatchStats stats;
  stats.compute_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  stats.partitions = partitions;
  ASSIGN_OR_RETURN(auto committed, CommitParts(SnapshotDir(config), date, total, config.section<BatchConfig>().keep,
                                               &stats.waiting_for));
  if (committed) stats.snapshot = std::move(*committed);
  stats.files = job.files.load();
  stats.events = job.events.load();
  stats.used = job.used.load();
  stats.bad_lines = job.bad_lines.load();
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
}

Status RunScheduledBatch(const Config& config, const std::string& date, std::vector<int> partitions) {
  auto stats = RunBatch(config, date, std::move(partitions));
  if (!stats.ok()) return stats.status();
  if (stats->snapshot.version == 0) {
    // The processes holding the rest compute them at their own [batch] at; a partition that
    // moved between processes meanwhile is computed by nobody: say how to finish.
    spdlog::warn("batch: {}: {} partition(s) computed; the snapshot waits for partition(s) {} (computed by the "
                 "processes holding them, or run `portrait batch --date {} --partitions {}`)",
                 date, stats->partitions.size(), fmt::join(stats->waiting_for, ","), date,
                 fmt::join(stats->waiting_for, ","));
    return Status::Ok();
  }
  spdlog::info("batch: {} done: snapshot {} with {} users from {} events in {:.1f} s", date, stats->snapshot.Mark(),
               stats->snapshot.users, stats->events, stats->seconds);
  return Status::Ok();
}

}  // namespace portrait
