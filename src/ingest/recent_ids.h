// RecentIds: the ids of the most recent events of one partition, so that an event sent
// twice (a client retry, an at-least-once upstream) is logged once. Bounded: it holds the
// last `capacity` ids (a FIFO window), by 64-bit hash, in a flat open-addressing table at
// most half full (a node-based set cost a third of the ingest path). Thread-safe.
#pragma once

#include <cstdint>
#include <mutex>
#include <string_view>
#include <vector>

namespace portrait {

class RecentIds {
 public:
  explicit RecentIds(size_t capacity);

  static uint64_t Hash(std::string_view id);

  // Records `h`; false if it is already in the window.
  bool Insert(uint64_t h);
  // Forgets `h` (an append that failed must not make its retry look like a duplicate).
  void Erase(uint64_t h);
  size_t size() const;
  // True if `h` is in the window.
  bool Holds(uint64_t h) const;

 private:
  bool Contains(uint64_t h) const;  // mu_ held
  void Put(uint64_t h);
  void Remove(uint64_t h);

  const size_t capacity_;
  mutable std::mutex mu_;
  std::vector<uint64_t> table_;  // 0 = empty slot; linear probing
  size_t mask_ = 0;
  size_t count_ = 0;
  std::vector<uint64_t> ring_;   // insertion order, for eviction
  size_t next_ = 0;              // ring slot to overwrite once full
};

}  // namespace portrait
