#include "log/archive/archive_files.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <filesystem>

namespace portrait {

namespace fs = std::filesystem;

Result<std::map<int, std::vector<std::string>>> ListArchive(const std::string& dir, const std::string& first_date,
                                                            const std::string& last_date) {
  std::map<int, std::vector<std::string>> parts;
  std::error_code ec;
  if (!fs::exists(dir, ec)) return parts;
  for (const auto& d : fs::directory_iterator(dir, ec)) {
    std::string name = d.path().filename().string();
    if (!name.starts_with("date=") || !d.is_directory()) continue;
    std::string date = name.substr(5);
    if ((!first_date.empty() && date < first_date) || date > last_date) continue;
    for (const auto& h : fs::directory_iterator(d.path(), ec)) {
      if (!h.is_directory() || !h.path().filename().string().starts_with("hour=")) continue;
      for (const auto& f : fs::directory_iterator(h.path(), ec)) {
        std::string fname = f.path().filename().string();
        if (!fname.starts_with("part-") || !fname.ends_with(".ndjson.gz")) continue;  // .tmp: being written
        int p = std::atoi(fname.c_str() + 5);
        parts[p].push_back(f.path().string());
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

}  // namespace portrait
