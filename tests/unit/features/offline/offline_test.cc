// The offline layer against real stores: the lazy-load rule case by case (RocksDB and a
// real redis-server), repair of real-time gaps by a batch snapshot, TTL cold start, and
// snapshot import.
#include <gtest/gtest.h>
#include <simdjson.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "features/offline/batch.h"
#include "core/event.h"
#include "fusion/fusion.h"
#include "log/archive/archiver.h"
#include "features/offline/lazy_loader.h"
#include "fusion/rules.h"
#include "redis_util.h"
#include "store/profile_store.h"
#include "store/redis/redis_store.h"
#include "store/rocksdb/rocksdb_store.h"
#include "store/snapshot.h"
#include "temp_dir.h"
#include "features/registry.h"
#include "features/offline/offline_config.h"

namespace portrait {
namespace {

constexpr const char* kConfig = R"(
[events.click.props]
item_id = "int"
[events.buy.props]
item_id = "int"
[events.APPSTART]
props = {}
[events.init]
props = {}

[tags.clicks]
type = "list"
size_limit = 5
sort_by = "et"
dedup_by = ["item_id", "et"]
offline = { window = "30d" }

[tags.level]
type = "string"
offline = { load = "string.set" }

[tags.bought]
type = "set"
ttl = "1d"
offline = { window = "7d" }

[[rules]]
on = "click"
tag = "clicks"
op = "list.rpush"
value = { item_id = "$props.item_id", et = "$ts" }

[[rules]]
on = "buy"
tag = "bought"
op = "set.add"
value = "$props.item_id"
)";

Config LoadTestConfig(const std::string& data_dir) {
  auto cfg = ParseConfig(kConfig, "test.toml");
  EXPECT_TRUE(cfg.ok()) << cfg.status().ToString();
  Config c = std::move(cfg).value();
  c.data_dir = data_dir;
  return c;
}

constexpr TimestampMs kDay = 86'400'000;
// Day T of the tests, and times on it.
const TimestampMs kT = *DayStartMs("2026-11-21");
std::string Date(int days_before_t) { return DateOf(kT - days_before_t * kDay); }

// One redis-server for the suite, started on first use.
testing_util::RedisServer& Redis() {
  static testing_util::RedisServer s;
  static bool started = s.Start();
  if (!started) ADD_FAILURE() << "cannot start redis-server";
  return s;
}

enum class Backend { kRocksDb, kRedis };

Result<std::unique_ptr<ProfileStore>> OpenStore(Backend b, const std::string& dir, const TagRegistry* tags,
                                                MetricsRegistry* m) {
  if (b == Backend::kRocksDb) return OpenRocksDbStore({dir + "/db", 8}, tags, m);
  Redis().Cli("FLUSHALL");
  return OpenRedisStore({{Redis().addr()}, false, 5000}, tags, m);
}

Status Publish(const std::string& dir, const std::string& date,
               const std::vector<std::pair<std::string, std::string>>& rows) {
  ASSIGN_OR_RETURN(auto w, SnapshotWriter::Create(dir, date, "test"));
  for (const auto& [uid, json] : rows) RETURN_IF_ERROR(w->Put(uid, json));
  return w->Commit(100).status();
}

// A processor-like harness: a trigger event goes through the loader and its Actions into the store.
class Harness {
 public:
  Harness(Backend b, const std::string& dir) : config_(LoadTestConfig(dir)), catalog_(SnapshotDir(config_)) {
    auto s = OpenStore(b, dir, &config_.tags, &metrics_);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
    loader_ = std::make_unique<LazyLoader>(config_, store_.get(), &catalog_, nullptr, &metrics_);
  }

  // Feeds one event; returns whether a snapshot was read for it.
  bool Event(const std::string& type, const std::string& uid, TimestampMs ts) {
    uint64_t reads_before = Reads();
    if (loader_->IsTrigger(type)) {
      std::vector<Action> actions;
      LoadTrigger t{uid, ts, PartitionId(0), Offset(offset_++)};
      EXPECT_TRUE(loader_->Load({&t, 1}, &actions).ok());
      for (Action& a : actions) a.written_ms = ts;  // written at the trigger's (simulated) time
      EXPECT_TRUE(store_->Apply(actions, {}).ok());
    }
    return Reads() > reads_before;
  }
  // Actions written when they happened (the tests' clock is not the wall clock).
  Status Apply(std::vector<Action> actions) {
    for (Action& a : actions) {
      if (!a.written_ms) a.written_ms = a.ts;
    }
    return store_->Apply(actions, {});
  }

  std::string Mark(const std::string& uid) {
    auto marks = store_->GetSnapshotMarks({&uid, 1});
    EXPECT_TRUE(marks.ok());
    return marks.ok() ? (*marks)[0] : "?";
  }
  // The tag as the API renders it, or "" when the profile lacks it.
  std::string Value(const std::string& uid, const std::string& tag, TimestampMs now) {
    auto p = store_->Get(uid, {}, now);
    EXPECT_TRUE(p.ok());
    for (const auto& t : p->tags) {
      if (t.name != tag) continue;
      std::string out;
      fusion::RenderValue(t.state, *config_.tags.Find(tag), now, &out);
      return out;
    }
    return "";
  }
  uint64_t Reads() {
    return metrics_.GetCounter("portrait_lazy_loads_total", "", "result=\"loaded\"")->value() +
           metrics_.GetCounter("portrait_lazy_loads_total", "", "result=\"absent\"")->value();
  }
  const Config& config() const { return config_; }
  std::string snapshot_dir() const { return SnapshotDir(config_); }

 private:
  Config config_;
  MetricsRegistry metrics_;
  SnapshotCatalog catalog_;
  std::unique_ptr<ProfileStore> store_;
  std::unique_ptr<LazyLoader> loader_;
  int64_t offset_ = 0;
};

std::string Clicks(std::initializer_list<int> items) {
  std::string out = "[";
  for (int i : items) {
    if (out.size() > 1) out += ",";
    out += R"({"item_id":)" + std::to_string(i) + R"(,"et":)" + std::to_string(1'700'000'000'000 + i) + "}";
  }
  return out + "]";
}
std::string Row(std::initializer_list<int> items) { return R"({"clicks":)" + Clicks(items) + "}"; }

// One step of a lazy-load case.
struct Step {
  enum Kind { kPublish, kBegin, kComplete, kEvent };
  explicit Step(Kind k) : kind(k) {}
  Step(Kind k, std::string d, std::string r, std::string t, TimestampMs at, bool rd, std::string m, std::string c)
      : kind(k), date(std::move(d)), row(std::move(r)), type(std::move(t)), ts(at), read(rd), mark(std::move(m)),
        clicks(std::move(c)) {}
  Kind kind;
  std::string date;                 // kPublish, kBegin: the snapshot's date (kComplete: the one begun)
  std::string row;                  // kPublish, kBegin: u1's offline row ("" = u1 absent)
  std::string type;                 // kEvent
  TimestampMs ts = 0;               // kEvent
  bool read = false;                // kEvent: whether it read a snapshot
  std::string mark;                 // kEvent: u1's mark afterwards
  std::string clicks;               // kEvent: u1's clicks afterwards ("" = none)
};

Step PublishStep(std::string date, std::string row) {
  Step s{Step::kPublish};
  s.date = std::move(date);
  s.row = std::move(row);
  return s;
}
Step BeginStep(std::string date, std::string row) {
  Step s = PublishStep(std::move(date), std::move(row));
  s.kind = Step::kBegin;
  return s;
}
Step CompleteStep() { return Step{Step::kComplete}; }
Step EventStep(std::string type, TimestampMs ts, bool read, std::string mark, std::string clicks) {
  return Step(Step::kEvent, "", "", std::move(type), ts, read, std::move(mark), std::move(clicks));
}

struct LazyCase {
  std::string name;
  std::vector<Step> steps;
};

const TimestampMs k8am = kT + 8 * 3'600'000;

std::vector<LazyCase> LazyCases() {
  return {
      {"FirstTriggerOfTheDayLoadsTMinus1",
       {PublishStep(Date(1), Row({1, 2})), EventStep("APPSTART", k8am, true, Date(1) + "/1", Clicks({1, 2}))}},
      {"SecondTriggerTheSameDayReadsNothing",
       {PublishStep(Date(1), Row({1, 2})), EventStep("APPSTART", k8am, true, Date(1) + "/1", Clicks({1, 2})),
        EventStep("APPSTART", k8am + 3'600'000, false, Date(1) + "/1", Clicks({1, 2}))}},
      {"TMinus1NotCompleteLoadsTMinus2",
       {PublishStep(Date(2), Row({1})), BeginStep(Date(1), Row({2})),
        EventStep("APPSTART", k8am, true, Date(2) + "/1", Clicks({1}))}},
      {"TMinus1CompletesLaterAndTheNextTriggerPicksItUp",
       {PublishStep(Date(2), Row({1})), BeginStep(Date(1), Row({2})),
        EventStep("APPSTART", k8am, true, Date(2) + "/1", Clicks({1})), CompleteStep(),
        EventStep("APPSTART", k8am + 60'000, true, Date(1) + "/1", Clicks({1, 2}))}},
      {"VersionBumpedTheSameDayIsLoadedAgain",
       {PublishStep(Date(1), Row({1})), EventStep("APPSTART", k8am, true, Date(1) + "/1", Clicks({1})),
        PublishStep(Date(1), Row({3})), EventStep("APPSTART", k8am + 60'000, true, Date(1) + "/2", Clicks({1, 3})),
        EventStep("APPSTART", k8am + 120'000, false, Date(1) + "/2", Clicks({1, 3}))}},
      {"UserAbsentFromTheSnapshotIsMarkedAndNotReadAgain",
       {PublishStep(Date(1), ""), EventStep("APPSTART", k8am, true, Date(1) + "/1", ""),
        EventStep("APPSTART", k8am + 60'000, false, Date(1) + "/1", "")}},
      {"InitBeforeAppstartLoadsOnce",
       {PublishStep(Date(1), Row({1})), EventStep("init", k8am, true, Date(1) + "/1", Clicks({1})),
        EventStep("APPSTART", k8am + 1000, false, Date(1) + "/1", Clicks({1}))}},
      {"NoSnapshotYetLoadsNothingAndMarksNothing",
       {EventStep("APPSTART", k8am, false, "", "")}},
      {"ASnapshotOfDayTItselfIsNotUsedOnDayT",
       {PublishStep(Date(1), Row({1})), PublishStep(Date(0), Row({9})),
        EventStep("APPSTART", k8am, true, Date(1) + "/1", Clicks({1}))}},
      // A late trigger of an earlier day would pick an older snapshot: only a newer one loads.
      {"ALateTriggerOfAnEarlierDayDoesNotReloadAnOlderSnapshot",
       {PublishStep(Date(2), Row({1})), PublishStep(Date(1), Row({2})),
        EventStep("APPSTART", k8am, true, Date(1) + "/1", Clicks({2})),
        EventStep("APPSTART", k8am - 86'400'000, false, Date(1) + "/1", Clicks({2}))}},
      {"OtherEventsAreNoTrigger",
       {PublishStep(Date(1), Row({1})), EventStep("click", k8am, false, "", "")}},
  };
}

class LazyLoadTest : public ::testing::TestWithParam<std::tuple<Backend, LazyCase>> {};

TEST_P(LazyLoadTest, FollowsTheRule) {
  auto [backend, c] = GetParam();
  testing_util::TempDir dir;
  Harness h(backend, dir.path());
  std::unique_ptr<SnapshotWriter> pending;
  for (size_t i = 0; i < c.steps.size(); ++i) {
    const Step& s = c.steps[i];
    SCOPED_TRACE("step " + std::to_string(i));
    std::vector<std::pair<std::string, std::string>> rows = {{"someone-else", Row({42})}};
    if (!s.row.empty()) rows.emplace_back("u1", s.row);
    switch (s.kind) {
      case Step::kPublish:
        ASSERT_TRUE(Publish(h.snapshot_dir(), s.date, rows).ok());
        break;
      case Step::kBegin: {
        auto w = SnapshotWriter::Create(h.snapshot_dir(), s.date, "test");
        ASSERT_TRUE(w.ok());
        pending = std::move(w).value();
        for (const auto& [uid, json] : rows) ASSERT_TRUE(pending->Put(uid, json).ok());
        break;
      }
      case Step::kComplete:
        ASSERT_TRUE(pending->Commit(100).ok());
        break;
      case Step::kEvent:
        EXPECT_EQ(h.Event(s.type, "u1", s.ts), s.read);
        EXPECT_EQ(h.Mark("u1"), s.mark);
        EXPECT_EQ(h.Value("u1", "clicks", s.ts), s.clicks);
        break;
    }
  }
}

std::vector<std::tuple<Backend, LazyCase>> AllCases() {
  std::vector<std::tuple<Backend, LazyCase>> out;
  for (Backend b : {Backend::kRocksDb, Backend::kRedis}) {
    for (auto& c : LazyCases()) out.emplace_back(b, c);
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Cases, LazyLoadTest, ::testing::ValuesIn(AllCases()), [](const auto& info) {
  return std::string(std::get<0>(info.param) == Backend::kRocksDb ? "rocksdb_" : "redis_") + std::get<1>(info.param).name;
});

// Archive helpers: events written in the archive's layout, as the Archiver writes them.
void WriteArchive(const std::string& dir, const std::vector<Event>& events, int partitions) {
  std::map<std::string, std::string> files;  // path -> NDJSON
  for (const Event& e : events) {
    int p = PartitionFor(e.PartitionKey(), partitions).value;
    files[dir + "/" + Archiver::HourPath(e.ts) + "/part-" + std::to_string(p) + "-0.ndjson.gz"] += EventToJson(e) + "\n";
  }
  for (const auto& [path, text] : files) {
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    gzFile gz = gzopen(path.c_str(), "wb1");
    ASSERT_TRUE(gz);
    gzwrite(gz, text.data(), static_cast<unsigned>(text.size()));
    gzclose(gz);
  }
}

Event ClickEvent(const std::string& uid, int item, TimestampMs ts) {
  Event e;
  e.uid = uid;
  e.type = "click";
  e.ts = ts;
  e.id = uid + "-" + std::to_string(ts);
  e.props = {{"item_id", std::to_string(item)}};
  return e;
}

// Real time lost some actions; the offline snapshot of the same period repairs the list:
// afterwards it equals the list computed from every event.
TEST(RepairTest, OfflineSnapshotFillsRealTimeGaps) {
  for (Backend b : {Backend::kRocksDb, Backend::kRedis}) {
    SCOPED_TRACE(b == Backend::kRocksDb ? "rocksdb" : "redis");
    testing_util::TempDir dir;
    Harness h(b, dir.path());
    std::mt19937 rng(7);
    std::vector<Event> events;
    for (int i = 0; i < 400; ++i) {
      std::string uid = "u" + std::to_string(rng() % 6);
      events.push_back(ClickEvent(uid, static_cast<int>(rng() % 50), kT - kDay - static_cast<TimestampMs>(rng() % (5 * kDay))));
    }
    WriteArchive(ArchiveDir(h.config()), events, h.config().log.partitions);
    RuleSet rules(h.config());
    std::vector<Action> realtime, all;
    size_t skipped = 0, dropped = 0;
    for (const Event& e : events) {
      std::vector<Action> a;
      rules.Evaluate(e, &a, &skipped);
      all.insert(all.end(), a.begin(), a.end());
      if (rng() % 3 == 0) {  // lost on the way
        ++dropped;
        continue;
      }
      realtime.insert(realtime.end(), a.begin(), a.end());
    }
    ASSERT_GT(dropped, 50u);
    ASSERT_TRUE(h.Apply(realtime).ok());
    auto stats = RunBatch(h.config(), Date(1));
    ASSERT_TRUE(stats.ok()) << stats.status().ToString();
    EXPECT_EQ(stats->events, events.size());
    int differed = 0;
    for (int u = 0; u < 6; ++u) {
      std::string uid = "u" + std::to_string(u);
      // The list from every event, by the pure fusion functions.
      fusion::TagState want;
      const TagConfig& cfg = *h.config().tags.Find("clicks");
      for (const Action& a : all) {
        if (a.uid == uid) fusion::Apply(want, a, cfg);
      }
      std::string want_json;
      fusion::RenderValue(want, cfg, kT, &want_json);
      differed += h.Value(uid, "clicks", kT) != want_json;
      EXPECT_TRUE(h.Event("APPSTART", uid, k8am));
      EXPECT_EQ(h.Value(uid, "clicks", k8am), want_json) << uid;
    }
    EXPECT_GE(differed, 3) << "real time alone was (nearly) complete: the test would prove nothing";
  }
}

// A tag expired by its ttl comes back, from the offline snapshot, at the next trigger.
TEST(ColdStartTest, TagsExpiredByTtlAreRefilledByTheNextTrigger) {
  testing_util::TempDir dir;
  Harness h(Backend::kRocksDb, dir.path());
  // Bought something 10 days ago: the tag (ttl 1d) has long expired by day T.
  Action a;
  a.uid = "u1";
  a.tag = "bought";
  a.op = OpCode::kSetAdd;
  a.ts = kT - 10 * kDay;
  a.members = {"7"};
  ASSERT_TRUE(h.Apply({a}).ok());
  EXPECT_EQ(h.Value("u1", "bought", k8am), "");
  ASSERT_TRUE(Publish(h.snapshot_dir(), Date(1), {{"u1", R"({"bought":[7,8]})"}}).ok());
  EXPECT_TRUE(h.Event("APPSTART", "u1", k8am));
  EXPECT_EQ(h.Value("u1", "bought", k8am), "[7,8]");
}

// Batch windows: each tag takes only its own window's events, and nothing after the date.
TEST(BatchTest, EachTagTakesItsWindowUpToTheEndOfTheDate) {
  testing_util::TempDir dir;
  Config cfg = LoadTestConfig(dir.path());
  std::vector<Event> events = {ClickEvent("u1", 1, kT - 40 * kDay), ClickEvent("u1", 2, kT - 2 * kDay),
                               ClickEvent("u1", 3, kT + 1000)};  // outside 30d / inside / after the date
  Event buy;
  buy.uid = "u1";
  buy.type = "buy";
  buy.id = "b1";
  buy.props = {{"item_id", "5"}};
  buy.ts = kT - 10 * kDay;  // outside bought's 7 days
  events.push_back(buy);
  buy.id = "b2";
  buy.props = {{"item_id", "6"}};
  buy.ts = kT - 12 * 3'600'000;  // inside, and live at the end of the date (ttl 1d)
  events.push_back(buy);
  buy.uid = "u2";
  buy.ts = kT - 3 * kDay;  // inside the window, but expired by its ttl at the end of the date
  events.push_back(buy);
  WriteArchive(ArchiveDir(cfg), events, cfg.log.partitions);
  auto stats = RunBatch(cfg, Date(1));
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->snapshot.users, 1u);
  SnapshotCatalog catalog(SnapshotDir(cfg));
  ASSERT_TRUE(catalog.Refresh().ok());
  auto row = catalog.Lookup(stats->snapshot, "u1");
  ASSERT_TRUE(row.ok() && *row);
  EXPECT_EQ(**row, R"({"bought":[6],"clicks":[{"et":)" + std::to_string(kT - 2 * kDay) + R"(,"item_id":2}]})");
  auto absent = catalog.Lookup(stats->snapshot, "u2");
  ASSERT_TRUE(absent.ok());
  EXPECT_FALSE(*absent) << "u2's only tag had expired: no row";
  // Running the date again writes version 2.
  auto again = RunBatch(cfg, Date(1));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->snapshot.version, 2);
}

// Several runs, each computing some partitions (as several machines do), make one snapshot
// equal to one run over all of them; the run that finishes the last part commits it.
TEST(BatchTest, RunsSharingThePartitionsMakeTheSnapshotOfOneRun) {
  testing_util::TempDir whole_dir, split_dir;
  Config whole = LoadTestConfig(whole_dir.path());
  Config split = LoadTestConfig(split_dir.path());
  ASSERT_GE(whole.log.partitions, 3);
  std::mt19937 rng(11);
  std::vector<Event> events;
  for (int i = 0; i < 600; ++i) {
    events.push_back(ClickEvent("u" + std::to_string(rng() % 40), static_cast<int>(rng() % 30),
                                kT - static_cast<TimestampMs>(rng() % (20 * kDay))));
  }
  WriteArchive(ArchiveDir(whole), events, whole.log.partitions);
  WriteArchive(ArchiveDir(split), events, split.log.partitions);
  auto one = RunBatch(whole, Date(1));
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  ASSERT_EQ(one->snapshot.version, 1);

  const int n = split.log.partitions;
  std::vector<int> first, second;
  for (int p = 0; p < n; ++p) (p % 2 ? second : first).push_back(p);
  second.push_back(0);  // a partition computed twice (a retried run) changes nothing
  auto a = RunBatch(split, Date(1), first);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->snapshot.version, 0) << "half the parts: nothing committed yet";
  std::vector<int> odd;
  for (int p = 1; p < n; p += 2) odd.push_back(p);
  EXPECT_EQ(a->waiting_for, odd);
  EXPECT_TRUE(ReadCompletionLog(SnapshotDir(split))->empty());
  auto b = RunBatch(split, Date(1), second);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  ASSERT_EQ(b->snapshot.version, 1) << "the last part commits";
  EXPECT_EQ(b->snapshot.users, one->snapshot.users);

  SnapshotCatalog whole_catalog(SnapshotDir(whole)), split_catalog(SnapshotDir(split));
  ASSERT_TRUE(whole_catalog.Refresh().ok());
  ASSERT_TRUE(split_catalog.Refresh().ok());
  int found = 0;
  for (int u = 0; u < 40; ++u) {
    std::string uid = "u" + std::to_string(u);
    auto w = whole_catalog.Lookup(one->snapshot, uid);
    auto s = split_catalog.Lookup(b->snapshot, uid);
    ASSERT_TRUE(w.ok() && s.ok());
    EXPECT_EQ(*w, *s) << uid;
    found += w->has_value();
  }
  EXPECT_GT(found, 30);
  auto bad = RunBatch(split, Date(1), {n});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("partition " + std::to_string(n) + " does not exist"), std::string::npos);
}

// An archive written with another partition count is refused, not silently misplaced.
TEST(BatchTest, AnArchiveOfAnotherPartitionCountIsRefused) {
  testing_util::TempDir dir;
  Config cfg = LoadTestConfig(dir.path());
  std::vector<Event> events;
  for (int i = 0; i < 50; ++i) events.push_back(ClickEvent("u" + std::to_string(i), 1, kT - kDay));
  WriteArchive(ArchiveDir(cfg), events, cfg.log.partitions + 1);
  auto stats = RunBatch(cfg, Date(1));
  ASSERT_FALSE(stats.ok());
  EXPECT_NE(stats.status().message().find("the config the archive was written with"), std::string::npos)
      << stats.status().ToString();
}

TEST(BatchTest, RefusesAConfigWithoutOfflineTags) {
  testing_util::TempDir dir;
  auto cfg = ParseConfig("[events.a]\nprops = {}\n[tags.x]\ntype = \"string\"\n", "t.toml");
  ASSERT_TRUE(cfg.ok());
  cfg->data_dir = dir.path();
  auto stats = RunBatch(*cfg, "2026-11-20");
  ASSERT_FALSE(stats.ok());
  EXPECT_NE(stats.status().message().find("no tag is computed offline"), std::string::npos);
}

TEST(BatchTest, NoArchivedEventsIsAnErrorNotAnEmptySnapshot) {
  testing_util::TempDir dir;
  Config cfg = LoadTestConfig(dir.path());
  auto stats = RunBatch(cfg, Date(1));
  ASSERT_FALSE(stats.ok());
  EXPECT_NE(stats.status().message().find("no archived events"), std::string::npos) << stats.status().message();
  auto rows = ReadCompletionLog(SnapshotDir(cfg));
  ASSERT_TRUE(rows.ok());
  EXPECT_TRUE(rows->empty());
}

TEST(SnapshotTest, RetiresAllButTheNewestKeep) {
  testing_util::TempDir dir;
  std::string sdir = dir.path() + "/snapshots";
  for (int d = 5; d >= 1; --d) {
    auto w = SnapshotWriter::Create(sdir, Date(d), "test");
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Put("u", "{}").ok());
    ASSERT_TRUE((*w)->Commit(2).ok());
  }
  auto rows = ReadCompletionLog(sdir);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 5u);
  int live = 0;
  for (const auto& r : *rows) {
    bool exists = std::filesystem::exists(sdir + "/date=" + r.date + "/v=1");
    EXPECT_EQ(exists, r.retired_at.empty()) << r.date;
    live += r.retired_at.empty();
  }
  EXPECT_EQ(live, 2);
  SnapshotCatalog catalog(sdir);
  ASSERT_TRUE(catalog.Refresh().ok());
  EXPECT_EQ(catalog.NewestBefore(Date(1))->date, Date(2));  // Date(3) and older are retired
  EXPECT_FALSE(catalog.NewestBefore(Date(2)));
}

TEST(SnapshotTest, ATornLastLineOfTheCompletionLogIsIgnored) {
  testing_util::TempDir dir;
  ASSERT_TRUE(Publish(dir.path(), "2026-11-19", {{"u", "{}"}}).ok());
  std::ofstream(dir.path() + "/completed.ndjson", std::ios::app) << R"({"date":"2026-11-20","vers)";
  auto rows = ReadCompletionLog(dir.path());
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].date, "2026-11-19");
}

class ImportTest : public ::testing::Test {
 protected:
  Result<ImportStats> Import(const std::string& text, const ImportOptions& o) {
    std::string file = dir_.path() + "/in.txt";
    std::ofstream(file) << text;
    return ImportSnapshot(config_, "2026-11-20", file, o);
  }
  std::optional<std::string> Lookup(const SnapshotInfo& s, const std::string& uid) {
    SnapshotCatalog catalog(SnapshotDir(config_));
    EXPECT_TRUE(catalog.Refresh().ok());
    auto r = catalog.Lookup(s, uid);
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : std::nullopt;
  }
  testing_util::TempDir dir_;
  Config config_ = LoadTestConfig(dir_.path());
};

TEST_F(ImportTest, NdjsonRowsWithAColumnMapping) {
  ImportOptions o;
  o.uid_column = "user";
  o.map = {{"recent", "clicks"}};
  auto s = Import(R"({"user":"a","recent":[{"item_id":1,"et":5}],"level":"gold"})"
                  "\n"
                  R"({"user":42,"level":"silver"})"
                  "\n",
                  o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->rows, 2u);
  EXPECT_EQ(s->snapshot.users, 2u);
  EXPECT_EQ(s->snapshot.source, "import");
  EXPECT_EQ(Lookup(s->snapshot, "a"), R"({"clicks":[{"item_id":1,"et":5}],"level":"gold"})");
  EXPECT_EQ(Lookup(s->snapshot, "42"), R"({"level":"silver"})");
}

TEST_F(ImportTest, CsvWithHeaderAndJsonCells) {
  ImportOptions o;
  o.format = "csv";
  auto s = Import("uid,level,clicks\n"
                  "a,gold,\"[{\"\"item_id\"\":1,\"\"et\"\":5}]\"\n"
                  "b,123,\n",
                  o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(Lookup(s->snapshot, "a"), R"({"level":"gold","clicks":[{"item_id":1,"et":5}]})");
  EXPECT_EQ(Lookup(s->snapshot, "b"), R"({"level":"123"})") << "a string tag keeps digits as text; empty cells are no value";
}

TEST_F(ImportTest, BadRowsAreNamedAndPastTheLimitNothingIsWritten) {
  std::string text = R"({"uid":"a","level":"gold"})"
                     "\n"
                     R"({"uid":"b","clicks":[{"item_id":1}]})"
                     "\n"  // no sort field et
                     R"({"uid":"c","nosuch":1})"
                     "\n"
                     R"({"level":"x"})"
                     "\n"
                     "not json\n";
  auto s = Import(text, {});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("4 of 5 rows are bad"), std::string::npos) << s.status().message();
  EXPECT_NE(s.status().message().find("line 2: tag \"clicks\""), std::string::npos) << s.status().message();
  auto rows = ReadCompletionLog(SnapshotDir(config_));
  ASSERT_TRUE(rows.ok());
  EXPECT_TRUE(rows->empty());

  ImportOptions lenient;
  lenient.max_bad_rows = 4;
  s = Import(text, lenient);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->bad_rows, 4u);
  ASSERT_EQ(s->problems.size(), 4u);
  EXPECT_NE(s->problems[1].find("line 3: column \"nosuch\" is no declared tag"), std::string::npos) << s->problems[1];
  EXPECT_NE(s->problems[2].find("line 4: the row has no \"uid\""), std::string::npos) << s->problems[2];
  EXPECT_EQ(s->snapshot.users, 1u);
}

}  // namespace
}  // namespace portrait
