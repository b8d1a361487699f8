// The records of the events topic besides events: Actions sent by other systems and
// profile erasures (kinds in core/record_kind.h).
#pragma once

#include <string>
#include <string_view>

#include "core/action.h"
#include "core/record_kind.h"
#include "core/status.h"

namespace portrait {


void EncodeActionRecord(const Action& a, std::string* out);
Status DecodeActionRecord(std::string_view in, Action* a);

void EncodeDeleteRecord(std::string_view uid, TimestampMs ts, std::string* out);
Status DecodeDeleteRecord(std::string_view in, std::string* uid, TimestampMs* ts);

// A quarantined record on its way back (stream/quarantine.h): whose it is, where it sat in
// the log, and its bytes. Appended to its owner's partition by a dead-letter replay.
struct ReleaseRecord {
  std::string_view owner;
  int32_t partition = -1;
  int64_t offset = -1;
  std::string_view record;  // the original record (an event or an Action)
};
void EncodeReleaseRecord(const ReleaseRecord& r, std::string* out);
// The views point into `in`.
Status DecodeReleaseRecord(std::string_view in, ReleaseRecord* r);

}  // namespace portrait
