#include "core/daily_schedule.h"

#include <spdlog/spdlog.h>

#include "core/config.h"
#include "core/dates.h"
#include "core/types.h"

namespace portrait {

DailySchedule::DailySchedule(std::string what, std::string at, Job job, std::string_view metric, MetricsRegistry* m)
    : what_(std::move(what)), at_(std::move(at)), job_(std::move(job)) {
  std::string help = "Scheduled " + what_ + " runs, by result";
  ok_ = m->GetCounter(metric, help, "result=\"ok\"");
  failed_ = m->GetCounter(metric, help, "result=\"failed\"");
}

DailySchedule::~DailySchedule() { Stop(); }

void DailySchedule::Start() {
  if (at_.empty()) return;
  thread_ = std::thread([this] { Run(); });
}

void DailySchedule::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void DailySchedule::Run() {
  const int64_t at_ms = int64_t{*ParseClockMinutes(at_)} * 60'000;
  while (true) {
    TimestampMs now = NowMs();
    TimestampMs today = *DayStartMs(DateOf(now));
    TimestampMs due = today + at_ms;
    if (due <= now) due += 86'400'000;
    {
      std::unique_lock<std::mutex> l(mu_);
      if (cv_.wait_for(l, std::chrono::milliseconds(due - now), [this] { return stop_; })) return;
    }
    std::string date = DateOf(NowMs() - 86'400'000);
    spdlog::info("{}: scheduled run for {}", what_, date);
    Status st = job_(date);
    if (st.ok()) {
      ok_->Inc();
    } else {
      failed_->Inc();
      spdlog::error("{}: {} failed: {}", what_, date, st.ToString());
    }
  }
}

}  // namespace portrait
