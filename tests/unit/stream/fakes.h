// In-memory fakes of the Log and the ProfileStore for unit tests of the processor.
//
// MemoryLog keeps every partition's records in a vector (no durability, no retention).
// MemoryStore applies Actions with the fusion operators to profiles in a map and records
// checkpoints in the same "write"; it can be told to fail a write before or after
// committing it, and to stay down afterwards (a crash), which is what the processor's
// exactly-once tests need.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <optional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "fusion/fusion.h"
#include "log/log.h"
#include "store/profile_store.h"

namespace portrait::testing_util {

class MemoryLog : public Log {
 public:
  explicit MemoryLog(int partitions) : parts_(partitions) {}

  int partitions() const override { return static_cast<int>(parts_.size()); }

  Status Append(std::span<const LogEntry> entries, std::vector<Offset>* offsets = nullptr) override {
    {
      std::lock_guard lk(mu_);
      for (const LogEntry& e : entries) {
        auto& p = parts_[e.partition.value];
        if (offsets) offsets->push_back(Offset(static_cast<int64_t>(p.size())));
        p.emplace_back(e.payload);
      }
      ++epoch_;
    }
    cv_.notify_all();
    return Status::Ok();
  }

  class Reader : public LogReader {
   public:
    Reader(MemoryLog* log, PartitionId p, Offset from) : log_(log), p_(p), next_(from.value) {}
    Status Read(size_t max_bytes, std::vector<LogRecord>* out) override {
      out->clear();
      std::lock_guard lk(log_->mu_);
      const auto& recs = log_->parts_[p_.value];
      size_t bytes = 0;
      while (next_ < static_cast<int64_t>(recs.size()) && (out->empty() || bytes < max_bytes)) {
        const std::string& r = recs[static_cast<size_t>(next_)];
        out->push_back({Offset(next_), r});  // deque: stable references
        bytes += r.size();
        ++next_;
      }
      return Status::Ok();
    }
    Offset position() const override { return Offset(next_); }

   private:
    MemoryLog* log_;
    PartitionId p_;
    int64_t next_;
  };

  Result<std::unique_ptr<LogReader>> OpenReader(PartitionId p, Offset from) override {
    return std::unique_ptr<LogReader>(new Reader(this, p, from));
  }
  Offset EndOffset(PartitionId p) const override {
    std::lock_guard lk(mu_);
    return Offset(static_cast<int64_t>(parts_[p.value].size()));
  }
  Offset StartOffset(PartitionId) const override { return Offset(0); }
  Result<uint64_t> Trim(PartitionId, Offset, int64_t, uint64_t) override { return uint64_t{0}; }
  Status CommitOffset(std::string_view consumer, PartitionId p, Offset next) override {
    std::lock_guard lk(mu_);
    committed_[std::string(consumer) + "/" + std::to_string(p.value)] = next;
    return Status::Ok();
  }
  Result<Offset> CommittedOffset(std::string_view consumer, PartitionId p) override {
    std::lock_guard lk(mu_);
    auto it = committed_.find(std::string(consumer) + "/" + std::to_string(p.value));
    return it == committed_.end() ? Offset(0) : it->second;
  }
  uint64_t DataEpoch() const override {
    std::lock_guard lk(mu_);
    return epoch_;
  }
  void WaitForData(uint64_t seen, std::chrono::milliseconds timeout) override {
    std::unique_lock lk(mu_);
    cv_.wait_for(lk, timeout, [&] { return epoch_ != seen; });
  }
  void Close() override {}

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::deque<std::string>> parts_;
  std::map<std::string, Offset> committed_;
  uint64_t epoch_ = 0;
};

class MemoryStore : public ProfileStore {
 public:
  explicit MemoryStore(const TagRegistry* tags) : tags_(tags) {}

  // The `n`-th write from now (0 = the next) fails: before anything of it is committed,
  // or after all of it is; either way every later call fails too until Revive().
  void CrashAtWrite(int n, bool after_commit) {
    std::lock_guard lk(mu_);
    crash_at_ = writes_ + n;
    crash_after_commit_ = after_commit;
  }
  void Revive() {
    std::lock_guard lk(mu_);
    down_ = false;
    crash_at_ = -1;
  }
  bool down() const {
    std::lock_guard lk(mu_);
    return down_;
  }
  // Flush() makes the checkpoints durable as they are when it starts, then runs `during`
  // (a batch committing while the flush is under way: in memory only).
  void OnFlush(std::function<void()> during) { during_flush_ = std::move(during); }
  Status Flush() override {
    {
      std::lock_guard lk(mu_);
      durable_checkpoints_ = checkpoints_;
    }
    if (during_flush_) during_flush_();
    return Status::Ok();
  }
  std::optional<Offset> DurableCheckpoint(const std::string& consumer, PartitionId p) {
    std::lock_guard lk(mu_);
    auto it = durable_checkpoints_.find(consumer + "/" + std::to_string(p.value));
    if (it == durable_checkpoints_.end()) return std::nullopt;
    return it->second;
  }
  // Every write holding an Action of `uid` is refused (Internal, as a store refusing a
  // command) before anything of it is committed, until Cure(uid).
  void Poison(const std::string& uid) {
    std::lock_guard lk(mu_);
    poisoned_.insert(uid);
  }
  void Cure(const std::string& uid) {
    std::lock_guard lk(mu_);
    poisoned_.erase(uid);
  }

  Status Apply(std::span<const Action> actions, std::span<const Checkpoint> checkpoints) override {
    std::lock_guard lk(mu_);
    if (down_) return Status::IOError("store is down");
    for (const Action& a : actions) {
      if (poisoned_.count(a.uid)) return Status::Internal("WRONGTYPE the store refuses writes of " + a.uid);
    }
    bool crash = writes_++ == crash_at_;
    if (crash && !crash_after_commit_) {
      down_ = true;
      return Status::IOError("crashed before the write");
    }
    for (const Action& a : actions) {
      if (IsSnapshotMark(a)) continue;
      const TagConfig* cfg = tags_->Find(a.tag);
      if (!cfg) continue;
      fusion::Apply(profiles_[a.uid][a.tag], a, *cfg);
    }
    for (const Checkpoint& c : checkpoints) checkpoints_[c.consumer + "/" + std::to_string(c.partition.value)] = c.next;
    if (crash) {
      down_ = true;
      return Status::IOError("crashed after the write");
    }
    return Status::Ok();
  }

  Result<Profile> Get(std::string_view uid, std::span<const std::string> only, TimestampMs) override {
    std::lock_guard lk(mu_);
    if (down_) return Status::IOError("store is down");
    Profile p;
    p.uid = uid;
    auto it = profiles_.find(std::string(uid));
    if (it == profiles_.end()) return p;
    for (const auto& [name, state] : it->second) {
      if (!only.empty() && std::find(only.begin(), only.end(), name) == only.end()) continue;
      if (state.present) p.tags.push_back({name, state});
    }
    return p;
  }

  Result<std::optional<Offset>> GetCheckpoint(std::string_view consumer, PartitionId p) override {
    std::lock_guard lk(mu_);
    auto it = checkpoints_.find(std::string(consumer) + "/" + std::to_string(p.value));
    if (it == checkpoints_.end()) return std::optional<Offset>();
    return std::optional<Offset>(it->second);
  }

  Status DeleteProfile(std::string_view uid, std::span<const Checkpoint> checkpoints) override {
    std::lock_guard lk(mu_);
    if (down_) return Status::IOError("store is down");
    profiles_.erase(std::string(uid));
    history_.erase(std::string(uid));
    for (const Checkpoint& c : checkpoints) checkpoints_[c.consumer + "/" + std::to_string(c.partition.value)] = c.next;
    return Status::Ok();
  }

  Status RecordHistory(std::span<const HistoryEntry> entries, const HistoryConfig&) override {
    std::lock_guard lk(mu_);
    for (const HistoryEntry& e : entries) history_[e.uid][{e.ts, e.id}] = e;
    return Status::Ok();
  }

  Result<std::vector<HistoryEntry>> ReadHistory(std::string_view uid, const HistoryQuery& q, const HistoryConfig&,
                                                TimestampMs) override {
    std::lock_guard lk(mu_);
    std::vector<HistoryEntry> out;
    auto it = history_.find(std::string(uid));
    if (it == history_.end()) return out;
    for (auto e = it->second.rbegin(); e != it->second.rend() && out.size() < q.limit; ++e) out.push_back(e->second);
    return out;
  }

  Status EraseAll() override {
    std::lock_guard lk(mu_);
    profiles_.clear();
    history_.clear();
    checkpoints_.clear();
    return Status::Ok();
  }

  // Test access.
  double Number(const std::string& uid, const std::string& tag) {
    std::lock_guard lk(mu_);
    auto it = profiles_.find(uid);
    if (it == profiles_.end()) return 0;
    auto t = it->second.find(tag);
    return t == it->second.end() ? 0 : t->second.number;
  }
  size_t Users() {
    std::lock_guard lk(mu_);
    return profiles_.size();
  }

 private:
  const TagRegistry* tags_;
  mutable std::mutex mu_;
  std::map<std::string, std::map<std::string, fusion::TagState>> profiles_;
  std::map<std::string, std::map<std::pair<TimestampMs, std::string>, HistoryEntry>> history_;
  std::map<std::string, Offset> checkpoints_;
  int64_t writes_ = 0;
  int64_t crash_at_ = -1;
  bool crash_after_commit_ = false;
  bool down_ = false;
  std::set<std::string> poisoned_;
  std::map<std::string, Offset> durable_checkpoints_;
  std::function<void()> during_flush_;
};

}  // namespace portrait::testing_util
