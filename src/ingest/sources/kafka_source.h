// KafkaSource: consumes a Kafka topic in a consumer group; each message holds one or more
// lines (NDJSON events, or CSV rows with the source's column mapping). A batch of
// messages is handed to the Collector and the group's offsets are committed only after
// the events are durable in portrait's log; a crash in between delivers the batch again,
// and its events are then dropped as repeats (ids are given or derived from content).
#pragma once

#include "ingest/source.h"

namespace portrait {

Result<std::unique_ptr<PullSource>> MakeKafkaSource(const SourceConfig& source, const Config& config,
                                                    Collector* collector, MetricsRegistry* metrics);

}  // namespace portrait
