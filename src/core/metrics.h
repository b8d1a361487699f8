// Metrics primitives and the Prometheus text exposition.
//
// A MetricsRegistry owns every metric; Get* returns a pointer that stays valid for the
// registry's lifetime, so components look their metrics up once and then only touch
// atomics on the hot path. Registration takes a mutex; Inc/Observe are lock-free.
// Thread-safe throughout.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace portrait {

class Counter {
 public:
  void Inc(uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

class Gauge {
 public:
  void Set(int64_t v) { v_.store(v, std::memory_order_relaxed); }
  void Add(int64_t d) { v_.fetch_add(d, std::memory_order_relaxed); }
  int64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> v_{0};
};

// Log-bucketed latency histogram in seconds: bucket i holds values <= 25us * 2^i.
class Histogram {
 public:
  static constexpr int kBuckets = 22;  // 25us .. ~52s, then +Inf
  static double UpperBound(int i);
  void Observe(double seconds);
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sum() const;
  uint64_t bucket(int i) const { return buckets_[i].load(std::memory_order_relaxed); }
  // Upper bound of the bucket holding quantile q (0..1); an over-estimate by < 2x.
  double Quantile(double q) const;

 private:
  std::array<std::atomic<uint64_t>, kBuckets + 1> buckets_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_ns_{0};
};

class MetricsRegistry {
 public:
  // `labels` is the Prometheus label text without braces, e.g. `route="events",code="200"`.
  Counter* GetCounter(std::string_view name, std::string_view help, std::string_view labels = "");
  Gauge* GetGauge(std::string_view name, std::string_view help, std::string_view labels = "");
  Histogram* GetHistogram(std::string_view name, std::string_view help,
                          std::string_view labels = "");
  std::string RenderPrometheus() const;

 private:
  enum class Kind { kCounter, kGauge, kHistogram };
  struct Family {
    Kind kind;
    std::string help;
    std::map<std::string, std::unique_ptr<Counter>> counters;
    std::map<std::string, std::unique_ptr<Gauge>> gauges;
    std::map<std::string, std::unique_ptr<Histogram>> histograms;
  };
  Family& FamilyFor(std::string_view name, std::string_view help, Kind kind);

  mutable std::mutex mu_;
  std::map<std::string, Family, std::less<>> families_;
};

}  // namespace portrait
