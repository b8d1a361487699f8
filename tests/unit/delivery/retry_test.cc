// Retry and dead letters on the real embedded log: a sink that fails N times is retried on
// the backoff schedule and delivered once; one that always fails ends in the dead-letter
// topic with its error; other keys are not held up behind it; dead items replay once; and
// queued items survive a restart.
#include "delivery/retry.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <map>

#include "log/embedded/segment_log.h"
#include "temp_dir.h"

namespace portrait {
namespace {

using Clock = std::chrono::steady_clock;

// Fails each key's first `failures[key]` deliveries (all of them if `always`), then
// records the delivery and when it happened.
class TestSink : public Sink {
 public:
  explicit TestSink(std::string name) : name_(std::move(name)) {}
  const std::string& name() const override { return name_; }
  Status Deliver(std::string_view key, std::string_view payload) override {
    std::lock_guard lk(mu_);
    std::string k(key);
    ++tries_[k];
    if (always_fail_ || tries_[k] <= fail_first_[k]) return Status::Unavailable("HTTP 503 from hook for " + k);
    delivered_[k].push_back({std::string(payload), Clock::now()});
    cv_.notify_all();
    return Status::Ok();
  }
  void FailFirst(const std::string& key, int n) {
    std::lock_guard lk(mu_);
    fail_first_[key] = n;
  }
  void AlwaysFail(bool v) {
    std::lock_guard lk(mu_);
    always_fail_ = v;
  }
  // Waits up to `limit` for `key` to be delivered; returns when it was (or nullopt).
  std::optional<Clock::time_point> WaitDelivered(const std::string& key, std::chrono::milliseconds limit) {
    std::unique_lock lk(mu_);
    if (!cv_.wait_for(lk, limit, [&] { return !delivered_[key].empty(); })) return std::nullopt;
    return delivered_[key][0].second;
  }
  size_t Deliveries(const std::string& key) {
    std::lock_guard lk(mu_);
    return delivered_[key].size();
  }
  int Tries(const std::string& key) {
    std::lock_guard lk(mu_);
    return tries_[key];
  }

 private:
  std::string name_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool always_fail_ = false;
  std::map<std::string, int> fail_first_, tries_;
  std::map<std::string, std::vector<std::pair<std::string, Clock::time_point>>> delivered_;
};

class RetryQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.initial_backoff_ms = 50;
    config_.multiplier = 20;  // 50 ms, 1 s, then 3 s (max)
    config_.max_backoff_ms = 3000;
    config_.attempts = 4;
    Open();
  }
  void Open() {
    SegmentLogOptions o;
    o.dir = dir_.path() + "/retry";
    o.partitions = RetryQueue::Steps(config_);
    auto retry = OpenSegmentLog(o, &metrics_);
    ASSERT_TRUE(retry.ok()) << retry.status().ToString();
    o.dir = dir_.path() + "/dead";
    o.partitions = 1;
    auto dead = OpenSegmentLog(o, &metrics_);
    ASSERT_TRUE(dead.ok()) << dead.status().ToString();
    retry_ = std::move(retry).value();
    dead_ = std::move(dead).value();
    queue_ = std::make_unique<RetryQueue>(config_, retry_.get(), dead_.get(), &metrics_);
    queue_->SetReplayMarks(dir_.path() + "/replayed.offsets");
    queue_->AddSink(&hook_);
    ASSERT_TRUE(queue_->Start().ok());
  }
  void Close() {
    queue_.reset();
    retry_.reset();
    dead_.reset();
  }
  std::vector<std::pair<Offset, RetryItem>> Dead() {
    auto d = ReadLatestDead(*dead_, 100);
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    return d.ok() ? *d : std::vector<std::pair<Offset, RetryItem>>{};
  }
  bool WaitDead(size_t n, std::chrono::milliseconds limit) {
    auto deadline = Clock::now() + limit;
    while (Dead().size() < n && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return Dead().size() >= n;
  }

  testing_util::TempDir dir_;
  MetricsRegistry metrics_;
  RetryConfig config_;
  TestSink hook_{"webhook"};
  std::unique_ptr<Log> retry_, dead_;
  std::unique_ptr<RetryQueue> queue_;
};

TEST_F(RetryQueueTest, ASinkThatFailsTwiceIsDeliveredOnceOnTheBackoffSchedule) {
  hook_.FailFirst("u1", 2);
  auto start = Clock::now();
  ASSERT_TRUE(queue_->Deliver(hook_, "u1", "coupon-1").ok()) << "queued, not an error for the caller";
  auto at = hook_.WaitDelivered("u1", std::chrono::seconds(10));
  ASSERT_TRUE(at.has_value());
  EXPECT_GE(*at - start, std::chrono::milliseconds(1040)) << "waited 50 ms, then 1 s (due times are whole ms)";
  EXPECT_EQ(hook_.Tries("u1"), 3);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(hook_.Deliveries("u1"), 1u);
  EXPECT_TRUE(Dead().empty());
}

TEST_F(RetryQueueTest, AlwaysFailingEndsInTheDeadLetterTopicWithItsErrorAndOthersAreNotHeldUp) {
  hook_.FailFirst("bad", 1000);
  ASSERT_TRUE(queue_->Deliver(hook_, "bad", "coupon-bad").ok());
  // While "bad" waits out its longer steps, another key failing once is retried after
  // its own 50 ms, not behind "bad".
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  hook_.FailFirst("good", 1);
  auto start = Clock::now();
  ASSERT_TRUE(queue_->Deliver(hook_, "good", "coupon-good").ok());
  auto at = hook_.WaitDelivered("good", std::chrono::seconds(5));
  ASSERT_TRUE(at.has_value());
  EXPECT_LT(*at - start, std::chrono::milliseconds(900)) << "held up behind the failing key";
  EXPECT_TRUE(Dead().empty()) << "\"bad\" is still within its attempts";

  ASSERT_TRUE(WaitDead(1, std::chrono::seconds(10)));
  auto dead = Dead();
  EXPECT_EQ(dead[0].second.sink, "webhook");
  EXPECT_EQ(dead[0].second.key, "bad");
  EXPECT_EQ(dead[0].second.payload, "coupon-bad");
  EXPECT_EQ(dead[0].second.failures, 4);
  EXPECT_EQ(dead[0].second.error, "HTTP 503 from hook for bad");
  EXPECT_EQ(hook_.Tries("bad"), 4);
  EXPECT_EQ(hook_.Deliveries("bad"), 0u);

  // Replayed once the hook works again; a second replay sends nothing.
  hook_.FailFirst("bad", 0);
  auto n = queue_->ReplayDead("");
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 1u);
  ASSERT_TRUE(hook_.WaitDelivered("bad", std::chrono::seconds(5)).has_value());
  EXPECT_EQ(*queue_->ReplayDead(""), 0u);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(hook_.Deliveries("bad"), 1u);
}

// Each dead item is replayed at most once, whatever the filters and across a restart: a
// replay filtered by sink after an unfiltered one (or the other way round) sends nothing.
TEST_F(RetryQueueTest, EachDeadItemIsReplayedOnceWhateverTheFilter) {
  hook_.FailFirst("a", 1000);
  hook_.FailFirst("b", 1000);
  ASSERT_TRUE(queue_->Deliver(hook_, "a", "pa").ok());
  ASSERT_TRUE(queue_->Deliver(hook_, "b", "pb").ok());
  ASSERT_TRUE(WaitDead(2, std::chrono::seconds(10)));
  auto filtered = queue_->ReplayDead("webhook");  // both are the webhook's
  ASSERT_TRUE(filtered.ok()) << filtered.status().ToString();
  EXPECT_EQ(*filtered, 2u);
  EXPECT_EQ(*queue_->ReplayDead(""), 0u) << "an unfiltered replay after a filtered one";
  EXPECT_EQ(*queue_->ReplayDead("other-sink"), 0u);
  Close();
  Open();
  EXPECT_EQ(*queue_->ReplayDead("webhook"), 0u) << "after a restart";
  EXPECT_EQ(*queue_->ReplayDead(""), 0u);
}

TEST_F(RetryQueueTest, QueuedItemsSurviveARestartAndAreDeliveredOnce) {
  hook_.FailFirst("u7", 2);
  ASSERT_TRUE(queue_->Deliver(hook_, "u7", "p").ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // first retry failed: now waiting 1 s
  EXPECT_EQ(hook_.Tries("u7"), 2);
  Close();
  Open();
  ASSERT_TRUE(hook_.WaitDelivered("u7", std::chrono::seconds(10)).has_value());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(hook_.Deliveries("u7"), 1u);
  EXPECT_EQ(hook_.Tries("u7"), 3);
}

TEST_F(RetryQueueTest, AnItemForAnUnknownSinkEndsDeadWithAReason) {
  TestSink other("gone");
  other.AlwaysFail(true);
  ASSERT_TRUE(queue_->Deliver(other, "u9", "x").ok());
  ASSERT_TRUE(WaitDead(1, std::chrono::seconds(10)));
  EXPECT_EQ(Dead()[0].second.error, "no sink named \"gone\" is configured");
}

}  // namespace
}  // namespace portrait
