#include "pipeline/new_users.h"

#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack
#include <xxhash.h>

#include <algorithm>

namespace portrait {
namespace {

constexpr size_t kInitialSlots = 1024;

uint32_t Seconds(TimestampMs ts) {
  if (ts <= 0) return 0;
  return static_cast<uint32_t>(std::min<TimestampMs>(ts / 1000, UINT32_MAX));
}

// kind: 'u' user, 'd' device alone, 'l' a device with the uid it came with.
uint64_t IdentityHash(std::string_view product, char kind, std::string_view id, std::string_view uid) {
  XXH3_state_t st;
  XXH3_64bits_reset(&st);
  XXH3_64bits_update(&st, product.data(), product.size());
  const char sep[2] = {'\0', kind};
  XXH3_64bits_update(&st, sep, 2);
  XXH3_64bits_update(&st, id.data(), id.size());
  if (!uid.empty()) {
    XXH3_64bits_update(&st, sep, 1);
    XXH3_64bits_update(&st, uid.data(), uid.size());
  }
  uint64_t h = XXH3_64bits_digest(&st);
  return h == 0 ? 1 : h;
}

}  // namespace

FirstSeenFilter::FirstSeenFilter(size_t max_bytes) : max_bytes_(max_bytes) {
  keys_.assign(kInitialSlots, 0);
  secs_.assign(kInitialSlots, 0);
  mask_ = kInitialSlots - 1;
}

size_t FirstSeenFilter::Slot(uint64_t key) const {
  size_t i = static_cast<size_t>(key) & mask_;
  while (keys_[i] != 0 && keys_[i] != key) i = (i + 1) & mask_;
  return i;
}

bool FirstSeenFilter::KnownBefore(uint64_t key, TimestampMs ts) const {
  size_t i = Slot(key);
  return keys_[i] == key && secs_[i] < Seconds(ts);
}

void FirstSeenFilter::Lower(uint64_t key, TimestampMs ts) {
  size_t i = Slot(key);
  uint32_t s = Seconds(ts);
  if (keys_[i] == key) {
    secs_[i] = std::min(secs_[i], s);
    return;
  }
  if ((size_ + 1) * 5 > keys_.size() * 4) {  // past 80 % full
    Grow();
    i = Slot(key);
  }
  keys_[i] = key;
  secs_[i] = s;
  ++size_;
}

void FirstSeenFilter::Grow() {
  size_t slots = keys_.size() * 2;
  if (slots * (sizeof(uint64_t) + sizeof(uint32_t)) > max_bytes_) {
    Clear();  // the store still knows everything; only lookups are lost
    return;
  }
  std::vector<uint64_t> keys(slots, 0);
  std::vector<uint32_t> secs(slots, 0);
  keys.swap(keys_);
  secs.swap(secs_);
  mask_ = slots - 1;
  for (size_t j = 0; j < keys.size(); ++j) {
    if (keys[j] == 0) continue;
    size_t i = Slot(keys[j]);
    keys_[i] = keys[j];
    secs_[i] = secs[j];
  }
}

void FirstSeenFilter::Clear() {
  std::fill(keys_.begin(), keys_.end(), 0);
  size_ = 0;
}

NewUserTracker::NewUserTracker(const ChannelsConfig& config, ChannelStore* store, MetricsRegistry* metrics)
    : config_(config), store_(store), filter_(config.filter_mb << 20) {
  sent_ = metrics->GetCounter("portrait_channel_sightings_total", "Events sent to the new-user registry (a first event may change)",
                              "result=\"sent\"");
  filtered_ = metrics->GetCounter("portrait_channel_sightings_total", "Events sent to the new-user registry (a first event may change)",
                                  "result=\"filtered\"");
  filter_bytes_ = metrics->GetGauge("portrait_channel_filter_bytes", "Memory of the processors' first-seen filters");
  filter_bytes_->Add(static_cast<int64_t>(filter_.bytes()));
}

NewUserTracker::~NewUserTracker() { filter_bytes_->Add(-static_cast<int64_t>(filter_.bytes())); }

void NewUserTracker::Add(const Event& e) {
  if (e.uid.empty() && e.device_id.empty()) return;
  std::string_view product = e.product.empty() ? std::string_view(config_.default_product) : std::string_view(e.product);
  uint64_t user = e.uid.empty() ? 0 : IdentityHash(product, 'u', e.uid, {});
  uint64_t device = e.device_id.empty() ? 0 : IdentityHash(product, e.uid.empty() ? 'd' : 'l', e.device_id, e.uid);
  if ((user == 0 || filter_.KnownBefore(user, e.ts)) && (device == 0 || filter_.KnownBefore(device, e.ts))) {
    ++filtered_here_;
    return;
  }
  Sighting s;
  s.product = product;
  s.uid = e.uid;
  s.device = e.device_id;
  s.channel = e.channel.empty() ? std::string(kNoChannel) : e.channel;
  s.ts = e.ts;
  pending_.push_back(std::move(s));
  // The processor retries Flush until it succeeds (or drops this tracker), so the store
  // will hold what the filter now says.
  size_t before = filter_.bytes();
  if (user != 0) filter_.Lower(user, e.ts);
  if (device != 0) filter_.Lower(device, e.ts);
  if (filter_.bytes() != before) filter_bytes_->Add(static_cast<int64_t>(filter_.bytes()) - static_cast<int64_t>(before));
}

Status NewUserTracker::Flush() {
  if (filtered_here_ > 0) {
    filtered_->Inc(filtered_here_);
    filtered_here_ = 0;
  }
  if (pending_.empty()) return Status::Ok();
  RETURN_IF_ERROR(store_->Observe(pending_));
  sent_->Inc(pending_.size());
  pending_.clear();
  return Status::Ok();
}

}  // namespace portrait
