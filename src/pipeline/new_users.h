// New-user tracking in the processor: turns events into Sightings for the ChannelStore,
// sending only those that may change something.
//
// FirstSeenFilter remembers, per identity (a 64-bit hash of product and uid, device or
// device-uid link), a second at or after which the store already holds the identity's
// first event. An event later than that second cannot change the registry (first events
// only move earlier), so it is not sent. A hash collision can hide a new user from real
// time until calibration finds it; at 64 bits that is about one user in 10^12 per
// million tracked. The filter is 12 bytes a slot, at most 80 % full; when it would pass
// its memory limit it starts empty again, which costs store lookups, never figures.
//
// One NewUserTracker per processor worker; not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/config.h"
#include "core/event.h"
#include "core/metrics.h"
#include "store/channel_store.h"

namespace portrait {

class FirstSeenFilter {
 public:
  explicit FirstSeenFilter(size_t max_bytes);
  // True when `key` is known with a first event in a second before the one of `ts`.
  bool KnownBefore(uint64_t key, TimestampMs ts) const;
  // Records that the store holds a first event of `key` at or before `ts`.
  void Lower(uint64_t key, TimestampMs ts);
  size_t size() const { return size_; }
  size_t bytes() const { return keys_.size() * (sizeof(uint64_t) + sizeof(uint32_t)); }
  void Clear();

 private:
  size_t Slot(uint64_t key) const;
  void Grow();

  size_t max_bytes_;
  size_t size_ = 0;
  size_t mask_ = 0;
  std::vector<uint64_t> keys_;   // 0 = empty slot
  std::vector<uint32_t> secs_;   // unix seconds of the known first event
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
