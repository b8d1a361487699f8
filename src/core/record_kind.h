// The kinds of log records, one table for every topic: the first byte of a record says
// which it is. New kinds take the next free number; a number is never reused, because
// logs and archives written by older versions keep their records.
#pragma once

#include <cstdint>
#include <string_view>

namespace portrait {

enum class RecordKind : uint8_t {
  kEvent = 1,          // an accepted event (core/event.h), in the events topic
  kAction = 2,         // an Action from another system (fusion/records.h), in the events topic
  kDeleteProfile = 3,  // an erasure of a user (fusion/records.h), in the events topic
  kFailed = 4,         // a rejected event or Action with its reason (ingest/failed.h), in `failed`
  kRetry = 5,          // an item waiting for a sink or dead (delivery/retry.h), in `retry` / `dead`
  kRelease = 6,        // a quarantined record sent back by the operator (fusion/records.h), in the events topic
  kUnknown = 255,
};

// The kind of a record of the events topic (kUnknown for anything else).
inline RecordKind PeekRecordKind(std::string_view payload) {
  if (payload.empty()) return RecordKind::kUnknown;
  switch (static_cast<uint8_t>(payload[0])) {
    case 1: return RecordKind::kEvent;
    case 2: return RecordKind::kAction;
    case 3: return RecordKind::kDeleteProfile;
    case 6: return RecordKind::kRelease;
    default: return RecordKind::kUnknown;
  }
}

}  // namespace portrait
