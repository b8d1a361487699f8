#include "ingest/recent_ids.h"

#include "log/repeats.h"

namespace portrait {

uint64_t RecentIds::Hash(std::string_view id) { return IdWindow::Hash(id); }  // never 0: it marks an empty slot

RecentIds::RecentIds(size_t capacity) : capacity_(capacity ? capacity : 1) {
  size_t slots = 16;
  while (slots < 2 * capacity_) slots <<= 1;
  table_.assign(slots, 0);
  mask_ = slots - 1;
  ring_.reserve(capacity_);
}

bool RecentIds::Holds(uint64_t h) const {
  std::lock_guard lk(mu_);
  return Contains(h);
}

bool RecentIds::Contains(uint64_t h) const {
  for (size_t i = h & mask_; table_[i] != 0; i = (i + 1) & mask_) {
    if (table_[i] == h) return true;
  }
  return false;
}

void RecentIds::Put(uint64_t h) {
  size_t i = h & mask_;
  while (table_[i] != 0) i = (i + 1) & mask_;
  table_[i] = h;
  ++count_;
}

void RecentIds::Remove(uint64_t h) {
  size_t i = h & mask_;
  while (table_[i] != 0 && table_[i] != h) i = (i + 1) & mask_;
  if (table_[i] == 0) return;
  table_[i] = 0;
  --count_;
  // Re-insert the rest of the cluster so that no probe sequence is cut short.
  for (size_t j = (i + 1) & mask_; table_[j] != 0; j = (j + 1) & mask_) {
    uint64_t k = table_[j];
    table_[j] = 0;
    --count_;
    Put(k);
  }
}

bool RecentIds::Insert(uint64_t h) {
  std::lock_guard lk(mu_);
  if (Contains(h)) return false;
  if (ring_.size() < capacity_) {
    ring_.push_back(h);
  } else {
    Remove(ring_[next_]);
    ring_[next_] = h;
    next_ = (next_ + 1) % capacity_;
  }
  Put(h);
  return true;
}

void RecentIds::Erase(uint64_t h) {
  std::lock_guard lk(mu_);
  // Its ring slot stays; when it ages out it may drop a later copy of the same id early,
  // which can only let a repeat through, never lose an event.
  Remove(h);
}

size_t RecentIds::size() const {
  std::lock_guard lk(mu_);
  return count_;
}

}  // namespace portrait
