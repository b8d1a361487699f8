// The processor's new-user tracking: the first-seen filter never hides an event that could
// change the registry, and the tracker over the real RocksDB store counts what the store
// rule counts while sending only what may change something.
#include "features/channels/channel_store.h"
#include "features/channels/new_users.h"

#include <gtest/gtest.h>

#include "store/rocksdb/rocksdb_store.h"
#include "temp_dir.h"
#include "features/channels/channels_config.h"

namespace portrait {
namespace {

constexpr TimestampMs kT = 1'790'000'000'000;  // 2026-09-21

TEST(FirstSeenFilterTest, KnowsOnlyLaterSeconds) {
  FirstSeenFilter f(1 << 20);
  EXPECT_FALSE(f.KnownBefore(42, kT));
  f.Lower(42, kT + 500);
  EXPECT_FALSE(f.KnownBefore(42, kT + 999)) << "same second: the tie-break may still change";
  EXPECT_TRUE(f.KnownBefore(42, kT + 1000));
  EXPECT_FALSE(f.KnownBefore(42, kT - 1));
  f.Lower(42, kT - 5000);
  EXPECT_TRUE(f.KnownBefore(42, kT - 3000));
  f.Lower(42, kT + 90'000);  // never raises
  EXPECT_TRUE(f.KnownBefore(42, kT - 3000));
  EXPECT_FALSE(f.KnownBefore(42, kT, /*owned=*/true));
  f.Lower(42, kT, /*owned=*/true);
  EXPECT_TRUE(f.KnownBefore(42, kT, true));
  f.Lower(42, kT);  // keeps the owner
  EXPECT_TRUE(f.KnownBefore(42, kT, true));
  EXPECT_EQ(f.size(), 1u);
}

TEST(FirstSeenFilterTest, GrowsWithoutLosingAndClearsAtItsLimit) {
  FirstSeenFilter f(64 << 20);
  for (uint64_t k = 1; k <= 200'000; ++k) f.Lower(k * 0x9E3779B97F4A7C15ull, kT);
  EXPECT_EQ(f.size(), 200'000u);
  for (uint64_t k = 1; k <= 200'000; ++k) ASSERT_TRUE(f.KnownBefore(k * 0x9E3779B97F4A7C15ull, kT + 1000)) << k;
  EXPECT_FALSE(f.KnownBefore(7, kT + 1000));
  EXPECT_LE(double(f.bytes()) / double(f.size()), 12 / 0.4);

  FirstSeenFilter small(12 * 2048);  // room for 2048 slots
  for (uint64_t k = 1; k <= 3000; ++k) small.Lower(k, kT);
  EXPECT_LE(small.bytes(), 12u * 2048);
  EXPECT_LT(small.size(), 3000u) << "started empty again past its limit";
  EXPECT_FALSE(small.KnownBefore(1, kT + 1000)) << "what it forgot is asked again, never assumed";
}

class NewUserTrackerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = OpenRocksDbStore({dir_.path() + "/db", 8}, &tags_, &metrics_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
    auto ch = OpenChannelStore(store_.get());
    ASSERT_TRUE(ch.ok() && *ch);
    channels_ = std::move(ch).value();
  }
  Event Ev(std::string uid, std::string device, TimestampMs ts, std::string channel) {
    Event e;
    e.uid = std::move(uid);
    e.device_id = std::move(device);
    e.ts = ts;
    e.channel = std::move(channel);
    e.type = "click";
    return e;
  }
  std::map<std::pair<TimestampMs, std::string>, int64_t> Counts() {
    auto f = channels_.get()->Read("default", kT - kDayMs, kT + kDayMs);
    EXPECT_TRUE(f.ok());
    std::map<std::pair<TimestampMs, std::string>, int64_t> c;
    for (const auto& x : f->realtime) c[{x.hour, x.channel}] += x.count;
    return c;
  }
  testing_util::TempDir dir_;
  MetricsRegistry metrics_;
  TagRegistry tags_;
  std::unique_ptr<ProfileStore> store_;
  std::unique_ptr<ChannelStore> channels_;
  ChannelsConfig cfg_;
};

TEST_F(NewUserTrackerTest, SendsWhatMayChangeAndCountsLikeTheStore) {
  NewUserTracker t(cfg_, channels_.get(), &metrics_);
  t.Add(Ev("u1", "", kT + 10'000, "ads"));
  t.Add(Ev("u1", "", kT + 20'000, "seo"));   // later, same batch: filtered
  t.Add(Ev("", "d1", kT + 30'000, "mail"));  // a device alone
  EXPECT_EQ(t.pending(), 2u);
  ASSERT_TRUE(t.Flush().ok());
  t.Add(Ev("u1", "", kT + 40'000, "seo"));      // known
  t.Add(Ev("u1", "", kT + 5'000 - kHourMs, "seo"));  // late and earlier: sent
  t.Add(Ev("u2", "d1", kT + 50'000, "seo"));   // the device logs in: sent
  t.Add(Ev("u2", "d1", kT + 60'000, "seo"));   // owned, known: filtered
  t.Add(Ev("", "d1", kT + 70'000, "mail"));    // the device alone again: filtered
  t.Add(Ev("", "", kT, "mail"));               // no id at all: nothing
  EXPECT_EQ(t.pending(), 2u);
  ASSERT_TRUE(t.Flush().ok());
  const TimestampMs h = kT - kT % kHourMs;
  EXPECT_EQ(Counts(), (std::map<std::pair<TimestampMs, std::string>, int64_t>{
                          {{h - kHourMs, "seo"}, 1},  // u1, moved by its late event
                          {{h, "mail"}, 1}}));        // u2 = d1, at the device's first event
  EXPECT_EQ(metrics_.GetCounter("portrait_channel_sightings_total", "", "result=\"filtered\"")->value(), 4u);
  EXPECT_EQ(metrics_.GetCounter("portrait_channel_sightings_total", "", "result=\"sent\"")->value(), 4u);
  // A fresh tracker (a restart) asks the store again and changes nothing.
  NewUserTracker again(cfg_, channels_.get(), &metrics_);
  again.Add(Ev("u1", "", kT + 40'000, "seo"));
  again.Add(Ev("u2", "d1", kT + 60'000, "seo"));
  ASSERT_TRUE(again.Flush().ok());
  EXPECT_EQ(Counts().size(), 2u);
}

}  // namespace
}  // namespace portrait
