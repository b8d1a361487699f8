// Files per hour before/after compaction: the public Taobao sample streamed through the
// real archiver (embedded segment log, 8 partitions) at a steady rate (docs/benchmarks.md,
// "Archive compaction"). Usage: compaction_bench CSV WORKDIR RATE FLUSH_SECONDS [one-hour],
// CSV in the public Taobao layout user_id,item_id,category_id,behavior,unix_seconds.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "core/event.h"
#include "log/archive/archive_files.h"
#include "log/archive/archiver.h"
#include "log/embedded/segment_log.h"

using namespace portrait;
namespace fs = std::filesystem;

static void Count(const std::string& dir, const char* when) {
  std::set<std::string> hours, pairs;
  size_t files = 0, lines = 0, read_lines = 0;
  std::string text;
  for (const auto& f : fs::recursive_directory_iterator(dir)) {
    std::string n = f.path().filename().string();
    if (!n.starts_with("part-") || !n.ends_with(".ndjson.gz")) continue;
    ++files;
    hours.insert(f.path().parent_path().string());
    pairs.insert(f.path().parent_path().string() + "#" + std::to_string(std::atoi(n.c_str() + 5)));
    (void)ReadGzip(f.path().string(), &text);
    for (char c : text) lines += c == '\n';
  }
  auto parts = ListArchive(dir, "", "9999-12-31");
  size_t listed = 0;
  for (const auto& [p, fl] : *parts) {
    for (const auto& f : fl) {
      ++listed;
      (void)ReadGzip(f, &text);
      for (char c : text) read_lines += c == '\n';
    }
  }
  std::printf("%s: %zu part files on disk (%zu lines), %zu hours, %zu (partition, hour) pairs, %.2f files per hour; ListArchive: %zu files, %zu events\n",
              when, files, lines, hours.size(), pairs.size(), double(files) / hours.size(), listed, read_lines);
}

int main(int argc, char** argv) {
  const std::string csv = argv[1], work = argv[2];
  const int rate = std::atoi(argv[3]);  // events per second
  const int flush = std::atoi(argv[4]);
  fs::remove_all(work);
  MetricsRegistry m;
  SegmentLogOptions o;
  o.dir = work + "/log";
  o.partitions = 8;
  o.fsync = FsyncPolicy::kNone;
  auto log = OpenSegmentLog(o, &m, nullptr);
  std::vector<std::string> payloads;
  std::vector<LogEntry> all;
  std::ifstream in(csv);
  for (std::string line; std::getline(in, line);) {
    std::stringstream ss(line);
    std::string uid, item, cat, b, sec;
    std::getline(ss, uid, ',');
    std::getline(ss, item, ',');
    std::getline(ss, cat, ',');
    std::getline(ss, b, ',');
    std::getline(ss, sec, ',');
    Event e;
    e.uid = uid;
    e.type = b == "pv" ? "click" : b;
    e.ts = std::stoll(sec) * 1000;
    if (argc > 5) e.ts = 1511539200000 + static_cast<int64_t>(payloads.size()) * 3'600'000 / 4321;  // one hour
    e.props = {{"item_id", item}, {"category_id", cat}};
    payloads.emplace_back();
    EncodeEvent(e, &payloads.back());
  }
  size_t i = 0;
  for (const auto& p : payloads) {
    Event e;
    (void)DecodeEvent(p, &e);
    all.push_back({PartitionFor(e.uid, 8), payloads[i++]});
  }
  ArchiveConfig config;
  config.flush_seconds = flush;
  config.compact = false;
  config.compact_grace_ms = 0;
  const std::string dir = work + "/archive";
  {
    Archiver a(config, dir, log->get(), &m);
    (void)a.Start();
    const size_t chunk = std::max(1, rate / 10);
    for (size_t at = 0; at < all.size(); at += chunk) {
      std::span<const LogEntry> s(all.data() + at, std::min(chunk, all.size() - at));
      (void)(*log)->Append(s);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::this_thread::sleep_for(std::chrono::seconds(flush + 1));
  }
  Count(dir, "before (compact = false)");
  config.compact = true;
  Archiver b(config, dir, log->get(), &m);
  auto t = std::chrono::steady_clock::now();
  CompactionStats st = b.CompactClosedHours();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  std::printf("one compaction pass: %zu files merged into %zu, %zu removed, %.3f s\n", st.files, st.hours, st.removed, secs);
  Count(dir, "after (compact = true)");
}
