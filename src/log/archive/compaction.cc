#include "log/archive/compaction.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <zlib.h>

#include <simdjson.h>

#include <algorithm>
#include <filesystem>
#include <optional>

#include "core/dates.h"
#include "log/archive/archive_files.h"

namespace portrait {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kHourMs = 3'600'000;

// The first millisecond of an hour directory's hour (DIR/date=D/hour=H), if it is one.
std::optional<TimestampMs> HourStart(const fs::path& hour) {
  std::string h = hour.filename().string(), d = hour.parent_path().filename().string();
  if (!h.starts_with("hour=") || !d.starts_with("date=") || h.size() != 7) return std::nullopt;
  auto day = DayStartMs(std::string_view(d).substr(5));
  int hh = std::atoi(h.c_str() + 5);
  if (!day || hh < 0 || hh > 23) return std::nullopt;
  return *day + hh * kHourMs;
}

// Writes the inputs' lines, in order, to `tmp` (gzip), fsynced; leaves out erased events.
Status WriteMerged(const std::vector<std::string>& inputs, const std::string& tmp, int level,
                   const ErasureList* erasures) {
  const std::string mode = "wb" + std::to_string(std::clamp(level, 1, 9));
  gzFile gz = gzopen(tmp.c_str(), mode.c_str());
  if (!gz) return Status::IOError("cannot create " + tmp);
  std::string data, kept;
  Status st;
  auto put = [&](std::string_view s) {
    if (!s.empty() && gzwrite(gz, s.data(), static_cast<unsigned>(s.size())) != static_cast<int>(s.size())) {
      st = Status::IOError("cannot write " + tmp);
    }
  };
  for (const std::string& in : inputs) {
    if (st = ReadGzip(in, &data); !st.ok()) break;
    if (!data.empty() && data.back() != '\n') data.push_back('\n');  // lines of two files never join
    if (!erasures || erasures->empty()) {
      put(data);
    } else {
      kept.clear();
      for (size_t start = 0; start < data.size();) {
        size_t nl = data.find('\n', start);
        std::string_view line(data.data() + start, nl - start + 1);
        start = nl + 1;
        if (!ErasedLine(line.substr(0, line.size() - 1), *erasures)) kept.append(line);
      }
      put(kept);
    }
    if (!st.ok()) break;
  }
  if (gzclose(gz) != Z_OK && st.ok()) st = Status::IOError("cannot write " + tmp);
  if (st.ok()) {
    int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::fsync(fd) != 0) st = Status::IOError("fsync " + tmp);
    if (fd >= 0) ::close(fd);
  }
  return st;
}

}  // namespace

bool ErasedLine(std::string_view line, const ErasureList& erasures) {
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element doc;
  simdjson::dom::object o;
  if (line.empty() || parser.parse(line.data(), line.size()).get(doc) || doc.get_object().get(o)) return false;
  std::string_view uid, device;
  int64_t ts = INT64_MIN;
  if (o["uid"].get(uid)) uid = {};
  if (o["device_id"].get(device)) device = {};
  if (o["ts"].get(ts)) ts = INT64_MIN;
  return erasures.ErasedAfter(uid, device, ts);
}

bool ArchiveCompactor::Step(CompactionStep s, CompactionStats* stats) {
  if (!hook_ || hook_(s)) return true;
  stats->stopped = true;
  return false;
}

CompactionStats ArchiveCompactor::Compact(const std::map<int, int64_t>& committed, TimestampMs now) {
  CompactionStats stats;
  std::error_code ec;
  std::vector<fs::path> hours;
  for (const auto& d : fs::directory_iterator(dir_, ec)) {
    if (!d.is_directory() || !d.path().filename().string().starts_with("date=")) continue;
    for (const auto& h : fs::directory_iterator(d.path(), ec)) {
      auto start = HourStart(h.path());
      // Closed: even its last millisecond is `after_ms` old.
      if (h.is_directory() && start && *start + kHourMs + options_.after_ms <= now) hours.push_back(h.path());
    }
  }
  std::sort(hours.begin(), hours.end());
  for (const fs::path& hour : hours) {
    std::map<int, std::vector<std::string>> names;  // partition -> its files here
    for (const auto& f : fs::directory_iterator(hour, ec)) {
      std::string name = f.path().filename().string();
      if (!name.starts_with("part-")) continue;
      int p = std::atoi(name.c_str() + 5);
      if (!committed.count(p)) continue;  // not ours: its holder compacts it
      if (name.ends_with(".tmp")) {
        // A write a crash (or a failed pass) left: its inputs are still there, and we hold
        // the partition's lease, so nobody is writing it.
        if (fs::remove(f.path(), ec)) spdlog::info("archive: removed the leftover {}", f.path().string());
        continue;
      }
      if (ParsePartName(name)) names[p].push_back(std::move(name));
    }
    for (const auto& [p, files] : names) {
      CompactHour(hour.string(), p, committed.at(p), files, now, &stats);
      if (stats.stopped) return stats;
    }
  }
  for (auto it = covered_since_.begin(); it != covered_since_.end();) {
    it = fs::exists(it->first, ec) ? std::next(it) : covered_since_.erase(it);
  }
  return stats;
}

size_t ArchiveCompactor::RemoveCovered(const std::vector<int>& partitions) {
  size_t removed = 0;
  std::error_code ec;
  for (const auto& d : fs::directory_iterator(dir_, ec)) {
    if (!d.is_directory() || !d.path().filename().string().starts_with("date=")) continue;
    for (const auto& h : fs::directory_iterator(d.path(), ec)) {
      if (!h.is_directory()) continue;
      std::vector<std::string> names, covered;
      for (const auto& f : fs::directory_iterator(h.path(), ec)) names.push_back(f.path().filename().string());
      VisibleParts(names, &covered);
      size_t before = removed;
      for (const std::string& name : covered) {
        int p = std::atoi(name.c_str() + 5);
        if (std::find(partitions.begin(), partitions.end(), p) == partitions.end()) continue;
        if (fs::remove(h.path() / name, ec)) ++removed;
        covered_since_.erase((h.path() / name).string());
      }
      if (removed > before) (void)SyncDir(h.path().string());
    }
  }
  return removed;
}

void ArchiveCompactor::CompactHour(const std::string& hour, int p, int64_t committed,
                                   const std::vector<std::string>& names, TimestampMs now, CompactionStats* stats) {
  std::error_code ec;
  std::vector<std::string> covered;
  std::vector<std::string> visible = VisibleParts(names, &covered);
  // Merged away (now, or by a pass a crash stopped): removed once the grace is over.
  bool removed_any = false;
  for (const std::string& name : covered) {
    std::string path = hour + "/" + name;
    TimestampMs since = covered_since_.try_emplace(path, now).first->second;
    if (now - since < options_.grace_ms) continue;
    if (fs::remove(path, ec)) {
      ++stats->removed;
      removed_any = true;
      covered_since_.erase(path);
      if (!Step(CompactionStep::kInputRemoved, stats)) return;
    }
  }
  if (removed_any) (void)SyncDir(hour);  // not needed for correctness: a covered file is never read
  // The files to merge: those every offset of which the archive has committed.
  std::vector<std::pair<PartName, std::string>> inputs;
  for (const std::string& name : visible) {
    auto part = ParsePartName(name);
    if (part && part->hi < committed) inputs.emplace_back(*part, name);
  }
  if (inputs.size() < 2) return;
  std::sort(inputs.begin(), inputs.end(),
            [](const auto& a, const auto& b) { return std::pair(a.first.lo, a.first.hi) < std::pair(b.first.lo, b.first.hi); });
  const int64_t lo = inputs.front().first.lo;
  int64_t hi = lo;
  std::vector<std::string> paths;
  auto newest = fs::file_time_type::min();
  for (const auto& [part, name] : inputs) {
    hi = std::max(hi, part.hi);
    paths.push_back(hour + "/" + name);
    auto t = fs::last_write_time(paths.back(), ec);
    if (!ec) newest = std::max(newest, t);
  }
  const std::string merged = hour + "/" + PartFileName(p, lo, hi), tmp = merged + ".tmp";
  Status st = WriteMerged(paths, tmp, options_.gzip_level, erasures_);
  // Retention counts from when the data arrived: the merged file is as old as its newest input.
  if (st.ok() && newest != fs::file_time_type::min()) fs::last_write_time(tmp, newest, ec);
  if (st.ok()) st = SyncDir(hour);
  if (!st.ok()) {
    ++stats->errors;
    fs::remove(tmp, ec);
    spdlog::error("archive: compaction of {} partition {}: {} (will retry)", hour, p, st.ToString());
    return;
  }
  if (!Step(CompactionStep::kMergedWritten, stats)) return;
  fs::rename(tmp, merged, ec);
  if (ec || !SyncDir(hour).ok()) {
    ++stats->errors;
    spdlog::error("archive: compaction of {} partition {}: rename {}: {} (will retry)", hour, p, tmp, ec.message());
    return;
  }
  ++stats->hours;
  stats->files += inputs.size();
  if (!Step(CompactionStep::kMergedVisible, stats)) return;
  if (options_.grace_ms > 0) {
    for (const std::string& path : paths) covered_since_.try_emplace(path, now);
    return;
  }
  for (const std::string& path : paths) {
    if (fs::remove(path, ec)) ++stats->removed;
    if (!Step(CompactionStep::kInputRemoved, stats)) return;
  }
  (void)SyncDir(hour);
}

}  // namespace portrait
