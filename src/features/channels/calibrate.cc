#include "features/channels/calibrate.h"

#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
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

Status ScanFiles(const ChannelsConfig& cfg, const std::vector<std::string>& files, DayScan* out, ScanStats* stats) {
  simdjson::dom::parser parser;
  std::string buf;
  for (const std::string& path : files) {
    RETURN_IF_ERROR(ReadGzip(path, &buf));
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

Result<CalibrationReport> Calibrate(const Config& config, ChannelStore* store, const std::string& date) {
  auto t0 = std::chrono::steady_clock::now();
  auto start = DayStartMs(date);
  if (!start) return Status::InvalidArgument("date must be YYYY-MM-DD, got \"" + date + "\"");
  if (!store) return Status::FailedPrecondition("the store keeps no channel figures");
  CalibrationReport report;
  report.date = date;
  const std::string dir = ArchiveDir(config);
  ASSIGN_OR_RETURN(auto parts, ListArchive(dir, date, date));
  if (parts.empty()) {
    return Status::NotFound("no archived events for " + date + " in " + dir +
                            " (is [archive] enabled, and the day within its retention?)");
  }
  std::vector<const std::vector<std::string>*> work;
  for (const auto& [_, files] : parts) {
    work.push_back(&files);
    report.files += files.size();
  }
  const size_t n_threads = std::min<size_t>(std::max(1, config.section<ChannelsConfig>().calibrate_threads), work.size());
  std::vector<DayScan> scans(n_threads);
  std::vector<ScanStats> stats(n_threads);
  std::vector<Status> errors(n_threads, Status::Ok());
  std::atomic<size_t> next{0};
  std::vector<std::thread> threads;
  for (size_t t = 0; t < n_threads; ++t) {
    threads.emplace_back([&, t] {
      for (size_t i; (i = next.fetch_add(1)) < work.size();) {
        Status st = ScanFiles(config.section<ChannelsConfig>(), *work[i], &scans[t], &stats[t]);
        if (!st.ok()) {
          errors[t] = st;
          return;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (const Status& st : errors) RETURN_IF_ERROR(st);
  DayScan all = std::move(scans[0]);
  for (size_t t = 1; t < n_threads; ++t) {
    for (auto& [product, day] : scans[t]) all[product].Merge(std::move(day));
  }
  for (const auto& s : stats) {
    report.events += s.events;
    report.bad_lines += s.bad_lines;
  }
  if (report.bad_lines > 0) spdlog::warn("calibrate {}: {} archive lines were not events (skipped)", date, report.bad_lines);
  report.overall.product = "*";
  for (auto& [product, day] : all) {
    Status st = CalibrateProduct(store, product, day, *start, &report);
    if (!st.ok()) return st.WithContext("calibrate " + date + " product " + product);
    const CalibrationProduct& p = report.products.back();
    report.overall.realtime += p.realtime;
    report.overall.calibrated += p.calibrated;
    report.overall.abs_error += p.abs_error;
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
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
