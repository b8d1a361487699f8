// Distinct types for ids, positions and times, so an offset is never passed as a partition.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>

namespace portrait {

template <typename T, typename Tag>
struct NamedType {
  T value{};
  constexpr NamedType() = default;
  constexpr explicit NamedType(T v) : value(v) {}
  constexpr auto operator<=>(const NamedType&) const = default;
};

using Offset = NamedType<int64_t, struct OffsetTag>;          // position of a record in a partition
using PartitionId = NamedType<int32_t, struct PartitionTag>;  // 0 .. partitions-1
using TimestampMs = int64_t;  // milliseconds since the Unix epoch (event or wall time)

TimestampMs NowMs();
// A monotonic clock in milliseconds, for intervals (not a time of day).
int64_t SteadyMs();

}  // namespace portrait

template <typename T, typename Tag>
struct std::hash<portrait::NamedType<T, Tag>> {
  size_t operator()(const portrait::NamedType<T, Tag>& v) const noexcept {
    return std::hash<T>()(v.value);
  }
};
