#include "log/embedded/segment_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

namespace portrait {
namespace {

namespace fs = std::filesystem;
constexpr size_t kHeader = 16;
constexpr uint32_t kMaxRecord = 64u << 20;

uint32_t Checksum(int64_t offset, std::string_view payload) {
  uint64_t seed = static_cast<uint64_t>(offset) * 0x9E3779B97F4A7C15ull ^ payload.size();
  return static_cast<uint32_t>(XXH3_64bits_withSeed(payload.data(), payload.size(), seed));
}

void EncodeRecord(int64_t offset, std::string_view payload, std::string* out) {
  uint32_t len = static_cast<uint32_t>(payload.size());
  uint32_t sum = Checksum(offset, payload);
  uint64_t off = static_cast<uint64_t>(offset);
  char h[kHeader];
  std::memcpy(h, &len, 4);
  std::memcpy(h + 4, &sum, 4);
  std::memcpy(h + 8, &off, 8);
  out->append(h, kHeader);
  out->append(payload);
}

struct Header {
  uint32_t len;
  uint32_t sum;
  int64_t offset;
};

Header ReadHeader(const char* p) {
  Header h;
  uint64_t off;
  std::memcpy(&h.len, p, 4);
  std::memcpy(&h.sum, p + 4, 4);
  std::memcpy(&off, p + 8, 8);
  h.offset = static_cast<int64_t>(off);
  return h;
}

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

Status WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      // A full disk is not the client's fault and passes once space is freed: retry later.
      if (errno == ENOSPC || errno == EDQUOT) return Status::Unavailable(Errno("log write"));
      return Status::IOError(Errno("log write"));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Status::Ok();
}

std::string SegmentName(int64_t base) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%020lld.log", static_cast<long long>(base));
  return buf;
}

// An open file; closed when the last user lets go, so the syncer can fsync a segment
// that was rolled (and closed by the writer) meanwhile.
struct File {
  int fd = -1;
  explicit File(int f) : fd(f) {}
  ~File() {
    if (fd >= 0) ::close(fd);
  }
};

struct Segment {
  int64_t base;
  std::string path;
};

struct Partition {
  PartitionId id;
  std::string dir;
  mutable std::mutex mu;
  std::vector<Segment> segments;  // sorted by base; the last one is active
  std::shared_ptr<File> active;
  int64_t next_offset = 0;
  uint64_t write_pos = 0;
  std::atomic<int64_t> durable_end{0};
};

class SegmentLog;

class SegmentReader : public LogReader {
 public:
  SegmentReader(Partition* p, int64_t from) : p_(p), next_(from) {}
  Status Seek();
  Status Read(size_t max_bytes, std::vector<LogRecord>* out) override;
  Offset position() const override { return Offset(next_); }

 private:
  Status OpenSegmentFor(int64_t offset, bool exact_base);

  Partition* p_;
  int64_t next_;
  int64_t seg_base_ = -1;
  std::unique_ptr<File> file_;
  uint64_t file_pos_ = 0;
  std::string buf_;
};

class SegmentLog : public Log {
 public:
  SegmentLog(SegmentLogOptions o, MetricsRegistry* m) : opt_(std::move(o)) {
    std::string label = "topic=\"" + opt_.topic + "\"";
    appended_records_ = m->GetCounter("portrait_log_appended_records_total", "Records appended to the log", label);
    append_failures_ = m->GetCounter("portrait_log_append_failures_total",
                                     "Appends that failed (disk full, I/O error); none of their records is kept", label);
    appended_bytes_ = m->GetCounter("portrait_log_appended_bytes_total", "Bytes appended to the log", label);
    fsync_seconds_ = m->GetHistogram("portrait_log_fsync_seconds", "Time of one group-commit fsync round", label);
    torn_bytes_ = m->GetCounter("portrait_log_torn_tail_bytes_total", "Bytes dropped from torn tails at open", label);
  }
  ~SegmentLog() override { Close(); }

  Status Open(SegmentLogRecovery* rec);

  int partitions() const override { return opt_.partitions; }
  Status Append(std::span<const LogEntry> entries, std::vector<Offset>* offsets) override;
  Result<std::unique_ptr<LogReader>> OpenReader(PartitionId p, Offset from) override;
  Offset EndOffset(PartitionId p) const override {
    return Offset(parts_[p.value]->durable_end.load(std::memory_order_acquire));
  }
  Offset StartOffset(PartitionId p) const override {
    std::lock_guard lk(parts_[p.value]->mu);
    return Offset(parts_[p.value]->segments.front().base);
  }
  Result<uint64_t> Trim(PartitionId p, Offset keep_from, int64_t max_age_ms, uint64_t max_bytes) override;
  Status CommitOffset(std::string_view consumer, PartitionId p, Offset next) override;
  Result<Offset> CommittedOffset(std::string_view consumer, PartitionId p) override;
  uint64_t DataEpoch() const override { return epoch_.load(std::memory_order_acquire); }
  void WaitForData(uint64_t seen, std::chrono::milliseconds timeout) override;
  void Close() override;

 private:
  Status RecoverPartition(Partition& p, SegmentLogRecovery* rec);
  Status Roll(Partition& p);
  void SyncLoop();
  void Published() {
    {
      std::lock_guard lk(data_mu_);
      epoch_.fetch_add(1, std::memory_order_release);
    }
    data_cv_.notify_all();
  }

  SegmentLogOptions opt_;
  std::vector<std::unique_ptr<Partition>> parts_;

  std::mutex sync_mu_;
  std::condition_variable sync_cv_;  // wakes the syncer
  std::condition_variable done_cv_;  // wakes appenders
  uint64_t pending_seq_ = 0;
  uint64_t synced_seq_ = 0;
  std::vector<bool> dirty_;
  std::chrono::steady_clock::time_point first_pending_;
  Status sync_error_;
  bool closing_ = false;
  std::thread syncer_;

  std::mutex data_mu_;
  std::condition_variable data_cv_;
  std::atomic<uint64_t> epoch_{0};

  std::mutex offsets_mu_;

  Counter* appended_records_;
  Counter* append_failures_;
  Counter* appended_bytes_;
  Histogram* fsync_seconds_;
  Counter* torn_bytes_;
};

Status SegmentLog::Open(SegmentLogRecovery* rec) {
  std::error_code ec;
  if (opt_.read_only && !fs::is_directory(opt_.dir)) {
    return Status::NotFound("log " + opt_.dir + " does not exist (wrong --data-dir?)");
  }
  if (!opt_.read_only) fs::create_directories(opt_.dir, ec);
  if (ec) return Status::IOError("log dir " + opt_.dir + ": " + ec.message());
  fs::create_directories(opt_.dir + "/offsets", ec);
  for (int i = 0; i < opt_.partitions; ++i) {
    auto p = std::make_unique<Partition>();
    p->id = PartitionId(i);
    char name[16];
    std::snprintf(name, sizeof name, "p-%04d", i);
    p->dir = opt_.dir + "/" + name;
    RETURN_IF_ERROR(RecoverPartition(*p, rec));
    parts_.push_back(std::move(p));
  }
  // A log written with more partitions than configured would strand records.
  for (const auto& entry : fs::directory_iterator(opt_.dir)) {
    std::string n = entry.path().filename().string();
    if (n.starts_with("p-") && std::atoi(n.c_str() + 2) >= opt_.partitions) {
      return Status::FailedPrecondition("log " + opt_.dir + " has partition " + n +
                                        " but [log] partitions = " + std::to_string(opt_.partitions) +
                                        "; the partition count of an existing log cannot shrink");
    }
  }
  dirty_.assign(opt_.partitions, false);
  if (opt_.read_only) {
    closing_ = true;  // Append refuses
    return Status::Ok();
  }
  if (opt_.fsync != FsyncPolicy::kNone) syncer_ = std::thread([this] { SyncLoop(); });
  return Status::Ok();
}

Status SegmentLog::RecoverPartition(Partition& p, SegmentLogRecovery* rec) {
  std::error_code ec;
  if (!opt_.read_only) fs::create_directories(p.dir, ec);
  if (ec) return Status::IOError("log dir " + p.dir + ": " + ec.message());
  if (opt_.read_only && !fs::is_directory(p.dir)) {
    p.segments.push_back({0, p.dir + "/" + SegmentName(0)});
    return Status::Ok();
  }
  for (const auto& entry : fs::directory_iterator(p.dir)) {
    std::string n = entry.path().filename().string();
    if (n.size() != 24 || !n.ends_with(".log")) continue;
    p.segments.push_back({std::atoll(n.c_str()), entry.path().string()});
  }
  std::sort(p.segments.begin(), p.segments.end(), [](auto& a, auto& b) { return a.base < b.base; });
  if (p.segments.empty()) p.segments.push_back({0, p.dir + "/" + SegmentName(0)});

  Segment& last = p.segments.back();
  int fd = opt_.read_only ? ::open(last.path.c_str(), O_RDONLY | O_CLOEXEC)
                          : ::open(last.path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0 && opt_.read_only && errno == ENOENT) return Status::Ok();
  if (fd < 0) return Status::IOError(Errno("open " + last.path));
  auto file = std::make_shared<File>(fd);
  struct stat st;
  if (::fstat(fd, &st) != 0) return Status::IOError(Errno("stat " + last.path));
  uint64_t size = static_cast<uint64_t>(st.st_size);

  // Scan the active segment: keep every intact record, drop everything from the first bad one.
  std::string buf(size, '\0');
  if (size > 0 && ::pread(fd, buf.data(), size, 0) != static_cast<ssize_t>(size)) {
    return Status::IOError(Errno("read " + last.path));
  }
  uint64_t pos = 0;
  int64_t expect = last.base;
  while (pos + kHeader <= size) {
    Header h = ReadHeader(buf.data() + pos);
    if (h.len > kMaxRecord || pos + kHeader + h.len > size || h.offset != expect) break;
    if (Checksum(h.offset, std::string_view(buf.data() + pos + kHeader, h.len)) != h.sum) break;
    pos += kHeader + h.len;
    ++expect;
  }
  if (pos < size && !opt_.read_only) {
    uint64_t dropped = size - pos;
    if (::ftruncate(fd, static_cast<off_t>(pos)) != 0) return Status::IOError(Errno("truncate " + last.path));
    ::fsync(fd);
    torn_bytes_->Inc(dropped);
    if (rec) {
      rec->dropped_bytes += dropped;
      rec->notes.push_back("partition " + std::to_string(p.id.value) + ": dropped " + std::to_string(dropped) +
                           " bytes of torn tail after offset " + std::to_string(expect - 1) + " in " + last.path);
    }
  }
  if (!opt_.read_only) ::lseek(fd, static_cast<off_t>(pos), SEEK_SET);
  p.active = std::move(file);
  p.write_pos = pos;
  p.next_offset = expect;
  p.durable_end.store(expect);
  return Status::Ok();
}

Status SegmentLog::Roll(Partition& p) {
  if (opt_.fsync != FsyncPolicy::kNone && ::fdatasync(p.active->fd) != 0) {
    return Status::IOError(Errno("fsync " + p.segments.back().path));
  }
  std::string path = p.dir + "/" + SegmentName(p.next_offset);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IOError(Errno("open " + path));
  p.active = std::make_shared<File>(fd);
  p.write_pos = 0;
  p.segments.push_back({p.next_offset, path});
  if (opt_.fsync != FsyncPolicy::kNone) {
    int dfd = ::open(p.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }
  return Status::Ok();
}

Status SegmentLog::Append(std::span<const LogEntry> entries, std::vector<Offset>* offsets) {
  if (entries.empty()) return Status::Ok();
  {
    std::lock_guard lk(sync_mu_);
    if (closing_) return Status::Unavailable("log is closed");
  }
  if (offsets) offsets->assign(entries.size(), Offset(-1));
  // Group by partition, keeping entry order within each.
  std::vector<std::vector<uint32_t>> by_part(opt_.partitions);
  for (uint32_t i = 0; i < entries.size(); ++i) {
    int32_t p = entries[i].partition.value;
    if (p < 0 || p >= opt_.partitions) return Status::InvalidArgument("log append: no partition " + std::to_string(p));
    by_part[p].push_back(i);
  }
  // All or none: every partition the append touches is locked (in ascending order, as every
  // appender does), written, and only once all writes succeeded are the new records
  // published (offsets moved). A write that fails (a full disk) truncates what this append
  // wrote to every partition, so no record of it is ever read, and the append fails whole.
  std::vector<int> touched;
  for (int pi = 0; pi < opt_.partitions; ++pi) {
    if (!by_part[pi].empty()) touched.push_back(pi);
  }
  std::vector<std::unique_lock<std::mutex>> locks;
  locks.reserve(touched.size());
  for (int pi : touched) locks.emplace_back(parts_[pi]->mu);
  struct Written {
    Partition* p;
    uint64_t pos_before;  // where this append's bytes start in the active segment
    uint64_t pos_after;
    int64_t next_after;
  };
  std::vector<Written> written;
  written.reserve(touched.size());
  thread_local std::string buf;
  uint64_t bytes = 0;
  Status failure;
  for (int pi : touched) {
    Partition& p = *parts_[pi];
    buf.clear();
    int64_t off = p.next_offset;
    for (uint32_t i : by_part[pi]) {
      if (entries[i].payload.size() > kMaxRecord) {
        failure = Status::TooLarge("log record over 64 MiB");
        break;
      }
      if (offsets) (*offsets)[i] = Offset(off);
      EncodeRecord(off++, entries[i].payload, &buf);
    }
    if (!failure.ok()) break;
    if (p.write_pos > 0 && p.write_pos + buf.size() > opt_.segment_bytes) {
      failure = Roll(p);
      if (!failure.ok()) break;
    }
    Status st = WriteAll(p.active->fd, buf.data(), buf.size());
    if (!st.ok()) {
      failure = st;
      // Leave no partial record behind: the next append must start at a record boundary.
      if (::ftruncate(p.active->fd, static_cast<off_t>(p.write_pos)) == 0) {
        ::lseek(p.active->fd, static_cast<off_t>(p.write_pos), SEEK_SET);
      }
      break;
    }
    written.push_back({&p, p.write_pos, p.write_pos + buf.size(), off});
    bytes += buf.size();
  }
  if (!failure.ok()) {
    for (const Written& w : written) {
      if (::ftruncate(w.p->active->fd, static_cast<off_t>(w.pos_before)) == 0) {
        ::lseek(w.p->active->fd, static_cast<off_t>(w.pos_before), SEEK_SET);
      }
    }
    if (offsets) offsets->assign(entries.size(), Offset(-1));
    append_failures_->Inc();
    return failure;
  }
  for (const Written& w : written) {
    w.p->write_pos = w.pos_after;
    w.p->next_offset = w.next_after;
    if (opt_.fsync == FsyncPolicy::kNone) w.p->durable_end.store(w.next_after, std::memory_order_release);
  }
  locks.clear();
  appended_records_->Inc(entries.size());
  appended_bytes_->Inc(bytes);
  if (opt_.fsync == FsyncPolicy::kNone) {
    Published();
    return Status::Ok();
  }
  std::unique_lock lk(sync_mu_);
  uint64_t ticket = ++pending_seq_;
  if (ticket == synced_seq_ + 1) first_pending_ = std::chrono::steady_clock::now();
  for (int pi : touched) dirty_[pi] = true;
  sync_cv_.notify_one();
  done_cv_.wait(lk, [&] { return synced_seq_ >= ticket || !sync_error_.ok() || (closing_ && !syncer_.joinable()); });
  if (synced_seq_ >= ticket) return Status::Ok();
  if (!sync_error_.ok()) return sync_error_;
  return Status::Unavailable("log closed before the append was durable");
}

void SegmentLog::SyncLoop() {
  std::unique_lock lk(sync_mu_);
  while (true) {
    sync_cv_.wait(lk, [&] { return pending_seq_ > synced_seq_ || closing_; });
    if (pending_seq_ == synced_seq_) {
      if (closing_) break;
      continue;
    }
    if (opt_.fsync == FsyncPolicy::kBatch && !closing_) {
      auto deadline = first_pending_ + std::chrono::milliseconds(opt_.fsync_max_delay_ms);
      sync_cv_.wait_until(lk, deadline, [&] { return closing_; });
    }
    uint64_t target = pending_seq_;
    std::vector<int> parts;
    for (int i = 0; i < opt_.partitions; ++i) {
      if (dirty_[i]) parts.push_back(i);
      dirty_[i] = false;
    }
    lk.unlock();
    auto start = std::chrono::steady_clock::now();
    Status err;
    for (int pi : parts) {
      Partition& p = *parts_[pi];
      std::shared_ptr<File> file;
      int64_t end;
      {
        std::lock_guard plk(p.mu);
        file = p.active;
        end = p.next_offset;
      }
      if (::fdatasync(file->fd) != 0) {
        err = Status::IOError(Errno("fsync partition " + std::to_string(pi)));
        break;
      }
      int64_t cur = p.durable_end.load();
      while (cur < end && !p.durable_end.compare_exchange_weak(cur, end)) {
      }
    }
    fsync_seconds_->Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    Published();
    lk.lock();
    if (!err.ok()) {
      // An fsync failure leaves the page cache in an unknown state: stop acknowledging.
      sync_error_ = err;
      done_cv_.notify_all();
      break;
    }
    synced_seq_ = target;
    if (pending_seq_ > synced_seq_) first_pending_ = std::chrono::steady_clock::now();
    done_cv_.notify_all();
  }
}

void SegmentLog::Close() {
  {
    std::lock_guard lk(sync_mu_);
    if (closing_) return;
    closing_ = true;
  }
  sync_cv_.notify_all();
  if (syncer_.joinable()) syncer_.join();
  {
    std::lock_guard lk(sync_mu_);
    done_cv_.notify_all();
  }
  if (opt_.fsync == FsyncPolicy::kNone && !opt_.read_only) {
    for (auto& p : parts_) {
      if (p->active) ::fdatasync(p->active->fd);
    }
  }
  Published();
}

void SegmentLog::WaitForData(uint64_t seen, std::chrono::milliseconds timeout) {
  std::unique_lock lk(data_mu_);
  data_cv_.wait_for(lk, timeout, [&] { return epoch_.load() != seen; });
}

Result<uint64_t> SegmentLog::Trim(PartitionId pid, Offset keep_from, int64_t max_age_ms, uint64_t max_bytes) {
  if (pid.value < 0 || pid.value >= opt_.partitions) return Status::InvalidArgument("log: no partition");
  if (opt_.read_only) return Status::FailedPrecondition("log opened read-only");
  Partition& p = *parts_[pid.value];
  std::vector<std::pair<std::string, uint64_t>> doomed;
  {
    std::lock_guard lk(p.mu);
    uint64_t total = 0;
    std::vector<uint64_t> sizes;
    for (const auto& seg : p.segments) {
      std::error_code ec;
      uint64_t sz = fs::file_size(seg.path, ec);
      sizes.push_back(ec ? 0 : sz);
      total += sizes.back();
    }
    const auto now = fs::file_time_type::clock::now();
    size_t drop = 0;
    // A closed segment ends where the next begins; keep it if it holds keep_from or later.
    while (drop + 1 < p.segments.size() && p.segments[drop + 1].base <= keep_from.value) {
      std::error_code ec;
      auto mtime = fs::last_write_time(p.segments[drop].path, ec);
      bool too_old = max_age_ms > 0 && !ec &&
                     now - mtime > std::chrono::milliseconds(max_age_ms);
      bool too_big = max_bytes > 0 && total > max_bytes;
      if (!too_old && !too_big) break;
      total -= sizes[drop];
      doomed.emplace_back(p.segments[drop].path, sizes[drop]);
      ++drop;
    }
    p.segments.erase(p.segments.begin(), p.segments.begin() + static_cast<ptrdiff_t>(drop));
  }
  uint64_t bytes = 0;
  for (const auto& [path, size] : doomed) {
    std::error_code ec;
    fs::remove(path, ec);  // an open reader keeps its file until it closes it
    if (!ec) bytes += size;
  }
  return bytes;
}

Result<std::unique_ptr<LogReader>> SegmentLog::OpenReader(PartitionId p, Offset from) {
  if (p.value < 0 || p.value >= opt_.partitions) {
    return Status::InvalidArgument("log: no partition " + std::to_string(p.value));
  }
  auto r = std::make_unique<SegmentReader>(parts_[p.value].get(), from.value);
  RETURN_IF_ERROR(r->Seek());
  return std::unique_ptr<LogReader>(std::move(r));
}

Status SegmentLog::CommitOffset(std::string_view consumer, PartitionId p, Offset next) {
  std::lock_guard lk(offsets_mu_);
  std::string path = opt_.dir + "/offsets/" + std::string(consumer);
  std::map<int, int64_t> all;
  {
    std::ifstream in(path);
    int part;
    int64_t off;
    while (in >> part >> off) all[part] = off;
  }
  all[p.value] = next.value;
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    for (auto [k, v] : all) out << k << ' ' << v << '\n';
    if (!out) return Status::IOError("write " + tmp);
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return Status::IOError("rename " + tmp + ": " + ec.message());
  return Status::Ok();
}

Result<Offset> SegmentLog::CommittedOffset(std::string_view consumer, PartitionId p) {
  std::lock_guard lk(offsets_mu_);
  std::ifstream in(opt_.dir + "/offsets/" + std::string(consumer));
  int part;
  int64_t off;
  while (in >> part >> off) {
    if (part == p.value) return Offset(off);
  }
  return Offset(0);
}

Status SegmentReader::OpenSegmentFor(int64_t offset, bool exact_base) {
  Segment seg{-1, ""};
  {
    std::lock_guard lk(p_->mu);
    for (const auto& s : p_->segments) {
      if (exact_base ? s.base == offset : s.base <= offset) seg = s;
    }
  }
  if (seg.base < 0) {
    return Status::NotFound("partition " + std::to_string(p_->id.value) + " has no record at offset " +
                            std::to_string(offset));
  }
  int fd = ::open(seg.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IOError(Errno("open " + seg.path));
  file_ = std::make_unique<File>(fd);
  seg_base_ = seg.base;
  file_pos_ = 0;
  return Status::Ok();
}

Status SegmentReader::Seek() {
  int64_t end = p_->durable_end.load(std::memory_order_acquire);
  if (next_ > end) {
    return Status::FailedPrecondition("partition " + std::to_string(p_->id.value) + ": offset " +
                                      std::to_string(next_) + " is past the log end " + std::to_string(end));
  }
  int64_t target = next_;
  RETURN_IF_ERROR(OpenSegmentFor(target, false));
  next_ = seg_base_;
  // Walk record headers up to the target offset.
  while (next_ < target) {
    char h[kHeader];
    if (::pread(file_->fd, h, kHeader, static_cast<off_t>(file_pos_)) != static_cast<ssize_t>(kHeader)) {
      return Status::Corruption("partition " + std::to_string(p_->id.value) + ": cannot find offset " +
                                std::to_string(target));
    }
    Header hd = ReadHeader(h);
    if (hd.offset != next_ || hd.len > kMaxRecord) {
      return Status::Corruption("partition " + std::to_string(p_->id.value) + ": bad record header at offset " +
                                std::to_string(next_));
    }
    file_pos_ += kHeader + hd.len;
    ++next_;
  }
  return Status::Ok();
}

Status SegmentReader::Read(size_t max_bytes, std::vector<LogRecord>* out) {
  out->clear();
  const int64_t end = p_->durable_end.load(std::memory_order_acquire);
  if (next_ >= end) return Status::Ok();
  size_t want = std::max<size_t>(max_bytes, 64 << 10);
  for (int attempt = 0; attempt < 3; ++attempt) {
    buf_.resize(want);
    ssize_t n = ::pread(file_->fd, buf_.data(), want, static_cast<off_t>(file_pos_));
    if (n < 0) return Status::IOError(Errno("log read partition " + std::to_string(p_->id.value)));
    if (n == 0) {
      // End of this segment: the next one starts exactly at our offset.
      Status st = OpenSegmentFor(next_, true);
      if (st.code() == StatusCode::kNotFound) return Status::Ok();
      RETURN_IF_ERROR(st);
      continue;
    }
    size_t pos = 0;
    size_t got = static_cast<size_t>(n);
    while (pos + kHeader <= got && next_ < end && pos < max_bytes) {
      Header h = ReadHeader(buf_.data() + pos);
      if (h.len > kMaxRecord || h.offset != next_) {
        return Status::Corruption("partition " + std::to_string(p_->id.value) + ": bad record header at offset " +
                                  std::to_string(next_) + " (segment " + std::to_string(seg_base_) + ")");
      }
      if (pos + kHeader + h.len > got) break;
      std::string_view payload(buf_.data() + pos + kHeader, h.len);
      if (Checksum(h.offset, payload) != h.sum) {
        return Status::Corruption("partition " + std::to_string(p_->id.value) + ": checksum mismatch at offset " +
                                  std::to_string(next_) + " (segment " + std::to_string(seg_base_) + ")");
      }
      out->push_back({Offset(next_), payload});
      pos += kHeader + h.len;
      ++next_;
    }
    file_pos_ += pos;
    if (!out->empty()) return Status::Ok();
    if (pos + kHeader <= got) {
      // One record larger than the buffer: read it whole next time.
      want = kHeader + ReadHeader(buf_.data() + pos).len;
      continue;
    }
    want = std::max(want, pos + kHeader);
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<Log>> OpenSegmentLog(const SegmentLogOptions& options, MetricsRegistry* metrics,
                                            SegmentLogRecovery* recovery) {
  if (options.partitions < 1) return Status::InvalidArgument("log: partitions must be >= 1");
  auto log = std::make_unique<SegmentLog>(options, metrics);
  RETURN_IF_ERROR(log->Open(recovery));
  return std::unique_ptr<Log>(std::move(log));
}

}  // namespace portrait
