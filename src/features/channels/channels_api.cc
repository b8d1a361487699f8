// The channel routes: new users per channel, and calibration on demand.
#include <algorithm>
#include <charconv>
#include <map>
#include <set>

#include "features/channels/calibrate.h"
#include "core/event.h"
#include "features/channels/channels_api.h"
#include "core/json.h"
#include "core/dates.h"
#include "features/channels/channels_config.h"

namespace portrait {
namespace {

constexpr size_t kMaxHours = 400 * 24;  // a query's range, whatever the granularity

int Digits(std::string_view s, size_t at, size_t n) {
  if (at + n > s.size()) return -1;
  int v = 0;
  for (size_t i = at; i < at + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

// Unix milliseconds, "YYYY-MM-DD", or "YYYY-MM-DDTHH[:MM[:SS[.mmm]]]Z" (UTC).
std::optional<TimestampMs> ParseTime(std::string_view s) {
  if (!s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    TimestampMs v = 0;
    auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    if (r.ec != std::errc()) return std::nullopt;
    return v;
  }
  if (s.size() < 10) return std::nullopt;
  auto day = DayStartMs(s.substr(0, 10));
  if (!day) return std::nullopt;
  if (s.size() == 10) return *day;
  if (s[10] != 'T' || s.back() != 'Z') return std::nullopt;
  std::string_view t = s.substr(11, s.size() - 12);  // between T and Z
  int h = Digits(t, 0, 2), m = 0, sec = 0, ms = 0;
  if (h < 0 || h > 23) return std::nullopt;
  if (t.size() > 2) {
    if (t[2] != ':' || (m = Digits(t, 3, 2)) < 0 || m > 59) return std::nullopt;
  }
  if (t.size() > 5) {
    if (t[5] != ':' || (sec = Digits(t, 6, 2)) < 0 || sec > 59) return std::nullopt;
  }
  if (t.size() > 8) {
    if (t[8] != '.' || t.size() != 12 || (ms = Digits(t, 9, 3)) < 0) return std::nullopt;
  }
  if (t.size() != 2 && t.size() != 5 && t.size() != 8 && t.size() != 12) return std::nullopt;
  return *day + h * kHourMs + m * 60'000 + sec * 1000 + ms;
}

void CsvField(std::string* out, std::string_view v) {
  if (v.find_first_of(",\"\r\n") == std::string_view::npos) {
    out->append(v);
    return;
  }
  out->push_back('"');
  for (char c : v) {
    if (c == '"') out->push_back('"');
    out->push_back(c);
  }
  out->push_back('"');
}

}  // namespace

HttpResponse GetNewUsers(const ChannelsConfig& config, ChannelStore* channels, const HttpRequest& req) {
  if (!channels) return Error(501, "not_supported", "this store keeps no channel figures");
  auto param = [&](const char* name) -> std::string {
    auto it = req.query.find(name);
    return it == req.query.end() ? std::string() : it->second;
  };
  std::string product = param("product");
  if (product.empty()) product = config.default_product;
  std::string granularity = param("granularity");
  if (granularity.empty()) granularity = "hour";
  if (granularity != "hour" && granularity != "day") {
    return Error(400, "invalid_value", "granularity must be hour or day, got \"" + granularity + "\"");
  }
  std::string format = param("format");
  if (format.empty()) format = "json";
  if (format != "json" && format != "csv") return Error(400, "invalid_value", "format must be json or csv, got \"" + format + "\"");
  const TimestampMs unit = granularity == "hour" ? kHourMs : kDayMs;
  TimestampMs to = 0, from = 0;
  if (std::string v = param("to"); !v.empty()) {
    auto t = ParseTime(v);
    if (!t) return Error(400, "invalid_value", "to must be unix ms, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ, got \"" + v + "\"");
    to = *t;
  } else {
    to = NowMs();
  }
  to = FloorTo(to + unit - 1, unit);  // the bucket holding `to` is partial: shown whole
  if (std::string v = param("from"); !v.empty()) {
    auto t = ParseTime(v);
    if (!t) return Error(400, "invalid_value", "from must be unix ms, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ, got \"" + v + "\"");
    from = FloorTo(*t, unit);
  } else {
    from = to - (granularity == "hour" ? 2 * kDayMs : 30 * kDayMs);
  }
  if (from >= to) return Error(400, "invalid_value", "from must be before to");
  if (static_cast<size_t>((to - from) / kHourMs) > kMaxHours) {
    return Error(400, "invalid_value", "at most " + std::to_string(kMaxHours / 24) + " days from from to to; narrow them");
  }
  auto figures = channels->Read(product, from, to);
  if (!figures.ok()) return Error(HttpStatusFor(figures.status()), "store_error", figures.status().message());

  // Served count of an hour: the calibrated one when its day was calibrated.
  std::set<TimestampMs> calibrated_days;
  for (const auto& d : figures->days) calibrated_days.insert(d.day);
  struct Cell {
    int64_t served = 0, realtime = 0;
  };
  std::map<std::string, std::map<TimestampMs, Cell>> by_channel;  // channel -> bucket start -> counts
  for (const auto& c : figures->realtime) {
    Cell& cell = by_channel[c.channel][FloorTo(c.hour, unit)];
    cell.realtime += c.count;
    if (!calibrated_days.count(FloorTo(c.hour, kDayMs))) cell.served += c.count;
  }
  for (const auto& c : figures->calibrated) {
    if (calibrated_days.count(FloorTo(c.hour, kDayMs))) by_channel[c.channel][FloorTo(c.hour, unit)].served += c.count;
  }
  auto bucket_calibrated = [&](TimestampMs start) { return calibrated_days.count(FloorTo(start, kDayMs)) > 0; };

  if (format == "csv") {
    std::string out = "channel,start,new_users,running_total,calibrated,realtime\n";
    for (const auto& [channel, cells] : by_channel) {
      int64_t running = 0;
      for (TimestampMs b = from; b < to; b += unit) {
        Cell cell;
        if (auto it = cells.find(b); it != cells.end()) cell = it->second;
        running += cell.served;
        CsvField(&out, channel);
        out += "," + FormatIsoUtc(b) + "," + std::to_string(cell.served) + "," + std::to_string(running) + "," +
               (bucket_calibrated(b) ? "true" : "false") + "," + std::to_string(cell.realtime) + "\n";
      }
    }
    HttpResponse r{200, "text/csv; charset=utf-8", std::move(out)};
    r.headers.emplace_back("Content-Disposition", "attachment; filename=\"new-users-" + product + ".csv\"");
    return r;
  }
  std::string out;
  JsonWriter w(&out);
  w.BeginObject();
  w.Key("product").String(product);
  w.Key("granularity").String(granularity);
  w.Key("from").String(FormatIsoUtc(from));
  w.Key("to").String(FormatIsoUtc(to));
  int64_t total = 0;
  w.Key("channels").BeginArray();
  for (const auto& [channel, cells] : by_channel) {
    w.BeginObject();
    w.Key("channel").String(channel);
    w.Key("buckets").BeginArray();
    int64_t running = 0;
    for (TimestampMs b = from; b < to; b += unit) {
      Cell cell;
      if (auto it = cells.find(b); it != cells.end()) cell = it->second;
      running += cell.served;
      w.BeginObject();
      w.Key("start").String(FormatIsoUtc(b));
      w.Key("new_users").Int(cell.served);
      w.Key("running_total").Int(running);
      w.Key("calibrated").Bool(bucket_calibrated(b));
      w.Key("realtime").Int(cell.realtime);
      w.EndObject();
    }
    w.EndArray();
    w.Key("total").Int(running);
    total += running;
    w.EndObject();
  }
  w.EndArray();
  w.Key("total").Int(total);
  w.Key("calibrations").BeginArray();
  for (const auto& d : figures->days) w.Raw(d.summary);
  w.EndArray();
  w.EndObject();
  return {200, "application/json", std::move(out)};
}

HttpResponse PostCalibrate(const Config& config, ChannelStore* channels, MetricsRegistry* metrics,
                           const HttpRequest& req) {
  auto it = req.query.find("date");
  if (it == req.query.end() || it->second.empty()) return Error(400, "missing_field", "date=YYYY-MM-DD is required");
  auto report = Calibrate(config, channels, it->second);
  if (!report.ok()) return Error(HttpStatusFor(report.status()), "calibration_failed", report.status().message());
  RecordCalibration(*report, metrics);
  return {200, "application/json", report->ToJson()};
}

}  // namespace portrait
