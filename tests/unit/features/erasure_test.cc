// Erasure by construction: every registered feature's stage, over a real RocksDB store and
// the in-memory log, holds something of a user before the erasure and nothing after it —
// the user and the device the user logged in from. A feature added to the registry is
// covered by this test without touching it: its stage's Holding() must come back empty.
#include <gtest/gtest.h>

#include <thread>

#include "core/erasure_list.h"
#include "core/event.h"
#include "features/registry.h"
#include "fusion/records.h"
#include "store/rocksdb/rocksdb_store.h"
#include "stream/processor.h"
#include "temp_dir.h"
#include "unit/stream/fakes.h"

namespace portrait {
namespace {

std::string Click(const std::string& uid, const std::string& device, TimestampMs ts, int category) {
  Event e;
  e.uid = uid;
  e.device_id = device;
  e.type = "click";
  e.ts = ts;
  e.id = uid + device + "#" + std::to_string(ts);
  e.props = {{"item_id", std::to_string(ts % 1000)}, {"category_id", std::to_string(category)}};
  std::string out;
  EncodeEvent(e, &out);
  return out;
}

TEST(FeatureErasureTest, NoStageHoldsAnythingOfAnErasedUserOrItsDevice) {
  testing_util::TempDir dir;
  auto loaded = LoadConfig(std::string(PORTRAIT_SOURCE_DIR) + "/examples/portrait.toml");
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  Config cfg = std::move(loaded).value();
  cfg.data_dir = dir.path();
  cfg.history.enabled = true;
  cfg.processor.workers = 1;
  MetricsRegistry metrics;
  auto store = OpenRocksDbStore({dir.path() + "/db", 8}, &cfg.tags, &metrics);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto erasures = ErasureList::Open(dir.path() + "/erasures.list");
  ASSERT_TRUE(erasures.ok());
  testing_util::MemoryLog log(1);

  FeatureHost host;
  host.config = &cfg;
  host.events = &log;
  host.store = store->get();
  host.metrics = &metrics;
  host.erasures = erasures->get();
  auto features = MakeFeatures();
  std::vector<StageFactory> factories;
  for (auto& f : features) {
    ASSERT_TRUE(f->Open(host).ok()) << f->name();
    if (auto s = f->stage()) factories.push_back(s);
  }
  ASSERT_GE(factories.size(), 3u);

  TimestampMs t = NowMs() - 60'000;
  auto append = [&](const std::string& payload) {
    LogEntry e{PartitionId(0), payload};
    ASSERT_TRUE(log.Append({&e, 1}).ok());
  };
  append(Click("", "dev-1", t, 7));        // before login: a profile of the device
  append(Click("u1", "dev-1", t + 1, 7));  // login links the device to u1
  for (int i = 2; i < 6; ++i) append(Click("u1", "", t + i, 7));  // the coupon rule fires
  append(Click("keep", "", t, 7));

  auto run = [&] {
    Processor p(cfg.processor, &cfg.tags, &log, store->get(), &metrics, factories);
    p.SetErasureList(erasures->get());
    ASSERT_TRUE(p.Start().ok());
    for (int i = 0; i < 2000 && !p.CaughtUp(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ASSERT_TRUE(p.CaughtUp());
    p.Stop();
  };
  // What every stage holds of `id`, as "stage/namespace".
  auto holding = [&](const std::string& id) {
    std::vector<std::string> out;
    for (const StageFactory& make : factories) {
      auto stage = make(StageContext{0, true});
      auto held = stage->Holding(id);
      EXPECT_TRUE(held.ok()) << stage->name() << ": " << held.status().ToString();
      if (!held.ok()) continue;
      for (const std::string& ns : *held) out.push_back(std::string(stage->name()) + "/" + ns);
    }
    return out;
  };
  run();
  auto before = holding("u1");
  EXPECT_NE(std::find(before.begin(), before.end(), "profiles/profile"), before.end());
  EXPECT_NE(std::find(before.begin(), before.end(), "profiles/history"), before.end());
  EXPECT_NE(std::find(before.begin(), before.end(), "decisions/decisions"), before.end());
  EXPECT_NE(std::find(before.begin(), before.end(), "decisions/rule_state"), before.end());
  EXPECT_FALSE(holding("dev-1").empty());

  std::string erase;
  EncodeDeleteRecord("u1", NowMs(), &erase);
  append(erase);
  run();
  EXPECT_EQ(holding("u1"), std::vector<std::string>()) << "the user";
  EXPECT_EQ(holding("dev-1"), std::vector<std::string>()) << "the device the user logged in from";
  EXPECT_FALSE(holding("keep").empty()) << "another user is untouched";
  EXPECT_TRUE((*erasures)->ErasedAt("dev-1").has_value());
}

}  // namespace
}  // namespace portrait
