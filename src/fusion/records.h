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

}  // namespace portrait
