// Segment membership is a function of the final profiles: for any events, in any arrival
// order, with repeats, cut into batches anywhere, the membership the segments stage stored
// (through the real processor, over a real RocksDB store) equals EvaluateSegment over the
// profiles the store ends with.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <set>
#include <thread>

#include "core/event.h"
#include "features/registry.h"
#include "features/segments/segment_store.h"
#include "features/segments/segments.h"
#include "features/segments/segments_config.h"
#include "store/rocksdb/rocksdb_store.h"
#include "stream/processor.h"
#include "temp_dir.h"
#include "unit/stream/fakes.h"

namespace portrait {
namespace {

struct Ev {
  int user, category, type;  // type: 0 click, 1 fav, 2 buy
  int64_t age_s;             // seconds before now
};

std::string Encode(const Ev& v, TimestampMs now) {
  static const char* const kTypes[] = {"click", "fav", "buy"};
  Event e;
  e.uid = "u" + std::to_string(v.user);
  e.type = kTypes[v.type];
  e.ts = now - v.age_s * 1000;
  e.id = e.uid + "#" + std::to_string(v.category) + "#" + std::to_string(v.type) + "#" + std::to_string(v.age_s);
  e.props = {{"item_id", std::to_string(v.category * 10 + v.type)}, {"category_id", std::to_string(v.category)}};
  std::string out;
  EncodeEvent(e, &out);
  return out;
}

RC_GTEST_PROP(SegmentsProperty, StoredMembershipEqualsARecomputationOverTheFinalProfiles, ()) {
  auto events = *rc::gen::container<std::vector<Ev>>(rc::gen::build<Ev>(
      rc::gen::set(&Ev::user, rc::gen::inRange(0, 6)), rc::gen::set(&Ev::category, rc::gen::inRange(6, 9)),
      rc::gen::set(&Ev::type, rc::gen::inRange(0, 3)),
      // Some events well before the `within` (1 h) of the segment below, most well inside it,
      // so that the seconds the test takes cannot move anyone across it.
      rc::gen::set(&Ev::age_s, rc::gen::oneOf(rc::gen::inRange<int64_t>(0, 1800),
                                              rc::gen::inRange<int64_t>(5400, 9000)))));
  const size_t batch = *rc::gen::inRange<size_t>(1, 20);
  auto repeats = *rc::gen::container<std::vector<size_t>>(rc::gen::inRange<size_t>(0, std::max<size_t>(1, events.size())));

  testing_util::TempDir dir;
  auto loaded = ParseConfig(R"(
data_dir = "unused"
[events.click.props]
item_id = "int"
category_id = "int"
[events.fav.props]
item_id = "int"
category_id = "int"
[events.buy.props]
item_id = "int"
category_id = "int"
[tags.category_prefs]
type = "map"
[tags.purchases]
type = "number"
[tags.last_seen]
type = "string"
[tags.clicks]
type = "list"
size_limit = 3
sort_by = "et"
dedup_by = ["item_id", "et"]
[[rules]]
on = ["click", "fav", "buy"]
tag = "category_prefs"
op = "map.incr"
key = "$props.category_id"
value = 1
[[rules]]
on = "buy"
tag = "purchases"
op = "number.incr"
value = 1
[[rules]]
on = ["click", "fav", "buy"]
tag = "last_seen"
op = "string.set"
value = "$ts_iso"
[[rules]]
on = "click"
tag = "clicks"
op = "list.rpush"
value = { item_id = "$props.item_id", et = "$ts" }
[[segments]]
name = "fans7"
when = [{ tag = "category_prefs", key = "7", at_least = 2 }, { tag = "last_seen", within = "1h" }]
[[segments]]
name = "buyers_or_clickers"
match = "any"
when = [{ tag = "purchases", at_least = 2 }, { tag = "clicks", at_least = 3 }]
[[segments]]
name = "few_categories"
when = [{ tag = "category_prefs", at_most = 1 }]
)",
                            "property.toml");
  RC_ASSERT(loaded.ok());
  Config cfg = std::move(loaded).value();
  cfg.data_dir = dir.path();
  cfg.processor.workers = 1;
  cfg.processor.batch_max_events = batch;
  MetricsRegistry metrics;
  auto store = OpenRocksDbStore({dir.path() + "/db", 8}, &cfg.tags, &metrics);
  RC_ASSERT(store.ok());
  testing_util::MemoryLog log(1);
  FeatureHost host;
  host.config = &cfg;
  host.events = &log;
  host.store = store->get();
  host.metrics = &metrics;
  auto features = MakeFeatures();
  std::vector<StageFactory> factories;
  for (auto& f : features) {
    RC_ASSERT(f->Open(host).ok());
    if (auto s = f->stage()) factories.push_back(s);
  }
  const TimestampMs now = NowMs();
  std::vector<Ev> sent = events;
  for (size_t i : repeats) {
    if (i < events.size()) sent.push_back(events[i]);
  }
  for (const Ev& v : sent) {
    const std::string payload = Encode(v, now);
    LogEntry e{PartitionId(0), payload};
    RC_ASSERT(log.Append({&e, 1}).ok());
  }
  {
    Processor p(cfg.processor, &cfg.tags, &log, store->get(), &metrics, factories);
    RC_ASSERT(p.Start().ok());
    for (int i = 0; i < 4000 && !p.CaughtUp(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    RC_ASSERT(p.CaughtUp());
    p.Stop();
  }
  for (auto& f : features) f->Close();

  auto segments = OpenSegmentStore((*store)->handles());
  RC_ASSERT(segments.ok());
  const auto& defs = cfg.section<SegmentsConfig>().segments;
  const TimestampMs later = NowMs();
  for (int u = 0; u < 6; ++u) {
    const std::string uid = "u" + std::to_string(u);
    auto profile = (*store)->Get(uid, {}, later);
    RC_ASSERT(profile.ok());
    const std::string one[] = {uid};
    auto stored = (*segments)->Get(one);
    RC_ASSERT(stored.ok());
    std::set<std::string> want, got;
    for (const SegmentDef& d : defs) {
      if (EvaluateSegment(d, *profile, cfg.tags, later).member) want.insert(d.name);
    }
    for (const auto& [name, entry] : (*stored)[0]) got.insert(name);
    RC_ASSERT(got == want);
  }
}

}  // namespace
}  // namespace portrait
