// Calibration of the channel figures: recomputes a day's new users from the archive by
// event time and replaces the served figures of that day with them.
//
// For each product in the day's archive, every identity of the day is grouped into users
// the way the registry groups them (a device belongs to the owner the registry names, or
// else to the uid of its earliest event that carried both). A user is new on the day when
// no member has a first event before the day in the registry (which keeps every
// identity ever seen, beyond the archive's retention) and is counted in the bucket of the
// earliest (ts, channel) among the day's events of its members. The real-time counts of
// the day are compared bucket by bucket, the registry is repaired with the day's first
// events (a no-op when real time saw them all), and the day's calibrated counts and a
// summary of the run are written to the store.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/metrics.h"
#include "core/progress.h"
#include "core/status.h"
#include "features/channels/channel_store.h"

namespace portrait {

struct CalibrationBucket {
  std::string product, channel;
  TimestampMs hour = 0;
  int64_t realtime = 0, calibrated = 0;
};

struct CalibrationProduct {
  std::string product;
  int64_t realtime = 0, calibrated = 0, abs_error = 0;  // sums over the day's buckets
  double error_ratio() const { return calibrated > 0 ? double(abs_error) / double(calibrated) : (abs_error > 0 ? 1 : 0); }
};

struct CalibrationReport {
  std::string date;
  uint64_t files = 0, events = 0, bad_lines = 0;
  double seconds = 0;
  std::vector<CalibrationBucket> buckets;    // every bucket where either count is non-zero
  std::vector<CalibrationProduct> products;  // by name
  CalibrationProduct overall;
  std::string ToJson() const;
};

// `store` is the server's ChannelStore. Errors: a bad date, no archived events for it, a
// store failure (nothing is replaced then for the product it happened on).
// `progress` (optional) hears archive files read of all to read.
Result<CalibrationReport> Calibrate(const Config& config, ChannelStore* store, const std::string& date,
                                    const ProgressFn& progress = nullptr);

// A day's calibration shared by several runs (processes of a group, or `portrait calibrate
// --partitions` on several machines): scans the day's archive of `partitions` into
// ARCHIVE/_calibration/date=D/scan-P.ndjson.gz (each partition's first events, fsynced);
// the run that finds every partition's scan there merges them and calibrates, as Calibrate
// does over the whole archive. nullopt while partitions are missing (`waiting_for`), or when
// another run has calibrated the day from the same scans.
Result<std::optional<CalibrationReport>> CalibrateShare(const Config& config, ChannelStore* store,
                                                        const std::string& date, const std::vector<int>& partitions,
                                                        std::vector<int>* waiting_for);

// Sets portrait_channel_calibration_error_ratio{product} and counts the run.
void RecordCalibration(const CalibrationReport& report, MetricsRegistry* metrics);

}  // namespace portrait
