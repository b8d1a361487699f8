#include "pipeline/recent_ids.h"

#include <xxhash.h>

namespace portrait {

uint64_t RecentIds::Hash(std::string_view id) { return XXH3_64bits(id.data(), id.size()); }

bool RecentIds::Insert(uint64_t h) {
  std::lock_guard lk(mu_);
  if (!set_.insert(h).second) return false;
  if (ring_.size() < capacity_) {
    ring_.push_back(h);
  } else {
    set_.erase(ring_[next_]);
    ring_[next_] = h;
    next_ = (next_ + 1) % capacity_;
  }
  return true;
}

void RecentIds::Erase(uint64_t h) {
  std::lock_guard lk(mu_);
  set_.erase(h);  // its ring slot ages out harmlessly
}

size_t RecentIds::size() const {
  std::lock_guard lk(mu_);
  return set_.size();
}

}  // namespace portrait
