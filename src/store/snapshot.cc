#include "store/snapshot.h"

#include <fcntl.h>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>
#include <signal.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/action.h"
#include "core/event.h"
#include "core/json.h"

namespace portrait {

namespace fs = std::filesystem;

namespace {

constexpr const char* kLogName = "completed.ndjson";

Status FsyncPath(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IOError("cannot open " + path + " to sync it");
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return Status::IOError("fsync " + path + " failed");
  return Status::Ok();
}

// Serialises writers of the completion log and of snapshot directories (flock; released
// by the kernel if the process dies).
class WriterLock {
 public:
  static Result<WriterLock> Acquire(const std::string& dir) {
    std::string path = dir + "/.lock";
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return Status::IOError("cannot open " + path);
    if (::flock(fd, LOCK_EX) != 0) {
      ::close(fd);
      return Status::IOError("cannot lock " + path);
    }
    return WriterLock(fd);
  }
  WriterLock(WriterLock&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  ~WriterLock() {
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  explicit WriterLock(int fd) : fd_(fd) {}
  int fd_;
};

Status AppendRow(const std::string& dir, const std::string& json) {
  std::string path = dir + "/" + kLogName;
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IOError("cannot open " + path);
  std::string line = json + "\n";
  bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) return Status::IOError("cannot append to " + path);
  return FsyncPath(dir);
}

std::string SnapshotPath(const std::string& dir, std::string_view date, int version) {
  return dir + "/date=" + std::string(date) + "/v=" + std::to_string(version);
}

rocksdb::Options SnapshotOptions() {
  rocksdb::Options o;
  rocksdb::BlockBasedTableOptions t;
  t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  t.block_cache = rocksdb::NewLRUCache(32 << 20);
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  o.max_open_files = -1;  // opens every file up front: a retired snapshot's deletion cannot hurt a reader
  auto supported = rocksdb::GetSupportedCompressions();
  if (std::find(supported.begin(), supported.end(), rocksdb::kLZ4Compression) != supported.end()) {
    o.compression = rocksdb::kLZ4Compression;
  }
  return o;
}

bool ProcessAlive(long pid) { return pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM); }

std::string HostName() {
  char buf[256] = {};
  ::gethostname(buf, sizeof buf - 1);
  return buf;
}

// ".tmp-PID@HOST-": several machines may write into one shared snapshot dir.
std::string TmpPrefix() { return ".tmp-" + std::to_string(::getpid()) + "@" + HostName() + "-"; }

// Deletes temporary directories left by writers of this machine that died (another
// machine's are not ours to judge).
void RemoveAbandoned(const std::string& dir) {
  std::error_code ec;
  const std::string host = HostName();
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (name.rfind(".tmp-", 0) != 0) continue;
    long pid = std::atol(name.c_str() + 5);
    size_t at = name.find('@');
    if (at != std::string::npos && name.compare(at + 1, host.size() + 1, host + "-") != 0) continue;
    if (ProcessAlive(pid)) continue;
    spdlog::info("snapshot: removing {} left by a writer that stopped before completing it", e.path().string());
    fs::remove_all(e.path(), ec);
  }
}

uint64_t DirBytes(const std::string& path) {
  uint64_t n = 0;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(path, ec)) {
    if (e.is_regular_file(ec)) n += e.file_size(ec);
  }
  return n;
}

}  // namespace

TimestampMs SnapshotAsOf(std::string_view date) { return DayStartMs(date).value_or(0) + 86'400'000 - 1; }

std::string SnapshotInfo::Mark() const { return SnapshotMark(date, version); }

std::string SnapshotInfo::ToJson() const {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("date").String(date).Key("version").Int(version).Key("users").Int(static_cast<int64_t>(users));
  w.Key("bytes").Int(static_cast<int64_t>(bytes)).Key("completed_at").String(completed_at).Key("source").String(source);
  if (!retired_at.empty()) w.Key("retired_at").String(retired_at);
  w.EndObject();
  return out;
}

Result<std::vector<SnapshotInfo>> ReadCompletionLog(const std::string& dir) {
  std::vector<SnapshotInfo> rows;
  std::ifstream in(dir + "/" + kLogName, std::ios::binary);
  if (!in) return rows;  // nothing completed yet
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  simdjson::dom::parser parser;
  size_t pos = 0, line_no = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    ++line_no;
    if (nl == std::string::npos) break;  // torn last line: its writer died before the fsync
    std::string_view line(text.data() + pos, nl - pos);
    pos = nl + 1;
    if (line.empty()) continue;
    simdjson::dom::element doc;
    SnapshotInfo r;
    std::string_view date, s;
    int64_t v = 0;
    if (parser.parse(line.data(), line.size()).get(doc) || doc["date"].get(date) || doc["version"].get(v)) {
      spdlog::warn("snapshot: {}/{} line {} is not a completion row; ignored", dir, kLogName, line_no);
      continue;
    }
    r.date = date;
    r.version = static_cast<int>(v);
    if (!doc["retired_at"].get(s)) {
      for (auto& row : rows) {
        if (row.date == r.date && row.version == r.version) row.retired_at = s;
      }
      continue;
    }
    uint64_t n = 0;
    if (!doc["users"].get(n)) r.users = n;
    if (!doc["bytes"].get(n)) r.bytes = n;
    if (!doc["completed_at"].get(s)) r.completed_at = s;
    if (!doc["source"].get(s)) r.source = s;
    rows.push_back(std::move(r));
  }
  return rows;
}

Result<std::unique_ptr<SnapshotWriter>> SnapshotWriter::Start(const std::string& dir, std::string date,
                                                              std::string source, int partition) {
  if (!DayStartMs(date)) return Status::InvalidArgument("snapshot date \"" + date + "\" is not a date YYYY-MM-DD");
  // A part is written beside .parts, which only ever holds finished parts (it is renamed whole).
  const std::string tmp_dir = partition < 0 ? dir : dir + "/date=" + date;
  std::error_code ec;
  fs::create_directories(tmp_dir, ec);
  if (ec) return Status::IOError("cannot create " + tmp_dir + ": " + ec.message());
  RemoveAbandoned(tmp_dir);
  std::unique_ptr<SnapshotWriter> w(new SnapshotWriter());
  w->dir_ = dir;
  w->date_ = std::move(date);
  w->source_ = std::move(source);
  w->partition_ = partition;
  w->tmp_ = tmp_dir + "/" + TmpPrefix() + (partition < 0 ? w->date_ : "part-" + std::to_string(partition)) + "-" +
            std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
  RETURN_IF_ERROR(w->Open());
  return w;
}

Result<std::unique_ptr<SnapshotWriter>> SnapshotWriter::Create(const std::string& dir, std::string date,
                                                               std::string source) {
  return Start(dir, std::move(date), std::move(source), -1);
}

Result<std::unique_ptr<SnapshotWriter>> SnapshotWriter::CreatePart(const std::string& dir, std::string date,
                                                                   int partition) {
  return Start(dir, std::move(date), "batch", partition);
}

Status SnapshotWriter::Open() {
  rocksdb::Options o = SnapshotOptions();
  o.PrepareForBulkLoad();
  o.create_if_missing = true;
  o.error_if_exists = true;
  o.write_buffer_size = 64 << 20;
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(o, tmp_, &db);
  if (!s.ok()) return Status::IOError("snapshot: cannot create " + tmp_ + ": " + s.ToString());
  db_.reset(db);
  return Status::Ok();
}

SnapshotWriter::~SnapshotWriter() {
  if (db_) {
    db_->Close();
    db_.reset();
  }
  if (!tmp_.empty()) {
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }
}

Status SnapshotWriter::Put(std::string_view uid, std::string_view profile_json) {
  rocksdb::WriteOptions wo;
  wo.disableWAL = true;  // the whole snapshot is synced by Commit, or discarded
  rocksdb::Status s = db_->Put(wo, rocksdb::Slice(uid.data(), uid.size()),
                               rocksdb::Slice(profile_json.data(), profile_json.size()));
  if (!s.ok()) return Status::IOError("snapshot write: " + s.ToString());
  users_.fetch_add(1, std::memory_order_relaxed);
  return Status::Ok();
}

Status SnapshotWriter::Seal() {
  rocksdb::Status s = db_->Flush(rocksdb::FlushOptions());
  // A few level-0 files cost a reader only a bloom-filter probe each; past that, one sorted
  // run keeps a lookup to one file.
  std::string l0;
  if (s.ok() && db_->GetProperty("rocksdb.num-files-at-level0", &l0) && std::atoi(l0.c_str()) > 8) {
    s = db_->CompactRange(rocksdb::CompactRangeOptions(), nullptr, nullptr);
  }
  if (s.ok()) s = db_->Close();
  if (!s.ok()) return Status::IOError("snapshot: cannot finish " + tmp_ + ": " + s.ToString());
  db_.reset();
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(tmp_, ec)) {
    if (e.is_regular_file(ec)) RETURN_IF_ERROR(FsyncPath(e.path().string()));
  }
  return FsyncPath(tmp_);
}

Status SnapshotWriter::FinishPart() {
  RETURN_IF_ERROR(Seal());
  const std::string parts = dir_ + "/date=" + date_ + "/.parts";
  const std::string final_path = parts + "/part-" + std::to_string(partition_);
  // The user count beside the part, written first: a part is there once it is renamed.
  {
    std::ofstream out(tmp_ + "/USERS", std::ios::trunc);
    out << users_.load() << "\n";
    if (!out.flush()) return Status::IOError("snapshot: cannot write " + tmp_ + "/USERS");
  }
  RETURN_IF_ERROR(FsyncPath(tmp_ + "/USERS"));
  // Under the writers' lock: CommitParts must not take .parts while an older computation
  // of this part is half deleted.
  ASSIGN_OR_RETURN(WriterLock lock, WriterLock::Acquire(dir_));
  std::error_code ec;
  fs::create_directories(parts, ec);
  fs::remove_all(final_path, ec);  // an older computation of this part
  fs::rename(tmp_, final_path, ec);
  if (ec) return Status::IOError("snapshot: cannot move " + tmp_ + " to " + final_path + ": " + ec.message());
  tmp_.clear();
  return FsyncPath(parts);
}

namespace {

// With the writers' lock held: the directory `from` becomes the next version of
// info->date (numbered here), then its completion row is appended.
Status PublishVersion(const std::string& dir, const std::string& from, SnapshotInfo* info) {
  ASSIGN_OR_RETURN(auto rows, ReadCompletionLog(dir));
  int version = 0;
  for (const auto& r : rows) {
    if (r.date == info->date) version = std::max(version, r.version);
  }
  info->version = version + 1;
  const std::string date_dir = dir + "/date=" + info->date;
  std::error_code ec;
  fs::create_directories(date_dir, ec);
  std::string final_path = SnapshotPath(dir, info->date, info->version);
  fs::remove_all(final_path, ec);  // a directory without a row: a writer died between rename and append
  fs::rename(from, final_path, ec);
  if (ec) return Status::IOError("snapshot: cannot move " + from + " to " + final_path + ": " + ec.message());
  RETURN_IF_ERROR(FsyncPath(date_dir));
  RETURN_IF_ERROR(FsyncPath(dir));
  info->completed_at = FormatIsoUtc(NowMs());
  return AppendRow(dir, info->ToJson());
}

}  // namespace

Result<std::optional<SnapshotInfo>> CommitParts(const std::string& dir, const std::string& date, int partitions,
                                                int keep, std::vector<int>* missing) {
  const std::string date_dir = dir + "/date=" + date;
  const std::string parts = date_dir + "/.parts";
  SnapshotInfo info;
  {
    ASSIGN_OR_RETURN(WriterLock lock, WriterLock::Acquire(dir));
    missing->clear();
    for (int p = 0; p < partitions; ++p) {
      std::ifstream users(parts + "/part-" + std::to_string(p) + "/USERS");
      uint64_t n = 0;
      if (users >> n) info.users += n;
      else missing->push_back(p);
    }
    if (!missing->empty()) return std::optional<SnapshotInfo>();
    {
      std::ofstream out(parts + "/PARTS", std::ios::trunc);
      out << partitions << "\n";
      if (!out.flush()) return Status::IOError("snapshot: cannot write " + parts + "/PARTS");
    }
    RETURN_IF_ERROR(FsyncPath(parts + "/PARTS"));
    info.date = date;
    info.source = "batch";
    info.bytes = DirBytes(parts);
    RETURN_IF_ERROR(PublishVersion(dir, parts, &info));
  }
  RETURN_IF_ERROR(RetireSnapshots(dir, keep));
  return std::optional<SnapshotInfo>(std::move(info));
}

Result<SnapshotInfo> SnapshotWriter::Commit(int keep) {
  RETURN_IF_ERROR(Seal());
  SnapshotInfo info;
  info.date = date_;
  info.users = users_.load();
  info.bytes = DirBytes(tmp_);
  info.source = source_;
  {
    ASSIGN_OR_RETURN(WriterLock lock, WriterLock::Acquire(dir_));
    Status st = PublishVersion(dir_, tmp_, &info);
    if (!fs::exists(tmp_)) tmp_.clear();  // moved into place: no longer ours to delete
    RETURN_IF_ERROR(st);
  }
  RETURN_IF_ERROR(RetireSnapshots(dir_, keep));
  return info;
}

Status RetireSnapshots(const std::string& dir, int keep) {
  ASSIGN_OR_RETURN(WriterLock lock, WriterLock::Acquire(dir));
  ASSIGN_OR_RETURN(auto rows, ReadCompletionLog(dir));
  std::vector<const SnapshotInfo*> live;
  for (const auto& r : rows) {
    if (r.retired_at.empty()) live.push_back(&r);
  }
  std::sort(live.begin(), live.end(), [](auto* a, auto* b) {
    return a->date != b->date ? a->date > b->date : a->version > b->version;
  });
  for (size_t i = static_cast<size_t>(std::max(keep, 1)); i < live.size(); ++i) {
    std::string row;
    JsonWriter w(&row);
    w.BeginObject().Key("date").String(live[i]->date).Key("version").Int(live[i]->version);
    w.Key("retired_at").String(FormatIsoUtc(NowMs())).EndObject();
    RETURN_IF_ERROR(AppendRow(dir, row));
    std::error_code ec;
    std::string path = SnapshotPath(dir, live[i]->date, live[i]->version);
    fs::remove_all(path, ec);
    fs::remove(fs::path(path).parent_path(), ec);  // only when empty
    spdlog::info("snapshot: retired {}", live[i]->Mark());
  }
  return Status::Ok();
}

SnapshotCatalog::SnapshotCatalog(std::string dir) : dir_(std::move(dir)) {}
SnapshotCatalog::~SnapshotCatalog() = default;

Status SnapshotCatalog::Refresh() {
  struct stat st;
  int64_t size = -1, mtime = -1;
  if (::stat((dir_ + "/" + kLogName).c_str(), &st) == 0) {
    size = st.st_size;
    mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  }
  std::lock_guard<std::mutex> l(mu_);
  if (size == seen_size_ && mtime == seen_mtime_ns_) return Status::Ok();
  ASSIGN_OR_RETURN(auto rows, ReadCompletionLog(dir_));
  rows_ = std::move(rows);
  seen_size_ = size;
  seen_mtime_ns_ = mtime;
  for (auto it = open_.begin(); it != open_.end();) {
    std::string_view mark(it->first);
    if (size_t part = mark.find("/part-"); part != std::string_view::npos) mark = mark.substr(0, part);
    bool live = std::any_of(rows_.begin(), rows_.end(), [&](auto& r) { return r.retired_at.empty() && r.Mark() == mark; });
    it = live ? std::next(it) : open_.erase(it);
  }
  return Status::Ok();
}

std::vector<SnapshotInfo> SnapshotCatalog::List() {
  std::lock_guard<std::mutex> l(mu_);
  return rows_;
}

std::optional<SnapshotInfo> SnapshotCatalog::NewestBefore(std::string_view day) {
  std::lock_guard<std::mutex> l(mu_);
  const SnapshotInfo* best = nullptr;
  for (const auto& r : rows_) {
    if (!r.retired_at.empty() || r.date >= day) continue;
    if (!best || r.date > best->date || (r.date == best->date && r.version > best->version)) best = &r;
  }
  if (!best) return std::nullopt;
  return *best;
}

Result<std::shared_ptr<rocksdb::DB>> SnapshotCatalog::OpenPath(const std::string& key, const std::string& path) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (auto it = open_.find(key); it != open_.end()) return it->second;
  }
  rocksdb::DB* db = nullptr;
  rocksdb::Status st = rocksdb::DB::OpenForReadOnly(SnapshotOptions(), path, &db);
  if (!st.ok()) return Status::IOError("snapshot " + key + ": cannot open: " + st.ToString());
  std::shared_ptr<rocksdb::DB> shared(db);
  std::lock_guard<std::mutex> l(mu_);
  auto [it, fresh] = open_.emplace(key, shared);
  return it->second;
}

Result<int> SnapshotCatalog::Partitions(const SnapshotInfo& s) {
  const std::string mark = s.Mark();
  {
    std::lock_guard<std::mutex> l(mu_);
    if (auto it = parts_.find(mark); it != parts_.end()) return it->second;
  }
  std::ifstream in(SnapshotPath(dir_, s.date, s.version) + "/PARTS");
  int partitions = 0;
  if (in && !(in >> partitions)) return Status::Corruption("snapshot " + mark + ": unreadable PARTS file");
  std::lock_guard<std::mutex> l(mu_);
  parts_[mark] = partitions;
  return partitions;
}

Result<std::shared_ptr<rocksdb::DB>> SnapshotCatalog::Open(const SnapshotInfo& s, std::string_view uid) {
  const std::string mark = s.Mark();
  const std::string path = SnapshotPath(dir_, s.date, s.version);
  ASSIGN_OR_RETURN(int partitions, Partitions(s));
  if (partitions == 0) return OpenPath(mark, path);
  std::string part = "part-" + std::to_string(PartitionFor(uid, partitions).value);
  return OpenPath(mark + "/" + part, path + "/" + part);
}

std::optional<SnapshotInfo> SnapshotCatalog::NewestOf(std::string_view date) {
  std::lock_guard<std::mutex> l(mu_);
  const SnapshotInfo* best = nullptr;
  for (const auto& r : rows_) {
    if (r.retired_at.empty() && r.date == date && (!best || r.version > best->version)) best = &r;
  }
  if (!best) return std::nullopt;
  return *best;
}

Status SnapshotCatalog::ForEach(const SnapshotInfo& s, const RowFn& fn) {
  const std::string mark = s.Mark();
  const std::string path = SnapshotPath(dir_, s.date, s.version);
  ASSIGN_OR_RETURN(int partitions, Partitions(s));
  for (int p = 0; p < std::max(partitions, 1); ++p) {
    std::string part = "part-" + std::to_string(p);
    auto db = partitions == 0 ? OpenPath(mark, path) : OpenPath(mark + "/" + part, path + "/" + part);
    if (!db.ok()) return db.status();
    std::unique_ptr<rocksdb::Iterator> it((*db)->NewIterator(rocksdb::ReadOptions()));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      RETURN_IF_ERROR(fn(std::string_view(it->key().data(), it->key().size()),
                         std::string_view(it->value().data(), it->value().size())));
    }
    if (!it->status().ok()) return Status::IOError("snapshot " + mark + ": " + it->status().ToString());
  }
  return Status::Ok();
}

Result<std::optional<std::string>> SnapshotCatalog::Lookup(const SnapshotInfo& s, std::string_view uid) {
  ASSIGN_OR_RETURN(auto db, Open(s, uid));
  std::string value;
  rocksdb::Status st = db->Get(rocksdb::ReadOptions(), rocksdb::Slice(uid.data(), uid.size()), &value);
  if (st.IsNotFound()) return std::optional<std::string>();
  if (!st.ok()) return Status::IOError("snapshot " + s.Mark() + ": " + st.ToString());
  return std::optional<std::string>(std::move(value));
}

}  // namespace portrait
