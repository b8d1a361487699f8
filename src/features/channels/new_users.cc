#include "features/channels/new_users.h"
#include "features/channels/channels_config.h"

#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack
#include <xxhash.h>

#include <algorithm>
#include <cstring>

namespace portrait {
namespace {

constexpr size_t kInitialSlots = 1024;
constexpr uint32_t kOwned = 1u << 31;
constexpr int64_t kEpochSeconds = 1'577'836'800;  // 2020-01-01T00:00:00Z

uint32_t Seconds(TimestampMs ts) {
  int64_t s = ts / 1000 - kEpochSeconds;
  return static_cast<uint32_t>(std::clamp<int64_t>(s, 0, kOwned - 1));
}

// kind: 'u' user, 'd' device. One-shot XXH3 over a stack buffer: the streaming API
// costs more than the lookup.
uint64_t IdentityHash(std::string_view product, char kind, std::string_view id) {
  char buf[256];
  const size_t n = product.size() + 2 + id.size();
  uint64_t h;
  if (n <= sizeof buf) {
    std::memcpy(buf, product.data(), product.size());
    buf[product.size()] = '\0';
    buf[product.size() + 1] = kind;
    std::memcpy(buf + product.size() + 2, id.data(), id.size());
    h = XXH3_64bits(buf, n);
  } else {
    std::string s(product);
    s.push_back('\0');
    s.push_back(kind);
    s.append(id);
    h = XXH3_64bits(s.data(), s.size());
  }
  return h == 0 ? 1 : h;
}

}  // namespace

FirstSeenFilter::FirstSeenFilter(size_t max_bytes) : max_bytes_(max_bytes) {
  slots_.assign(kInitialSlots, Slot{0, 0});
  mask_ = kInitialSlots - 1;
}

size_t FirstSeenFilter::Find(uint64_t key) const {
  size_t i = static_cast<size_t>(key) & mask_;
  while (slots_[i].key != 0 && slots_[i].key != key) i = (i + 1) & mask_;
  return i;
}

bool FirstSeenFilter::KnownBefore(uint64_t key, TimestampMs ts, bool owned) const {
  const Slot& s = slots_[Find(key)];
  return s.key == key && (s.time & ~kOwned) < Seconds(ts) && (!owned || (s.time & kOwned));
}

void FirstSeenFilter::Lower(uint64_t key, TimestampMs ts, bool owned) {
  size_t i = Find(key);
  const uint32_t sec = Seconds(ts);
  if (slots_[i].key == key) {
    uint32_t t = slots_[i].time;
    slots_[i].time = std::min(t & ~kOwned, sec) | (t & kOwned) | (owned ? kOwned : 0);
    return;
  }
  if ((size_ + 1) * 20 > slots_.size() * 17) {  // past 85 % full
    Grow();
    i = Find(key);
  }
  slots_[i] = Slot{key, sec | (owned ? kOwned : 0)};
  ++size_;
}

void FirstSeenFilter::Grow() {
  size_t n = slots_.size() * 2;
  if (n * sizeof(Slot) > max_bytes_) {
    Clear();  // the store still knows everything; only lookups are lost
    return;
  }
  std::vector<Slot> old(n, Slot{0, 0});
  old.swap(slots_);
  mask_ = n - 1;
  for (const Slot& s : old) {
    if (s.key != 0) slots_[Find(s.key)] = s;
  }
}

void FirstSeenFilter::Clear() {
  std::fill(slots_.begin(), slots_.end(), Slot{0, 0});
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
  const uint64_t user = e.uid.empty() ? 0 : IdentityHash(product, 'u', e.uid);
  const uint64_t device = e.device_id.empty() ? 0 : IdentityHash(product, 'd', e.device_id);
  // With a uid, the device must also be known to have an owner (else this event merges it).
  const bool with_uid = user != 0;
  if ((user == 0 || filter_.KnownBefore(user, e.ts)) && (device == 0 || filter_.KnownBefore(device, e.ts, with_uid))) {
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
  // will hold what the filter now says: the first events at or before ts, and a device
  // seen with a uid has an owner (this uid, or an earlier one).
  size_t before = filter_.bytes();
  if (user != 0) filter_.Lower(user, e.ts);
  if (device != 0) filter_.Lower(device, e.ts, with_uid);
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
