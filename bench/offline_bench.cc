// Offline layer benchmark, each figure next to a baseline measured in the same run:
//   * batch: archive (gzip NDJSON, as the archiver writes it) -> snapshot, events/s, next to
//     only reading the same files (gunzip + JSON parse), the floor any batch pays;
//   * import: NDJSON offline profiles -> snapshot, rows/s;
//   * lazy load: the cost per user of a trigger that loads an offline profile into the
//     RocksDB store, of one that finds it loaded, next to writing one real-time click.
#include <simdjson.h>
#include <zlib.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include "features/offline/batch.h"
#include "log/archive/archiver.h"
#include "features/offline/lazy_loader.h"
#include "store/rocksdb/rocksdb_store.h"
#include "features/registry.h"
#include "features/offline/offline_config.h"

namespace portrait {
namespace {

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

const std::string kDate = "2026-11-20";

// Taobao-like traffic over the 7 days up to kDate, in the archive layout, 8 partitions.
void WriteArchive(const std::string& dir, int64_t events, int users) {
  std::mt19937_64 rng(1);
  const TimestampMs end = SnapshotAsOf(kDate);
  std::map<std::string, std::string> files;
  const char* types[] = {"click", "click", "click", "click", "click", "click", "cart", "fav", "buy"};
  for (int64_t i = 0; i < events; ++i) {
    int u = static_cast<int>(rng() % static_cast<uint64_t>(users));
    TimestampMs ts = end - static_cast<TimestampMs>(rng() % (7 * 86'400'000ULL));
    char line[256];
    std::snprintf(line, sizeof line,
                  R"({"id":"e%lld","uid":"u%d","type":"%s","ts":%lld,"props":{"item_id":%llu,"category_id":%llu}})"
                  "\n",
                  static_cast<long long>(i), u, types[rng() % 9], static_cast<long long>(ts),
                  static_cast<unsigned long long>(rng() % 4'000'000), static_cast<unsigned long long>(rng() % 9000));
    std::string path = dir + "/" + Archiver::HourPath(ts) + "/part-" + std::to_string(PartitionFor("u" + std::to_string(u), 8).value) + "-0.ndjson.gz";
    files[path] += line;
  }
  for (const auto& [path, text] : files) {
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    gzFile gz = gzopen(path.c_str(), "wb6");
    gzwrite(gz, text.data(), static_cast<unsigned>(text.size()));
    gzclose(gz);
  }
}

// The floor: gunzip and parse every archived line, nothing else.
int64_t ReadOnly(const std::string& dir) {
  int64_t n = 0;
  simdjson::dom::parser parser;
  std::string buf;
  char chunk[1 << 16];
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.path().string().ends_with(".ndjson.gz")) continue;
    gzFile gz = gzopen(e.path().c_str(), "rb");
    buf.clear();
    int r;
    while ((r = gzread(gz, chunk, sizeof chunk)) > 0) buf.append(chunk, static_cast<size_t>(r));
    gzclose(gz);
    simdjson::dom::document_stream docs;
    if (parser.parse_many(buf).get(docs)) continue;
    for (auto d : docs) {
      simdjson::dom::element el;
      if (!d.get(el)) ++n;
    }
  }
  return n;
}

int Run(int64_t events) {
  std::string dir = (std::filesystem::temp_directory_path() / "portrait-offline-bench").string();
  std::filesystem::remove_all(dir);
  auto cfg = LoadConfig(std::string(PORTRAIT_SOURCE_DIR) + "/examples/portrait.toml").value();
  cfg.data_dir = dir + "/data";
  const int users = 100'000;
  WriteArchive(ArchiveDir(cfg), events, users);

  std::printf("| offline layer (%lld archived events, %d users, 8 partitions) | value |\n|---|---|\n",
              static_cast<long long>(events), users);
  double target = 0;
  for (int threads : {1, 2}) {
    auto t = Clock::now();
    int64_t read = ReadOnly(ArchiveDir(cfg));
    double floor_s = Since(t);
    cfg.mutable_section<BatchConfig>().threads = threads;
    auto stats = RunBatch(cfg, kDate);
    if (!stats.ok()) {
      std::fprintf(stderr, "%s\n", stats.status().ToString().c_str());
      return 1;
    }
    std::printf("| batch, %d thread(s): events/s archive -> snapshot (%llu users) | %.0f |\n", threads,
                static_cast<unsigned long long>(stats->snapshot.users), static_cast<double>(stats->events) / stats->seconds);
    std::printf("| batch, %d thread(s): share of the time spent syncing and compacting the snapshot | %.0f %% |\n", threads,
                100 * (1 - stats->compute_seconds / stats->seconds));
    if (threads == 1) {
      std::printf("| baseline, 1 thread: events/s only gunzipped + parsed | %.0f |\n", static_cast<double>(read) / floor_s);
      const double ratio =
          (static_cast<double>(stats->events) / stats->seconds) / (static_cast<double>(read) / floor_s);
      std::printf("| ratio batch / read-only (1 thread) | %.2f |\n", ratio);
      target = ratio;
    }
  }

  std::printf("\ntarget 5: batch archive -> snapshot / its own gunzip + parse floor (1 thread) = %.2f (aim >= 0.4)\n\n",
              target);

  // Import: the batch's own snapshot rows, exported as NDJSON, imported again.
  std::string ndjson = dir + "/profiles.ndjson";
  {
    SnapshotCatalog catalog(SnapshotDir(cfg));
    if (!catalog.Refresh().ok()) return 1;
    auto s = catalog.NewestBefore("2026-11-21").value();
    std::ofstream out(ndjson);
    for (int u = 0; u < users; ++u) {
      std::string uid = "u" + std::to_string(u);
      auto row = catalog.Lookup(s, uid);
      if (!row.ok() || !*row) continue;
      out << R"({"uid":")" << uid << R"(",)" << row->value().substr(1) << '\n';
    }
  }
  auto imported = ImportSnapshot(cfg, kDate, ndjson, ImportOptions{});
  if (!imported.ok()) {
    std::fprintf(stderr, "%s\n", imported.status().ToString().c_str());
    return 1;
  }
  std::printf("| import: rows/s NDJSON -> snapshot (rows hold up to 1000 clicks each) | %.0f |\n",
              static_cast<double>(imported->rows) / imported->seconds);

  // Lazy load: per user, into RocksDB.
  MetricsRegistry metrics;
  auto store = OpenRocksDbStore({dir + "/store", 64}, &cfg.tags, &metrics).value();
  SnapshotCatalog catalog(SnapshotDir(cfg));
  LazyLoader loader(cfg, store.get(), &catalog, nullptr, &metrics);
  const int n = 20'000, batch = 500;
  const TimestampMs day = SnapshotAsOf(kDate) + 8 * 3'600'000;
  auto triggers_for = [&](int from) {
    std::vector<LoadTrigger> t;
    for (int u = from; u < from + batch; ++u) t.push_back({"u" + std::to_string(u), day, PartitionId(0), Offset(u)});
    return t;
  };
  size_t loaded_actions = 0;
  auto t = Clock::now();
  for (int from = 0; from < n; from += batch) {
    std::vector<Action> actions;
    if (!loader.Load(triggers_for(from), &actions).ok() || !store->Apply(actions, {}).ok()) return 1;
    loaded_actions += actions.size();
  }
  double load_s = Since(t);
  t = Clock::now();
  for (int from = 0; from < n; from += batch) {
    std::vector<Action> actions;
    if (!loader.Load(triggers_for(from), &actions).ok() || !actions.empty()) return 1;
  }
  double again_s = Since(t);
  const TagConfig& clicks = *cfg.tags.Find("clicks");
  t = Clock::now();
  for (int from = 0; from < n; from += batch) {
    std::vector<Action> actions;
    for (int u = from; u < from + batch; ++u) {
      Action a;
      a.uid = "u" + std::to_string(u);
      a.tag = "clicks";
      a.op = OpCode::kListRpush;
      a.ts = day;
      std::vector<std::pair<std::string, std::string>> f = {{"item_id", std::to_string(u)}, {"et", std::to_string(day)}};
      a.items.push_back(fusion::MakeListItem(f, clicks, day, Source::kRealtime).value());
      actions.push_back(std::move(a));
    }
    if (!store->Apply(actions, {}).ok()) return 1;
  }
  double click_s = Since(t);
  std::printf("| lazy load: us per user, snapshot read + %.1f actions written | %.1f |\n",
              static_cast<double>(loaded_actions) / n, load_s / n * 1e6);
  std::printf("| lazy load: us per user already loaded (mark read only) | %.1f |\n", again_s / n * 1e6);
  std::printf("| baseline: us per user for one real-time click written | %.1f |\n", click_s / n * 1e6);
  std::printf("| ratio first load / one click | %.1f |\n", load_s / click_s);
  store.reset();
  std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace portrait

int main(int argc, char** argv) { return portrait::Run(argc > 1 ? std::stoll(argv[1]) : 2'000'000); }
