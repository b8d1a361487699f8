// What the segments feature shares between its processor stages, its re-checks and its
// routes (SegmentsCore), and its stage (SegmentsStage, one per processor worker).
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/metrics.h"
#include "delivery/topic_feed.h"
#include "features/segments/segment_store.h"
#include "features/segments/segments.h"
#include "log/log.h"
#include "stream/stage.h"

namespace portrait {

// The segments in force (replaced whole by a reload) and the tags they read.
struct SegmentSet {
  std::vector<SegmentDef> defs;
  std::vector<std::string> tags;
  const SegmentDef* Find(std::string_view name) const;
};

// A user's change of one segment, as the topic, the webhook and the stream carry it.
struct SegmentChange {
  std::string id, segment, uid;
  bool entered = false;
  TimestampMs at = 0;
  std::string reason;  // "profile", "time", "reload"
  std::string ToJson() const;
};
std::string_view SegmentChangeIdOf(std::string_view json);

class SegmentsCore {
 public:
  SegmentsCore(const Config& config, ProfileStore* profiles, std::unique_ptr<SegmentStore> store, std::unique_ptr<Log> topic,
               LiveFeed* feed, MetricsRegistry* metrics);

  std::shared_ptr<const SegmentSet> segments() const { return std::atomic_load(&segments_); }
  void SetSegments(std::vector<SegmentDef> defs);

  // Evaluates the users' membership over `profiles` (theirs, as they are or will be once
  // the batch is written) at `now`, publishes the changes, then stores them. Holds the
  // membership lock: a re-check and a batch never interleave for one process.
  Status Evaluate(std::span<const std::string> uids, std::vector<Profile>& profiles, TimestampMs now,
                  std::string_view id_suffix, std::string_view reason);
  // A stage evaluated these users for a batch not yet written: re-checks leave them alone
  // (they would read the profile from before the batch) until Written.
  void Pending(std::span<const std::string> uids);
  void Written(std::span<const std::string> uids);
  // Forgets the user in every segment, under the membership lock.
  Status Erase(std::string_view uid);
  // The members of every segment due for a time re-check (only `held(uid)` ones), and
  // every member of `stale` segments (changed by a reload): evaluated again now.
  Status Recheck(TimestampMs now, const std::function<bool(std::string_view uid)>& held, size_t* checked);
  void MarkStale(std::string segment);

  SegmentStore* store() { return store_.get(); }
  ProfileStore* profiles() { return profiles_; }
  Log* topic() { return topic_.get(); }
  const TagRegistry& tags() const { return config_.tags; }

 private:
  Status Publish(std::vector<SegmentChange>& changes);
  Status EvaluateLocked(std::span<const std::string> uids, std::vector<Profile>& profiles, TimestampMs now,
                        std::string_view id_suffix, std::string_view reason);

  const Config& config_;
  ProfileStore* profiles_;
  std::unique_ptr<SegmentStore> store_;
  std::unique_ptr<Log> topic_;
  LiveFeed* feed_;
  std::shared_ptr<const SegmentSet> segments_;
  std::mutex mu_;  // membership writes
  std::map<std::string, int, std::less<>> pending_;  // under mu_: uid -> stages' batches not yet written
  std::mutex stale_mu_;
  std::vector<std::string> stale_;  // segments whose members are re-checked at the next round
  Counter* entered_;
  Counter* left_;
  Counter* evaluated_;
};

class SegmentsStage : public Stage {
 public:
  explicit SegmentsStage(SegmentsCore* core) : core_(core) {}
  ~SegmentsStage() override { core_->Written(evaluated_); }
  std::string_view name() const override { return "segments"; }
  std::span<const Namespace> namespaces() const override;
  void OnRecord(const Record& r, Batch& batch) override;
  void BeginBatch() override { now_ = 0; }
  Status BeforeWrite(Batch& batch) override;
  void AfterWrite(const Batch& batch) override;
  Status Erase(const Erasure& e) override;
  Result<std::vector<std::string>> Holding(std::string_view id) override;

 private:
  SegmentsCore* core_;
  PartitionId last_partition_{-1};
  Offset last_offset_{-1};
  TimestampMs now_ = 0;                // the batch's evaluation time, kept across retries
  std::vector<std::string> evaluated_;  // users of the batch in hand (Pending in the core)
};

}  // namespace portrait
