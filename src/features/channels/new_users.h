// New-user tracking in the processor: turns events into Sightings for the ChannelStore,
// sending only those that may change something.
//
// FirstSeenFilter remembers, per identity (a 64-bit hash of product and uid or device), a
// second at or after which the store already holds the identity's first event, and for a
// device whether the store has given it an owner. An event later than that second cannot
// change the registry (first events only move earlier), so it is not sent. A hash
// collision can hide a new user from real time until calibration finds it: about one user
// in 10^12 per million tracked. A slot is 12 bytes in one array (one cache miss a lookup),
// at most 85 % full; when the filter would pass its memory limit it starts empty again,
// which costs store lookups, never figures.
//
// One NewUserTracker per processor worker; not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/config.h"
#include "core/event.h"
#include "core/metrics.h"
#include "features/channels/channel_store.h"
#include "features/channels/channels_config.h"

namespace portrait {

class FirstSeenFilter {
 public:
  explicit FirstSeenFilter(size_t max_bytes);
  // True when `key` is known with a first event in a second before the one of `ts` (and,
  // when `owned`, known to have an owner).
  bool KnownBefore(uint64_t key, TimestampMs ts, bool owned = false) const;
  // Records that the store holds a first event of `key` at or before `ts` (and an owner).
  void Lower(uint64_t key, TimestampMs ts, bool owned = false);
  size_t size() const { return size_; }
  size_t bytes() const { return slots_.size() * sizeof(Slot); }
  void Clear();

 private:
  struct __attribute__((packed)) Slot {
    uint64_t key;   // 0 = empty
    uint32_t time;  // bit 31: owned; bits 0-30: seconds since 2020-01-01 (to 2088)
  };
  static_assert(sizeof(Slot) == 12);
  size_t Find(uint64_t key) const;
  void Grow();

  size_t max_bytes_;
  size_t size_ = 0;
  size_t mask_ = 0;
  std::vector<Slot> slots_;
};

class NewUserTracker {
 public:
  NewUserTracker(const ChannelsConfig& config, ChannelStore* store, MetricsRegistry* metrics);
  ~NewUserTracker();
  // Queues the event's sighting unless the filter shows it changes nothing.
  void Add(const Event& e);
  // Sends the queued sightings in one store call; the queue is kept when it fails.
  Status Flush();
  size_t pending() const { return pending_.size(); }
  const FirstSeenFilter& filter() const { return filter_; }

 private:
  const ChannelsConfig& config_;
  ChannelStore* store_;
  FirstSeenFilter filter_;
  std::vector<Sighting> pending_;
  uint64_t filtered_here_ = 0;  // counted at Flush: one shared counter per event would cost more than the filter
  Counter* sent_;
  Counter* filtered_;
  Gauge* filter_bytes_;
};

}  // namespace portrait
