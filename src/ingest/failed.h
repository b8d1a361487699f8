// Failed-event records: every event or Action the collector rejects is kept, with its
// original payload, the reason, where it came from and when, in the `failed` topic of the
// log (one partition), so nothing invalid is dropped silently and it can be inspected
// (GET /v1/failed, `portrait failed list`) and fixed at the source.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "core/types.h"
#include "log/log.h"

namespace portrait {

struct FailedRecord {
  TimestampMs time = 0;  // when it was rejected
  std::string source;    // "http", "http:<token name>", "file:<name>", ...
  std::string kind;      // "event" or "action"
  std::string reason;    // malformed_json, wrong_type, ...
  std::string message;
  std::string payload;   // the original text (cut at kMaxPayload)
  static constexpr size_t kMaxPayload = 1 << 20;
};

void EncodeFailed(const FailedRecord& r, std::string* out);
Status DecodeFailed(std::string_view in, FailedRecord* r);
std::string FailedToJson(const FailedRecord& r, Offset offset);

// The newest `limit` records of the failed topic, newest first.
Result<std::vector<std::pair<Offset, FailedRecord>>> ReadLatestFailed(Log& failed, size_t limit);

}  // namespace portrait
