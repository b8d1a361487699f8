// UTC calendar dates ("2026-11-20") of event times, shared by the archive layout, the
// snapshots, calibration and the daily schedules. Pure functions, thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/types.h"

namespace portrait {

// "2026-11-20" for a time (UTC; also before 1970).
std::string DateOf(TimestampMs ts);
// The first millisecond of a valid date (UTC), else nullopt (2026-02-30 is not valid).
std::optional<TimestampMs> DayStartMs(std::string_view date);
// "2026-11-20T08:15:00[.123]Z" -> unix ms; nullopt when it is not such a time.
std::optional<TimestampMs> ParseIsoUtcMs(std::string_view text);

}  // namespace portrait
