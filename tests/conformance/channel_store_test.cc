// ChannelStore conformance: every backend (RocksDB, Redis, a 3-master Redis Cluster)
// counts the new users a plain model of the rule counts, whatever the order of the
// sightings and however often they repeat; devices merge into the uid they log in as.
#include "features/channels/channel_store.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "redis_util.h"
#include "store/redis/redis_store.h"
#include "store/rocksdb/rocksdb_store.h"
#include "temp_dir.h"

namespace portrait {
namespace {

struct Backend {
  std::string name;
  std::function<Result<std::unique_ptr<ProfileStore>>(const std::string& dir, const TagRegistry*, MetricsRegistry*)> open;
};

testing_util::RedisServer& Standalone() { return testing_util::SharedRedisServer(); }
testing_util::RedisCluster& Cluster() { return testing_util::SharedRedisCluster(); }

const Backend kRocksDb{"rocksdb", [](const std::string& dir, const TagRegistry* tags, MetricsRegistry* m) {
                         return OpenRocksDbStore({dir + "/db", 8}, tags, m);
                       }};
const Backend kRedis{"redis", [](const std::string&, const TagRegistry* tags, MetricsRegistry* m) {
                       return OpenRedisStore({{Standalone().addr()}, false, 5000}, tags, m);
                     }};
const Backend kRedisCluster{"redis_cluster", [](const std::string&, const TagRegistry* tags, MetricsRegistry* m) {
                              return OpenRedisStore({Cluster().addrs(), true, 5000}, tags, m);
                            }};

void PrintTo(const Backend& b, std::ostream* os) { *os << b.name; }

constexpr TimestampMs kDay = 1'700'006'400'000;  // 2023-11-15T00:00:00Z
constexpr TimestampMs kH = kHourMs;

using Counts = std::map<std::pair<TimestampMs, std::string>, int64_t>;  // (hour, channel) -> users

Sighting S(std::string uid, std::string device, TimestampMs ts, std::string channel, std::string product = "shop") {
  return Sighting{std::move(product), std::move(uid), std::move(device), std::move(channel), ts};
}

// The rule, written plainly: a user is a uid with the device-only events of the devices it
// logged in with, or a device that never logged in; counted at its earliest (ts, channel).
// Assumes each device logs in as at most one uid.
Counts Model(const std::vector<Sighting>& all) {
  std::map<std::string, std::string> owner;
  for (const auto& s : all) {
    if (!s.uid.empty() && !s.device.empty()) owner.emplace(s.device, s.uid);
  }
  std::map<std::string, std::pair<TimestampMs, std::string>> first;  // user -> earliest (ts, channel)
  for (const auto& s : all) {
    std::string user;
    if (!s.uid.empty()) user = "u" + s.uid;
    else if (owner.count(s.device)) user = "u" + owner[s.device];
    else user = "d" + s.device;
    auto [it, fresh] = first.emplace(user, std::make_pair(s.ts, s.channel));
    if (!fresh && std::make_pair(s.ts, s.channel) < it->second) it->second = {s.ts, s.channel};
  }
  Counts c;
  for (const auto& [user, f] : first) ++c[{HourOf(f.first), f.second}];
  return c;
}

class ChannelStoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    auto s = GetParam().open(dir_.path(), &tags_, &metrics_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
    auto ch = OpenChannelStore(store_.get());
    ASSERT_TRUE(ch.ok()) << ch.status().ToString();
    owned_ = std::move(ch).value();
    ch_ = owned_.get();
    ASSERT_NE(ch_, nullptr);
  }

  // A product no other test (or earlier run on a shared server) used.
  std::string FreshProduct() {
    static int n = 0;
    return "p" + std::to_string(::getpid()) + "-" + std::to_string(++n) + "-" + GetParam().name;
  }

  Counts RealTime(const std::string& product, TimestampMs from = kDay - 2 * kDayMs, TimestampMs to = kDay + 3 * kDayMs) {
    auto f = ch_->Read(product, from, to);
    EXPECT_TRUE(f.ok()) << f.status().ToString();
    Counts c;
    if (f.ok()) {
      for (const auto& x : f->realtime) c[{x.hour, x.channel}] += x.count;
    }
    return c;
  }

  void Observe(const std::vector<Sighting>& s) {
    Status st = ch_->Observe(s);
    ASSERT_TRUE(st.ok()) << st.ToString();
  }

  testing_util::TempDir dir_;
  MetricsRegistry metrics_;
  TagRegistry tags_;
  std::unique_ptr<ProfileStore> store_;
  ChannelStore* ch_ = nullptr;
  std::unique_ptr<ChannelStore> owned_;
};

TEST_P(ChannelStoreTest, FirstEventOfEachUserCountsOnce) {
  std::string p = FreshProduct();
  Observe({S("a", "", kDay + 10, "ads", p), S("a", "", kDay + 2 * kH, "seo", p), S("b", "", kDay + kH + 5, "seo", p)});
  Observe({S("a", "", kDay + 3 * kH, "ads", p)});
  EXPECT_EQ(RealTime(p), (Counts{{{kDay, "ads"}, 1}, {{kDay + kH, "seo"}, 1}}));
}

TEST_P(ChannelStoreTest, LateEarlierEventMovesTheUserToItsHourAndChannel) {
  std::string p = FreshProduct();
  Observe({S("a", "", kDay + 5 * kH, "ads", p)});
  Observe({S("a", "", kDay + 2 * kH + 1, "seo", p)});  // arrives late, happened earlier
  EXPECT_EQ(RealTime(p), (Counts{{{kDay + 2 * kH, "seo"}, 1}}));
  // Same millisecond, two channels: the smaller channel name wins, in any order.
  Observe({S("a", "", kDay + 2 * kH + 1, "aaa", p)});
  EXPECT_EQ(RealTime(p), (Counts{{{kDay + 2 * kH, "aaa"}, 1}}));
}

TEST_P(ChannelStoreTest, DeviceThenLoginIsOneUserInTheDevicesFirstHourAndChannel) {
  std::string p = FreshProduct();
  Observe({S("", "dev1", kDay + kH + 7, "ads", p)});
  EXPECT_EQ(RealTime(p), (Counts{{{kDay + kH, "ads"}, 1}}));
  Observe({S("alice", "dev1", kDay + 4 * kH, "seo", p)});  // logs in, through another channel
  Observe({S("alice", "", kDay + 5 * kH, "seo", p)});
  Observe({S("", "dev1", kDay + 6 * kH, "mail", p)});  // the device again, logged out
  EXPECT_EQ(RealTime(p), (Counts{{{kDay + kH, "ads"}, 1}}));
  // A uid seen before its device: still one user, at the earlier of the two.
  Observe({S("bob", "", kDay + 3 * kH, "seo", p), S("", "dev2", kDay + 2 * kH, "ads", p)});
  EXPECT_EQ((RealTime(p)[{kDay + 2 * kH, "ads"}]), 1);
  Observe({S("bob", "dev2", kDay + 8 * kH, "seo", p)});
  EXPECT_EQ(RealTime(p), (Counts{{{kDay + kH, "ads"}, 1}, {{kDay + 2 * kH, "ads"}, 1}}));
  auto recs = ch_->Lookup(p, std::vector<std::string>{"ubob", "ddev2", "dnone"});
  ASSERT_TRUE(recs.ok()) << recs.status().ToString();
  ASSERT_TRUE((*recs)[0] && (*recs)[1]);
  EXPECT_EQ((*recs)[0]->first_ts, kDay + 2 * kH);  // bob's first event is the device's
  EXPECT_EQ((*recs)[1]->owner, "bob");
  EXPECT_FALSE((*recs)[2]);
}

TEST_P(ChannelStoreTest, ProductsAreCountedApart) {
  std::string p = FreshProduct(), q = FreshProduct();
  Observe({S("a", "", kDay, "ads", p), S("a", "", kDay + 9 * kH, "seo", q)});
  EXPECT_EQ(RealTime(p), (Counts{{{kDay, "ads"}, 1}}));
  EXPECT_EQ(RealTime(q), (Counts{{{kDay + 9 * kH, "seo"}, 1}}));
}

// Any order, any repetition, any batching: the model's counts.
TEST_P(ChannelStoreTest, CountsMatchTheModelWhateverTheOrderAndRepeats) {
  const bool slow = GetParam().name != "rocksdb";
  const bool ok = rc::check("counts match the model", [&] {
    std::string p = FreshProduct();
    const int users = *rc::gen::inRange(1, slow ? 8 : 20);
    std::vector<Sighting> all;
    for (int u = 0; u < users; ++u) {
      const std::string uid = "u" + std::to_string(u), dev = "d" + std::to_string(u);
      const int kind = *rc::gen::inRange(0, 3);  // 0 uid only, 1 device then login, 2 device never logs in
      const int n = *rc::gen::inRange(1, 5);
      for (int i = 0; i < n; ++i) {
        TimestampMs ts = kDay + *rc::gen::inRange<TimestampMs>(0, 30) * 20 * 60'000;  // 20-minute steps: hour edges
        std::string channel = *rc::gen::element<std::string>("ads", "seo", "mail");
        if (kind == 0) all.push_back(S(uid, "", ts, channel, p));
        else if (kind == 2) all.push_back(S("", dev, ts, channel, p));
        else all.push_back(*rc::gen::inRange(0, 3) == 0 ? S("", dev, ts, channel, p)
                                                        : S(uid, *rc::gen::arbitrary<bool>() ? dev : "", ts, channel, p));
      }
      if (kind == 1) all.push_back(S(uid, dev, kDay + 13 * kH, "ads", p));  // it logs in at some point
    }
    std::vector<Sighting> sent = all;
    const int dups = *rc::gen::inRange(0, 4);
    for (int i = 0; i < dups; ++i) sent.push_back(all[*rc::gen::inRange<size_t>(0, all.size())]);
    std::mt19937 rng(*rc::gen::arbitrary<uint32_t>());
    std::shuffle(sent.begin(), sent.end(), rng);
    const size_t batch = *rc::gen::inRange<size_t>(1, 6);
    for (size_t at = 0; at < sent.size(); at += batch) {
      std::vector<Sighting> part(sent.begin() + at, sent.begin() + std::min(sent.size(), at + batch));
      RC_ASSERT(ch_->Observe(part).ok());
    }
    RC_ASSERT(RealTime(p) == Model(all));
  });
  EXPECT_TRUE(ok);
}

TEST_P(ChannelStoreTest, CalibrationReplacesTheWholeDay) {
  std::string p = FreshProduct();
  Observe({S("a", "", kDay + kH, "ads", p)});
  std::vector<ChannelCount> first = {{kDay + kH, "ads", 3}, {kDay + 5 * kH, "seo", 2}};
  ASSERT_TRUE(ch_->WriteCalibration(p, kDay, first, R"({"run":1})").ok());
  std::vector<ChannelCount> second = {{kDay + kH, "ads", 4}};  // seo's hour is zero now
  ASSERT_TRUE(ch_->WriteCalibration(p, kDay, second, R"({"run":2})").ok());
  auto f = ch_->Read(p, kDay, kDay + kDayMs);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  ASSERT_EQ(f->calibrated.size(), 1u);
  EXPECT_EQ(f->calibrated[0].hour, kDay + kH);
  EXPECT_EQ(f->calibrated[0].channel, "ads");
  EXPECT_EQ(f->calibrated[0].count, 4);
  ASSERT_EQ(f->days.size(), 1u);
  EXPECT_EQ(f->days[0].day, kDay);
  EXPECT_EQ(f->days[0].summary, R"({"run":2})");
  ASSERT_EQ(f->realtime.size(), 1u);  // real time is kept beside
  EXPECT_EQ(f->realtime[0].count, 1);
  // A range starting mid-day still sees the day's calibration.
  auto g = ch_->Read(p, kDay + 3 * kH, kDay + 4 * kH);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->days.size(), 1u);
  EXPECT_TRUE(g->calibrated.empty());
}

// A product or a uid with braces stays in one Redis Cluster slot and counts like any other.
TEST_P(ChannelStoreTest, ProductsAndIdsWithBracesCount) {
  std::string p = "}" + FreshProduct() + "{";
  Observe({S("}u", "", kDay, "ads", p), S("{v}", "}d", kDay + kH, "seo", p)});
  EXPECT_EQ(RealTime(p), (Counts{{{kDay, "ads"}, 1}, {{kDay + kH, "seo"}, 1}}));
  auto recs = ch_->Lookup(p, std::vector<std::string>{"u}u", "d}d"});
  ASSERT_TRUE(recs.ok()) << recs.status().ToString();
  ASSERT_TRUE((*recs)[0] && (*recs)[1]);
  EXPECT_EQ((*recs)[1]->owner, "{v}");
}

INSTANTIATE_TEST_SUITE_P(Backends, ChannelStoreTest, ::testing::Values(kRocksDb, kRedis, kRedisCluster),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace portrait
