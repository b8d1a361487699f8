#include "ingest/sources/file_source.h"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/json.h"
#include "ingest/sources/kafka_source.h"

namespace portrait {

std::vector<std::string> SplitCsv(std::string_view row, char delim) {
  std::vector<std::string> out(1);
  bool quoted = false;
  for (size_t i = 0; i < row.size(); ++i) {
    char c = row[i];
    if (quoted) {
      if (c == '"' && i + 1 < row.size() && row[i + 1] == '"') {
        out.back().push_back('"');
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        out.back().push_back(c);
      }
    } else if (c == '"' && out.back().empty()) {
      quoted = true;
    } else if (c == delim) {
      out.emplace_back();
    } else {
      out.back().push_back(c);
    }
  }
  return out;
}

namespace {

bool IsNumber(const std::string& s, bool integer_only) {
  if (s.empty()) return false;
  double d;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
  if (ec != std::errc() || p != s.data() + s.size()) return false;
  return !integer_only || s.find_first_of(".eE") == std::string::npos;
}

struct Position {
  ino_t inode = 0;
  uint64_t offset = 0;
};

}  // namespace

std::string LinesToBody(const std::vector<std::string_view>& lines, const SourceConfig& src, const Config& cfg,
                        std::vector<std::pair<size_t, std::string>>* unreadable) {
  std::string body;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (src.format == "csv") {
      auto json = CsvRowToJson(lines[i], src, cfg);
      if (json.ok()) {
        body += *json;
      } else {
        // Keep the row as a JSON string so the collector rejects and keeps it with the rest.
        AppendJsonString(&body, lines[i]);
        unreadable->emplace_back(i, json.status().message());
      }
    } else {
      body.append(lines[i]);
    }
    body.push_back('\n');
  }
  body.reserve(body.size() + Collector::kPadding);
  return body;
}

Result<std::string> CsvRowToJson(std::string_view row, const SourceConfig& src, const Config& cfg) {
  std::vector<std::string> cells = SplitCsv(row, src.delimiter);
  if (cells.size() != src.columns.size()) {
    return Status::InvalidArgument("CSV row has " + std::to_string(cells.size()) + " columns, the source maps " +
                                   std::to_string(src.columns.size()));
  }
  std::string type;
  for (size_t i = 0; i < cells.size(); ++i) {
    if (src.columns[i] == "type") {
      auto m = src.type_map.find(cells[i]);
      type = m != src.type_map.end() ? m->second : cells[i];
    }
  }
  auto spec = cfg.events.find(type);
  std::string out;
  JsonWriter w(&out);
  w.BeginObject();
  std::string props;
  JsonWriter pw(&props);
  pw.BeginObject();
  for (size_t i = 0; i < cells.size(); ++i) {
    const std::string& col = src.columns[i];
    const std::string& v = cells[i];
    if (col.empty()) continue;
    if (col == "type") {
      w.Key("type").String(type);
    } else if (col == "ts") {
      int64_t ts = 0;
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), ts);
      if (ec != std::errc() || p != v.data() + v.size()) {
        return Status::InvalidArgument("CSV ts \"" + v + "\" is not an integer");
      }
      w.Key("ts").Int(ts * src.ts_scale);
    } else if (col.starts_with("props.")) {
      std::string name = col.substr(6);
      const FieldSpec* f = spec != cfg.events.end() ? spec->second.FindProp(name) : nullptr;
      FieldType t = f ? f->type : FieldType::kAny;
      pw.Key(name);
      if ((t == FieldType::kInt && IsNumber(v, true)) ||
          ((t == FieldType::kNumber || t == FieldType::kAny) && IsNumber(v, false))) {
        pw.Raw(v);
      } else if (t == FieldType::kBool && (v == "true" || v == "false")) {
        pw.Raw(v);
      } else {
        pw.String(v);  // a string, or a value validation will reject with its reason
      }
    } else if (!v.empty()) {
      w.Key(col).String(v);
    }
  }
  pw.EndObject();
  w.Key("props").Raw(props);
  w.EndObject();
  return out;
}

namespace {

class FileSource : public PullSource {
 public:
  FileSource(const SourceConfig& src, const Config& cfg, Collector* collector, const std::string& data_dir,
             MetricsRegistry* m)
      : src_(src), cfg_(cfg), collector_(collector) {
    pos_path_ = data_dir + "/sources/" + src.name + ".pos";
    std::string label = "source=\"" + src.name + "\"";
    lines_ = m->GetCounter("portrait_source_lines_total", "Lines read by a pull source", label);
    bytes_ = m->GetCounter("portrait_source_bytes_total", "Bytes read by a pull source", label);
    rotations_ = m->GetCounter("portrait_source_rotations_total", "File rotations followed", label);
    errors_ = m->GetCounter("portrait_source_errors_total", "Batches a source could not hand over (retried)", label);
  }
  ~FileSource() override { Stop(); }

  Status Start() override {
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(pos_path_).parent_path(), ec);
    if (ec) return Status::IOError("source " + src_.name + ": " + ec.message());
    thread_ = std::thread([this] { Run(); });
    return Status::Ok();
  }

  void Stop() override {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  bool Sleep(int ms) {
    std::unique_lock lk(mu_);
    return !cv_.wait_for(lk, std::chrono::milliseconds(ms), [&] { return stop_; });
  }

  Position LoadPosition() {
    Position p;
    std::ifstream in(pos_path_);
    unsigned long long ino = 0, off = 0;
    if (in >> ino >> off) {
      p.inode = static_cast<ino_t>(ino);
      p.offset = off;
    }
    return p;
  }

  void SavePosition() {
    std::string tmp = pos_path_ + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << static_cast<unsigned long long>(inode_) << ' ' << offset_ << '\n';
    }
    std::error_code ec;
    std::filesystem::rename(tmp, pos_path_, ec);
    if (ec) spdlog::error("source {}: cannot save position: {}", src_.name, ec.message());
  }

  // Opens `path` at `offset`; false if it does not exist (yet).
  bool OpenAt(const std::string& path, uint64_t offset) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    struct stat st;
    ::fstat(fd, &st);
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
    inode_ = st.st_ino;
    offset_ = static_cast<uint64_t>(st.st_size) < offset ? 0 : offset;  // truncated meanwhile
    pending_.clear();
    return true;
  }

  // After a restart: the saved inode may now live under another name (rotated).
  std::string FindByInode(ino_t inode) {
    std::filesystem::path dir = std::filesystem::path(src_.path).parent_path();
    if (dir.empty()) dir = ".";
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
      struct stat st;
      if (::stat(e.path().c_str(), &st) == 0 && st.st_ino == inode) return e.path().string();
    }
    return "";
  }

  void Run() {
    Position saved = LoadPosition();
    struct stat st;
    if (saved.inode != 0) {
      if (::stat(src_.path.c_str(), &st) == 0 && st.st_ino == saved.inode) {
        OpenAt(src_.path, saved.offset);
      } else if (std::string old = FindByInode(saved.inode); !old.empty()) {
        OpenAt(old, saved.offset);  // finish the rotated file first
        draining_ = true;
      } else {
        spdlog::warn("source {}: the file it was reading is gone; starting {} from its beginning", src_.name, src_.path);
      }
    }
    while (true) {
      {
        std::lock_guard lk(mu_);
        if (stop_) return;
      }
      if (fd_ < 0 && !OpenAt(src_.path, 0)) {
        if (!Sleep(src_.poll_ms)) return;
        continue;
      }
      if (ReadBatch()) continue;
      // At the end of the file: has it been rotated or truncated?
      bool rotated = ::stat(src_.path.c_str(), &st) == 0 && st.st_ino != inode_;
      if (rotated || draining_) {
        if (!pending_.empty() && !Ingest({pending_}, pending_.size())) continue;  // unterminated last line
        if (::stat(src_.path.c_str(), &st) == 0 && OpenAt(src_.path, 0)) {
          draining_ = false;
          rotations_->Inc();
          SavePosition();
          continue;
        }
      } else {
        struct stat cur;
        if (::fstat(fd_, &cur) == 0 && static_cast<uint64_t>(cur.st_size) < offset_) {
          spdlog::warn("source {}: {} was truncated; reading it again from the start", src_.name, src_.path);
          offset_ = 0;
          pending_.clear();
          continue;
        }
      }
      if (!Sleep(src_.poll_ms)) return;
    }
  }

  // Reads what is new and ingests the complete lines; false when there was nothing new.
  bool ReadBatch() {
    constexpr size_t kChunk = 1 << 20;
    size_t have = pending_.size();
    pending_.resize(have + kChunk);
    ssize_t n = ::pread(fd_, pending_.data() + have, kChunk, static_cast<off_t>(offset_ + have));
    pending_.resize(have + static_cast<size_t>(std::max<ssize_t>(n, 0)));
    if (n <= 0) return false;
    size_t end = pending_.rfind('\n');
    if (end == std::string::npos) return true;  // a line longer than we have: read more
    std::vector<std::string_view> lines;
    std::string_view all(pending_.data(), end + 1);
    size_t pos = 0;
    while (pos < all.size()) {
      size_t nl = all.find('\n', pos);
      std::string_view line = all.substr(pos, nl - pos);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      bool skip = line.empty() || (src_.header && src_.format == "csv" && offset_ + pos == 0);
      if (!skip) lines.push_back(line);
      pos = nl + 1;
    }
    if (!Ingest(lines, end + 1)) return true;
    return true;
  }

  // Hands `lines` to the collector; on success consumes `consumed` bytes of pending_.
  bool Ingest(const std::vector<std::string_view>& lines, size_t consumed) {
    std::vector<std::pair<size_t, std::string>> unreadable;
    std::string body = LinesToBody(lines, src_, cfg_, &unreadable);
    if (!body.empty()) {
      auto r = collector_->Ingest(body, "file:" + src_.name);
      if (!r.ok()) {
        errors_->Inc();
        spdlog::error("source {}: {} (will retry)", src_.name, r.status().ToString());
        Sleep(500);
        return false;
      }
      for (const auto& [i, why] : unreadable) spdlog::warn("source {}: line {}: {}", src_.name, i, why);
    }
    lines_->Inc(lines.size());
    bytes_->Inc(consumed);
    offset_ += consumed;
    pending_.erase(0, consumed);
    SavePosition();
    return true;
  }

  SourceConfig src_;
  const Config& cfg_;
  Collector* collector_;
  std::string pos_path_;
  int fd_ = -1;
  ino_t inode_ = 0;
  uint64_t offset_ = 0;   // bytes of the current file ingested
  std::string pending_;   // bytes read past offset_, not yet ingested
  bool draining_ = false; // reading a rotated file found again after a restart
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  Counter* lines_;
  Counter* bytes_;
  Counter* rotations_;
  Counter* errors_;
};

}  // namespace

Result<std::unique_ptr<PullSource>> MakeFileSource(const SourceConfig& source, const Config& config, Collector* collector,
                                               const std::string& data_dir, MetricsRegistry* metrics) {
  return std::unique_ptr<PullSource>(std::make_unique<FileSource>(source, config, collector, data_dir, metrics));
}

Result<std::unique_ptr<PullSource>> MakeSource(const SourceConfig& source, const Config& config, Collector* collector,
                                           const std::string& data_dir, MetricsRegistry* metrics) {
  if (source.type == "file") return MakeFileSource(source, config, collector, data_dir, metrics);
  if (source.type == "kafka") return MakeKafkaSource(source, config, collector, metrics);
  return Status::InvalidArgument("source \"" + source.name + "\": type \"" + source.type + "\" is not available");
}

}  // namespace portrait
