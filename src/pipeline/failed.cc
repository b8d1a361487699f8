#include "pipeline/failed.h"

#include <algorithm>

#include "core/coding.h"
#include "core/json.h"

namespace portrait {

namespace {
constexpr uint8_t kFailedKind = 4;  // record kind byte, after events (1), actions (2), deletions (3)
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
  int64_t end = failed.EndOffset(PartitionId(0)).value;
  int64_t from = std::max<int64_t>(failed.StartOffset(PartitionId(0)).value, end - static_cast<int64_t>(limit));
  ASSIGN_OR_RETURN(auto reader, failed.OpenReader(PartitionId(0), Offset(from)));
  std::vector<LogRecord> recs;
  while (reader->position().value < end) {
    RETURN_IF_ERROR(reader->Read(1 << 20, &recs));
    if (recs.empty()) break;
    for (const auto& rec : recs) {
      if (rec.offset.value >= end) break;
      FailedRecord r;
      RETURN_IF_ERROR(DecodeFailed(rec.payload, &r).WithContext("failed topic offset " + std::to_string(rec.offset.value)));
      out.emplace_back(rec.offset, std::move(r));
    }
  }
  std::reverse(out.begin(), out.end());
  return out;
}

}  // namespace portrait
