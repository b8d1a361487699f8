// The channel figures in the profile store's RocksDB database (key bytes in
// store/rocksdb/key_space.h).
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <map>
#include <mutex>
#include <optional>

#include "core/coding.h"
#include "features/channels/channel_store.h"
#include "store/rocksdb/key_space.h"

namespace portrait {
namespace {

void AppendBigEndian(std::string* out, TimestampMs v) {
  uint64_t u = static_cast<uint64_t>(v) ^ (1ull << 63);  // sorts signed values in order
  for (int i = 7; i >= 0; --i) out->push_back(static_cast<char>((u >> (i * 8)) & 0xff));
}

TimestampMs ReadBigEndian(std::string_view in) {
  uint64_t u = 0;
  for (int i = 0; i < 8; ++i) u = (u << 8) | static_cast<uint8_t>(in[i]);
  return static_cast<TimestampMs>(u ^ (1ull << 63));
}

std::string ProductKey(char prefix, std::string_view product) {
  std::string k(1, prefix);
  Writer(&k).Bytes(product);
  return k;
}

// prefix product hour channel
std::string HourKey(char prefix, std::string_view product, TimestampMs hour, std::string_view channel) {
  std::string k = ProductKey(prefix, product);
  AppendBigEndian(&k, hour);
  k.append(channel);
  return k;
}

void EncodeIdentity(const Identity& id, std::string* out) {
  Writer w(out);
  w.SignedVarint(id.first_ts);
  w.Bytes(id.channel);
  w.Bytes(id.owner);
}

bool DecodeIdentity(std::string_view in, Identity* id) {
  Reader r(in);
  id->first_ts = r.SignedVarint();
  id->channel = r.Bytes();
  id->owner = r.Bytes();
  return r.ok() && r.done();
}

// The channel figures of the RocksDB store. Observe reads and writes the registry under
// one mutex: after the processor's first-seen filter, it sees the events that may change
// something (a new identity, an earlier first event), a small share of all.
class RocksDbChannels : public ChannelStore {
 public:
  explicit RocksDbChannels(rocksdb::DB* db) : db_(db) {}

  Status Observe(std::span<const Sighting> sightings) override {
    if (sightings.empty()) return Status::Ok();
    std::lock_guard lk(mu_);
    struct Record {
      std::optional<Identity> value;
      bool changed = false;
    };
    std::map<std::string, Record> records;  // full key -> record read or written
    std::map<std::string, int64_t> deltas;                   // count key -> change
    Status error = Status::Ok();
    // The records the sightings name, in one MultiGet (an owner named by a device record
    // is read when the rule gets to it).
    {
      std::vector<std::string> keys;
      for (const Sighting& s : sightings) {
        std::string prefix = ProductKey(rocksdb_keys::kIdentity, s.product);
        if (!s.uid.empty()) keys.push_back(prefix + "u" + s.uid);
        if (!s.device.empty()) keys.push_back(prefix + "d" + s.device);
      }
      std::sort(keys.begin(), keys.end());
      keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
      ASSIGN_OR_RETURN(auto recs, ReadRecords(keys));
      for (size_t i = 0; i < keys.size(); ++i) records.emplace(std::move(keys[i]), Record{std::move(recs[i]), false});
    }
    for (const Sighting& s : sightings) {
      std::string prefix = ProductKey(rocksdb_keys::kIdentity, s.product);
      auto get = [&](const std::string& key) -> const Identity* {
        std::string full = prefix + key;
        auto it = records.find(full);
        if (it == records.end()) {
          auto rec = ReadRecords({&full, 1});
          if (!rec.ok()) {
            error = rec.status();
            return nullptr;
          }
          it = records.emplace(std::move(full), Record{std::move((*rec)[0]), false}).first;
        }
        return it->second.value ? &*it->second.value : nullptr;
      };
      auto put = [&](const std::string& key, Identity id) { records[prefix + key] = Record{std::move(id), true}; };
      auto count = [&](TimestampMs hour, std::string_view channel, int64_t d) {
        deltas[HourKey(rocksdb_keys::kCount, s.product, hour, channel)] += d;
      };
      ApplySighting(s, get, put, count);
      if (!error.ok()) return error;
    }
    rocksdb::WriteBatch batch;
    std::string v;
    for (const auto& [key, rec] : records) {
      if (!rec.changed) continue;
      v.clear();
      EncodeIdentity(*rec.value, &v);
      batch.Put(key, v);
    }
    for (const auto& [key, d] : deltas) {
      if (d == 0) continue;
      int64_t n = 0;
      std::string cur;
      rocksdb::Status st = db_->Get(rocksdb::ReadOptions(), key, &cur);
      if (st.ok()) {
        Reader r(cur);
        n = r.SignedVarint();
      } else if (!st.IsNotFound()) {
        return Status::IOError("rocksdb read channel count: " + st.ToString());
      }
      n += d;
      if (n == 0) {
        batch.Delete(key);
      } else {
        v.clear();
        Writer(&v).SignedVarint(n);
        batch.Put(key, v);
      }
    }
    // Like the profiles, without a WAL: the log replays what a crash loses, and applying
    // a sighting again changes nothing.
    rocksdb::WriteOptions wo;
    wo.disableWAL = true;
    rocksdb::Status st = db_->Write(wo, &batch);
    if (!st.ok()) return Status::IOError("rocksdb channel write: " + st.ToString());
    return Status::Ok();
  }

  Result<ChannelFigures> Read(std::string_view product, TimestampMs from, TimestampMs to) override {
    ChannelFigures f;
    auto scan = [&](char prefix, std::vector<ChannelCount>* out) -> Status {
      std::string lo = ProductKey(prefix, product), hi = lo;
      AppendBigEndian(&lo, from);
      AppendBigEndian(&hi, to);
      const size_t head = ProductKey(prefix, product).size();
      std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
      for (it->Seek(lo); it->Valid() && it->key().compare(hi) < 0; it->Next()) {
        std::string_view k(it->key().data(), it->key().size());
        if (k.size() < head + 8) continue;
        Reader r(std::string_view(it->value().data(), it->value().size()));
        int64_t n = r.SignedVarint();
        if (!r.ok()) return Status::Corruption("channel count " + std::string(product) + " is unreadable");
        out->push_back({ReadBigEndian(k.substr(head, 8)), std::string(k.substr(head + 8)), n});
      }
      if (!it->status().ok()) return Status::IOError("rocksdb channel scan: " + it->status().ToString());
      return Status::Ok();
    };
    RETURN_IF_ERROR(scan(rocksdb_keys::kCount, &f.realtime));
    RETURN_IF_ERROR(scan(rocksdb_keys::kCalibrated, &f.calibrated));
    std::string lo = ProductKey(rocksdb_keys::kCalibratedDay, product), hi = lo;
    const size_t head = lo.size();
    AppendBigEndian(&lo, FloorTo(from, kDayMs));
    AppendBigEndian(&hi, to);
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(lo); it->Valid() && it->key().compare(hi) < 0; it->Next()) {
      std::string_view k(it->key().data(), it->key().size());
      if (k.size() != head + 8) continue;
      f.days.push_back({ReadBigEndian(k.substr(head)), it->value().ToString()});
    }
    if (!it->status().ok()) return Status::IOError("rocksdb channel scan: " + it->status().ToString());
    return f;
  }

  Result<std::vector<std::optional<Identity>>> Lookup(std::string_view product,
                                                     std::span<const std::string> keys) override {
    std::vector<std::string> full;
    full.reserve(keys.size());
    std::string prefix = ProductKey(rocksdb_keys::kIdentity, product);
    for (const auto& k : keys) full.push_back(prefix + k);
    return ReadRecords(full);
  }

  Status WriteCalibration(std::string_view product, TimestampMs day, std::span<const ChannelCount> counts,
                          std::string_view summary) override {
    rocksdb::WriteBatch batch;
    std::string lo = ProductKey(rocksdb_keys::kCalibrated, product), hi = lo;
    AppendBigEndian(&lo, day);
    AppendBigEndian(&hi, day + kDayMs);
    batch.DeleteRange(lo, hi);
    std::string v;
    for (const auto& c : counts) {
      if (c.count == 0) continue;
      v.clear();
      Writer(&v).SignedVarint(c.count);
      batch.Put(HourKey(rocksdb_keys::kCalibrated, product, c.hour, c.channel), v);
    }
    std::string dk = ProductKey(rocksdb_keys::kCalibratedDay, product);
    AppendBigEndian(&dk, day);
    batch.Put(dk, rocksdb::Slice(summary.data(), summary.size()));
    // Not in the log: written through the WAL, synced.
    rocksdb::WriteOptions wo;
    wo.sync = true;
    rocksdb::Status st = db_->Write(wo, &batch);
    if (!st.ok()) return Status::IOError("rocksdb calibration write: " + st.ToString());
    return Status::Ok();
  }

 private:
  // Registry records by full key, in one MultiGet; absent ones are nullopt.
  Result<std::vector<std::optional<Identity>>> ReadRecords(std::span<const std::string> keys) {
    std::vector<rocksdb::Slice> slices(keys.begin(), keys.end());
    std::vector<std::string> values;
    std::vector<rocksdb::Status> st = db_->MultiGet(rocksdb::ReadOptions(), slices, &values);
    std::vector<std::optional<Identity>> out(keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
      if (st[i].IsNotFound()) continue;
      if (!st[i].ok()) return Status::IOError("rocksdb read channel registry: " + st[i].ToString());
      Identity id;
      if (!DecodeIdentity(values[i], &id)) return Status::Corruption("channel registry record " + keys[i] + " is unreadable");
      out[i] = std::move(id);
    }
    return out;
  }

  rocksdb::DB* db_;
  std::mutex mu_;
};


}  // namespace

std::unique_ptr<ChannelStore> OpenRocksDbChannels(rocksdb::DB* db) { return std::make_unique<RocksDbChannels>(db); }

}  // namespace portrait
