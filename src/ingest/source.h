// PullSource: a pull source of events (besides HTTP pushes). Each runs its own thread, hands
// what it reads to the Collector (so validation, failed records and repeat-dropping are
// the same as for pushes) and remembers how far it got only after the Collector has made
// the events durable. Sources are named by config; MakeSource picks the implementation.
#pragma once

#include <memory>
#include <string>

#include "core/config.h"
#include "core/metrics.h"
#include "ingest/collector.h"

namespace portrait {

class PullSource {
 public:
  virtual ~PullSource() = default;
  virtual Status Start() = 0;
  virtual void Stop() = 0;
};

Result<std::unique_ptr<PullSource>> MakeSource(const SourceConfig& source, const Config& config, Collector* collector,
                                           const std::string& data_dir, MetricsRegistry* metrics);

}  // namespace portrait
