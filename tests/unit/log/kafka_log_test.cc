// The Kafka log against librdkafka's mock cluster (3 brokers, the real protocol): appends
// come back in order with their offsets, the topic is created with portrait's partition
// count (and a mismatch is refused), and a consumer group spreads partitions over members,
// moves them when one leaves, and starts a partition where the start rule says.
#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "kafka_util.h"
#include "log/log.h"

namespace portrait {
namespace {

using testing_util::KafkaMock;

class KafkaLogTest : public ::testing::Test {
 protected:
  // The mock has no CreateTopics (portrait creates missing topics on real brokers), so
  // the topic is made up front, with 4 partitions.
  void SetUp() override { ASSERT_TRUE(mock_.Start(3, {"t.events:4"})); }

  Result<std::unique_ptr<Log>> Open(const std::string& topic, int partitions) {
    LogConfig c;
    c.backend = "kafka";
    c.kafka.brokers = mock_.bootstrap();
    c.kafka.topic_prefix = "t.";
    c.kafka.group = "test";
    c.kafka.session_timeout_ms = 4000;
    return MakeLog(c, "", topic, partitions, &metrics_);
  }

  static std::vector<std::string> ReadAll(Log& log, PartitionId p, Offset from = Offset(0)) {
    auto reader = log.OpenReader(p, from);
    EXPECT_TRUE(reader.ok()) << reader.status().ToString();
    std::vector<std::string> out;
    std::vector<LogRecord> recs;
    Offset end = log.EndOffset(p);
    while ((*reader)->position() < end) {
      Status st = (*reader)->Read(1 << 16, &recs);
      EXPECT_TRUE(st.ok()) << st.ToString();
      if (recs.empty()) break;
      for (const auto& r : recs) out.emplace_back(r.payload);
    }
    return out;
  }

  KafkaMock mock_;
  MetricsRegistry metrics_;
};

TEST_F(KafkaLogTest, AppendsAreReadBackInOrderWithTheirOffsets) {
  auto log = Open("events", 4);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  std::vector<std::string> payloads;
  std::vector<LogEntry> entries;
  for (int i = 0; i < 400; ++i) payloads.push_back("record-" + std::to_string(i));
  for (int i = 0; i < 400; ++i) entries.push_back({PartitionId(i % 4), payloads[i]});
  std::vector<Offset> offsets;
  ASSERT_TRUE((*log)->Append(entries, &offsets).ok());
  ASSERT_EQ(offsets.size(), 400u);
  for (int i = 0; i < 400; ++i) EXPECT_EQ(offsets[i].value, i / 4) << i;
  for (int p = 0; p < 4; ++p) {
    EXPECT_EQ((*log)->EndOffset(PartitionId(p)).value, 100);
    std::vector<std::string> got = ReadAll(**log, PartitionId(p));
    ASSERT_EQ(got.size(), 100u);
    for (int k = 0; k < 100; ++k) EXPECT_EQ(got[k], payloads[k * 4 + p]);
    // From the middle.
    std::vector<std::string> tail = ReadAll(**log, PartitionId(p), Offset(90));
    ASSERT_EQ(tail.size(), 10u);
    EXPECT_EQ(tail[0], payloads[90 * 4 + p]);
  }
  // Reopening sees the same topic and continues its offsets.
  (*log)->Close();
  log = Open("events", 4);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  std::string more = "more";
  LogEntry e{PartitionId(2), more};
  ASSERT_TRUE((*log)->Append({&e, 1}, &offsets).ok());
  EXPECT_EQ(offsets[0].value, 100);
}

TEST_F(KafkaLogTest, NamedConsumersOffsetsAreKeptInTheGroupForEveryProcess) {
  auto a = Open("events", 4);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  auto never = (*a)->CommittedOffset("archive", PartitionId(1));
  ASSERT_TRUE(never.ok()) << never.status().ToString();
  EXPECT_EQ(never->value, 0) << "never committed";
  ASSERT_TRUE((*a)->CommitOffset("archive", PartitionId(1), Offset(42)).ok());
  ASSERT_TRUE((*a)->CommitOffset("archive", PartitionId(3), Offset(7)).ok());
  ASSERT_TRUE((*a)->CommitOffset("other", PartitionId(1), Offset(5)).ok());
  // Another client (another process) of the same topic reads them back.
  auto b = Open("events", 4);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ((*b)->CommittedOffset("archive", PartitionId(1))->value, 42);
  EXPECT_EQ((*b)->CommittedOffset("archive", PartitionId(3))->value, 7);
  EXPECT_EQ((*b)->CommittedOffset("archive", PartitionId(0))->value, 0);
  EXPECT_EQ((*b)->CommittedOffset("other", PartitionId(1))->value, 5) << "each consumer its own";
  ASSERT_TRUE((*b)->CommitOffset("archive", PartitionId(1), Offset(50)).ok());
  EXPECT_EQ((*a)->CommittedOffset("archive", PartitionId(1))->value, 50);
}

TEST_F(KafkaLogTest, AnotherPartitionCountIsRefused) {
  auto other = Open("events", 8);
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.status().message().find("has 4 partitions but portrait needs 8"), std::string::npos)
      << other.status().ToString();
}

TEST_F(KafkaLogTest, GroupSpreadsPartitionsAndMovesThemWhenAMemberLeaves) {
  auto log = Open("events", 4);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  std::vector<std::string> payloads;
  std::vector<LogEntry> entries;
  for (int i = 0; i < 200; ++i) payloads.push_back(std::to_string(i));
  for (int i = 0; i < 200; ++i) entries.push_back({PartitionId(i % 4), payloads[i]});
  ASSERT_TRUE((*log)->Append(entries).ok());

  // As the processor does: a partition starts where the work was applied (here: noted by
  // the test after each Poll), and partition 3 at offset 40 as if a store had applied
  // up to there. Group commits are only the fallback.
  std::mutex mu;
  std::map<int, int64_t> applied = {{3, 40}};
  GroupStart start = [&](PartitionId p) -> std::optional<Offset> {
    std::lock_guard lk(mu);
    if (auto it = applied.find(p.value); it != applied.end()) return Offset(it->second);
    return std::nullopt;
  };
  auto a = (*log)->JoinGroup("g1", start);
  auto b = (*log)->JoinGroup("g1", start);
  ASSERT_TRUE(a.ok() && b.ok());
  std::map<int, std::set<int64_t>> seen_by_a, seen_by_b;
  std::vector<PartitionBatch> batches;
  auto drain = [&](GroupMember& m, std::map<int, std::set<int64_t>>& seen) {
    ASSERT_TRUE(m.Poll(1000, std::chrono::milliseconds(100), &batches).ok());
    for (const auto& batch : batches) {
      for (const auto& r : batch.records) EXPECT_TRUE(seen[batch.partition.value].insert(r.offset.value).second);
      std::vector<PartitionOffset> done = {{batch.partition, Offset(batch.records.back().offset.value + 1)}};
      {
        std::lock_guard lk(mu);
        applied[batch.partition.value] = done[0].next.value;
      }
      ASSERT_TRUE(m.Commit(done).ok());
    }
  };
  auto total = [](const std::map<int, std::set<int64_t>>& s) {
    size_t n = 0;
    for (const auto& [p, offs] : s) n += offs.size();
    return n;
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  // 50 records in each partition; partition 3 from offset 40 gives 10.
  while (total(seen_by_a) + total(seen_by_b) < 160 && std::chrono::steady_clock::now() < deadline) {
    drain(**a, seen_by_a);
    drain(**b, seen_by_b);
  }
  ASSERT_EQ(total(seen_by_a) + total(seen_by_b), 160u) << "every record once, partition 3 from offset 40";
  EXPECT_FALSE(seen_by_a.empty());
  EXPECT_FALSE(seen_by_b.empty()) << "both members hold partitions";
  for (const auto& [p, offs] : seen_by_a) EXPECT_FALSE(seen_by_b.count(p)) << "partition " << p << " read twice";
  EXPECT_EQ(*(seen_by_a.count(3) ? seen_by_a : seen_by_b)[3].begin(), 40);

  // b leaves; its partitions move to a, which resumes them from the committed offsets.
  std::vector<PartitionId> b_held = (*b)->Assignment();
  ASSERT_FALSE(b_held.empty());
  b->reset();
  std::vector<std::string> late_payloads;
  std::vector<LogEntry> late;
  for (int i = 0; i < 40; ++i) late_payloads.push_back("late" + std::to_string(i));
  for (int i = 0; i < 40; ++i) late.push_back({PartitionId(i % 4), late_payloads[i]});
  ASSERT_TRUE((*log)->Append(late).ok());
  size_t before = total(seen_by_a);
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  std::map<int, std::set<int64_t>> after;
  while (total(after) < 40 && std::chrono::steady_clock::now() < deadline) drain(**a, after);
  EXPECT_EQ(total(after), 40u) << "the new records of all 4 partitions, none of the committed ones again";
  EXPECT_EQ((*a)->Assignment().size(), 4u);
  EXPECT_EQ(total(seen_by_a), before);
}

}  // namespace
}  // namespace portrait
