// ChannelStore: who was first seen when and through which channel, per product, and the
// new-user counts that follow from it (ARCHITECTURE.md "Channel new users").
//
// The registry holds one record per identity of a product: a user ("u" + uid) or a
// device before login ("d" + device_id). A record keeps the identity's first event as
// (ts, channel), the earliest by event time, ties broken by the smaller channel; a device
// record also names its owner, the uid of the first event that carried both. A device
// with an owner is part of that user; every other identity is one new user, counted in
// the (hour of its first event, channel of its first event) bucket.
//
// Observe() folds sightings into the registry and moves counts between buckets in the
// same atomic write. The result does not depend on the order of sightings (except which
// uid a shared device is given to) and a sighting applied twice changes nothing, so the
// processor can send a batch again after a crash. Calibration replaces the served counts
// of a whole day (WriteCalibration); real-time counts go on being kept beside them.
// Implementations are thread-safe.
#pragma once

#include <memory>

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/types.h"

namespace rocksdb {
class DB;
}

namespace portrait {

class ProfileStore;
class RedisBackend;


constexpr TimestampMs kHourMs = 3'600'000;
constexpr TimestampMs kDayMs = 86'400'000;
// The start of the `unit`-long bucket holding ts (UTC; also before 1970).
inline TimestampMs FloorTo(TimestampMs ts, TimestampMs unit) { return ts - ((ts % unit) + unit) % unit; }
inline TimestampMs HourOf(TimestampMs ts) { return FloorTo(ts, kHourMs); }

// The channel new users are counted under when their first event names none.
inline constexpr std::string_view kNoChannel = "(none)";

struct Sighting {
  std::string product;
  std::string uid;        // may be empty when device is set
  std::string device;     // may be empty
  std::string channel;    // never empty (kNoChannel)
  TimestampMs ts = 0;
};

// A registry record. `owner` only for devices.
struct Identity {
  TimestampMs first_ts = 0;
  std::string channel;
  std::string owner;
};

// True when (ts, channel) comes before (other_ts, other_channel).
inline bool EarlierFirst(TimestampMs ts, std::string_view channel, TimestampMs other_ts, std::string_view other_channel) {
  return ts < other_ts || (ts == other_ts && channel < other_channel);
}

struct ChannelCount {
  TimestampMs hour = 0;  // start of the event-time hour (UTC ms)
  std::string channel;
  int64_t count = 0;
};

struct CalibratedDay {
  TimestampMs day = 0;   // start of the UTC day
  std::string summary;   // the run's JSON summary
};

struct ChannelFigures {
  std::vector<ChannelCount> realtime;    // non-zero real-time counts of hours in range
  std::vector<ChannelCount> calibrated;  // calibrated counts of hours in range (zeros omitted)
  std::vector<CalibratedDay> days;       // calibrated days overlapping the range
};

class ChannelStore {
 public:
  virtual ~ChannelStore() = default;
  virtual Status Observe(std::span<const Sighting> sightings) = 0;
  // Counts of hours in [from, to) of `product`.
  virtual Result<ChannelFigures> Read(std::string_view product, TimestampMs from, TimestampMs to) = 0;
  // Registry records of identity keys ("u" + uid, "d" + device), in the order given.
  virtual Result<std::vector<std::optional<Identity>>> Lookup(std::string_view product,
                                                             std::span<const std::string> keys) = 0;
  // Replaces the calibrated counts of the UTC day starting at `day` (every hour of it;
  // hours not in `counts` are zero) and records the run's summary.
  virtual Status WriteCalibration(std::string_view product, TimestampMs day, std::span<const ChannelCount> counts,
                                  std::string_view summary) = 0;
};

// The registry rule, for stores that run it in C++: applies `s` to the records it reads
// and writes through `get`/`put`, and reports each count change through `count`.
// `get` returns nullptr for an identity never seen.
template <typename Get, typename Put, typename Count>
void ApplySighting(const Sighting& s, Get&& get, Put&& put, Count&& count) {
  // Lowers a counted identity's first event to (ts, channel), moving its count.
  auto lower_root = [&](const std::string& key, TimestampMs ts, std::string_view channel) {
    const Identity* r = get(key);
    if (!r) {
      put(key, Identity{ts, std::string(channel), ""});
      count(HourOf(ts), channel, +1);
      return;
    }
    if (!EarlierFirst(ts, channel, r->first_ts, r->channel)) return;
    count(HourOf(r->first_ts), r->channel, -1);
    count(HourOf(ts), channel, +1);
    put(key, Identity{ts, std::string(channel), r->owner});
  };
  std::string dkey = s.device.empty() ? std::string() : "d" + s.device;
  if (s.uid.empty()) {
    if (s.device.empty()) return;
    const Identity* d = get(dkey);
    if (d && !d->owner.empty()) {
      std::string owner = "u" + d->owner;
      if (EarlierFirst(s.ts, s.channel, d->first_ts, d->channel)) put(dkey, Identity{s.ts, s.channel, d->owner});
      lower_root(owner, s.ts, s.channel);
      return;
    }
    lower_root(dkey, s.ts, s.channel);
    return;
  }
  std::string ukey = "u" + s.uid;
  lower_root(ukey, s.ts, s.channel);
  if (s.device.empty()) return;
  const Identity* d = get(dkey);
  if (!d) {
    put(dkey, Identity{s.ts, s.channel, s.uid});
    return;
  }
  Identity next = *d;
  if (EarlierFirst(s.ts, s.channel, next.first_ts, next.channel)) {
    next.first_ts = s.ts;
    next.channel = s.channel;
  }
  if (d->owner.empty()) {  // the device was a user of its own until now: merge it in
    count(HourOf(d->first_ts), d->channel, -1);
    TimestampMs ts = d->first_ts;
    std::string channel = d->channel;
    next.owner = s.uid;
    put(dkey, next);
    const Identity* u = get(ukey);
    // The user's count is in place; the device's first event may come before it.
    if (EarlierFirst(ts, channel, u->first_ts, u->channel)) {
      count(HourOf(u->first_ts), u->channel, -1);
      count(HourOf(ts), channel, +1);
      put(ukey, Identity{ts, channel, ""});
    }
    return;
  }
  if (next.first_ts != d->first_ts || next.channel != d->channel) put(dkey, next);
}

// The channels state beside the profiles of `store`, on its backend (rocksdb_channels.cc,
// redis_channels.cc with its own function library); null when the backend keeps none.
Result<std::unique_ptr<ChannelStore>> OpenChannelStore(ProfileStore* store);
std::unique_ptr<ChannelStore> OpenRocksDbChannels(rocksdb::DB* db);
Result<std::unique_ptr<ChannelStore>> OpenRedisChannels(RedisBackend* redis);

}  // namespace portrait
