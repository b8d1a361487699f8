#include "log/log.h"

#include <spdlog/spdlog.h>

#include "log/embedded/segment_log.h"
#include "log/kafka/kafka_log.h"

namespace portrait {

Status ReadTail(Log& log, PartitionId p, size_t limit, const std::function<Status(Offset, std::string_view)>& fn) {
  int64_t end = log.EndOffset(p).value;
  int64_t from = std::max<int64_t>(log.StartOffset(p).value, end - static_cast<int64_t>(limit));
  ASSIGN_OR_RETURN(auto reader, log.OpenReader(p, Offset(from)));
  std::vector<LogRecord> recs;
  while (reader->position().value < end) {
    RETURN_IF_ERROR(reader->Read(1 << 20, &recs));
    if (recs.empty()) break;
    for (const auto& rec : recs) {
      if (rec.offset.value >= end) return Status::Ok();
      RETURN_IF_ERROR(fn(rec.offset, rec.payload));
    }
  }
  return Status::Ok();
}

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
