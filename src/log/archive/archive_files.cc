#include "log/archive/archive_files.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <climits>
#include <filesystem>

namespace portrait {

namespace fs = std::filesystem;

std::optional<PartName> ParsePartName(std::string_view name) {
  constexpr std::string_view kPrefix = "part-", kSuffix = ".ndjson.gz";
  if (!name.starts_with(kPrefix) || !name.ends_with(kSuffix)) return std::nullopt;
  std::string_view rest = name.substr(kPrefix.size(), name.size() - kPrefix.size() - kSuffix.size());
  int64_t numbers[3];
  size_t n = 0;
  while (n < 3) {
    auto [ptr, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), numbers[n]);
    if (ec != std::errc() || numbers[n] < 0) return std::nullopt;
    ++n;
    rest.remove_prefix(static_cast<size_t>(ptr - rest.data()));
    if (rest.empty()) break;
    if (rest.front() != '-') return std::nullopt;
    rest.remove_prefix(1);
  }
  if (!rest.empty() || n < 2 || numbers[0] > INT32_MAX) return std::nullopt;
  PartName p;
  p.partition = static_cast<int>(numbers[0]);
  p.lo = numbers[1];
  p.hi = n == 3 ? numbers[2] : numbers[1];
  p.merged = n == 3;
  if (p.hi < p.lo) return std::nullopt;
  return p;
}

std::string PartFileName(int partition, int64_t lo, int64_t hi) {
  std::string name = "part-" + std::to_string(partition) + "-" + std::to_string(lo);
  if (hi != lo) name += "-" + std::to_string(hi);
  return name + ".ndjson.gz";
}

std::vector<std::string> VisibleParts(const std::vector<std::string>& names, std::vector<std::string>* covered) {
  std::vector<std::pair<std::string_view, PartName>> merged;
  for (const std::string& n : names) {
    if (auto p = ParsePartName(n); p && p->merged) merged.emplace_back(n, *p);
  }
  std::vector<std::string> visible;
  for (const std::string& n : names) {
    auto p = ParsePartName(n);
    bool hidden = p && std::any_of(merged.begin(), merged.end(), [&](const auto& m) {
      return m.first != n && m.second.partition == p->partition && m.second.lo <= p->lo && p->hi <= m.second.hi;
    });
    if (!hidden) {
      visible.push_back(n);
    } else if (covered) {
      covered->push_back(n);
    }
  }
  return visible;
}

namespace {

// The part file names of one hour directory (not .tmp), as one consistent listing: a
// compaction may rename its merged file in while the directory is read, so the listing
// is repeated until every file it shows is still there (the merge's inputs stay for
// [archive] compact_grace after it, so a reader that saw them can read them).
Status ListHour(const fs::path& hour, std::vector<std::string>* visible) {
  std::error_code ec;
  for (int attempt = 0;; ++attempt) {
    std::vector<std::string> names;
    for (const auto& f : fs::directory_iterator(hour, ec)) {
      std::string fname = f.path().filename().string();
      if (fname.starts_with("part-") && fname.ends_with(".ndjson.gz")) names.push_back(std::move(fname));
    }
    if (ec) return Status::IOError("archive " + hour.string() + ": " + ec.message());
    *visible = VisibleParts(names);
    bool all_there = std::all_of(visible->begin(), visible->end(), [&](const std::string& n) {
      std::error_code e;
      return fs::exists(hour / n, e);
    });
    if (all_there || attempt == 10) return Status::Ok();
  }
}

}  // namespace

Result<std::map<int, std::vector<std::string>>> ListArchive(const std::string& dir, const std::string& first_date,
                                                            const std::string& last_date) {
  std::map<int, std::vector<std::string>> parts;
  std::error_code ec;
  if (!fs::exists(dir, ec)) return parts;
  std::vector<std::string> names;
  for (const auto& d : fs::directory_iterator(dir, ec)) {
    std::string name = d.path().filename().string();
    if (!name.starts_with("date=") || !d.is_directory()) continue;
    std::string date = name.substr(5);
    if ((!first_date.empty() && date < first_date) || date > last_date) continue;
    for (const auto& h : fs::directory_iterator(d.path(), ec)) {
      if (!h.is_directory() || !h.path().filename().string().starts_with("hour=")) continue;
      RETURN_IF_ERROR(ListHour(h.path(), &names));
      for (const std::string& fname : names) {
        int p = std::atoi(fname.c_str() + 5);
        parts[p].push_back((h.path() / fname).string());
      }
    }
  }
  if (ec) return Status::IOError("archive " + dir + ": " + ec.message());
  for (auto& [_, files] : parts) std::sort(files.begin(), files.end());
  return parts;
}

Status WriteGzipFile(const std::string& path, std::string_view data, int level) {
  std::string tmp = path + ".tmp";
  const std::string mode = "wb" + std::to_string(std::clamp(level, 1, 9));
  gzFile gz = gzopen(tmp.c_str(), mode.c_str());
  if (!gz) return Status::IOError("cannot create " + tmp);
  bool ok = data.empty() || gzwrite(gz, data.data(), static_cast<unsigned>(data.size())) == static_cast<int>(data.size());
  ok = gzclose(gz) == Z_OK && ok;
  int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ok = ::fsync(fd) == 0 && ok;
    ::close(fd);
  }
  if (!ok) return Status::IOError("cannot write " + tmp);
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return Status::IOError("rename " + tmp + ": " + ec.message());
  return Status::Ok();
}

Status ReadGzip(const std::string& path, std::string* out) {
  out->clear();
  gzFile gz = gzopen(path.c_str(), "rb");
  if (!gz) return Status::IOError("cannot open " + path);
  gzbuffer(gz, 1 << 18);
  char buf[1 << 16];
  int n;
  while ((n = gzread(gz, buf, sizeof buf)) > 0) out->append(buf, static_cast<size_t>(n));
  int err = 0;
  const char* msg = n < 0 ? gzerror(gz, &err) : nullptr;
  gzclose(gz);
  if (n < 0) return Status::Corruption(path + ": " + (msg ? msg : "unreadable gzip"));
  return Status::Ok();
}

Status SyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::IOError("cannot open directory " + dir);
  bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok ? Status::Ok() : Status::IOError("fsync " + dir);
}

}  // namespace portrait
