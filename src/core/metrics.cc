#include "core/metrics.h"

#include <cmath>

#include "core/json.h"
#include "core/status.h"

namespace portrait {

double Histogram::UpperBound(int i) { return 25e-6 * std::ldexp(1.0, i); }

void Histogram::Observe(double seconds) {
  int i = 0;
  if (seconds > UpperBound(0)) {
    i = static_cast<int>(std::ceil(std::log2(seconds / 25e-6)));
    if (i > kBuckets) i = kBuckets;
    if (i < 0) i = 0;
  }
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<uint64_t>(seconds > 0 ? seconds * 1e9 : 0), std::memory_order_relaxed);
}

double Histogram::sum() const { return static_cast<double>(sum_ns_.load()) / 1e9; }

double Histogram::Quantile(double q) const {
  uint64_t total = count();
  if (total == 0) return 0;
  uint64_t rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(total)));
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (int i = 0; i <= kBuckets; ++i) {
    seen += bucket(i);
    if (seen >= rank) return i == kBuckets ? INFINITY : UpperBound(i);
  }
  return INFINITY;
}

MetricsRegistry::Family& MetricsRegistry::FamilyFor(std::string_view name, std::string_view help,
                                                    Kind kind) {
  auto it = families_.find(name);
  if (it == families_.end()) {
    it = families_.emplace(std::string(name), Family{kind, std::string(help), {}, {}, {}}).first;
  }
  PORTRAIT_CHECK(it->second.kind == kind, "metric registered twice with different kinds");
  return it->second;
}

Counter* MetricsRegistry::GetCounter(std::string_view name, std::string_view help,
                                     std::string_view labels) {
  std::lock_guard lock(mu_);
  auto& slot = FamilyFor(name, help, Kind::kCounter).counters[std::string(labels)];
  if (!slot) slot = std::make_unique<Counter>();
  return slot.get();
}

Gauge* MetricsRegistry::GetGauge(std::string_view name, std::string_view help,
                                 std::string_view labels) {
  std::lock_guard lock(mu_);
  auto& slot = FamilyFor(name, help, Kind::kGauge).gauges[std::string(labels)];
  if (!slot) slot = std::make_unique<Gauge>();
  return slot.get();
}

Histogram* MetricsRegistry::GetHistogram(std::string_view name, std::string_view help,
                                         std::string_view labels) {
  std::lock_guard lock(mu_);
  auto& slot = FamilyFor(name, help, Kind::kHistogram).histograms[std::string(labels)];
  if (!slot) slot = std::make_unique<Histogram>();
  return slot.get();
}

namespace {
std::string Braced(const std::string& labels, std::string_view extra = "") {
  std::string all = labels;
  if (!extra.empty()) {
    if (!all.empty()) all += ',';
    all += extra;
  }
  return all.empty() ? "" : "{" + all + "}";
}
}  // namespace

std::string MetricsRegistry::RenderPrometheus() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& [name, f] : families_) {
    const char* type = f.kind == Kind::kCounter ? "counter" : f.kind == Kind::kGauge ? "gauge" : "histogram";
    out += "# HELP " + name + " " + f.help + "\n# TYPE " + name + " " + type + "\n";
    for (const auto& [labels, c] : f.counters) {
      out += name + Braced(labels) + " " + std::to_string(c->value()) + "\n";
    }
    for (const auto& [labels, g] : f.gauges) {
      out += name + Braced(labels) + " " + std::to_string(g->value()) + "\n";
    }
    for (const auto& [labels, h] : f.histograms) {
      uint64_t cumulative = 0;
      for (int i = 0; i <= Histogram::kBuckets; ++i) {
        cumulative += h->bucket(i);
        std::string le = "le=\"";
        if (i == Histogram::kBuckets) {
          le += "+Inf";
        } else {
          AppendJsonNumber(&le, Histogram::UpperBound(i));
        }
        le += "\"";
        out += name + "_bucket" + Braced(labels, le) + " " + std::to_string(cumulative) + "\n";
      }
      std::string sum;
      AppendJsonNumber(&sum, h->sum());
      out += name + "_sum" + Braced(labels) + " " + sum + "\n";
      out += name + "_count" + Braced(labels) + " " + std::to_string(h->count()) + "\n";
    }
  }
  return out;
}

}  // namespace portrait
