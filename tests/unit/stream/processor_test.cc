// The processor with in-memory fakes of the log and the store (fakes.h): per-user order,
// exactly-once profile state and outbox publishing across a crash on either side of the
// batch write, and erasures applied in log order to every stage and every linked id.
#include "stream/processor.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <thread>

#include "core/erasure_list.h"
#include "core/event.h"
#include "delivery/retry.h"
#include "fusion/records.h"
#include "temp_dir.h"
#include "unit/stream/fakes.h"

namespace portrait {
namespace {

using testing_util::MemoryLog;
using testing_util::MemoryStore;

// What the test stages saw, shared by every worker's stage and across "restarts".
struct Journal {
  std::mutex mu;
  std::map<std::string, std::vector<TimestampMs>> seen;  // per user: event times in the order handed over
  std::vector<std::string> calls;                        // "rec:<uid>:<ts>", "erase:<ids>"
  std::map<std::string, int> published;                  // event id -> times BeforeWrite published it
  std::set<std::string> delivered;                       // the outbox: ids, once each
  std::map<std::string, std::set<std::string>> links;    // uid -> device ids seen with it
  std::set<std::string> erased;
};

// A feature in miniature: counts each event into the number tag "n" of its user (an
// Action), publishes the event ids of a batch through an outbox before the write (like
// decisions), links devices to users, and erases what it keeps.
class CountingStage : public Stage {
 public:
  CountingStage(Journal* j, ProfileStore* store) : j_(j), store_(store) {}
  std::string_view name() const override { return "counting"; }
  std::span<const Namespace> namespaces() const override {
    static constexpr Namespace kNs[] = {{"links", "devices per user"}};
    return kNs;
  }
  void OnRecord(const Record& r, Batch& batch) override {
    if (!r.event) return;
    const Event& e = *r.event;
    std::string key(e.PartitionKey());
    Action a;
    a.uid = key;
    a.tag = "n";
    a.op = OpCode::kNumberIncr;
    a.number = 1;
    a.ts = e.ts;
    batch.actions.push_back(std::move(a));
    pending_.push_back(e.id);
    std::lock_guard lk(j_->mu);
    j_->seen[key].push_back(e.ts);
    j_->calls.push_back("rec:" + key + ":" + std::to_string(e.ts));
    if (!e.uid.empty() && !e.device_id.empty()) j_->links[e.uid].insert(e.device_id);
  }
  Status BeforeWrite(Batch&) override {
    std::lock_guard lk(j_->mu);
    for (const std::string& id : pending_) {
      ++j_->published[id];
      j_->delivered.insert(id);
    }
    pending_.clear();
    return Status::Ok();
  }
  Status LinkedIds(std::string_view uid, std::vector<std::string>* ids) override {
    std::lock_guard lk(j_->mu);
    for (const std::string& d : j_->links[std::string(uid)]) ids->push_back(d);
    return Status::Ok();
  }
  Status Erase(const Erasure& e) override {
    for (const std::string& id : e.ids) RETURN_IF_ERROR(store_->DeleteProfile(id, {}));
    std::lock_guard lk(j_->mu);
    std::string joined;
    for (const std::string& id : e.ids) {
      joined += (joined.empty() ? "" : ",") + id;
      j_->links.erase(id);
      j_->erased.insert(id);
    }
    j_->calls.push_back("erase:" + joined);
    return Status::Ok();
  }
  Result<std::vector<std::string>> Holding(std::string_view id) override {
    std::lock_guard lk(j_->mu);
    if (j_->links.count(std::string(id))) return std::vector<std::string>{"links"};
    return std::vector<std::string>();
  }

 private:
  Journal* j_;
  ProfileStore* store_;
  std::vector<std::string> pending_;
};

class ProcessorTest : public ::testing::Test {
 protected:
  ProcessorTest() {
    TagConfig n;
    n.name = "n";
    n.type = TagType::kNumber;
    tags_.Add(n);
  }

  static std::string EventRecord(const std::string& uid, const std::string& device, TimestampMs ts) {
    Event e;
    e.uid = uid;
    e.device_id = device;
    e.type = "click";
    e.ts = ts;
    e.id = (uid.empty() ? device : uid) + "#" + std::to_string(ts);
    std::string out;
    EncodeEvent(e, &out);
    return out;
  }

  void Append(MemoryLog& log, int partition, const std::string& payload) {
    LogEntry e{PartitionId(partition), payload};
    ASSERT_TRUE(log.Append({&e, 1}).ok());
  }

  std::unique_ptr<Processor> Make(MemoryLog& log, MemoryStore& store, int workers, size_t batch) {
    ProcessorConfig pc;
    pc.workers = workers;
    pc.batch_max_events = batch;
    std::vector<StageFactory> stages = {
        [this, &store](const StageContext&) { return std::make_unique<CountingStage>(&journal_, &store); }};
    return std::make_unique<Processor>(pc, &tags_, &log, &store, &metrics_, std::move(stages));
  }

  static void WaitCaughtUp(Processor& p) {
    for (int i = 0; i < 2000 && !p.CaughtUp(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ASSERT_TRUE(p.CaughtUp());
  }

  // 3000 events of 10 users; the store crashes at its 4th write (before or after
  // committing it); the processor is stopped, the store revived, and a new processor
  // (a restart) runs to the end.
  void CrashAndRestart(bool after_commit) {
    MemoryLog log(2);
    MemoryStore store(&tags_);
    for (int i = 0; i < 3000; ++i) Append(log, i % 2, EventRecord("u" + std::to_string(i % 10), "", 1000 + i));
    store.CrashAtWrite(3, after_commit);
    auto a = Make(log, store, 1, 20);
    ASSERT_TRUE(a->Start().ok());
    for (int i = 0; i < 2000 && !store.down(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    ASSERT_TRUE(store.down());
    a->Stop();
    store.Revive();
    auto b = Make(log, store, 1, 20);
    ASSERT_TRUE(b->Start().ok());
    WaitCaughtUp(*b);
    b->Stop();
    for (int u = 0; u < 10; ++u) EXPECT_EQ(store.Number("u" + std::to_string(u), "n"), 300) << u;
    EXPECT_EQ(journal_.delivered.size(), 3000u);
  }

  TagRegistry tags_;
  MetricsRegistry metrics_;
  Journal journal_;
};

TEST_F(ProcessorTest, EachUsersRecordsReachTheStagesInLogOrderAndApplyOnce) {
  MemoryLog log(4);
  MemoryStore store(&tags_);
  auto p = Make(log, store, 2, 64);
  ASSERT_TRUE(p->Start().ok());
  std::map<std::string, int> sent;
  // Users spread over the partitions; appended while the processor runs.
  for (int i = 0; i < 2000; ++i) {
    std::string uid = "u" + std::to_string(i % 37);
    Append(log, (i % 37) % 4, EventRecord(uid, "", 1000 + i));
    ++sent[uid];
  }
  WaitCaughtUp(*p);
  p->Stop();
  for (const auto& [uid, n] : sent) {
    EXPECT_EQ(store.Number(uid, "n"), n) << uid;
    const auto& ts = journal_.seen[uid];
    ASSERT_EQ(ts.size(), static_cast<size_t>(n)) << uid;
    for (size_t k = 1; k < ts.size(); ++k) EXPECT_LT(ts[k - 1], ts[k]) << uid << " out of order";
  }
}

// A crash after the batch's write committed (before the processor learned it): the
// restart resumes after that batch, so nothing is applied or published twice, and
// nothing is lost.
TEST_F(ProcessorTest, CrashAfterTheWriteCommittedNeitherLosesNorDoubles) {
  CrashAndRestart(/*after_commit=*/true);
  for (const auto& [id, n] : journal_.published) EXPECT_EQ(n, 1) << id << " published again after the restart";
}

// A crash before the batch's write: the restart processes that batch again, so its
// outbox publishes repeat (the outbox keeps each id once) while the profile state, which
// only the write changes, counts each event once.
TEST_F(ProcessorTest, CrashBeforeTheWriteReplaysTheBatchExactlyOnceInTheStore) {
  CrashAndRestart(/*after_commit=*/false);
  int repeated = 0;
  for (const auto& [id, n] : journal_.published) repeated += n > 1;
  EXPECT_GT(repeated, 0) << "the batch that was not written must be processed again";
}

// An erasure is applied at its place in the log: what came before is gone, what comes
// after stays; every stage erases the user and the devices linked to it, and the ids go
// on the erasure list. A replay from offset 0 erases again at the same point.
TEST_F(ProcessorTest, ErasureAppliesInLogOrderToEveryLinkedIdAndAgainOnReplay) {
  testing_util::TempDir dir;
  auto list = ErasureList::Open(dir.path() + "/erasures.list");
  ASSERT_TRUE(list.ok());
  MemoryLog log(1);
  MemoryStore store(&tags_);
  for (int i = 0; i < 4; ++i) Append(log, 0, EventRecord("", "d1", 100 + i));  // before login
  Append(log, 0, EventRecord("u", "d1", 200));                                // login: d1 is u's
  for (int i = 0; i < 5; ++i) Append(log, 0, EventRecord("u", "", 300 + i));
  Append(log, 0, EventRecord("other", "", 300));
  std::string erase;
  EncodeDeleteRecord("u", 5000, &erase);
  Append(log, 0, erase);
  for (int i = 0; i < 3; ++i) Append(log, 0, EventRecord("u", "", 6000 + i));

  for (int run = 0; run < 2; ++run) {
    if (run == 1) {  // `portrait replay --from-offset 0`: derived state erased, the log again
      ASSERT_TRUE(store.EraseAll().ok());
      journal_.calls.clear();
    }
    auto p = Make(log, store, 1, 4);
    p->SetErasureList(list->get());
    ASSERT_TRUE(p->Start().ok());
    WaitCaughtUp(*p);
    p->Stop();
    EXPECT_EQ(store.Number("u", "n"), 3) << "run " << run << ": only the events after the erasure";
    EXPECT_EQ(store.Number("d1", "n"), 0) << "run " << run << ": the linked device's profile is erased";
    EXPECT_EQ(store.Number("other", "n"), 1);
    // On the replay the listed ids' earlier records are skipped, so the link is not seen
    // again; d1 is on the list already.
    auto erase_at = std::find(journal_.calls.begin(), journal_.calls.end(), run == 0 ? "erase:u,d1" : "erase:u");
    ASSERT_NE(erase_at, journal_.calls.end()) << "run " << run;
    auto last_before = std::find(journal_.calls.begin(), journal_.calls.end(), "rec:other:300");
    auto first_after = std::find(journal_.calls.begin(), journal_.calls.end(), "rec:u:6000");
    EXPECT_LT(last_before, erase_at);
    EXPECT_LT(erase_at, first_after);
    if (run == 1) {
      EXPECT_EQ(std::find(journal_.calls.begin(), journal_.calls.end(), "rec:d1:100"), journal_.calls.end())
          << "an erased device's records from before the erasure are not handed to the stages";
    }
    CountingStage probe(&journal_, &store);
    EXPECT_TRUE(probe.Holding("u")->empty());
    EXPECT_EQ((*list)->ErasedAt("u"), 5000);
    EXPECT_EQ((*list)->ErasedAt("d1"), 5000);
    EXPECT_FALSE((*list)->ErasedAt("other"));
  }
  EXPECT_EQ((*list)->Entries().size(), 2u) << "a replayed erasure is listed once";
}

// A linked device's events sit in another partition, read after the user's erasure in
// the same batch: they were logged before the erasure, so they do not bring its profile back.
TEST_F(ProcessorTest, ALinkedDevicesEarlierRecordsInAnotherPartitionStayErased) {
  testing_util::TempDir dir;
  auto list = ErasureList::Open(dir.path() + "/erasures.list");
  ASSERT_TRUE(list.ok());
  MemoryLog log(2);
  MemoryStore store(&tags_);
  Append(log, 0, EventRecord("u", "d1", 200));
  std::string erase;
  EncodeDeleteRecord("u", 5000, &erase);
  Append(log, 0, erase);
  for (int i = 0; i < 4; ++i) Append(log, 1, EventRecord("", "d1", 100 + i));  // d1 before login
  Append(log, 1, EventRecord("", "d1", 7000));                                // d1 after the erasure
  auto p = Make(log, store, 1, 1000);
  p->SetErasureList(list->get());
  ASSERT_TRUE(p->Start().ok());
  WaitCaughtUp(*p);
  p->Stop();
  EXPECT_EQ(store.Number("u", "n"), 0);
  EXPECT_EQ(store.Number("d1", "n"), 1) << "only the device's event from after the erasure";
}


// The quarantine: a store that refuses one user's writes for good (as Redis answers
// WRONGTYPE) must not stop that user's partition.
class QuarantineTest : public ProcessorTest {
 protected:
  // 600 events of 8 users over 4 partitions, and every 10th an event of "bad", whose
  // writes the store refuses.
  void SendMixed(MemoryLog& log) {
    for (int i = 0; i < 600; ++i) {
      std::string uid = "u" + std::to_string(i % 8);
      Append(log, PartitionFor(uid, 4).value, EventRecord(uid, "", 1000 + i));
      ++sent_[uid];
      if (i % 10 == 5) {
        Append(log, PartitionFor("bad", 4).value, EventRecord("bad", "", 1000 + i));
        ++sent_["bad"];
      }
    }
  }
  std::vector<RetryItem> DeadItems(MemoryLog& dead) {
    std::vector<RetryItem> out;
    auto reader = dead.OpenReader(PartitionId(0), Offset(0));
    std::vector<LogRecord> recs;
    EXPECT_TRUE((*reader)->Read(1 << 30, &recs).ok());
    for (const LogRecord& r : recs) {
      RetryItem item;
      EXPECT_TRUE(DecodeRetryItem(r.payload, &item).ok());
      out.push_back(item);
    }
    return out;
  }
  std::map<std::string, int> sent_;
};

TEST_F(QuarantineTest, AWriteThatFailsForGoodParksOneUserAndEveryOtherUserFlowsOn) {
  testing_util::TempDir dir;
  MemoryLog log(4), dead(1);
  MemoryStore store(&tags_);
  store.Poison("bad");
  auto q = Quarantine::Open(dir.path() + "/quarantine.journal", &dead, &metrics_);
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  SendMixed(log);
  auto p = Make(log, store, 2, 64);
  p->SetQuarantine(q->get());
  ASSERT_TRUE(p->Start().ok());
  WaitCaughtUp(*p);
  p->Stop();
  for (int u = 0; u < 8; ++u) EXPECT_EQ(store.Number("u" + std::to_string(u), "n"), sent_["u" + std::to_string(u)]) << u;
  EXPECT_EQ(store.Number("bad", "n"), 0);
  EXPECT_EQ((*q)->parked_records(), static_cast<size_t>(sent_["bad"]));
  std::vector<RetryItem> items = DeadItems(dead);
  ASSERT_EQ(items.size(), static_cast<size_t>(sent_["bad"])) << "each of the user's records once in the dead letters";
  EXPECT_NE(items[0].error.find("failed for good"), std::string::npos) << items[0].error;
  EXPECT_NE(items[0].error.find("WRONGTYPE"), std::string::npos) << items[0].error;
  EXPECT_NE(items[0].error.find("POST /v1/dlq:replay?sink=quarantine"), std::string::npos) << items[0].error;
  EXPECT_NE(items[1].error.find("waits behind"), std::string::npos) << items[1].error;
  TimestampMs last = 0;
  for (const RetryItem& item : items) {
    EXPECT_EQ(item.sink, "quarantine");
    EXPECT_EQ(item.key, "bad");
    ReleaseRecord rr;
    ASSERT_TRUE(DecodeReleaseRecord(item.payload, &rr).ok());
    Event e;
    ASSERT_TRUE(DecodeEvent(rr.record, &e).ok());
    EXPECT_GT(e.ts, last) << "the dead letters hold the user's records in log order";
    last = e.ts;
  }
  EXPECT_NE(metrics_.RenderPrometheus().find("portrait_quarantine_records_total " + std::to_string(sent_["bad"])),
            std::string::npos);
}

// After the cause is fixed, a replay of the dead letters sends the records back; they
// apply once each and in order, also across a crash in the middle of the release, and a
// second replay changes nothing.
TEST_F(QuarantineTest, AReleaseAppliesTheParkedRecordsOnceInOrderAcrossACrash) {
  testing_util::TempDir dir;
  const std::string journal = dir.path() + "/quarantine.journal";
  MemoryLog log(4), dead(1);
  MemoryStore store(&tags_);
  store.Poison("bad");
  SendMixed(log);
  {
    auto q = Quarantine::Open(journal, &dead, &metrics_);
    auto p = Make(log, store, 2, 64);
    p->SetQuarantine(q->get());
    ASSERT_TRUE(p->Start().ok());
    WaitCaughtUp(*p);
    p->Stop();
  }
  store.Cure("bad");
  std::vector<RetryItem> items = DeadItems(dead);
  ASSERT_EQ(items.size(), static_cast<size_t>(sent_["bad"]));
  LogSink back(Quarantine::kSink, &log);  // what a dead-letter replay delivers to
  // The first release's write commits, then the store "crashes" (write 0 checkpoints what
  // precedes the release record).
  store.CrashAtWrite(1, /*after_commit=*/true);
  {
    auto q = Quarantine::Open(journal, &dead, &metrics_);
    auto p = Make(log, store, 2, 64);
    p->SetQuarantine(q->get());
    ASSERT_TRUE(p->Start().ok());
    EXPECT_EQ((*q)->parked_records(), items.size()) << "the journal keeps what is parked across a restart";
    for (const RetryItem& item : items) ASSERT_TRUE(back.Deliver(item.key, item.payload).ok());
    for (int i = 0; i < 2000 && !store.down(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    ASSERT_TRUE(store.down());
    p->Stop();
  }
  store.Revive();
  journal_.seen["bad"].clear();
  auto q = Quarantine::Open(journal, &dead, &metrics_);
  auto p = Make(log, store, 2, 64);
  p->SetQuarantine(q->get());
  ASSERT_TRUE(p->Start().ok());
  WaitCaughtUp(*p);
  EXPECT_EQ(store.Number("bad", "n"), static_cast<double>(items.size())) << "each released record applied once";
  EXPECT_EQ((*q)->parked_records(), 0u);
  const auto& ts = journal_.seen["bad"];
  EXPECT_EQ(ts.size(), items.size() - 1) << "the release committed before the crash is not applied again";
  for (size_t k = 1; k < ts.size(); ++k) EXPECT_LT(ts[k - 1], ts[k]) << "released out of order";
  // New events of the user flow again; a second replay of the same items changes nothing.
  Append(log, PartitionFor("bad", 4).value, EventRecord("bad", "", 90'000));
  for (const RetryItem& item : items) ASSERT_TRUE(back.Deliver(item.key, item.payload).ok());
  WaitCaughtUp(*p);
  p->Stop();
  EXPECT_EQ(store.Number("bad", "n"), static_cast<double>(items.size() + 1));
  for (int u = 0; u < 8; ++u) EXPECT_EQ(store.Number("u" + std::to_string(u), "n"), sent_["u" + std::to_string(u)]) << u;
}

// Log retention trims up to DurableCheckpoints. A batch that commits while the store
// flushes is only in memory: the offsets given must not count it (reading the checkpoints
// after the flush would, and a crash would then lose events the log no longer has).
TEST_F(ProcessorTest, RetentionTrimsOnlyUpToWhatTheStoreFlushed) {
  MemoryStore store(&tags_);
  std::vector<Checkpoint> first = {{"processor", PartitionId(0), Offset(10)}, {"processor", PartitionId(1), Offset(4)}};
  ASSERT_TRUE(store.Apply({}, first).ok());
  store.OnFlush([&] {
    std::vector<Checkpoint> later = {{"processor", PartitionId(0), Offset(20)}};
    ASSERT_TRUE(store.Apply({}, later).ok());
  });
  auto durable = DurableCheckpoints(store, "processor", 3);
  ASSERT_TRUE(durable.ok()) << durable.status().ToString();
  ASSERT_EQ(durable->size(), 3u);
  for (int p = 0; p < 3; ++p) {
    Offset flushed = store.DurableCheckpoint("processor", PartitionId(p)).value_or(Offset(0));
    EXPECT_LE((*durable)[p].value, flushed.value) << "partition " << p << ": trimming past what the store flushed";
  }
  EXPECT_EQ((*durable)[0], Offset(10));
  EXPECT_EQ((*durable)[2], Offset(0)) << "no checkpoint: nothing may go";
}

}  // namespace
}  // namespace portrait
