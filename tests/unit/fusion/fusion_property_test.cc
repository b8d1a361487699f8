// Property tests for the promise in fusion.h: the fused value depends neither on the
// order in which actions arrive nor on how often each arrives, and pre-combining a
// batch gives the same result as applying it action by action.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>

#include "fusion/fusion.h"
#include "test_util.h"

namespace portrait::fusion {
namespace {

struct ClickSpec {
  int item;
  int64_t et;
  int64_t ts;
  bool offline;
};

TagConfig ListConfig(size_t limit, bool key_has_sort) {
  TagConfig cfg = testing_util::ClickList(limit);
  if (!key_has_sort) cfg.dedup_by = {"item_id"};  // exercises the general merge path
  return cfg;
}

std::vector<Action> MakeClicks(const std::vector<ClickSpec>& specs, const TagConfig& cfg) {
  std::vector<Action> out;
  for (const auto& s : specs) {
    out.push_back(testing_util::Click(cfg, s.item, s.et, s.ts, s.offline ? Source::kOffline : Source::kRealtime));
  }
  return out;
}

rc::Gen<ClickSpec> GenClick() {
  return rc::gen::build<ClickSpec>(rc::gen::set(&ClickSpec::item, rc::gen::inRange(0, 12)),
                                   rc::gen::set(&ClickSpec::et, rc::gen::inRange<int64_t>(1, 40)),
                                   rc::gen::set(&ClickSpec::ts, rc::gen::inRange<int64_t>(1, 5)),
                                   rc::gen::set(&ClickSpec::offline, rc::gen::arbitrary<bool>()));
}

// A random permutation (rapidcheck's Debian build has no gen::shuffle).
template <typename T>
std::vector<T> Permute(std::vector<T> v) {
  auto keys = *rc::gen::container<std::vector<uint32_t>>(v.size(), rc::gen::arbitrary<uint32_t>());
  std::vector<size_t> idx(v.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return keys[a] < keys[b]; });
  std::vector<T> out;
  out.reserve(v.size());
  for (size_t i : idx) out.push_back(std::move(v[i]));
  return out;
}

// A permutation of `actions` with some of them repeated.
std::vector<Action> ShuffleWithDuplicates(const std::vector<Action>& actions) {
  std::vector<Action> out = actions;
  if (!actions.empty()) {
    auto dups = *rc::gen::container<std::vector<size_t>>(rc::gen::inRange<size_t>(0, actions.size()));
    for (size_t i : dups) out.push_back(actions[i]);
  }
  return Permute(std::move(out));
}

TagState ApplyAll(const std::vector<Action>& actions, const TagConfig& cfg) {
  TagState s;
  s.type = cfg.type;
  for (const Action& a : actions) Apply(s, a, cfg);
  return s;
}

RC_GTEST_PROP(FusionProperty, ListIsOrderAndDuplicateIndependent, ()) {
  const size_t limit = *rc::gen::inRange<size_t>(1, 8);
  const bool key_has_sort = *rc::gen::arbitrary<bool>();
  TagConfig cfg = ListConfig(limit, key_has_sort);
  auto specs = *rc::gen::container<std::vector<ClickSpec>>(GenClick());
  auto actions = MakeClicks(specs, cfg);
  TagState expected = ApplyAll(actions, cfg);
  TagState shuffled = ApplyAll(ShuffleWithDuplicates(actions), cfg);
  RC_ASSERT(shuffled.items == expected.items);
  RC_ASSERT(shuffled.updated_at == expected.updated_at);
  RC_ASSERT(expected.items.size() <= limit);
}

RC_GTEST_PROP(FusionProperty, ListEqualsNewestDistinctItems, ()) {
  // The definition, computed the slow way: best item per key, sorted, newest `limit`.
  const size_t limit = *rc::gen::inRange<size_t>(1, 8);
  TagConfig cfg = ListConfig(limit, true);
  auto specs = *rc::gen::container<std::vector<ClickSpec>>(GenClick());
  auto actions = MakeClicks(specs, cfg);
  std::vector<ListItem> all;
  for (const auto& a : actions) all.push_back(a.items[0]);
  std::sort(all.begin(), all.end(), [](const ListItem& a, const ListItem& b) {
    return std::tie(a.key, a.sort, a.ts, a.source, a.json) > std::tie(b.key, b.sort, b.ts, b.source, b.json);
  });
  std::vector<ListItem> best;
  for (const auto& it : all) {
    if (best.empty() || best.back().key != it.key) best.push_back(it);
  }
  std::sort(best.begin(), best.end(),
            [](const ListItem& a, const ListItem& b) { return std::tie(a.sort, a.key) < std::tie(b.sort, b.key); });
  if (best.size() > limit) best.erase(best.begin(), best.end() - static_cast<ptrdiff_t>(limit));
  RC_ASSERT(ApplyAll(actions, cfg).items == best);
}

RC_GTEST_PROP(FusionProperty, CombinedBatchEqualsSequential, ()) {
  const size_t limit = *rc::gen::inRange<size_t>(1, 8);
  TagConfig cfg = ListConfig(limit, *rc::gen::arbitrary<bool>());
  auto specs = *rc::gen::nonEmpty(rc::gen::container<std::vector<ClickSpec>>(GenClick()));
  auto actions = MakeClicks(specs, cfg);
  // Combined where TryCombine allows (one source at a time), applied in order.
  std::vector<Action> combined = {actions[0]};
  for (size_t i = 1; i < actions.size(); ++i) {
    if (!TryCombine(combined.back(), actions[i], cfg)) combined.push_back(actions[i]);
  }
  RC_ASSERT(ApplyAll(combined, cfg).items == ApplyAll(actions, cfg).items);
}

RC_GTEST_PROP(FusionProperty, CommutativeOperatorsIgnoreOrder, ()) {
  // number.incr / map.incr / set.add: any order gives the same value (duplicates count
  // for incr; exactly-once delivery is the log's job, so only permute here).
  auto amounts = *rc::gen::container<std::vector<int>>(rc::gen::inRange(-100, 100));
  TagConfig num;
  num.type = TagType::kNumber;
  TagConfig map;
  map.type = TagType::kMap;
  TagConfig set;
  set.type = TagType::kSet;
  std::vector<Action> nums, maps, sets;
  for (size_t i = 0; i < amounts.size(); ++i) {
    Action a;
    a.ts = static_cast<int64_t>(i);
    a.op = OpCode::kNumberIncr;
    a.number = amounts[i];
    nums.push_back(a);
    a.op = OpCode::kMapIncr;
    a.entries = {{std::to_string(amounts[i] % 5), "", static_cast<double>(amounts[i])}};
    maps.push_back(a);
    a.entries.clear();
    a.op = OpCode::kSetAdd;
    a.members = {std::to_string(amounts[i] % 7)};
    sets.push_back(a);
  }
  RC_ASSERT(ApplyAll(Permute(nums), num) == ApplyAll(nums, num));
  RC_ASSERT(ApplyAll(Permute(maps), map).map == ApplyAll(maps, map).map);
  RC_ASSERT(ApplyAll(ShuffleWithDuplicates(sets), set).members == ApplyAll(sets, set).members);
}

RC_GTEST_PROP(FusionProperty, ExpiryAtTheWriteIgnoresOrder, ()) {
  // A ttl'd tag, actions written at one time W with event times on either side of W - ttl:
  // any order gives the state of applying only the live ones (an expired tag stored
  // before, from an earlier write, is dropped first whatever comes).
  const int64_t ttl = 100, written = 1000;
  auto times = *rc::gen::container<std::vector<int64_t>>(rc::gen::inRange<int64_t>(written - 3 * ttl, written));
  const bool stored_before = *rc::gen::arbitrary<bool>();
  for (TagType type : {TagType::kNumber, TagType::kSet, TagType::kList}) {
    TagConfig cfg = type == TagType::kList ? testing_util::ClickList(4) : TagConfig();
    cfg.type = type;
    cfg.ttl_ms = ttl;
    std::vector<Action> all, live;
    for (size_t i = 0; i < times.size(); ++i) {
      Action a;
      if (type == TagType::kList) {
        a = testing_util::Click(cfg, static_cast<int>(i % 6), times[i], times[i]);
      } else if (type == TagType::kNumber) {
        a.op = i % 2 ? OpCode::kNumberIncr : OpCode::kNumberMax;
        a.number = static_cast<double>(i % 9);
      } else {
        a.op = OpCode::kSetAdd;
        a.members = {std::to_string(i % 5)};
      }
      a.ts = times[i];
      a.written_ms = written;
      all.push_back(a);
      if (a.ts + ttl > written) live.push_back(a);
    }
    if (type == TagType::kNumber) {  // max and incr on one tag follow arrival order: keep one op
      for (auto* v : {&all, &live}) std::erase_if(*v, [](const Action& a) { return a.op != OpCode::kNumberIncr; });
    }
    TagState base;
    if (stored_before) {  // written long ago, expired by W
      Action old = all.empty() ? Action() : all[0];
      old.ts = old.written_ms = written - 5 * ttl;
      if (all.empty()) {
        old.op = type == TagType::kList ? OpCode::kListRpushl : type == TagType::kSet ? OpCode::kSetAdd : OpCode::kNumberIncr;
        if (type == TagType::kSet) old.members = {"9"};
        if (type == TagType::kNumber) old.number = 5;
        if (type == TagType::kList) old = testing_util::Click(cfg, 9, old.ts, old.ts);
        old.ts = old.written_ms = written - 5 * ttl;
      }
      Apply(base, old, cfg);
    }
    auto apply = [&](const std::vector<Action>& actions) {
      TagState s = base;
      for (const Action& a : actions) Apply(s, a, cfg);
      return s;
    };
    TagState want = live.empty() ? base : apply(live);
    RC_ASSERT(apply(Permute(all)) == want);
  }
}

RC_GTEST_PROP(FusionProperty, LastWriterWinsIgnoresOrderAndDuplicates, ()) {
  auto writes = *rc::gen::container<std::vector<std::pair<int, int>>>(
      rc::gen::pair(rc::gen::inRange(0, 10), rc::gen::inRange(0, 4)));
  TagConfig str;
  str.type = TagType::kString;
  TagConfig map;
  map.type = TagType::kMap;
  TagConfig mx;
  mx.type = TagType::kNumber;
  std::vector<Action> strs, puts, maxes;
  for (auto [value, ts] : writes) {
    Action a;
    a.ts = ts;
    a.op = OpCode::kStringSet;
    a.text = "v" + std::to_string(value);
    strs.push_back(a);
    a.op = OpCode::kMapPut;
    a.entries = {{"k" + std::to_string(value % 3), std::to_string(value), 0}};
    puts.push_back(a);
    a.entries.clear();
    a.op = OpCode::kNumberMax;
    a.number = value;
    maxes.push_back(a);
  }
  RC_ASSERT(ApplyAll(ShuffleWithDuplicates(strs), str).text == ApplyAll(strs, str).text);
  RC_ASSERT(ApplyAll(ShuffleWithDuplicates(puts), map).map == ApplyAll(puts, map).map);
  RC_ASSERT(ApplyAll(ShuffleWithDuplicates(maxes), mx).number == ApplyAll(maxes, mx).number);
}

// Every replacing or set-like operator: any permutation with any duplicates gives the
// same state as the original sequence (mixed operators per tag type included).
RC_GTEST_PROP(FusionProperty, IdempotentOperatorsIgnoreOrderAndDuplicates, ()) {
  auto gen_ts = rc::gen::inRange<int64_t>(1, 6);
  TagConfig num;
  num.type = TagType::kNumber;
  TagConfig str;
  str.type = TagType::kString;
  TagConfig map;
  map.type = TagType::kMap;
  TagConfig set;
  set.type = TagType::kSet;
  const bool use_max = *rc::gen::arbitrary<bool>();
  std::vector<Action> nums, strs, maps, sets;
  const int n = *rc::gen::inRange(0, 30);
  for (int i = 0; i < n; ++i) {
    Action a;
    a.ts = *gen_ts;
    a.source = static_cast<Source>(*rc::gen::inRange(0, 3));
    a.op = use_max ? OpCode::kNumberMax : OpCode::kNumberMin;  // (mixing with number.set follows arrival)
    a.number = *rc::gen::inRange(-5, 5);
    nums.push_back(a);
    Action s1 = a;
    s1.op = OpCode::kStringSet;
    s1.text = std::string(1, static_cast<char>('a' + *rc::gen::inRange(0, 4)));
    strs.push_back(s1);
    Action m = a;
    m.op = *rc::gen::arbitrary<bool>() ? OpCode::kMapPut : OpCode::kMapMerge;
    m.entries = {{"k" + std::to_string(*rc::gen::inRange(0, 3)), std::to_string(*rc::gen::inRange(0, 9)), 0}};
    if (m.op == OpCode::kMapMerge) m.entries.push_back({"z", "\"" + s1.text + "\"", 0});
    maps.push_back(m);
    Action st = a;
    st.op = *rc::gen::arbitrary<bool>() ? OpCode::kSetAdd : OpCode::kSetAddl;
    st.members = {std::to_string(*rc::gen::inRange(0, 6))};
    if (st.op == OpCode::kSetAddl) st.members.push_back("\"" + s1.text + "\"");
    sets.push_back(st);
  }
  RC_ASSERT(ApplyAll(ShuffleWithDuplicates(nums), num) == ApplyAll(nums, num));
  RC_ASSERT(ApplyAll(ShuffleWithDuplicates(strs), str) == ApplyAll(strs, str));
  RC_ASSERT(ApplyAll(ShuffleWithDuplicates(maps), map) == ApplyAll(maps, map));
  RC_ASSERT(ApplyAll(ShuffleWithDuplicates(sets), set) == ApplyAll(sets, set));
  // number.set alone is last-writer-wins as well.
  for (auto& a : nums) a.op = OpCode::kNumberSet;
  RC_ASSERT(ApplyAll(ShuffleWithDuplicates(nums), num).number == ApplyAll(nums, num).number);
}

// number.incr / map.incr with ids, through AppliedIds as every store uses it: duplicated
// and permuted deliveries count each id once.
RC_GTEST_PROP(FusionProperty, IncrementsCountEachIdOnce, ()) {
  TagConfig num;
  num.type = TagType::kNumber;
  TagConfig map;
  map.type = TagType::kMap;
  std::vector<Action> nums, maps;
  const int n = *rc::gen::inRange(0, 30);
  for (int i = 0; i < n; ++i) {
    Action a;
    a.id = "id" + std::to_string(i);
    a.ts = *rc::gen::inRange<int64_t>(1, 100);
    a.op = OpCode::kNumberIncr;
    a.number = *rc::gen::inRange(-10, 10);
    nums.push_back(a);
    a.op = OpCode::kMapIncr;
    a.entries = {{"k" + std::to_string(i % 3), "", a.number}};
    maps.push_back(a);
  }
  auto once = [](const std::vector<Action>& actions, const TagConfig& cfg) {
    TagState s;
    s.type = cfg.type;
    AppliedIds ids;
    for (const Action& a : actions) {
      if (ids.Record(a.id, a.ts)) Apply(s, a, cfg);
    }
    return s;
  };
  RC_ASSERT(once(ShuffleWithDuplicates(nums), num) == ApplyAll(nums, num));
  RC_ASSERT(once(ShuffleWithDuplicates(maps), map).map == ApplyAll(maps, map).map);
}

// Identity stitching (features/identity): a person's profile is its ids' states merged.
// For any split of one person's actions between two ids (a device before and after login,
// and its user), merging the two states in either order gives the state of applying every
// action to one id, for each kind of tag the example config uses.
RC_GTEST_PROP(FusionProperty, MergedStatesEqualOneIdsState, ()) {
  auto specs = *rc::gen::container<std::vector<ClickSpec>>(GenClick());
  TagConfig list = ListConfig(*rc::gen::inRange<size_t>(1, 8), *rc::gen::arbitrary<bool>());
  TagConfig counts;
  counts.type = TagType::kMap;  // no ops declared: map.incr counts
  TagConfig counter;
  counter.type = TagType::kNumber;
  TagConfig latest;
  latest.type = TagType::kString;
  TagConfig newest;
  newest.type = TagType::kNumber;  // number.max
  TagConfig members;
  members.type = TagType::kSet;
  const std::vector<const TagConfig*> configs = {&list, &counts, &counter, &latest, &newest, &members};
  std::vector<std::vector<Action>> actions(configs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const ClickSpec& c = specs[i];
    const Source src = c.offline ? Source::kOffline : Source::kRealtime;
    actions[0].push_back(testing_util::Click(list, c.item, c.et, c.ts, src));
    Action a;
    a.ts = c.et;
    a.source = src;
    a.op = OpCode::kMapIncr;
    a.entries = {{std::to_string(c.item % 4), "", 1}};
    actions[1].push_back(a);
    a.entries.clear();
    a.op = OpCode::kNumberIncr;
    a.number = c.item;
    actions[2].push_back(a);
    a.op = OpCode::kStringSet;
    a.text = "v" + std::to_string(c.item);
    actions[3].push_back(a);
    a.op = OpCode::kNumberMax;
    a.number = c.et;
    actions[4].push_back(a);
    a.op = OpCode::kSetAdd;
    a.members = {std::to_string(c.item % 6)};
    actions[5].push_back(a);
  }
  auto sides = *rc::gen::container<std::vector<bool>>(specs.size(), rc::gen::arbitrary<bool>());
  for (size_t t = 0; t < configs.size(); ++t) {
    const TagConfig& cfg = *configs[t];
    std::vector<Action> device, user;
    for (size_t i = 0; i < specs.size(); ++i) (sides[i] ? device : user).push_back(actions[t][i]);
    const TagState one = ApplyAll(actions[t], cfg);
    TagState a = ApplyAll(user, cfg), b = ApplyAll(device, cfg);
    TagState ab = a, ba = b;
    MergeState(ab, b, cfg);
    MergeState(ba, a, cfg);
    std::string want, got_ab, got_ba;
    RenderValue(one, cfg, 0, &want);
    RenderValue(ab, cfg, 0, &got_ab);
    RenderValue(ba, cfg, 0, &got_ba);
    RC_ASSERT(got_ab == want);
    RC_ASSERT(got_ba == want);
    RC_ASSERT(ab.present == one.present);
    RC_ASSERT(ab.updated_at == one.updated_at);
  }
}

}  // namespace
}  // namespace portrait::fusion
