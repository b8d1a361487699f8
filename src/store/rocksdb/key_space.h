// The RocksDB key space of the profile store's database: one table of the first key bytes,
// so that the features keeping state beside the profiles never collide. A new namespace
// takes a free byte here. Values of the namespaces marked as expiring start with their
// expiry (wall clock ms, fixed64): reads skip them once expired and compaction drops them.
#pragma once

namespace portrait::rocksdb_keys {

// profiles (store/rocksdb)
constexpr char kProfile = 'p';     // 'p' uid -> the user's tags
constexpr char kCheckpoint = 'o';  // consumer offsets, written with the batch
constexpr char kHistory = 'h';     // 'h' bytes(uid) -> the user's event history
// channels (features/channels): registry records, real-time counts, calibrated counts and
// calibrated days, each keyed by product first
constexpr char kIdentity = 'n';
constexpr char kCount = 'c';
constexpr char kCalibrated = 'k';
constexpr char kCalibratedDay = 'q';
// decisions (features/decisions): rule state per user and recent decisions per user (expiring)
constexpr char kRuleState = 'r';
constexpr char kDecision = 'y';
// segments (features/segments): a user's segments, a segment's members, members due for a
// time re-check
constexpr char kUserSegments = 'g';
constexpr char kSegmentMembers = 'G';
constexpr char kSegmentDue = 'w';

constexpr bool ExpiresByValue(char prefix) { return prefix == kRuleState || prefix == kDecision; }

}  // namespace portrait::rocksdb_keys
