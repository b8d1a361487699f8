#include "core/event.h"
#include "core/record_kind.h"

#include <xxhash.h>

#include <chrono>
#include <ctime>

#include "core/coding.h"
#include "core/json.h"

namespace portrait {

TimestampMs NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string_view Event::Prop(std::string_view name) const {
  for (const auto& [k, v] : props) {
    if (k == name) return v;
  }
  return {};
}

std::string DeriveEventId(const Event& e) {
  std::string buf;
  Event copy = e;
  copy.id.clear();
  EncodeEvent(copy, &buf);
  XXH128_hash_t h = XXH3_128bits(buf.data(), buf.size());
  char hex[33];
  std::snprintf(hex, sizeof hex, "%016llx%016llx", static_cast<unsigned long long>(h.high64),
                static_cast<unsigned long long>(h.low64));
  return std::string("h:") + hex;
}

namespace {
constexpr uint8_t kEventFormat = static_cast<uint8_t>(RecordKind::kEvent);
}

void EncodeEvent(const Event& e, std::string* out) {
  Writer w(out);
  w.U8(kEventFormat);
  w.Bytes(e.id);
  w.Bytes(e.uid);
  w.Bytes(e.device_id);
  w.Bytes(e.type);
  w.SignedVarint(e.ts);
  w.Bytes(e.product);
  w.Bytes(e.channel);
  w.Varint(e.props.size());
  for (const auto& [k, v] : e.props) {
    w.Bytes(k);
    w.Bytes(v);
  }
}

Status DecodeEvent(std::string_view in, Event* e) {
  Reader r(in);
  if (r.U8() != kEventFormat) return Status::Corruption("event record: unknown format byte");
  e->id = r.Bytes();
  e->uid = r.Bytes();
  e->device_id = r.Bytes();
  e->type = r.Bytes();
  e->ts = r.SignedVarint();
  e->product = r.Bytes();
  e->channel = r.Bytes();
  uint64_t n = r.Varint();
  if (!r.ok() || n > in.size()) return Status::Corruption("event record: truncated");
  e->props.clear();
  e->props.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    std::string_view k = r.Bytes();
    std::string_view v = r.Bytes();
    e->props.emplace_back(k, v);
  }
  if (!r.ok() || !r.done()) return Status::Corruption("event record: truncated or trailing bytes");
  return Status::Ok();
}

std::string_view PeekEventId(std::string_view in) {
  Reader r(in);
  if (r.U8() != kEventFormat) return {};
  std::string_view id = r.Bytes();
  return r.ok() ? id : std::string_view();
}

std::string EventToJson(const Event& e) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject();
  w.Key("id").String(e.id);
  if (!e.uid.empty()) w.Key("uid").String(e.uid);
  if (!e.device_id.empty()) w.Key("device_id").String(e.device_id);
  w.Key("type").String(e.type);
  w.Key("ts").Int(e.ts);
  if (!e.product.empty()) w.Key("product").String(e.product);
  if (!e.channel.empty()) w.Key("channel").String(e.channel);
  w.Key("props").BeginObject();
  for (const auto& [k, v] : e.props) w.Key(k).Raw(v);
  w.EndObject();
  w.EndObject();
  return out;
}

PartitionId PartitionFor(std::string_view key, int partitions) {
  uint64_t h = XXH3_64bits(key.data(), key.size());
  return PartitionId(static_cast<int32_t>(h % static_cast<uint64_t>(partitions)));
}

std::string FormatIsoUtc(TimestampMs ms) {
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  int millis = static_cast<int>(ms % 1000);
  if (millis < 0) {
    millis += 1000;
    secs -= 1;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
  return buf;
}

}  // namespace portrait
