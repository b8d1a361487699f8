// Progress of a long command (`portrait batch`, `snapshot import`, `replay`, `calibrate`)
// for the person at a terminal: one line on stderr, rewritten in place with '\r' at most
// every `interval`, as
//   batch 2026-11-20: 1,204/3,400 files (35.4%), 120.3 files/s, ETA 18s
// and ended with a newline by Finish. When stderr is not a terminal (a pipe, a log file,
// a test) or progress is switched off, it writes nothing at all, so scripts and logs stay
// clean. The work reports through a ProgressFn (done, total; total 0 = unknown), which may
// be called from several threads at once. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>

namespace portrait {

// What a long job calls as it goes: how much is done of how much (0 = not known yet).
// Callers may call it often; the reporter decides when to print.
using ProgressFn = std::function<void(uint64_t done, uint64_t total)>;

class ProgressReporter {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Mode { kAuto, kAlways, kNever };  // kAuto: only on a terminal (--progress / --no-progress)
  struct Options {
    std::FILE* out = stderr;
    Mode mode = Mode::kAuto;
    std::function<bool(std::FILE*)> is_terminal;  // default: isatty(fileno(out))
    std::function<Clock::time_point()> now;       // default: Clock::now
    std::chrono::milliseconds interval{250};
  };

  ProgressReporter(std::string what, std::string unit, Options options);
  ProgressReporter(std::string what, std::string unit) : ProgressReporter(std::move(what), std::move(unit), Options()) {}
  ~ProgressReporter();  // Finish()
  ProgressReporter(const ProgressReporter&) = delete;
  ProgressReporter& operator=(const ProgressReporter&) = delete;

  bool enabled() const { return enabled_; }
  void Update(uint64_t done, uint64_t total);
  // Prints the last state and a newline, if anything was printed; later Updates print nothing.
  void Finish();
  // A ProgressFn feeding this reporter (which must outlive it); empty when disabled, so
  // the job does not even count.
  ProgressFn fn();

  // The line (without '\r'): "WHAT: DONE/TOTAL UNIT (P%), RATE UNIT/s, ETA T", or without
  // total "WHAT: DONE UNIT, RATE UNIT/s".
  static std::string Format(std::string_view what, std::string_view unit, uint64_t done, uint64_t total,
                            double elapsed_seconds);

 private:
  void Print(bool final);  // under mu_

  const std::string what_, unit_;
  Options options_;
  bool enabled_;
  std::mutex mu_;
  Clock::time_point start_, last_print_;
  uint64_t done_ = 0, total_ = 0;
  size_t last_width_ = 0;
  bool printed_ = false, finished_ = false;
};

}  // namespace portrait
