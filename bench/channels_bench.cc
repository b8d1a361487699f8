// New-user tracking benchmark, each figure next to a baseline measured in the same run:
//   * per event: NewUserTracker::Add (+ Flush per 8192 events) over realistic traffic,
//     against the RocksDB registry, next to decoding the same events from their log
//     encoding (which the processor does for every event anyway);
//   * the same with a store that only counts what reaches it: the filter alone;
//   * memory per tracked user: the first-seen filter's bytes over the users it holds,
//     for users with a uid only and for users seen as a device first;
//   * calibration: events/s over a generated archive day.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>

#include "features/channels/channel_store.h"
#include "features/channels/calibrate.h"
#include "core/event.h"
#include "log/archive/archiver.h"
#include "features/channels/new_users.h"
#include "store/rocksdb/rocksdb_store.h"
#include "store/snapshot.h"
#include "features/channels/channels_config.h"

#include <zlib.h>

namespace portrait {
namespace {

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Counts the sightings it is given; the bench's way to time the filter without a store.
class CountingChannels : public ChannelStore {
 public:
  Status Observe(std::span<const Sighting> s) override {
    n += s.size();
    return Status::Ok();
  }
  Result<ChannelFigures> Read(std::string_view, TimestampMs, TimestampMs) override { return ChannelFigures{}; }
  Result<std::vector<std::optional<Identity>>> Lookup(std::string_view, std::span<const std::string> keys) override {
    return std::vector<std::optional<Identity>>(keys.size());
  }
  Status WriteCalibration(std::string_view, TimestampMs, std::span<const ChannelCount>, std::string_view) override {
    return Status::Ok();
  }
  size_t n = 0;
};

const char* kChannels[] = {"appstore", "ads", "seo", "mail", "partner-a"};

// `events` events of `users` users over a day, in time order, the way sessions interleave:
// 2000 users are active at a time, each for about 15 events, then another takes its place.
// A quarter of the users are devices first that log in at their third event.
std::vector<std::string> Traffic(int64_t events, int users, TimestampMs day) {
  std::mt19937_64 rng(3);
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(events));
  std::vector<int> seen(static_cast<size_t>(users), 0);
  std::vector<std::pair<int, int>> active(2000);  // user, events left in the session
  for (auto& a : active) a = {static_cast<int>(rng() % static_cast<uint64_t>(users)), static_cast<int>(5 + rng() % 20)};
  Event e;
  e.type = "click";
  e.product = "shop";
  for (int64_t i = 0; i < events; ++i) {
    auto& session = active[rng() % active.size()];
    if (--session.second <= 0) session = {static_cast<int>(rng() % static_cast<uint64_t>(users)), static_cast<int>(5 + rng() % 20)};
    int u = session.first;
    int k = seen[static_cast<size_t>(u)]++;
    bool device_first = u % 4 == 0;
    e.uid = device_first && k < 2 ? "" : "user-" + std::to_string(u);
    e.device_id = device_first && k <= 2 ? "device-" + std::to_string(u) : "";
    e.channel = kChannels[rng() % 5];
    e.ts = day + i * (86'400'000 / events);
    e.id = "e" + std::to_string(i);
    e.props = {{"item_id", std::to_string(rng() % 100000)}, {"category_id", std::to_string(rng() % 1000)}};
    std::string enc;
    EncodeEvent(e, &enc);
    out.push_back(std::move(enc));
  }
  return out;
}

void PerEvent(const std::string& dir) {
  const int64_t n = 4'000'000;
  const int users = 400'000;
  const TimestampMs day = *DayStartMs("2026-11-20");
  auto traffic = Traffic(n, users, day);
  std::printf("%lld events a day of %d users (a quarter seen as a device first), sessions interleaved; day 1: every\n"
              "user is new; day 2: the same traffic a day later, every user known\n", static_cast<long long>(n), users);

  // Baseline: decoding the events.
  Event e;
  auto t = Clock::now();
  for (const auto& rec : traffic) {
    if (!DecodeEvent(rec, &e).ok()) std::abort();
  }
  double decode = Since(t) / double(n);

  ChannelsConfig cfg;
  MetricsRegistry metrics;
  struct Run {
    double day1 = 0, day2 = 0;  // seconds per event
    size_t sent1 = 0, sent2 = 0;
  };
  auto run = [&](ChannelStore* store, CountingChannels* counting) {
    NewUserTracker tracker(cfg, store, &metrics);
    std::vector<Event> decoded(8192);
    Run r;
    for (int pass = 0; pass < 2; ++pass) {
      double seconds = 0;
      size_t sent_before = counting ? counting->n : 0;
      for (size_t at = 0; at < traffic.size(); at += decoded.size()) {
        size_t m = std::min(decoded.size(), traffic.size() - at);
        for (size_t i = 0; i < m; ++i) {
          if (!DecodeEvent(traffic[at + i], &decoded[i]).ok()) std::abort();
          decoded[i].ts += pass * 86'400'000;
        }
        auto t0 = Clock::now();
        for (size_t i = 0; i < m; ++i) tracker.Add(decoded[i]);
        if (!tracker.Flush().ok()) std::abort();
        seconds += Since(t0);
      }
      (pass == 0 ? r.day1 : r.day2) = seconds / double(n);
      if (counting) (pass == 0 ? r.sent1 : r.sent2) = counting->n - sent_before;
    }
    return r;
  };
  CountingChannels counting;
  Run filter_only = run(&counting, &counting);
  MetricsRegistry m2;
  TagRegistry tags;
  auto store = OpenRocksDbStore({dir + "/db", 64}, &tags, &m2);
  if (!store.ok()) std::abort();
  auto channels = OpenChannelStore(store->get());
  if (!channels.ok()) std::abort();
  Run rocks = run(channels->get(), nullptr);
  std::printf("  decode the event (baseline)                 %7.1f ns/event\n", decode * 1e9);
  std::printf("  day 1, filter only                          %7.1f ns/event  (%.2fx decode; %zu of %lld events reached the store)\n",
              filter_only.day1 * 1e9, filter_only.day1 / decode, filter_only.sent1, static_cast<long long>(n));
  std::printf("  day 2, filter only                          %7.1f ns/event  (%.2fx decode; %zu reached the store)\n",
              filter_only.day2 * 1e9, filter_only.day2 / decode, filter_only.sent2);
  std::printf("  day 1, with the RocksDB registry            %7.1f ns/event  (%.2fx decode)\n", rocks.day1 * 1e9,
              rocks.day1 / decode);
  std::printf("  day 2, with the RocksDB registry            %7.1f ns/event  (%.2fx decode)\n", rocks.day2 * 1e9,
              rocks.day2 / decode);
}

void Memory() {
  for (int users : {1'000'000, 1'500'000}) for (int device_first = 0; device_first < 2; ++device_first) {
    ChannelsConfig cfg;
    CountingChannels counting;
    MetricsRegistry metrics;
    NewUserTracker tracker(cfg, &counting, &metrics);
    Event e;
    e.product = "shop";
    e.channel = "ads";
    for (int u = 0; u < users; ++u) {
      e.ts = 1'700'000'000'000 + u;
      if (device_first) {  // seen as a device, then logged in on it
        e.uid.clear();
        e.device_id = "device-" + std::to_string(u);
        tracker.Add(e);
        e.uid = "user-" + std::to_string(u);
      } else {
        e.device_id.clear();
        e.uid = "user-" + std::to_string(u);
      }
      tracker.Add(e);
      if (u % 8192 == 0 && !tracker.Flush().ok()) std::abort();
    }
    const auto& filter = tracker.filter();
    std::printf("  %d users, %-28s filter %6.1f MB, %4.1f bytes per user (%zu ids, %.0f %% full)\n", users,
                device_first ? "device first, then login:" : "uid only:", double(filter.bytes()) / 1e6,
                double(filter.bytes()) / users, filter.size(), 100.0 * double(filter.size()) / double(filter.bytes() / 12));
  }
}

// A day of archive for calibration: `users` users with `per_user` events each.
void Calibration(const std::string& dir) {
  const std::string date = "2026-11-20";
  const TimestampMs day = *DayStartMs(date);
  const int users = 200'000, per_user = 10;
  std::mt19937_64 rng(5);
  std::map<std::string, std::string> files;
  Event e;
  e.type = "click";
  e.product = "shop";
  for (int i = 0; i < users * per_user; ++i) {
    int u = static_cast<int>(rng() % users);
    e.uid = "user-" + std::to_string(u);
    e.channel = kChannels[rng() % 5];
    e.ts = day + static_cast<TimestampMs>(rng() % 86'400'000);
    e.id = "e" + std::to_string(i);
    std::string& f = files[dir + "/archive/" + Archiver::HourPath(e.ts) + "/part-" +
                          std::to_string(PartitionFor(e.uid, 8).value) + "-0.ndjson.gz"];
    f += EventToJson(e);
    f.push_back('\n');
  }
  for (const auto& [path, text] : files) {
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    gzFile gz = gzopen(path.c_str(), "wb6");
    gzwrite(gz, text.data(), static_cast<unsigned>(text.size()));
    gzclose(gz);
  }
  Config config;
  config.data_dir = dir;
  config.mutable_section<ChannelsConfig>().calibrate_threads = 2;
  MetricsRegistry metrics;
  TagRegistry tags;
  auto store = OpenRocksDbStore({dir + "/caldb", 64}, &tags, &metrics);
  if (!store.ok()) std::abort();
  auto channels = OpenChannelStore(store->get());
  if (!channels.ok()) std::abort();
  auto report = Calibrate(config, channels->get(), date);
  if (!report.ok()) {
    std::fprintf(stderr, "%s\n", report.status().ToString().c_str());
    std::abort();
  }
  std::printf("  calibrate %s: %llu events of %d users from %llu files in %.2f s: %.0f events/s (2 threads)\n", date.c_str(),
              static_cast<unsigned long long>(report->events), users, static_cast<unsigned long long>(report->files),
              report->seconds, double(report->events) / report->seconds);
}

}  // namespace
}  // namespace portrait

int main() {
  std::string dir = std::filesystem::temp_directory_path() / ("portrait-channels-bench-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::printf("-- per event\n");
  portrait::PerEvent(dir);
  std::printf("-- memory per tracked user\n");
  portrait::Memory();
  std::printf("-- calibration\n");
  portrait::Calibration(dir);
  std::filesystem::remove_all(dir);
  return 0;
}
