// What one processor worker carries from batch to batch (processor.cc and
// processor_groups.cc; not for other users of the processor).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "stream/processor.h"

namespace portrait {

struct Processor::Work {
  std::vector<std::unique_ptr<Stage>> stages;
  Batch batch;
  std::vector<Action> combined;
  std::vector<uint32_t> order;  // the batch's Actions by (uid, tag), log order within each
  Event event;
  Action action;
  bool begun = false;  // BeginBatch called for the batch in the making
  bool check_erasures = false;  // the erasure list is not empty
  int worker = 0;
  Status failed;          // a write of the batch failed for good (Isolate takes over)
  std::string releasing;  // the owner whose quarantined record is being applied
  std::vector<PartitionId> partitions;  // the worker's, on a log without groups
  bool recover = false;   // stages made anew: their memory is rebuilt before the next batch
};

}  // namespace portrait
