#include "ingest/failed.h"
#include "core/record_kind.h"

#include <algorithm>

#include "core/coding.h"
#include "core/json.h"

namespace portrait {

namespace {
constexpr uint8_t kFailedKind = static_cast<uint8_t>(RecordKind::kFailed);
}

void EncodeFailed(const FailedRecord& r, std::string* out) {
  Writer w(out);
  w.U8(kFailedKind);
  w.SignedVarint(r.time);
  w.Bytes(r.source);
  w.Bytes(r.kind);
  w.Bytes(r.reason);
  w.Bytes(r.message);
  w.Bytes(std::string_view(r.payload).substr(0, FailedRecord::kMaxPayload));
}

Status DecodeFailed(std::string_view in, FailedRecord* r) {
  Reader rd(in);
  if (rd.U8() != kFailedKind) return Status::Corruption("failed record: wrong kind");
  r->time = rd.SignedVarint();
  r->source = rd.Bytes();
  r->kind = rd.Bytes();
  r->reason = rd.Bytes();
  r->message = rd.Bytes();
  r->payload = rd.Bytes();
  if (!rd.ok() || !rd.done()) return Status::Corruption("failed record: truncated");
  return Status::Ok();
}

std::string FailedToJson(const FailedRecord& r, Offset offset) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("offset").Int(offset.value).Key("time").Int(r.time).Key("source").String(r.source);
  w.Key("kind").String(r.kind).Key("reason").String(r.reason).Key("error").String(r.message);
  w.Key("payload").String(r.payload).EndObject();
  return out;
}

Result<std::vector<std::pair<Offset, FailedRecord>>> ReadLatestFailed(Log& failed, size_t limit) {
  std::vector<std::pair<Offset, FailedRecord>> out;
  RETURN_IF_ERROR(ReadTail(failed, PartitionId(0), limit, [&](Offset offset, std::string_view payload) {
    FailedRecord r;
    RETURN_IF_ERROR(DecodeFailed(payload, &r).WithContext("failed topic offset " + std::to_string(offset.value)));
    out.emplace_back(offset, std::move(r));
    return Status::Ok();
  }));
  std::reverse(out.begin(), out.end());
  return out;
}

}  // namespace portrait
