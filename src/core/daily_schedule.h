// DailySchedule: a job run once a day for yesterday's UTC date, on its own thread
// (`[batch] at`, `[channels] calibrate_at`). Start/Stop from one thread; Stop waits for a
// run in progress.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "core/metrics.h"
#include "core/status.h"

namespace portrait {

// Runs `job` for yesterday's UTC date every day at `at` ("HH:MM", UTC) on its own thread,
// counting runs as `metric`{result="ok"|"failed"}. Empty `at`: never.
class DailySchedule {
 public:
  using Job = std::function<Status(const std::string& date)>;
  DailySchedule(std::string what, std::string at, Job job, std::string_view metric, MetricsRegistry* metrics);
  ~DailySchedule();
  void Start();
  void Stop();

 private:
  void Run();
  std::string what_, at_;
  Job job_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  Counter* ok_;
  Counter* failed_;
};

}  // namespace portrait
