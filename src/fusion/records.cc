#include "fusion/records.h"

#include "core/coding.h"
#include "fusion/fusion.h"

namespace portrait {

void EncodeActionRecord(const Action& a, std::string* out) {
  Writer w(out);
  w.U8(static_cast<uint8_t>(RecordKind::kAction));
  w.Bytes(a.uid);
  w.Bytes(a.tag);
  std::string body;
  fusion::EncodeAction(a, &body);
  w.Bytes(body);
}

Status DecodeActionRecord(std::string_view in, Action* a) {
  Reader r(in);
  if (r.U8() != static_cast<uint8_t>(RecordKind::kAction)) return Status::Corruption("action record: wrong kind");
  a->uid = r.Bytes();
  a->tag = r.Bytes();
  std::string_view body = r.Bytes();
  if (!r.ok() || !r.done()) return Status::Corruption("action record: truncated");
  return fusion::DecodeAction(body, a);
}

void EncodeDeleteRecord(std::string_view uid, TimestampMs ts, std::string* out) {
  Writer w(out);
  w.U8(static_cast<uint8_t>(RecordKind::kDeleteProfile));
  w.Bytes(uid);
  w.SignedVarint(ts);
}

Status DecodeDeleteRecord(std::string_view in, std::string* uid, TimestampMs* ts) {
  Reader r(in);
  if (r.U8() != static_cast<uint8_t>(RecordKind::kDeleteProfile)) return Status::Corruption("delete record: wrong kind");
  *uid = r.Bytes();
  *ts = r.SignedVarint();
  if (!r.ok() || !r.done()) return Status::Corruption("delete record: truncated");
  return Status::Ok();
}

void EncodeReleaseRecord(const ReleaseRecord& rr, std::string* out) {
  Writer w(out);
  w.U8(static_cast<uint8_t>(RecordKind::kRelease));
  w.Bytes(rr.owner);
  w.Varint(static_cast<uint64_t>(rr.partition));
  w.Varint(static_cast<uint64_t>(rr.offset));
  w.Bytes(rr.record);
}

Status DecodeReleaseRecord(std::string_view in, ReleaseRecord* rr) {
  Reader r(in);
  if (r.U8() != static_cast<uint8_t>(RecordKind::kRelease)) return Status::Corruption("release record: wrong kind");
  rr->owner = r.Bytes();
  rr->partition = static_cast<int32_t>(r.Varint());
  rr->offset = static_cast<int64_t>(r.Varint());
  rr->record = r.Bytes();
  if (!r.ok() || !r.done()) return Status::Corruption("release record: truncated");
  return Status::Ok();
}

}  // namespace portrait
