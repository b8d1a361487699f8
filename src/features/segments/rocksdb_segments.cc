// Segment membership in the profile store's RocksDB database (key bytes in
// store/rocksdb/key_space.h):
//   'g' bytes(uid) segment            -> since, recheck_at (fixed64 each)
//   'G' bytes(segment) uid            -> ""   members in uid order
//   'w' bytes(segment) be64(at) uid   -> ""   members due for a re-check at `at`
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "core/coding.h"
#include "features/segments/segment_store.h"
#include "store/rocksdb/key_space.h"

namespace portrait {
namespace {

std::string Prefix(char kind, std::string_view id) {
  std::string k(1, kind);
  Writer(&k).Bytes(id);
  return k;
}

void AppendBigEndian(std::string* out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out->push_back(static_cast<char>((v >> shift) & 0xff));
}

std::string DueKey(std::string_view segment, TimestampMs at, std::string_view uid) {
  std::string k = Prefix(rocksdb_keys::kSegmentDue, segment);
  AppendBigEndian(&k, static_cast<uint64_t>(at));
  k += uid;
  return k;
}

class RocksDbSegments : public SegmentStore {
 public:
  explicit RocksDbSegments(rocksdb::DB* db) : db_(db) {}

  Result<std::vector<std::map<std::string, SegmentEntry>>> Get(std::span<const std::string> uids) override {
    std::vector<std::map<std::string, SegmentEntry>> out(uids.size());
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    for (size_t i = 0; i < uids.size(); ++i) {
      const std::string prefix = Prefix(rocksdb_keys::kUserSegments, uids[i]);
      for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
        Reader r(std::string_view(it->value().data(), it->value().size()));
        SegmentEntry e;
        e.since = static_cast<TimestampMs>(r.Fixed64());
        e.recheck_at = static_cast<TimestampMs>(r.Fixed64());
        if (!r.ok()) return Status::Corruption("segments of " + uids[i] + " are unreadable");
        out[i].emplace(it->key().ToString().substr(prefix.size()), e);
      }
      if (!it->status().ok()) return Status::IOError("rocksdb read segments: " + it->status().ToString());
    }
    return out;
  }

  Status Write(std::span<const SegmentWrite> writes) override {
    rocksdb::WriteBatch batch;
    std::string v;
    for (const SegmentWrite& w : writes) {
      const std::string user_key = Prefix(rocksdb_keys::kUserSegments, w.uid) + w.segment;
      const std::string member_key = Prefix(rocksdb_keys::kSegmentMembers, w.segment) + w.uid;
      if (w.old_recheck_at > 0) batch.Delete(DueKey(w.segment, w.old_recheck_at, w.uid));
      if (!w.member) {
        batch.Delete(user_key);
        batch.Delete(member_key);
        continue;
      }
      v.clear();
      Writer(&v).Fixed64(static_cast<uint64_t>(w.entry.since));
      Writer(&v).Fixed64(static_cast<uint64_t>(w.entry.recheck_at));
      batch.Put(user_key, v);
      batch.Put(member_key, "");
      if (w.entry.recheck_at > 0) batch.Put(DueKey(w.segment, w.entry.recheck_at, w.uid), "");
    }
    rocksdb::Status st = db_->Write(rocksdb::WriteOptions(), &batch);
    return st.ok() ? Status::Ok() : Status::IOError("rocksdb write segments: " + st.ToString());
  }

  Result<std::vector<std::string>> Members(std::string_view segment, std::string_view after, size_t limit) override {
    const std::string prefix = Prefix(rocksdb_keys::kSegmentMembers, segment);
    std::vector<std::string> out;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    it->Seek(prefix + std::string(after));
    for (; it->Valid() && it->key().starts_with(prefix) && out.size() < limit; it->Next()) {
      std::string uid = it->key().ToString().substr(prefix.size());
      if (!after.empty() && uid == after) continue;
      out.push_back(std::move(uid));
    }
    if (!it->status().ok()) return Status::IOError("rocksdb read members: " + it->status().ToString());
    return out;
  }

  Result<uint64_t> Count(std::string_view segment) override {
    const std::string prefix = Prefix(rocksdb_keys::kSegmentMembers, segment);
    uint64_t n = 0;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) ++n;
    if (!it->status().ok()) return Status::IOError("rocksdb count members: " + it->status().ToString());
    return n;
  }

  Result<std::vector<std::string>> Due(std::string_view segment, TimestampMs now, size_t limit) override {
    const std::string prefix = Prefix(rocksdb_keys::kSegmentDue, segment);
    std::vector<std::string> out;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix) && out.size() < limit; it->Next()) {
      std::string_view rest(it->key().data() + prefix.size(), it->key().size() - prefix.size());
      if (rest.size() < 8) continue;
      uint64_t at = 0;
      for (int i = 0; i < 8; ++i) at = (at << 8) | static_cast<uint8_t>(rest[static_cast<size_t>(i)]);
      if (static_cast<TimestampMs>(at) > now) break;
      out.emplace_back(rest.substr(8));
    }
    if (!it->status().ok()) return Status::IOError("rocksdb read due members: " + it->status().ToString());
    return out;
  }

 private:
  rocksdb::DB* db_;
};

}  // namespace

Result<std::unique_ptr<SegmentStore>> OpenRocksDbSegments(rocksdb::DB* db) {
  return std::unique_ptr<SegmentStore>(new RocksDbSegments(db));
}

}  // namespace portrait
