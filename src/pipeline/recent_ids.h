// RecentIds: the ids of the most recent events of one partition, so that an event sent
// twice (a client retry, an at-least-once upstream) is logged once. Bounded: it holds the
// last `capacity` ids (a FIFO window), by 64-bit hash. Thread-safe.
#pragma once

#include <cstdint>
#include <mutex>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace portrait {

class RecentIds {
 public:
  explicit RecentIds(size_t capacity) : capacity_(capacity ? capacity : 1) { ring_.reserve(capacity_); }

  static uint64_t Hash(std::string_view id);

  // Records `h`; false if it is already in the window.
  bool Insert(uint64_t h);
  // Forgets `h` (an append that failed must not make its retry look like a duplicate).
  void Erase(uint64_t h);
  size_t size() const;

 private:
  const size_t capacity_;
  mutable std::mutex mu_;
  std::unordered_set<uint64_t> set_;
  std::vector<uint64_t> ring_;
  size_t next_ = 0;  // ring slot to overwrite once full
};

}  // namespace portrait
