#include "features/channels/calibrate.h"

#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>
#include <unordered_map>

#include "log/archive/archive_files.h"
#include "core/event.h"
#include "core/json.h"
#include "core/dates.h"
#include "features/channels/channels_config.h"

namespace portrait {
namespace {

struct First {
  TimestampMs ts = INT64_MAX;
  std::string channel;
  void Fold(TimestampMs t, std::string_view ch) {
    if (EarlierFirst(t, ch, ts, channel)) {
      ts = t;
      channel.assign(ch);
    }
  }
};

struct Link {
  TimestampMs ts = INT64_MAX;
  std::string uid, channel;
  void Fold(TimestampMs t, std::string_view u, std::string_view ch) {
    if (t < ts || (t == ts && u < uid)) {
      ts = t;
      uid.assign(u);
      channel.assign(ch);
    }
  }
};

// One product's identities on the day: first events of users (any event with the uid),
// of devices alone (events without a uid), and each device's earliest uid.
struct ProductDay {
  std::unordered_map<std::string, First> users, devices;
  std::unordered_map<std::string, Link> links;
  void Merge(ProductDay&& o) {
    for (auto& [k, f] : o.users) users[k].Fold(f.ts, f.channel);
    for (auto& [k, f] : o.devices) devices[k].Fold(f.ts, f.channel);
    for (auto& [k, l] : o.links) links[k].Fold(l.ts, l.uid, l.channel);
  }
};

using DayScan = std::map<std::string, ProductDay, std::less<>>;

struct ScanStats {
  uint64_t events = 0, bad_lines = 0;
};

std::string_view Str(simdjson::dom::object& o, std::string_view key) {
  std::string_view v;
  if (o[key].get(v)) return {};
  return v;
}

// Files read so far of all to read, for a ProgressFn.
struct FileProgress {
  const ProgressFn& fn;
  uint64_t total = 0;
  std::atomic<uint64_t> read{0};
};

Status ScanFiles(const ChannelsConfig& cfg, const std::vector<std::string>& files, DayScan* out, ScanStats* stats,
                 FileProgress* progress) {
  simdjson::dom::parser parser;
  std::string buf;
  for (const std::string& path : files) {
    RETURN_IF_ERROR(ReadGzip(path, &buf));
    if (progress->fn) progress->fn(progress->read.fetch_add(1) + 1, progress->total);
    simdjson::dom::document_stream stream;
    if (auto err = parser.parse_many(buf, std::max<size_t>(1 << 20, simdjson::dom::DEFAULT_BATCH_SIZE)).get(stream)) {
      return Status::Corruption(path + ": " + simdjson::error_message(err));
    }
    for (auto doc : stream) {
      simdjson::dom::object o;
      TimestampMs ts = 0;
      if (doc.get_object().get(o) || o["ts"].get(ts)) {
        ++stats->bad_lines;
        continue;
      }
      std::string_view uid = Str(o, "uid"), device = Str(o, "device_id"), product = Str(o, "product");
      std::string_view channel = Str(o, "channel");
      if (uid.empty() && device.empty()) {
        ++stats->bad_lines;
        continue;
      }
      ++stats->events;
      if (product.empty()) product = cfg.default_product;
      if (channel.empty()) channel = kNoChannel;
      auto it = out->find(product);
      if (it == out->end()) it = out->emplace(std::string(product), ProductDay{}).first;
      ProductDay& day = it->second;
      if (!uid.empty()) {
        day.users[std::string(uid)].Fold(ts, channel);
        if (!device.empty()) day.links[std::string(device)].Fold(ts, uid, channel);
      } else {
        day.devices[std::string(device)].Fold(ts, channel);
      }
    }
  }
  return Status::Ok();
}

// Registry records of `keys`, in chunks.
Result<std::unordered_map<std::string, Identity>> LookupAll(ChannelStore* store, std::string_view product,
                                                           const std::vector<std::string>& keys) {
  std::unordered_map<std::string, Identity> out;
  constexpr size_t kChunk = 20000;
  for (size_t at = 0; at < keys.size(); at += kChunk) {
    std::span<const std::string> chunk(keys.data() + at, std::min(kChunk, keys.size() - at));
    ASSIGN_OR_RETURN(auto recs, store->Lookup(product, chunk));
    for (size_t i = 0; i < chunk.size(); ++i) {
      if (recs[i]) out.emplace(chunk[i], std::move(*recs[i]));
    }
  }
  return out;
}

using BucketKey = std::pair<TimestampMs, std::string>;  // hour, channel

Status CalibrateProduct(ChannelStore* store, const std::string& product, ProductDay& day, TimestampMs start,
                        CalibrationReport* report) {
  const TimestampMs end = start + kDayMs;
  std::vector<std::string> keys;
  keys.reserve(day.users.size() + day.devices.size() + day.links.size());
  for (const auto& [u, _] : day.users) keys.push_back("u" + u);
  for (const auto& [d, _] : day.devices) keys.push_back("d" + d);
  for (const auto& [d, _] : day.links) {
    if (!day.devices.count(d)) keys.push_back("d" + d);
  }
  ASSIGN_OR_RETURN(auto reg, LookupAll(store, product, keys));
  // Owners the registry names that have no event of their own on the day.
  std::vector<std::string> owners;
  for (const auto& [key, rec] : reg) {
    if (key[0] == 'd' && !rec.owner.empty() && !day.users.count(rec.owner) && !reg.count("u" + rec.owner)) {
      owners.push_back("u" + rec.owner);
    }
  }
  std::sort(owners.begin(), owners.end());
  owners.erase(std::unique(owners.begin(), owners.end()), owners.end());
  ASSIGN_OR_RETURN(auto more, LookupAll(store, product, owners));
  reg.merge(more);
  auto before_day = [&](const std::string& key) {
    auto it = reg.find(key);
    return it != reg.end() && it->second.first_ts < start;
  };

  // Users of the day: root key -> (earliest event of the day, seen before the day).
  struct Cluster {
    First first;
    bool before = false;
  };
  std::unordered_map<std::string, Cluster> clusters;
  for (const auto& [u, f] : day.users) {
    std::string root = "u" + u;
    Cluster& c = clusters[root];
    c.first.Fold(f.ts, f.channel);
    c.before = c.before || before_day(root);
  }
  auto add_device = [&](const std::string& d) {
    std::string dkey = "d" + d;
    std::string owner;
    if (auto it = reg.find(dkey); it != reg.end() && !it->second.owner.empty()) owner = it->second.owner;
    else if (auto l = day.links.find(d); l != day.links.end()) owner = l->second.uid;
    std::string root = owner.empty() ? dkey : "u" + owner;
    Cluster& c = clusters[root];
    if (auto it = day.devices.find(d); it != day.devices.end()) c.first.Fold(it->second.ts, it->second.channel);
    c.before = c.before || before_day(dkey) || before_day(root);
  };
  for (const auto& [d, _] : day.devices) add_device(d);
  for (const auto& [d, _] : day.links) {
    if (!day.devices.count(d)) add_device(d);
  }
  std::map<BucketKey, int64_t> calibrated;
  for (const auto& [root, c] : clusters) {
    if (c.before || c.first.ts < start || c.first.ts >= end) continue;  // an owner with no event of its own: no first here
    ++calibrated[{HourOf(c.first.ts), c.first.channel}];
  }

  // The real-time counts as they are now, before the registry is repaired.
  ASSIGN_OR_RETURN(ChannelFigures rt, store->Read(product, start, end));
  std::map<BucketKey, std::pair<int64_t, int64_t>> both;  // realtime, calibrated
  for (const auto& c : rt.realtime) both[{c.hour, c.channel}].first += c.count;
  for (const auto& [k, n] : calibrated) both[k].second = n;
  CalibrationProduct sum;
  sum.product = product;
  for (const auto& [k, v] : both) {
    report->buckets.push_back({product, k.second, k.first, v.first, v.second});
    sum.realtime += v.first;
    sum.calibrated += v.second;
    sum.abs_error += std::abs(v.first - v.second);
  }

  // Repair the registry with the day's first events: identities real time missed are known
  // to later days' figures and calibrations. Changes nothing where real time saw them.
  std::vector<Sighting> repair;
  repair.reserve(day.users.size() + day.devices.size() + day.links.size());
  for (const auto& [u, f] : day.users) repair.push_back({product, u, "", f.channel, f.ts});
  for (const auto& [d, l] : day.links) repair.push_back({product, l.uid, d, l.channel, l.ts});
  for (const auto& [d, f] : day.devices) repair.push_back({product, "", d, f.channel, f.ts});
  constexpr size_t kChunk = 5000;
  for (size_t at = 0; at < repair.size(); at += kChunk) {
    RETURN_IF_ERROR(store->Observe(std::span<const Sighting>(repair.data() + at, std::min(kChunk, repair.size() - at))));
  }

  std::vector<ChannelCount> counts;
  for (const auto& [k, n] : calibrated) counts.push_back({k.first, k.second, n});
  std::string summary;
  JsonWriter w(&summary);
  w.BeginObject();
  w.Key("date").String(report->date);
  w.Key("calibrated_at").String(FormatIsoUtc(NowMs()));
  w.Key("realtime").Int(sum.realtime);
  w.Key("calibrated").Int(sum.calibrated);
  w.Key("abs_error").Int(sum.abs_error);
  w.Key("error_ratio").Number(sum.error_ratio());
  w.EndObject();
  RETURN_IF_ERROR(store->WriteCalibration(product, start, counts, summary));
  report->products.push_back(sum);
  return Status::Ok();
}

}  // namespace

namespace {

// The day's archived events of `partitions` (all when empty), scanned per partition file
// list on `[channels] calibrate_threads` threads, then summed.
Status ScanDay(const Config& config, const std::string& date, const std::vector<int>& partitions, DayScan* all,
               CalibrationReport* report, const ProgressFn& progress = nullptr) {
  const std::string dir = ArchiveDir(config);
  ASSIGN_OR_RETURN(auto parts, ListArchive(dir, date, date));
  if (parts.empty()) {
    return Status::NotFound("no archived events for " + date + " in " + dir +
                            " (is [archive] enabled, and the day within its retention?)");
  }
  std::vector<const std::vector<std::string>*> work;
  for (const auto& [p, files] : parts) {
    if (!partitions.empty() && std::find(partitions.begin(), partitions.end(), p) == partitions.end()) continue;
    work.push_back(&files);
    report->files += files.size();
  }
  FileProgress files_read{progress, report->files};
  const size_t n_threads =
      std::max<size_t>(1, std::min<size_t>(std::max(1, config.section<ChannelsConfig>().calibrate_threads), work.size()));
  std::vector<DayScan> scans(n_threads);
  std::vector<ScanStats> stats(n_threads);
  std::vector<Status> errors(n_threads, Status::Ok());
  std::atomic<size_t> next{0};
  std::vector<std::thread> threads;
  for (size_t t = 0; t < n_threads; ++t) {
    threads.emplace_back([&, t] {
      for (size_t i; (i = next.fetch_add(1)) < work.size();) {
        Status st = ScanFiles(config.section<ChannelsConfig>(), *work[i], &scans[t], &stats[t], &files_read);
        if (!st.ok()) {
          errors[t] = st;
          return;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (const Status& st : errors) RETURN_IF_ERROR(st);
  for (size_t t = 0; t < n_threads; ++t) {
    for (auto& [product, day] : scans[t]) (*all)[product].Merge(std::move(day));
  }
  for (const auto& st : stats) {
    report->events += st.events;
    report->bad_lines += st.bad_lines;
  }
  return Status::Ok();
}

// The scanned day against the registry and the real-time figures; writes the calibrated ones.
Status CalibrateDay(ChannelStore* store, const std::string& date, DayScan& all, CalibrationReport* report) {
  auto start = DayStartMs(date);
  if (report->bad_lines > 0) {
    spdlog::warn("calibrate {}: {} archive lines were not events (skipped)", date, report->bad_lines);
  }
  report->overall.product = "*";
  for (auto& [product, day] : all) {
    Status st = CalibrateProduct(store, product, day, *start, report);
    if (!st.ok()) return st.WithContext("calibrate " + date + " product " + product);
    const CalibrationProduct& p = report->products.back();
    report->overall.realtime += p.realtime;
    report->overall.calibrated += p.calibrated;
    report->overall.abs_error += p.abs_error;
  }
  return Status::Ok();
}

}  // namespace

Result<CalibrationReport> Calibrate(const Config& config, ChannelStore* store, const std::string& date,
                                    const ProgressFn& progress) {
  auto t0 = std::chrono::steady_clock::now();
  if (!DayStartMs(date)) return Status::InvalidArgument("date must be YYYY-MM-DD, got \"" + date + "\"");
  if (!store) return Status::FailedPrecondition("the store keeps no channel figures");
  CalibrationReport report;
  report.date = date;
  DayScan all;
  RETURN_IF_ERROR(ScanDay(config, date, {}, &all, &report, progress));
  RETURN_IF_ERROR(CalibrateDay(store, date, all, &report));
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

// ---- a day's calibration shared by several processes ----

namespace {

namespace fs = std::filesystem;

std::string ScanDir(const Config& config, const std::string& date) {
  return ArchiveDir(config) + "/_calibration/date=" + date;
}

// One partition's scan: a header line, then one line per user, device or link.
std::string EncodeScan(const DayScan& scan, const CalibrationReport& stats) {
  std::string out, line;
  JsonWriter h(&out);
  h.BeginObject().Key("files").Int(static_cast<int64_t>(stats.files)).Key("events").Int(static_cast<int64_t>(stats.events));
  h.Key("bad_lines").Int(static_cast<int64_t>(stats.bad_lines)).EndObject();
  out.push_back('\n');
  for (const auto& [product, day] : scan) {
    auto entry = [&](const char* kind, const std::string& id, TimestampMs ts, const std::string& channel,
                     const std::string* uid) {
      line.clear();
      JsonWriter w(&line);
      w.BeginObject().Key("p").String(product).Key(kind).String(id).Key("ts").Int(ts).Key("ch").String(channel);
      if (uid) w.Key("uid").String(*uid);
      w.EndObject();
      out += line;
      out.push_back('\n');
    };
    for (const auto& [id, f] : day.users) entry("u", id, f.ts, f.channel, nullptr);
    for (const auto& [id, f] : day.devices) entry("d", id, f.ts, f.channel, nullptr);
    for (const auto& [id, l] : day.links) entry("l", id, l.ts, l.channel, &l.uid);
  }
  return out;
}

Status DecodeScan(const std::string& path, DayScan* all, CalibrationReport* report) {
  std::string text;
  RETURN_IF_ERROR(ReadGzip(path, &text));
  simdjson::dom::parser parser;
  simdjson::dom::document_stream stream;
  if (parser.parse_many(text).get(stream)) return Status::Corruption(path + ": not a calibration scan");
  bool header = true;
  for (auto doc : stream) {
    simdjson::dom::object o;
    if (doc.get_object().get(o)) return Status::Corruption(path + ": not a calibration scan");
    if (header) {
      int64_t files = 0, events = 0, bad = 0;
      if (o["files"].get(files) || o["events"].get(events) || o["bad_lines"].get(bad)) {
        return Status::Corruption(path + ": no header");
      }
      report->files += static_cast<uint64_t>(files);
      report->events += static_cast<uint64_t>(events);
      report->bad_lines += static_cast<uint64_t>(bad);
      header = false;
      continue;
    }
    std::string_view product = Str(o, "p"), channel = Str(o, "ch"), id;
    TimestampMs ts = 0;
    if (o["ts"].get(ts)) return Status::Corruption(path + ": an entry without ts");
    ProductDay& day = (*all)[std::string(product)];
    if (!o["u"].get(id)) day.users[std::string(id)].Fold(ts, channel);
    else if (!o["d"].get(id)) day.devices[std::string(id)].Fold(ts, channel);
    else if (!o["l"].get(id)) day.links[std::string(id)].Fold(ts, Str(o, "uid"), channel);
    else return Status::Corruption(path + ": an entry of no known kind");
  }
  return Status::Ok();
}

}  // namespace

Result<std::optional<CalibrationReport>> CalibrateShare(const Config& config, ChannelStore* store,
                                                        const std::string& date, const std::vector<int>& partitions,
                                                        std::vector<int>* waiting_for) {
  auto t0 = std::chrono::steady_clock::now();
  if (!DayStartMs(date)) return Status::InvalidArgument("date must be YYYY-MM-DD, got \"" + date + "\"");
  if (!store) return Status::FailedPrecondition("the store keeps no channel figures");
  const int total = config.log.partitions;
  const std::string dir = ScanDir(config, date);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::IOError("calibrate: cannot create " + dir + ": " + ec.message());
  for (int p : partitions) {
    if (p < 0 || p >= total) {
      return Status::InvalidArgument("partition " + std::to_string(p) + " does not exist ([log] partitions = " +
                                     std::to_string(total) + ")");
    }
    DayScan scan;
    CalibrationReport stats;
    Status st = ScanDay(config, date, {p}, &scan, &stats);
    if (!st.ok() && st.code() != StatusCode::kNotFound) return st;  // an empty archive day scans as empty
    RETURN_IF_ERROR(WriteGzipFile(dir + "/scan-" + std::to_string(p) + ".ndjson.gz", EncodeScan(scan, stats), 1));
    fs::remove(dir + "/done.json", ec);  // a new scan: the day is calibrated again with it
  }
  waiting_for->clear();
  for (int p = 0; p < total; ++p) {
    if (!fs::exists(dir + "/scan-" + std::to_string(p) + ".ndjson.gz", ec)) waiting_for->push_back(p);
  }
  if (!waiting_for->empty()) return std::optional<CalibrationReport>();
  // Every partition is scanned: one of the runs that see it calibrates (the others wait on
  // the lock and find the day done).
  int fd = ::open((dir + "/.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0 || ::flock(fd, LOCK_EX) != 0) {
    if (fd >= 0) ::close(fd);
    return Status::IOError("calibrate: cannot lock " + dir + "/.lock");
  }
  struct Unlock {
    int fd;
    ~Unlock() { ::close(fd); }
  } unlock{fd};
  if (fs::exists(dir + "/done.json", ec)) return std::optional<CalibrationReport>();  // another run did it
  CalibrationReport report;
  report.date = date;
  DayScan all;
  for (int p = 0; p < total; ++p) RETURN_IF_ERROR(DecodeScan(dir + "/scan-" + std::to_string(p) + ".ndjson.gz", &all, &report));
  RETURN_IF_ERROR(CalibrateDay(store, date, all, &report));
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::ofstream(dir + "/done.json") << report.ToJson() << "\n";
  return std::optional<CalibrationReport>(std::move(report));
}

std::string CalibrationReport::ToJson() const {
  std::string out;
  JsonWriter w(&out);
  auto totals = [&](const CalibrationProduct& p) {
    w.Key("realtime").Int(p.realtime);
    w.Key("calibrated").Int(p.calibrated);
    w.Key("abs_error").Int(p.abs_error);
    w.Key("error_ratio").Number(p.error_ratio());
  };
  w.BeginObject();
  w.Key("date").String(date);
  w.Key("files").Int(static_cast<int64_t>(files));
  w.Key("events").Int(static_cast<int64_t>(events));
  w.Key("bad_lines").Int(static_cast<int64_t>(bad_lines));
  w.Key("seconds").Number(seconds);
  totals(overall);
  w.Key("products").BeginArray();
  for (const auto& p : products) {
    w.BeginObject();
    w.Key("product").String(p.product);
    totals(p);
    w.EndObject();
  }
  w.EndArray();
  w.Key("buckets").BeginArray();
  for (const auto& b : buckets) {
    w.BeginObject();
    w.Key("product").String(b.product);
    w.Key("channel").String(b.channel);
    w.Key("hour").String(FormatIsoUtc(b.hour));
    w.Key("realtime").Int(b.realtime);
    w.Key("calibrated").Int(b.calibrated);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return out;
}

void RecordCalibration(const CalibrationReport& report, MetricsRegistry* metrics) {
  metrics->GetCounter("portrait_channel_calibrations_total", "Days calibrated (portrait calibrate, the schedule or the API)")
      ->Inc();
  for (const auto& p : report.products) {
    std::string labels = "product=\"" + p.product + "\"";
    metrics->GetGauge("portrait_channel_calibration_error_users",
                      "Last calibration: new users the real-time figures had in the wrong bucket or missed (sum over buckets of |real time - calibrated|)",
                      labels)
        ->Set(p.abs_error);
    metrics->GetGauge("portrait_channel_calibration_users", "Last calibration: new users of the day, calibrated", labels)
        ->Set(p.calibrated);
  }
}

}  // namespace portrait
