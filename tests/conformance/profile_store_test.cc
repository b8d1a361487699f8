// ProfileStore conformance: the same action sequences against every backend give the
// profile the pure fusion functions compute, whatever the batching and order.
#include "store/profile_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

#include "redis_util.h"
#include "store/redis/redis_store.h"
#include "store/rocksdb/rocksdb_store.h"
#include "temp_dir.h"
#include "test_util.h"

namespace portrait {
namespace {

using testing_util::Click;

struct Backend {
  std::string name;
  std::function<Result<std::unique_ptr<ProfileStore>>(const std::string& dir, const TagRegistry*, MetricsRegistry*)> open;
  std::function<void()> reset;  // wipes shared servers between tests
};

// One standalone server and one 3-master cluster for the whole suite.
testing_util::RedisServer& Standalone() { return testing_util::SharedRedisServer(); }
testing_util::RedisCluster& Cluster() { return testing_util::SharedRedisCluster(); }

const Backend kRocksDb{"rocksdb",
                       [](const std::string& dir, const TagRegistry* tags, MetricsRegistry* m) {
                         return OpenRocksDbStore({dir + "/db", 8}, tags, m);
                       },
                       [] {}};
const Backend kRedis{"redis",
                     [](const std::string&, const TagRegistry* tags, MetricsRegistry* m) {
                       return OpenRedisStore({{Standalone().addr()}, false, 5000}, tags, m);
                     },
                     [] { Standalone().Cli("FLUSHALL"); }};
const Backend kRedisCluster{"redis_cluster",
                            [](const std::string&, const TagRegistry* tags, MetricsRegistry* m) {
                              return OpenRedisStore({Cluster().addrs(), true, 5000}, tags, m);
                            },
                            [] { Cluster().FlushAll(); }};

void PrintTo(const Backend& b, std::ostream* os) { *os << b.name; }

class ProfileStoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    tags_.Add(testing_util::ClickList(5));
    TagConfig long_list = testing_util::ClickList(20'000);
    long_list.name = "long";
    tags_.Add(long_list);
    TagConfig n;
    n.name = "count";
    n.type = TagType::kNumber;
    tags_.Add(n);
    TagConfig m;
    m.name = "cats";
    m.type = TagType::kMap;
    tags_.Add(m);
    TagConfig s;
    s.name = "seen";
    s.type = TagType::kString;
    s.ttl_ms = 1000;
    tags_.Add(s);
    GetParam().reset();
    Reopen();
  }

  void Reopen() {
    store_.reset();
    auto s = GetParam().open(dir_.path(), &tags_, &metrics_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
  }

  Profile Get(const std::string& uid, std::vector<std::string> only = {}, TimestampMs now = 0) {
    auto p = store_->Get(uid, only, now);
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    return p.ok() ? *p : Profile{};
  }

  Action Incr(const std::string& uid, double n, TimestampMs ts) {
    Action a;
    a.uid = uid;
    a.tag = "count";
    a.op = OpCode::kNumberIncr;
    a.number = n;
    a.ts = ts;
    return a;
  }

  testing_util::TempDir dir_;
  MetricsRegistry metrics_;
  TagRegistry tags_;
  std::unique_ptr<ProfileStore> store_;
};

TEST_P(ProfileStoreTest, AppliesAndReadsEveryTagOfAUser) {
  const TagConfig& list = *tags_.Find("clicks");
  Action click = Click(list, 1, 100);
  click.uid = "u1";
  Action str;
  str.uid = "u1";
  str.tag = "seen";
  str.op = OpCode::kStringSet;
  str.text = "hello";
  const TimestampMs now = NowMs();  // ttl'd tags: Redis expires keys by its own clock
  str.ts = now - 100;
  std::vector<Action> batch = {click, Incr("u1", 2, 10), Incr("u1", 3, 20), str, Incr("u2", 1, 5)};
  ASSERT_TRUE(store_->Apply(batch, {}).ok());
  Profile p = Get("u1", {}, now);
  ASSERT_EQ(p.tags.size(), 3u);
  EXPECT_EQ(p.tags[0].name, "clicks");
  EXPECT_EQ(p.tags[0].state.items.size(), 1u);
  EXPECT_EQ(p.tags[1].name, "count");
  EXPECT_EQ(p.tags[1].state.number, 5);
  EXPECT_EQ(p.tags[1].state.updated_at, 20);
  EXPECT_EQ(p.tags[2].state.text, "hello");
  EXPECT_EQ(Get("u1", {"count"}, now).tags.size(), 1u);
  EXPECT_EQ(Get("u2", {}, now).tags[0].state.number, 1);
  EXPECT_TRUE(Get("nobody").tags.empty());
  // "u1" must not see a user whose id merely starts with it.
  ASSERT_TRUE(store_->Apply(std::vector<Action>{Incr("u10", 1, 1)}, {}).ok());
  EXPECT_EQ(Get("u1", {"count"}, now).tags[0].state.number, 5);
}

TEST_P(ProfileStoreTest, GetManyAnswersInOrderLikeGet) {
  ASSERT_TRUE(store_->Apply(std::vector<Action>{Incr("m1", 1, 1), Incr("m2", 2, 2), Incr("m3", 3, 3)}, {}).ok());
  std::vector<std::string> uids = {"m3", "nobody", "m1", "m2", "m3"};
  auto many = store_->GetMany(uids, {}, NowMs());
  ASSERT_TRUE(many.ok()) << many.status().ToString();
  ASSERT_EQ(many->size(), uids.size());
  for (size_t i = 0; i < uids.size(); ++i) {
    Profile one = Get(uids[i]);
    EXPECT_EQ((*many)[i].uid, uids[i]);
    ASSERT_EQ((*many)[i].tags.size(), one.tags.size()) << uids[i];
    for (size_t t = 0; t < one.tags.size(); ++t) EXPECT_EQ((*many)[i].tags[t].state, one.tags[t].state);
  }
}

TEST_P(ProfileStoreTest, ExpiredTagsAreNeverReturned) {
  Action str;
  str.uid = "u";
  str.tag = "seen";
  str.op = OpCode::kStringSet;
  str.text = "x";
  const TimestampMs now = NowMs();
  str.ts = now - 400;  // ttl is 1 s
  ASSERT_TRUE(store_->Apply(std::vector<Action>{str}, {}).ok());
  EXPECT_EQ(Get("u", {}, now).tags.size(), 1u);
  EXPECT_EQ(Get("u", {}, now + 600).tags.size(), 0u);  // the reader's clock decides too
  Action old = str;
  old.uid = "v";
  old.ts = now - 5000;  // written already expired: never visible
  ASSERT_TRUE(store_->Apply(std::vector<Action>{old}, {}).ok());
  EXPECT_EQ(Get("v", {}, now).tags.size(), 0u);
}

// Expiry, the same on every backend and in either arrival order, for every tag type with
// a ttl (fusion::Apply): an action already expired when it is written changes nothing,
// whether it comes before or after a live one; a tag written again after it expired
// starts afresh (counters from 0, max/min from the new value, lists and sets empty).
class TtlTest : public ProfileStoreTest {
 protected:
  void SetUp() override {
    ProfileStoreTest::SetUp();
    store_.reset();
    TagRegistry tags;
    for (auto [name, type] : {std::pair{"t_str", TagType::kString}, {"t_incr", TagType::kNumber},
                              {"t_max", TagType::kNumber}, {"t_map", TagType::kMap}, {"t_set", TagType::kSet}}) {
      TagConfig c;
      c.name = name;
      c.type = type;
      c.ttl_ms = kTtl;
      tags.Add(c);
    }
    TagConfig list = testing_util::ClickList(5);
    list.name = "t_list";
    list.ttl_ms = kTtl;
    tags.Add(list);
    tags_ = std::move(tags);
    Reopen();
  }
  // One action per tag, each with `value` in it, at `ts`.
  std::vector<Action> Actions(const std::string& uid, int value, TimestampMs ts) {
    std::vector<Action> out;
    auto add = [&](const char* tag, OpCode op) -> Action& {
      Action& a = out.emplace_back();
      a.uid = uid;
      a.tag = tag;
      a.op = op;
      a.ts = ts;
      return a;
    };
    add("t_str", OpCode::kStringSet).text = "v" + std::to_string(value);
    add("t_incr", OpCode::kNumberIncr).number = value;
    add("t_max", OpCode::kNumberMax).number = value;
    add("t_map", OpCode::kMapIncr).entries = {{"k" + std::to_string(value), "", 1.0 * value}};
    add("t_set", OpCode::kSetAdd).members = {std::to_string(value)};
    Action click = Click(*tags_.Find("t_list"), value, ts);
    click.uid = uid;
    out.push_back(click);
    return out;
  }
  void Write(const std::vector<Action>& actions) {
    for (const Action& a : actions) ASSERT_TRUE(store_->Apply(std::vector<Action>{a}, {}).ok());
  }
  // The user's tags by name, read at `now`.
  std::map<std::string, fusion::TagState> Tags(const std::string& uid, TimestampMs now) {
    std::map<std::string, fusion::TagState> out;
    for (const TagValue& t : Get(uid, {}, now).tags) out[t.name] = t.state;
    return out;
  }
  static constexpr int64_t kTtl = 1000;
};

TEST_P(TtlTest, AnActionExpiredWhenWrittenChangesNothingInEitherOrder) {
  const TimestampMs now = NowMs();
  Write(Actions("stale_first", 7, now - 5000));
  Write(Actions("stale_first", 3, now - 100));
  Write(Actions("live_first", 3, now - 100));
  Write(Actions("live_first", 7, now - 5000));
  Write(Actions("live_only", 3, now - 100));
  auto want = Tags("live_only", now);
  ASSERT_EQ(want.size(), 6u);
  for (const char* uid : {"stale_first", "live_first"}) {
    auto got = Tags(uid, now);
    ASSERT_EQ(got.size(), want.size()) << uid;
    for (const auto& [tag, state] : want) EXPECT_EQ(got[tag], state) << uid << " " << tag;
  }
  EXPECT_TRUE(Tags("stale_only", now).empty());
}

TEST_P(TtlTest, ATagWrittenAgainAfterItExpiredStartsAfresh) {
  const TimestampMs first = NowMs() - kTtl + 150;
  Write(Actions("again", 100, first));
  EXPECT_EQ(Tags("again", NowMs()).size(), 6u);
  while (NowMs() <= first + kTtl + 20) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const TimestampMs now = NowMs();
  EXPECT_TRUE(Tags("again", now).empty()) << "expired";
  Write(Actions("again", 2, now));
  Write(Actions("fresh", 2, now));
  auto want = Tags("fresh", now);
  auto got = Tags("again", now);
  ASSERT_EQ(got.size(), 6u);
  for (const auto& [tag, state] : want) EXPECT_EQ(got[tag], state) << tag << ": the expired state came back";
  EXPECT_EQ(got["t_max"].number, 2) << "max starts from the new value, not the expired 100 nor 0";
  EXPECT_EQ(got["t_incr"].number, 2);
  EXPECT_EQ(got["t_list"].items.size(), 1u);
}

TEST_P(ProfileStoreTest, CheckpointsPersistWithTheirBatch) {
  EXPECT_FALSE(store_->GetCheckpoint("processor", PartitionId(3)).value().has_value());
  std::vector<Checkpoint> cps = {{"processor", PartitionId(3), Offset(42)}};
  ASSERT_TRUE(store_->Apply(std::vector<Action>{Incr("u", 1, 1)}, cps).ok());
  Reopen();
  EXPECT_EQ(store_->GetCheckpoint("processor", PartitionId(3)).value(), Offset(42));
  EXPECT_FALSE(store_->GetCheckpoint("processor", PartitionId(2)).value().has_value());
  EXPECT_EQ(Get("u").tags[0].state.number, 1);
}

TEST_P(ProfileStoreTest, RandomBatchingAndOrderGiveTheFusionResult) {
  const TagConfig& list = *tags_.Find("clicks");
  std::mt19937 rng(7);
  std::vector<Action> actions;
  for (int i = 0; i < 400; ++i) {
    Action a = Click(list, static_cast<int>(rng() % 20), static_cast<int64_t>(rng() % 50), 1 + rng() % 3,
                     rng() % 2 ? Source::kOffline : Source::kRealtime);
    a.uid = "u" + std::to_string(rng() % 4);
    actions.push_back(a);
  }
  // Reference: the pure fusion functions, in order.
  std::map<std::string, fusion::TagState> expected;
  for (const auto& a : actions) fusion::Apply(expected[a.uid], a, list);
  // Store: shuffled, duplicated, in random batch sizes, across a reopen.
  std::vector<Action> shuffled = actions;
  for (int i = 0; i < 100; ++i) shuffled.push_back(actions[rng() % actions.size()]);
  std::shuffle(shuffled.begin(), shuffled.end(), rng);
  size_t pos = 0;
  while (pos < shuffled.size()) {
    size_t n = std::min<size_t>(1 + rng() % 50, shuffled.size() - pos);
    ASSERT_TRUE(store_->Apply(std::span<const Action>(shuffled).subspan(pos, n), {}).ok());
    pos += n;
    if (pos > shuffled.size() / 2 && pos - n <= shuffled.size() / 2) Reopen();
  }
  for (const auto& [uid, state] : expected) {
    Profile p = Get(uid);
    ASSERT_EQ(p.tags.size(), 1u) << uid;
    EXPECT_EQ(p.tags[0].state.items, state.items) << uid;
    EXPECT_EQ(p.tags[0].state.updated_at, state.updated_at) << uid;
  }
}

TEST_P(ProfileStoreTest, IncrementsWithAnIdApplyOnce) {
  Action a = Incr("u", 5, 10);
  a.id = "job-1";
  ASSERT_TRUE(store_->Apply(std::vector<Action>{a}, {}).ok());
  ASSERT_TRUE(store_->Apply(std::vector<Action>{a, a}, {}).ok());  // retried, also within one batch
  Reopen();
  ASSERT_TRUE(store_->Apply(std::vector<Action>{a}, {}).ok());
  Action b = Incr("u", 1, 11);
  b.id = "job-2";
  Action anonymous = Incr("u", 100, 12);  // no id: counted every time
  ASSERT_TRUE(store_->Apply(std::vector<Action>{b, anonymous, anonymous}, {}).ok());
  EXPECT_EQ(Get("u").tags[0].state.number, 206);
  Action other_user = a;
  other_user.uid = "v";  // ids are per user
  ASSERT_TRUE(store_->Apply(std::vector<Action>{other_user}, {}).ok());
  EXPECT_EQ(Get("v").tags[0].state.number, 5);
}

TEST_P(ProfileStoreTest, DeleteErasesEverythingOfTheUserOnly) {
  Action a = Incr("u", 5, 10);
  a.id = "job-1";
  a.source = Source::kRealtime;
  ASSERT_TRUE(store_->Apply(std::vector<Action>{a, Incr("w", 1, 1)}, {}).ok());
  EXPECT_EQ(Get("u").meta.realtime_updated_at, 10);
  std::vector<Checkpoint> cps = {{"processor", PartitionId(0), Offset(9)}};
  ASSERT_TRUE(store_->DeleteProfile("u", cps).ok());
  EXPECT_TRUE(Get("u").tags.empty());
  EXPECT_EQ(Get("u").meta.realtime_updated_at, 0);
  EXPECT_EQ(store_->GetCheckpoint("processor", PartitionId(0)).value(), Offset(9));
  EXPECT_EQ(Get("w").tags.size(), 1u);
  // Applied ids went with the profile: the same id counts again for the new profile.
  ASSERT_TRUE(store_->Apply(std::vector<Action>{a}, {}).ok());
  EXPECT_EQ(Get("u").tags[0].state.number, 5);
}

TEST_P(ProfileStoreTest, FreshnessFollowsRealtimeActionsOnly) {
  Action ext = Incr("u", 1, 500);
  ext.source = Source::kExternal;
  ASSERT_TRUE(store_->Apply(std::vector<Action>{ext}, {}).ok());
  EXPECT_EQ(Get("u").meta.realtime_updated_at, 0);
  Action rt = Incr("u", 1, 300);
  rt.source = Source::kRealtime;
  ASSERT_TRUE(store_->Apply(std::vector<Action>{rt}, {}).ok());
  EXPECT_EQ(Get("u").meta.realtime_updated_at, 300);
}

TEST_P(ProfileStoreTest, SnapshotMarksKeepTheNewestAndGoWithTheProfile) {
  // A mark alone (a user absent from the snapshot) makes a profile with no tag.
  ASSERT_TRUE(store_->Apply(std::vector<Action>{SnapshotLoadedMark("u", "2026-11-20/2", 5)}, {}).ok());
  // Older marks (an earlier version, an earlier date) arriving later change nothing.
  std::vector<Action> batch = {SnapshotLoadedMark("u", "2026-11-20/1", 6), SnapshotLoadedMark("u", "2026-11-19/9", 7),
                               Incr("u", 1, 8), SnapshotLoadedMark("v", "2026-11-19/1", 9)};
  ASSERT_TRUE(store_->Apply(batch, {}).ok());
  std::vector<std::string> uids = {"u", "v", "nobody"};
  auto marks = store_->GetSnapshotMarks(uids);
  ASSERT_TRUE(marks.ok()) << marks.status().ToString();
  EXPECT_EQ(*marks, (std::vector<std::string>{"2026-11-20/2", "2026-11-19/1", ""}));
  EXPECT_EQ(Get("u").meta.snapshot, "2026-11-20/2");
  EXPECT_EQ(Get("u").tags.size(), 1u) << "a mark is no tag";
  ASSERT_TRUE(store_->Apply(std::vector<Action>{SnapshotLoadedMark("u", "2026-11-21/1", 10)}, {}).ok());
  EXPECT_EQ(Get("u").meta.snapshot, "2026-11-21/1");
  ASSERT_TRUE(store_->DeleteProfile("u", {}).ok());
  EXPECT_EQ(Get("u").meta.snapshot, "") << "an erased profile loads its offline profile again";
}

TEST_P(ProfileStoreTest, EraseAllLeavesNothing) {
  std::vector<Checkpoint> cps = {{"processor", PartitionId(1), Offset(5)}};
  ASSERT_TRUE(store_->Apply(std::vector<Action>{Incr("a", 1, 1), Incr("b", 2, 2)}, cps).ok());
  HistoryConfig hc;
  hc.retention_ms = 0;
  ASSERT_TRUE(store_->RecordHistory(std::vector<HistoryEntry>{{"a", 1, "x", "click", "e"}}, hc).ok());
  ASSERT_TRUE(store_->EraseAll().ok());
  EXPECT_TRUE(Get("a").tags.empty());
  EXPECT_TRUE(Get("b").tags.empty());
  EXPECT_TRUE(store_->ReadHistory("a", HistoryQuery{}, hc, NowMs())->empty());
  EXPECT_FALSE(store_->GetCheckpoint("processor", PartitionId(1)).value().has_value());
  ASSERT_TRUE(store_->Apply(std::vector<Action>{Incr("a", 3, 3)}, {}).ok());  // usable afterwards
  EXPECT_EQ(Get("a").tags[0].state.number, 3);
}

TEST_P(ProfileStoreTest, HistoryNewestFirstFilteredRetainedAndErased) {
  HistoryConfig cfg;
  cfg.retention_ms = 3'600'000;
  cfg.max_per_user = 50;
  const TimestampMs now = NowMs();
  std::vector<HistoryEntry> entries;
  for (int i = 0; i < 80; ++i) {
    std::string type = i % 3 == 0 ? "buy" : "click";
    entries.push_back({"h1", now - 100'000 + i * 1000, "e" + std::to_string(i), type,
                       std::string("\x01\0", 2) + "bin" + std::to_string(i)});  // opaque bytes, NUL included
  }
  entries.push_back({"h1", now - 7'200'000, "old", "click", "old"});  // past retention
  entries.push_back({"h2", now, "x", "click", "other"});
  ASSERT_TRUE(store_->RecordHistory(entries, cfg).ok());
  ASSERT_TRUE(store_->RecordHistory(std::span<const HistoryEntry>(entries).subspan(0, 10), cfg).ok());  // again
  HistoryQuery q;
  q.limit = 5;
  auto got = store_->ReadHistory("h1", q, cfg, now);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), 5u);
  EXPECT_EQ((*got)[0].event, std::string("\x01\0", 2) + "bin79");
  EXPECT_EQ((*got)[4].event, std::string("\x01\0", 2) + "bin75");
  q.limit = 1000;
  got = store_->ReadHistory("h1", q, cfg, now);
  EXPECT_EQ(got->size(), 50u) << "max_per_user";
  q.type = "buy";
  q.from = now - 100'000 + 10'000;  // below the newest 50 (e30..e79): not kept
  q.to = now - 100'000 + 60'000;
  got = store_->ReadHistory("h1", q, cfg, now);
  std::vector<std::string> ids;
  for (const auto& e : *got) ids.push_back(e.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"e60", "e57", "e54", "e51", "e48", "e45", "e42", "e39", "e36", "e33", "e30"}));
  ASSERT_TRUE(store_->DeleteProfile("h1", {}).ok());
  EXPECT_TRUE(store_->ReadHistory("h1", HistoryQuery{}, cfg, now)->empty());
  EXPECT_EQ(store_->ReadHistory("h2", HistoryQuery{}, cfg, now)->size(), 1u);
}

// Every operator, on every tag type, with ids, duplicates, deletions, shuffled and split
// into random batches: each backend must serve exactly what the pure fusion functions
// compute for the same sequence.
TEST_P(ProfileStoreTest, EveryOperatorMatchesTheFusionReference) {
  TagRegistry tags;
  TagConfig list = testing_util::ClickList(6);
  list.name = "l";
  list.max_age_ms = 30'000;  // items older than 30 s by their sort field are not served
  list.descending = true;
  TagConfig loose = testing_util::ClickList(4);
  loose.name = "loose";
  loose.dedup_by = {"item_id"};  // dedup without the sort field
  auto plain = [](const char* name, TagType type) {
    TagConfig c;
    c.name = name;
    c.type = type;
    return c;
  };
  TagConfig str = plain("s", TagType::kString), num = plain("n", TagType::kNumber), map = plain("m", TagType::kMap),
            set = plain("z", TagType::kSet), ttl = plain("t", TagType::kString);
  ttl.ttl_ms = 20'000;
  for (const TagConfig* c : {&list, &loose, &str, &num, &map, &set, &ttl}) tags.Add(*c);
  store_.reset();
  auto opened = GetParam().open(dir_.path() + "/every", &tags, &metrics_);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  store_ = std::move(opened).value();

  std::mt19937 rng(11);
  const TimestampMs now = NowMs();
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  std::vector<Action> actions;
  for (int i = 0; i < 600; ++i) {
    Action a;
    a.uid = "e" + std::to_string(pick(3));
    a.ts = now - 60'000 + pick(60) * 1000;
    a.source = static_cast<Source>(pick(3));
    if (pick(4) == 0) a.id = "id" + std::to_string(pick(40));
    switch (pick(14)) {
      case 0: a.tag = "s"; a.op = OpCode::kStringSet; a.text = "v" + std::to_string(pick(5)); break;
      case 1: a.tag = "n"; a.op = OpCode::kNumberIncr; a.number = pick(7) - 3 + 0.25 * pick(3); break;
      case 2: a.tag = "n"; a.op = pick(2) ? OpCode::kNumberMax : OpCode::kNumberMin; a.number = pick(100); break;
      case 3: a.tag = "n"; a.op = OpCode::kNumberSet; a.number = pick(9) * 1.5; break;
      case 4: a.tag = "m"; a.op = OpCode::kMapIncr; a.entries = {{"k" + std::to_string(pick(4)), "", 0.5 * pick(5)}}; break;
      case 5: a.tag = "m"; a.op = OpCode::kMapPut; a.entries = {{"k" + std::to_string(pick(4)), "\"x" + std::to_string(pick(3)) + "\"", 0}}; break;
      case 6: a.tag = "m"; a.op = OpCode::kMapMerge; a.entries = {{"a", std::to_string(pick(9)), 0}, {"b", "[1,2]", 0}}; break;
      case 7: a.tag = "m"; a.op = OpCode::kMapDel; a.entries = {{"k" + std::to_string(pick(4)), "", 0}}; break;
      case 8: a.tag = "z"; a.op = OpCode::kSetAddl; a.members = {"\"s" + std::to_string(pick(6)) + "\"", std::to_string(pick(4))}; break;
      case 9: a.tag = "t"; a.op = OpCode::kStringSet; a.text = "ttl" + std::to_string(pick(3)); break;
      case 10: case 11: {
        a.tag = pick(2) ? "l" : "loose";
        a.op = OpCode::kListRpushl;
        const TagConfig& cfg = a.tag == "l" ? list : loose;
        for (int k = 0, n = 1 + pick(3); k < n; ++k) {
          std::vector<std::pair<std::string, std::string>> f = {{"item_id", std::to_string(pick(9))},
                                                                 {"et", std::to_string(now - 50'000 + pick(50) * 1000)}};
          a.items.push_back(fusion::MakeListItem(f, cfg, a.ts, a.source).value());
        }
        break;
      }
      case 12: a.tag = "z"; a.op = OpCode::kSetAdd; a.members = {"true"}; break;
      default: a.tag = pick(2) ? "s" : "z"; a.op = OpCode::kTagDel; break;
    }
    actions.push_back(a);
  }
  for (int i = 0; i < 150; ++i) actions.push_back(actions[rng() % actions.size()]);  // duplicates
  std::shuffle(actions.begin(), actions.end(), rng);

  // Reference: the same sequence through the pure functions, with the same id rule.
  std::map<std::string, std::map<std::string, fusion::TagState>> expected;
  std::map<std::string, fusion::AppliedIds> ids;
  for (const auto& a : actions) {
    if (!a.id.empty() && fusion::NeedsExactlyOnce(a.op) && !ids[a.uid].Record(a.id, a.ts)) continue;
    fusion::Apply(expected[a.uid][a.tag], a, *tags.Find(a.tag));
  }
  size_t pos = 0;
  while (pos < actions.size()) {
    size_t n = std::min<size_t>(1 + rng() % 40, actions.size() - pos);
    ASSERT_TRUE(store_->Apply(std::span<const Action>(actions).subspan(pos, n), {}).ok());
    pos += n;
  }
  for (const auto& [uid, by_tag] : expected) {
    auto got = store_->Get(uid, {}, now);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    std::map<std::string, std::string> want_json, got_json;
    for (const auto& [tag, state] : by_tag) {
      const TagConfig& cfg = *tags.Find(tag);
      if (!fusion::IsLive(state, cfg, now)) continue;
      std::string v;
      fusion::RenderValue(state, cfg, now, &v);
      want_json[tag] = v + " @" + std::to_string(state.updated_at);
    }
    for (const auto& t : got->tags) {
      std::string v;
      fusion::RenderValue(t.state, *tags.Find(t.name), now, &v);
      got_json[t.name] = v + " @" + std::to_string(t.state.updated_at);
    }
    EXPECT_EQ(got_json, want_json) << uid;
  }
  store_.reset();  // it points at `tags`, which dies with this scope
}

// Ids may hold any bytes: braces must not break a Redis Cluster hash tag (a uid "}x" would
// spread its keys over slots and fail with CROSSSLOT), and an escape must not make two ids
// one.
TEST_P(ProfileStoreTest, IdsWithBracesAndEscapesAreUsersOfTheirOwn) {
  const TimestampMs now = NowMs();
  const std::vector<std::string> uids = {"}x", "{y}", "a{b}c", "%7D", "}", "{", "%"};
  std::vector<Action> batch;
  for (size_t i = 0; i < uids.size(); ++i) batch.push_back(Incr(uids[i], static_cast<double>(i + 1), 10));
  ASSERT_TRUE(store_->Apply(batch, {}).ok());
  for (size_t i = 0; i < uids.size(); ++i) {
    Profile p = Get(uids[i], {"count"}, now);
    ASSERT_EQ(p.tags.size(), 1u) << uids[i];
    EXPECT_EQ(p.tags[0].state.number, static_cast<double>(i + 1)) << uids[i];
  }
  ASSERT_TRUE(store_->DeleteProfile("}x", {}).ok());
  EXPECT_TRUE(Get("}x", {}, now).tags.empty());
  EXPECT_EQ(Get("%7D", {"count"}, now).tags.size(), 1u) << "an escaped spelling is another user";
}

// A list reads back at any size the config accepts (Redis: no Lua unpack limit on reads).
TEST_P(ProfileStoreTest, LongListsReadBackWhole) {
  const TagConfig& list = *tags_.Find("long");
  Action a = testing_util::Click(list, 0, 1'000'000);
  a.op = OpCode::kListRpushl;
  for (int i = 1; i < 12'000; ++i) a.items.push_back(testing_util::Click(list, i, 1'000'000 + i).items[0]);
  a.uid = "long-list";
  ASSERT_TRUE(store_->Apply(std::vector<Action>{a}, {}).ok());
  Profile p = Get("long-list", {"long"}, NowMs());
  ASSERT_EQ(p.tags.size(), 1u);
  EXPECT_EQ(p.tags[0].state.items.size(), 12'000u);
}

INSTANTIATE_TEST_SUITE_P(Backends, ProfileStoreTest, ::testing::Values(kRocksDb, kRedis, kRedisCluster),
                         [](const auto& info) { return info.param.name; });
INSTANTIATE_TEST_SUITE_P(Backends, TtlTest, ::testing::Values(kRocksDb, kRedis, kRedisCluster),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace portrait

namespace portrait {
namespace {

// Slots move (MOVED, ASK, TRYAGAIN) and a master restarts while batches are applied: every
// increment lands exactly once.
TEST(RedisClusterTest, ReshardingAndANodeRestartLoseAndDoubleNothing) {
  testing_util::RedisCluster cluster;
  ASSERT_TRUE(cluster.Start());
  TagRegistry tags;
  TagConfig count;
  count.name = "count";
  count.type = TagType::kNumber;
  tags.Add(count);
  MetricsRegistry metrics;
  auto opened = OpenRedisStore({cluster.addrs(), true, 30000}, &tags, &metrics);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  auto store = std::move(opened).value();

  std::atomic<bool> stop{false};
  std::map<std::string, double> expected;
  int batches = 0;
  std::thread writer([&] {
    std::mt19937 rng(3);
    for (int b = 0; !stop.load() || b < 50; ++b) {
      std::vector<Action> batch;
      for (int i = 0; i < 20; ++i) {
        Action a;
        a.uid = "c" + std::to_string(rng() % 200);
        a.tag = "count";
        a.op = OpCode::kNumberIncr;
        a.number = 1 + rng() % 3;
        a.ts = 1700000000000 + b;
        a.id = "b" + std::to_string(b) + "-" + std::to_string(i);
        a.source = Source::kExternal;
        batch.push_back(a);
      }
      // A failed batch is sent again; the ids keep the retry from counting twice.
      while (!store->Apply(batch, {}).ok()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      for (const auto& a : batch) expected[a.uid] += a.number;
      ++batches;
    }
  });
  std::string from = cluster.node(0).Cli("CLUSTER MYID");
  std::string to = cluster.node(1).Cli("CLUSTER MYID");
  from.erase(from.find_last_not_of(" \n") + 1);
  to.erase(to.find_last_not_of(" \n") + 1);
  int code = 0;
  std::string out = testing_util::Shell("redis-cli --cluster reshard " + cluster.node(0).addr() + " --cluster-from " +
                                            from + " --cluster-to " + to + " --cluster-slots 1500 --cluster-yes",
                                        &code);
  EXPECT_EQ(code, 0) << out;
  cluster.node(2).Kill(SIGKILL);
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  ASSERT_TRUE(cluster.node(2).Start());
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  stop.store(true);
  writer.join();
  EXPECT_GT(batches, 50);
  uint64_t moved = metrics.GetCounter("portrait_redis_redirections_total", "", "kind=\"moved\"")->value();
  uint64_t asked = metrics.GetCounter("portrait_redis_redirections_total", "", "kind=\"ask\"")->value();
  uint64_t retried = metrics.GetCounter("portrait_redis_retried_commands_total", "")->value();
  std::printf("batches %d, MOVED %llu, ASK %llu, commands retried %llu\n", batches,
              static_cast<unsigned long long>(moved), static_cast<unsigned long long>(asked),
              static_cast<unsigned long long>(retried));
  EXPECT_GT(moved, 0u) << "the resharding should have redirected some commands";
  EXPECT_GT(retried, 0u) << "the node restart should have failed some commands";
  for (const auto& [uid, want] : expected) {
    auto p = store->Get(uid, {}, NowMs());
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    ASSERT_EQ(p->tags.size(), 1u) << uid;
    EXPECT_EQ(p->tags[0].state.number, want) << uid;
  }
}

}  // namespace
}  // namespace portrait
