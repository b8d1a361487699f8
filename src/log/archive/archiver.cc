#include "log/archive/archiver.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <optional>
#include <utility>

#include "core/event.h"
#include "log/archive/archive_files.h"
#include "log/archive/compaction.h"
#include "core/record_kind.h"
#include "core/dates.h"
#include "core/dir_lock.h"

namespace portrait {

namespace fs = std::filesystem;

namespace {

constexpr const char* kAppliedDir = "_erasures";
constexpr const char* kLegacyAppliedFile = "_erasures.applied";  // one count for all partitions

size_t ReadCount(const std::string& path) {
  std::ifstream in(path);
  size_t n = 0;
  in >> n;
  return in ? n : 0;
}

// How many erasure-list entries partition p's part files have been rewritten for.
size_t ReadApplied(const std::string& dir, PartitionId p) {
  std::string path = dir + "/" + kAppliedDir + "/applied-" + std::to_string(p.value);
  std::error_code ec;
  return fs::exists(path, ec) ? ReadCount(path) : ReadCount(dir + "/" + kLegacyAppliedFile);
}

void WriteApplied(const std::string& dir, PartitionId p, size_t n) {
  std::error_code ec;
  fs::create_directories(dir + "/" + kAppliedDir, ec);
  std::string path = dir + "/" + kAppliedDir + "/applied-" + std::to_string(p.value);
  {
    std::ofstream out(path + ".tmp", std::ios::trunc);
    out << n << "\n";
  }
  fs::rename(path + ".tmp", path, ec);
}

bool HeldIn(const std::vector<PartitionId>& held, int p) {
  return std::find(held.begin(), held.end(), PartitionId(p)) != held.end();
}

// An exclusive lease on one partition of a shared archive (a DirLock, flock on
// ARCHIVE/_leases/P/LOCK, released when the process dies): while a process reads the
// committed offset, writes the part files and commits, no other process works on that
// partition, even one that still believes it holds it after the group moved it (a stalled
// process). Each one starts from the offset the previous one committed, so their ranges
// never overlap. Null when another process has it.
std::unique_ptr<DirLock> TryLease(const std::string& dir, PartitionId p) {
  auto lock = DirLock::Acquire(dir + "/_leases/" + std::to_string(p.value));
  return lock.ok() ? std::move(lock).value() : nullptr;
}

}  // namespace

Archiver::Archiver(const ArchiveConfig& config, std::string dir, Log* log, MetricsRegistry* m)
    : config_(config),
      dir_(std::move(dir)),
      log_(log),
      compactor_(dir_, CompactionOptions{config.gzip_level, config.compact_after_ms, config.compact_grace_ms}) {
  archived_ = m->GetCounter("portrait_archive_events_total", "Events written to the archive");
  files_ = m->GetCounter("portrait_archive_files_total", "Archive part files written");
  errors_ = m->GetCounter("portrait_archive_errors_total", "Archive writes that failed (retried)");
  expired_files_ = m->GetCounter("portrait_archive_retention_deleted_files_total",
                                 "Part files deleted by [archive] retention (counted from when they were written)");
  erased_dropped_ = m->GetCounter("portrait_archive_dropped_events_total",
                                  "Events not archived, by reason", "reason=\"erased\"");
  compacted_files_ = m->GetCounter("portrait_archive_compacted_files_total",
                                   "Part files merged by compaction into one file per partition and closed hour");
  compacted_hours_ = m->GetCounter("portrait_archive_compacted_hours_total",
                                   "Merged files written by compaction (one per partition and hour compacted)");
  rewritten_ = m->GetCounter("portrait_archive_erasure_rewrites_total", "Part files rewritten without erased users' events");
  repeats_skipped_ = m->GetCounter("portrait_archive_repeats_skipped_total",
                                   "Events not archived: their id repeats one shortly before in their partition (consumer groups)");
}

void Archiver::ShareWithGroup(std::function<std::vector<PartitionId>()> held, size_t repeat_window) {
  held_ = std::move(held);
  repeats_ = std::make_unique<RepeatFilter>(log_, repeat_window, repeats_skipped_);
}

std::vector<PartitionId> Archiver::Held() const {
  if (held_) return held_();
  std::vector<PartitionId> all;
  for (int p = 0; p < log_->partitions(); ++p) all.push_back(PartitionId(p));
  return all;
}

Archiver::~Archiver() { Stop(); }

std::string Archiver::HourPath(TimestampMs ts) {
  constexpr int64_t kDayMs = 86'400'000;
  int64_t hour = ((ts % kDayMs) + kDayMs) % kDayMs / 3'600'000;
  return "date=" + DateOf(ts) + (hour < 10 ? "/hour=0" : "/hour=") + std::to_string(hour);
}

Status Archiver::Start() {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) return Status::IOError("archive dir " + dir_ + ": " + ec.message());
  // Part files of a write a crash interrupted: they will be written again. (In a shared
  // archive another process may be writing its own: they are left, readers skip them and
  // the next write of that name replaces them.)
  for (auto it = fs::recursive_directory_iterator(dir_, ec); !held_ && !ec && it != fs::recursive_directory_iterator(); ++it) {
    if (it->path().extension() == ".tmp") fs::remove(it->path(), ec);
  }
  thread_ = std::thread([this] { Run(); });
  return Status::Ok();
}

void Archiver::Stop() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Status Archiver::FlushPartition(PartitionId p, Offset first, Offset next) {
  for (const auto& [hour, lines] : pending_) {
    fs::path dir = fs::path(dir_) / hour;
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return Status::IOError("archive " + dir.string() + ": " + ec.message());
    std::string name = "part-" + std::to_string(p.value) + "-" + std::to_string(first.value) + ".ndjson.gz";
    // The same name after a crash: rewritten, not duplicated.
    RETURN_IF_ERROR(WriteGzipFile((dir / name).string(), lines, config_.gzip_level));
    files_->Inc();
  }
  pending_.clear();
  return log_->CommitOffset(kConsumer, p, next);
}

// Retention counts from when the archive received the data (a part file's time), not
// from the events' time: a backfill of old events is kept as long as any other data.
void Archiver::DeleteExpiredHours() {
  if (config_.retention_ms <= 0) return;
  const auto oldest = fs::file_time_type::clock::now() - std::chrono::milliseconds(config_.retention_ms);
  const std::vector<PartitionId> held = Held();
  std::error_code ec;
  for (const auto& date : fs::directory_iterator(dir_, ec)) {
    if (!date.path().filename().string().starts_with("date=")) continue;
    for (const auto& hour : fs::directory_iterator(date.path(), ec)) {
      for (const auto& part : fs::directory_iterator(hour.path(), ec)) {
        std::string name = part.path().filename().string();
        if (!name.starts_with("part-") || !HeldIn(held, std::atoi(name.c_str() + 5))) continue;
        auto written = fs::last_write_time(part.path(), ec);
        if (!ec && written < oldest && fs::remove(part.path(), ec)) expired_files_->Inc();
      }
      if (fs::is_empty(hour.path(), ec)) fs::remove(hour.path(), ec);
    }
    if (fs::is_empty(date.path(), ec)) fs::remove(date.path(), ec);
  }
}

void Archiver::Run() {
  const auto flush_every = std::chrono::seconds(config_.flush_seconds);
  auto last_retention = std::chrono::steady_clock::now() - std::chrono::hours(1);
  std::vector<LogRecord> recs;
  Event e;
  while (true) {
    bool stopping;
    {
      std::unique_lock lk(mu_);
      stopping = stop_;
    }
    // One pass over the partitions: gather what is new (up to the flush interval) and write it.
    if (repeats_) repeats_->Retain(Held());
    for (PartitionId p : Held()) {
      const int pi = p.value;
      std::unique_ptr<DirLock> lease = held_ ? TryLease(dir_, p) : nullptr;
      if (held_ && !lease) continue;  // another process is on it
      auto committed = log_->CommittedOffset(kConsumer, p);
      if (!committed.ok()) continue;
      Offset from = std::max(*committed, log_->StartOffset(p));
      Offset end = log_->EndOffset(p);
      if (from >= end) {
        // Offsets of a group without members expire on the brokers after a while: an idle
        // partition's are committed again now and then.
        if (held_ && from.value > 0 && NowMs() - last_commit_ms_[pi] > 3'600'000) {
          if (log_->CommitOffset(kConsumer, p, from).ok()) last_commit_ms_[pi] = NowMs();
        }
        continue;
      }
      auto reader = log_->OpenReader(p, from);
      if (!reader.ok()) {
        errors_->Inc();
        spdlog::error("archive: partition {}: {}", pi, reader.status().ToString());
        continue;
      }
      size_t events = 0;
      // Records past `end` may come in the last read (the log grows meanwhile): they are
      // left for the next pass, so the commit is the offset after the last one taken.
      Offset next = from;
      bool read_ok = true;
      // A remote log's reader may answer empty while it connects: give it a while.
      auto read_until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (next < end) {
        if (!(*reader)->Read(8 << 20, &recs).ok()) break;
        if (recs.empty()) {
          if (std::chrono::steady_clock::now() > read_until) break;
          continue;
        }
        if (recs.front().offset >= end) break;
        std::erase_if(recs, [&](const LogRecord& rec) { return rec.offset >= end; });
        next = Offset(recs.back().offset.value + 1);
        if (repeats_) {
          if (Status fs = repeats_->Filter(p, &recs); !fs.ok()) {
            spdlog::error("archive: {} (will retry)", fs.ToString());
            read_ok = false;
            break;
          }
        }
        for (const auto& rec : recs) {
          if (PeekRecordKind(rec.payload) != RecordKind::kEvent || !DecodeEvent(rec.payload, &e).ok()) continue;
          if (erasures_ && erasures_->ErasedAfter(e.uid, e.device_id, e.ts)) {
            erased_dropped_->Inc();  // an erased id's event from before its erasure: not kept
            std::string hour = HourPath(e.ts);
            if (dropped_hours_logged_.size() > 10'000) dropped_hours_logged_.clear();
            if (dropped_hours_logged_.insert(hour).second) {
              spdlog::info("archive: {}: events of erased users from before their erasure are not archived", hour);
            }
            continue;
          }
          std::string& lines = pending_[HourPath(e.ts)];
          lines += EventToJson(e);
          lines.push_back('\n');
          ++events;
        }
      }
      if (!read_ok) {
        pending_.clear();
        errors_->Inc();
        continue;
      }
      // A partition given away meanwhile is left to its new holder, which writes the same
      // part names from the same committed offset.
      if (held_ && !HeldIn(Held(), pi)) {
        pending_.clear();
        continue;
      }
      Status st = FlushPartition(p, from, next);
      if (st.ok()) last_commit_ms_[pi] = NowMs();
      if (!st.ok()) {
        pending_.clear();
        errors_->Inc();
        spdlog::error("archive: {} (will retry)", st.ToString());
        continue;
      }
      archived_->Inc(events);
    }
    if (stopping) return;
    RewriteIfDue();
    CompactIfDue();
    if (std::chrono::steady_clock::now() - last_retention > std::chrono::minutes(1)) {
      DeleteExpiredHours();
      last_retention = std::chrono::steady_clock::now();
    }
    std::unique_lock lk(mu_);
    cv_.wait_for(lk, flush_every, [&] { return stop_; });
  }
}


void Archiver::RewriteIfDue() {
  if (!erasures_) return;
  if (Status st = erasures_->Refresh(); !st.ok()) {
    spdlog::error("archive: {}", st.ToString());
    return;
  }
  auto entries = erasures_->Entries();
  std::vector<PartitionId> held;  // the partitions held, behind on erasures, and leased
  std::vector<std::unique_ptr<DirLock>> leases;
  size_t applied = entries.size();
  for (PartitionId p : Held()) {
    size_t done = ReadApplied(dir_, p);
    if (done >= entries.size()) continue;
    if (held_) {
      auto lease = TryLease(dir_, p);
      if (!lease) continue;
      leases.push_back(std::move(lease));
    }
    held.push_back(p);
    applied = std::min(applied, done);
  }
  if (held.empty()) return;
  // Rewrites are batched: wait while the oldest pending erasure is younger than half the
  // allowed delay (at most a day), so one pass over the archive serves many erasures.
  int64_t wait = std::min<int64_t>(erase_within_ms_ / 2, 86'400'000);
  TimestampMs oldest = INT64_MAX;
  for (size_t i = applied; i < entries.size(); ++i) oldest = std::min(oldest, entries[i].erased_at);
  if (NowMs() - oldest < wait) return;
  auto n = RewriteErased(held);
  if (!n.ok()) {
    errors_->Inc();
    spdlog::error("archive: erasure rewrite: {} (will retry)", n.status().ToString());
    return;
  }
  for (PartitionId p : held) WriteApplied(dir_, p, entries.size());
  spdlog::info("archive: {} erasures applied, {} part files rewritten", entries.size() - applied, *n);
}

void Archiver::CompactIfDue() {
  if (!config_.compact) return;
  const auto now = std::chrono::steady_clock::now();
  if (last_compaction_ != std::chrono::steady_clock::time_point{} && now - last_compaction_ < std::chrono::minutes(1)) {
    return;
  }
  last_compaction_ = now;
  CompactionStats stats = CompactClosedHours();
  compacted_files_->Inc(stats.files);
  compacted_hours_->Inc(stats.hours);
  errors_->Inc(stats.errors);
  if (stats.hours > 0 || stats.removed > 0) {
    spdlog::info("archive: compacted {} part files into {} (partition, hour) files; {} merged-away files removed",
                 stats.files, stats.hours, stats.removed);
  }
}

CompactionStats Archiver::CompactClosedHours() {
  std::map<int, int64_t> committed;  // the held and leased partitions
  std::vector<std::unique_ptr<DirLock>> leases;
  for (PartitionId p : Held()) {
    if (held_) {
      auto lease = TryLease(dir_, p);
      if (!lease) continue;  // another process is on it: it compacts it
      leases.push_back(std::move(lease));
    }
    auto c = log_->CommittedOffset(kConsumer, p);
    if (c.ok()) committed[p.value] = c->value;
  }
  compactor_.SetErasures(erasures_);
  return compactor_.Compact(committed, NowMs());
}

Result<size_t> Archiver::RewriteErased() { return RewriteErased(Held()); }

Result<size_t> Archiver::RewriteErased(const std::vector<PartitionId>& held) {
  RETURN_IF_ERROR(erasures_->Refresh());
  TimestampMs newest = INT64_MIN;
  for (const auto& e : erasures_->Entries()) newest = std::max(newest, e.erased_at);
  if (newest == INT64_MIN) return size_t{0};
  // Files a compaction merged away are read by nobody, but still hold the events: gone now.
  std::vector<int> held_ints;
  for (PartitionId p : held) held_ints.push_back(p.value);
  compactor_.RemoveCovered(held_ints);
  ASSIGN_OR_RETURN(auto parts, ListArchive(dir_, "", DateOf(newest)));
  std::string data, kept;
  size_t rewritten = 0;
  for (const auto& [partition, files] : parts) {
    if (!HeldIn(held, partition)) continue;  // its holder rewrites it
    for (const std::string& path : files) {
      RETURN_IF_ERROR(ReadGzip(path, &data));
      kept.clear();
      size_t dropped = 0;
      size_t start = 0;
      while (start < data.size()) {
        size_t nl = data.find('\n', start);
        if (nl == std::string::npos) nl = data.size();
        std::string_view line(data.data() + start, nl - start);
        start = nl + 1;
        if (line.empty()) continue;
        bool erased = ErasedLine(line, *erasures_);
        if (erased) {
          ++dropped;
          continue;
        }
        kept.append(line);
        kept.push_back('\n');
      }
      if (dropped == 0) continue;
      RETURN_IF_ERROR(WriteGzipFile(path, kept, config_.gzip_level));
      rewritten_->Inc();
      ++rewritten;
    }
  }
  return rewritten;
}

}  // namespace portrait
