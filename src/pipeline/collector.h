// Collector: turns request bodies into validated Events and appends them to the log.
//
// A body is one JSON event, a JSON array of events, or NDJSON (one event per line).
// Each event is validated against the behaviour model in config; an invalid one is
// rejected with its index and a reason, and never stops the valid ones around it.
// Ingest returns after the accepted events are durable in the log. Thread-safe: each
// thread uses its own parser.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/event.h"
#include "core/metrics.h"
#include "core/status.h"
#include "log/log.h"

namespace portrait {

struct Rejection {
  size_t index = 0;      // position of the event in the body (array index or line order)
  std::string reason;    // short code: malformed_json, too_deep, missing_field, wrong_type, ...
  std::string message;   // what is wrong, naming the field
};

struct IngestResult {
  size_t accepted = 0;
  std::vector<Rejection> rejected;
};

class Collector {
 public:
  Collector(const Config& config, Log* log, MetricsRegistry* metrics);

  // `body` must have at least kPadding readable bytes after its end (see PaddedBody).
  Result<IngestResult> Ingest(std::string_view body);

  // Parses and validates one event (for tests and tools); `json` needs no padding.
  Result<Event> ParseOne(std::string_view json);

  static constexpr size_t kPadding = 64;

 private:
  void Parse(std::string_view body, std::vector<Event>* events, std::vector<size_t>* indexes,
             std::vector<Rejection>* rejected);
  void CountRejection(const Rejection& r);

  const Config& config_;
  Log* log_;
  MetricsRegistry* metrics_;
  Counter* accepted_;
  Counter* requests_;
};

}  // namespace portrait
