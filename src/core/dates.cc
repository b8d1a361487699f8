#include "core/dates.h"

#include <cstdio>
#include <ctime>

namespace portrait {

std::string DateOf(TimestampMs ts) {
  time_t secs = static_cast<time_t>(ts >= 0 ? ts / 1000 : (ts - 999) / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
  return buf;
}

std::optional<TimestampMs> DayStartMs(std::string_view date) {
  if (date.size() != 10 || date[4] != '-' || date[7] != '-') return std::nullopt;
  struct tm tm = {};
  int y = 0, m = 0, d = 0;
  std::string s(date);
  if (std::sscanf(s.c_str(), "%4d-%2d-%2d", &y, &m, &d) != 3) return std::nullopt;
  tm.tm_year = y - 1900;
  tm.tm_mon = m - 1;
  tm.tm_mday = d;
  time_t t = timegm(&tm);
  TimestampMs ms = static_cast<TimestampMs>(t) * 1000;
  if (DateOf(ms) != date) return std::nullopt;  // 2026-02-30 and the like
  return ms;
}

std::optional<TimestampMs> ParseIsoUtcMs(std::string_view s) {
  if (s.size() < 20 || s[10] != 'T' || s.back() != 'Z') return std::nullopt;
  auto day = DayStartMs(s.substr(0, 10));
  if (!day) return std::nullopt;
  auto digits = [&](size_t at, size_t n) -> int {
    int v = 0;
    for (size_t i = at; i < at + n; ++i) {
      if (i >= s.size() || s[i] < '0' || s[i] > '9') return -1;
      v = v * 10 + (s[i] - '0');
    }
    return v;
  };
  int h = digits(11, 2), m = digits(14, 2), sec = digits(17, 2), ms = 0;
  if (h < 0 || m < 0 || sec < 0 || s[13] != ':' || s[16] != ':') return std::nullopt;
  if (s.size() > 20) {
    if (s[19] != '.' || s.size() != 24 || (ms = digits(20, 3)) < 0) return std::nullopt;
  }
  return *day + h * 3'600'000LL + m * 60'000LL + sec * 1000LL + ms;
}

}  // namespace portrait
