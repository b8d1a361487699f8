// What the processor finds in the log: events, Actions sent by other systems, and
// profile deletions. The first byte of a record says which (an event's format byte is 1).
#pragma once

#include <string>
#include <string_view>

#include "core/action.h"
#include "core/status.h"

namespace portrait {

enum class RecordKind : uint8_t { kEvent = 1, kAction = 2, kDeleteProfile = 3, kUnknown = 255 };

RecordKind PeekRecordKind(std::string_view payload);

void EncodeActionRecord(const Action& a, std::string* out);
Status DecodeActionRecord(std::string_view in, Action* a);

void EncodeDeleteRecord(std::string_view uid, TimestampMs ts, std::string* out);
Status DecodeDeleteRecord(std::string_view in, std::string* uid, TimestampMs* ts);

}  // namespace portrait
