// RecentIds against a plain reference model: a FIFO window of the last N distinct ids.
#include "ingest/recent_ids.h"

#include <gtest/gtest.h>

#include <deque>
#include <random>
#include <set>

namespace portrait {
namespace {

TEST(RecentIdsTest, BehavesLikeAFifoWindow) {
  std::mt19937_64 rng(1);
  for (size_t capacity : {1u, 7u, 64u, 1000u}) {
    RecentIds ids(capacity);
    std::deque<uint64_t> order;
    std::multiset<uint64_t> live;
    for (int i = 0; i < 20000; ++i) {
      // Small key space: many repeats, many evictions; some colliding low bits.
      uint64_t h = 1 + (rng() % (3 * capacity + 5)) * (rng() % 2 ? 1 : 1024);
      if (rng() % 10 == 0 && !order.empty()) {  // a failed append releases its id
        uint64_t e = order.back();
        ids.Erase(e);
        live.erase(e);
        continue;
      }
      bool fresh = live.count(h) == 0;
      ASSERT_EQ(ids.Insert(h), fresh) << "capacity " << capacity << " step " << i;
      if (fresh) {
        if (order.size() == capacity) {
          live.erase(live.find(order.front()) == live.end() ? 0 : order.front());
          order.pop_front();
        }
        order.push_back(h);
        live.insert(h);
      }
      ASSERT_EQ(ids.size(), live.size());
    }
  }
}

}  // namespace
}  // namespace portrait
