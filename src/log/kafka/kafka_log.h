// The Kafka log: one Kafka topic per portrait topic (TOPIC_PREFIX + "events" / "failed"),
// records produced to the partition portrait chose (users stay on one partition), with the
// idempotent producer and acks=all, so Append returns once every in-sync replica has them.
//
// Reading: OpenReader assigns one partition to a private consumer (replay, `failed list`,
// the collector's repeat window); the processor joins a consumer group instead
// (JoinGroup), which spreads the partitions over every running portrait process and moves
// them when one dies. Retention belongs to the brokers (the topic's retention.ms and
// retention.bytes, set from [log.topics.*] when portrait creates the topic); Trim does
// nothing here. Named consumer offsets (CommitOffset) are not kept by this backend.
#pragma once

#include <memory>
#include <string>

#include "log/log.h"

namespace portrait {

Result<std::unique_ptr<Log>> OpenKafkaLog(const LogConfig& config, const std::string& topic, int partitions,
                                          MetricsRegistry* metrics);

}  // namespace portrait
