#include "log/log.h"

#include <spdlog/spdlog.h>

#include "log/embedded/segment_log.h"

namespace portrait {

Result<std::unique_ptr<Log>> MakeLog(const LogConfig& config, const std::string& data_dir,
                                     MetricsRegistry* metrics) {
  if (config.backend == "embedded") {
    SegmentLogOptions o;
    o.dir = data_dir + "/log";
    o.partitions = config.partitions;
    o.fsync = config.fsync;
    o.fsync_max_delay_ms = config.fsync_max_delay_ms;
    o.segment_bytes = config.segment_bytes;
    SegmentLogRecovery rec;
    auto log = OpenSegmentLog(o, metrics, &rec);
    for (const auto& note : rec.notes) spdlog::warn("log recovery: {}", note);
    return log;
  }
  return Status::InvalidArgument("[log] backend \"" + config.backend + "\" is unknown; use \"embedded\"");
}

}  // namespace portrait
