#include "core/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>

namespace portrait {

namespace {

// 1234567 -> "1,234,567": counts a person reads at a glance.
std::string Grouped(uint64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

std::string Duration(double seconds) {
  auto s = static_cast<int64_t>(std::llround(std::max(0.0, seconds)));
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60));
  }
  return buf;
}

}  // namespace

std::string ProgressReporter::Format(std::string_view what, std::string_view unit, uint64_t done, uint64_t total,
                                     double elapsed) {
  const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0;
  char rate_text[32];
  std::snprintf(rate_text, sizeof rate_text, rate >= 100 ? "%.0f" : "%.1f", rate);
  std::string line(what);
  line += ": ";
  if (total == 0) {
    line += Grouped(done) + " " + std::string(unit) + ", " + rate_text + " " + std::string(unit) + "/s";
    return line;
  }
  char pct[16];
  std::snprintf(pct, sizeof pct, "%.1f%%", 100.0 * static_cast<double>(std::min(done, total)) / static_cast<double>(total));
  line += Grouped(done) + "/" + Grouped(total) + " " + std::string(unit) + " (" + pct + "), " + rate_text + " " +
          std::string(unit) + "/s, ETA ";
  if (done >= total) {
    line += "0s";
  } else if (rate > 0) {
    line += Duration(static_cast<double>(total - done) / rate);
  } else {
    line += "?";
  }
  return line;
}

ProgressReporter::ProgressReporter(std::string what, std::string unit, Options o)
    : what_(std::move(what)), unit_(std::move(unit)), options_(std::move(o)) {
  if (!options_.now) options_.now = [] { return Clock::now(); };
  if (!options_.is_terminal) options_.is_terminal = [](std::FILE* f) { return ::isatty(::fileno(f)) == 1; };
  enabled_ = options_.out != nullptr &&
             (options_.mode == Mode::kAlways || (options_.mode == Mode::kAuto && options_.is_terminal(options_.out)));
  start_ = last_print_ = options_.now();
}

ProgressReporter::~ProgressReporter() { Finish(); }

void ProgressReporter::Update(uint64_t done, uint64_t total) {
  if (!enabled_) return;
  std::lock_guard lk(mu_);
  if (finished_) return;
  // Several threads report; the count only grows.
  done_ = std::max(done_, done);
  total_ = std::max(total_, total);
  if (options_.now() - last_print_ < options_.interval) return;
  Print(false);
}

void ProgressReporter::Finish() {
  if (!enabled_) return;
  std::lock_guard lk(mu_);
  if (finished_) return;
  finished_ = true;
  if (printed_) Print(true);
}

ProgressFn ProgressReporter::fn() {
  if (!enabled_) return nullptr;
  return [this](uint64_t done, uint64_t total) { Update(done, total); };
}

void ProgressReporter::Print(bool final) {
  const auto now = options_.now();
  last_print_ = now;
  std::string line = Format(what_, unit_, done_, total_, std::chrono::duration<double>(now - start_).count());
  // Blank out what is left of a longer previous line.
  const size_t width = line.size();
  if (width < last_width_) line.append(last_width_ - width, ' ');
  last_width_ = width;
  std::fprintf(options_.out, "\r%s%s", line.c_str(), final ? "\n" : "");
  std::fflush(options_.out);
  printed_ = true;
}

}  // namespace portrait
