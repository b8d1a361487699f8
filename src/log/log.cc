#include "log/log.h"

#include <spdlog/spdlog.h>

#include "log/embedded/segment_log.h"
#include "log/kafka/kafka_log.h"

namespace portrait {

Result<std::unique_ptr<Log>> MakeLog(const LogConfig& config, const std::string& data_dir, const std::string& topic,
                                     int partitions, MetricsRegistry* metrics, bool read_only) {
  if (config.backend == "embedded") {
    SegmentLogOptions o;
    o.dir = data_dir + "/log/" + topic;
    o.topic = topic;
    o.read_only = read_only;
    o.partitions = partitions > 0 ? partitions : config.partitions;
    o.fsync = config.fsync;
    o.fsync_max_delay_ms = config.fsync_max_delay_ms;
    o.segment_bytes = config.segment_bytes;
    SegmentLogRecovery rec;
    auto log = OpenSegmentLog(o, metrics, &rec);
    for (const auto& note : rec.notes) spdlog::warn("log recovery ({}): {}", topic, note);
    return log;
  }
  if (config.backend == "kafka") return OpenKafkaLog(config, topic, partitions > 0 ? partitions : config.partitions, metrics);
  return Status::InvalidArgument("[log] backend \"" + config.backend + "\" is unknown; use \"embedded\" or \"kafka\"");
}

}  // namespace portrait
