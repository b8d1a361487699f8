// Event: one behaviour event after validation, as the log stores it.
//
// `props` keeps each top-level property as compact raw JSON text, so rules can copy
// values into tag items without a DOM. Events are plain values; not thread-safe to
// mutate concurrently.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "core/types.h"

namespace portrait {

struct Event {
  std::string id;         // client id, or derived from the content (DeriveEventId)
  std::string uid;        // user id; may be empty before login when device_id is set
  std::string device_id;
  std::string type;
  TimestampMs ts = 0;     // event time
  std::string product;
  std::string channel;
  std::vector<std::pair<std::string, std::string>> props;  // name -> raw JSON value

  // Raw JSON of property `name`, or an empty view when absent.
  std::string_view Prop(std::string_view name) const;
  // The key events are partitioned by: uid, or device_id before login.
  std::string_view PartitionKey() const { return uid.empty() ? device_id : uid; }
};

// A stable id from the event's content, for idempotent ingestion of id-less events.
std::string DeriveEventId(const Event& e);

// Binary form stored in the log.
void EncodeEvent(const Event& e, std::string* out);
Status DecodeEvent(std::string_view in, Event* out);
// The id of an encoded event without decoding the rest (empty when `in` is no event record).
std::string_view PeekEventId(std::string_view in);

// Compact JSON form, as the API accepts it.
std::string EventToJson(const Event& e);

PartitionId PartitionFor(std::string_view key, int partitions);

// "2023-11-14T22:13:20.000Z"
std::string FormatIsoUtc(TimestampMs ms);

}  // namespace portrait
