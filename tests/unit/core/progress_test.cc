// The progress line of long commands: its text (done/total, percent, rate, ETA), at most
// one rewrite per interval with '\r', a newline at the end, and nothing at all when the
// output is not a terminal or progress is off.
#include "core/progress.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <thread>
#include <vector>

namespace portrait {
namespace {

using namespace std::chrono_literals;
using Clock = ProgressReporter::Clock;

TEST(ProgressFormatTest, DoneOfTotalWithPercentRateAndEta) {
  EXPECT_EQ(ProgressReporter::Format("batch 2026-11-20", "files", 1204, 3400, 10.0),
            "batch 2026-11-20: 1,204/3,400 files (35.4%), 120 files/s, ETA 18s");
  EXPECT_EQ(ProgressReporter::Format("replay", "records", 5, 10, 2.0),
            "replay: 5/10 records (50.0%), 2.5 records/s, ETA 2s");
  EXPECT_EQ(ProgressReporter::Format("import", "bytes", 1'000'000, 91'000'000, 10.0),
            "import: 1,000,000/91,000,000 bytes (1.1%), 100000 bytes/s, ETA 15m00s");
  EXPECT_EQ(ProgressReporter::Format("x", "files", 1, 10'000, 10.0), "x: 1/10,000 files (0.0%), 0.1 files/s, ETA 27h46m");
  EXPECT_EQ(ProgressReporter::Format("x", "files", 10, 10, 4.0), "x: 10/10 files (100.0%), 2.5 files/s, ETA 0s");
  EXPECT_EQ(ProgressReporter::Format("x", "files", 0, 10, 0.0), "x: 0/10 files (0.0%), 0.0 files/s, ETA ?");
}

TEST(ProgressFormatTest, WithoutATotalCountAndRateOnly) {
  EXPECT_EQ(ProgressReporter::Format("calibrate", "files", 42, 0, 2.0), "calibrate: 42 files, 21.0 files/s");
}

// A reporter writing into a memory stream, with the terminal check and the clock injected.
class ProgressReporterTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (out_) std::fclose(out_);
    std::free(buf_);
  }
  ProgressReporter::Options Options(bool terminal, ProgressReporter::Mode mode = ProgressReporter::Mode::kAuto) {
    out_ = open_memstream(&buf_, &len_);
    ProgressReporter::Options o;
    o.out = out_;
    o.mode = mode;
    o.is_terminal = [terminal](std::FILE*) { return terminal; };
    o.now = [this] { return now_; };
    o.interval = 250ms;
    return o;
  }
  std::string Written() {
    std::fflush(out_);
    return std::string(buf_, len_);
  }

  std::FILE* out_ = nullptr;
  char* buf_ = nullptr;
  size_t len_ = 0;
  Clock::time_point now_ = Clock::time_point() + 1h;
};

TEST_F(ProgressReporterTest, OnATerminalRewritesOneLineAtMostEveryIntervalAndEndsIt) {
  {
    ProgressReporter p("batch 2026-11-20", "files", Options(true));
    ASSERT_TRUE(p.enabled());
    ProgressFn fn = p.fn();
    ASSERT_TRUE(fn);
    now_ += 100ms;
    fn(1, 4);  // too soon after the start: nothing yet
    EXPECT_EQ(Written(), "");
    now_ += 200ms;
    fn(2, 4);
    EXPECT_EQ(Written(), "\rbatch 2026-11-20: 2/4 files (50.0%), 6.7 files/s, ETA 0s");
    now_ += 10ms;
    fn(3, 4);  // within the interval of the last print
    now_ += 300ms;
    fn(4, 4);
    p.Finish();
    fn(4, 4);  // after Finish: nothing
  }
  EXPECT_EQ(Written(),
            "\rbatch 2026-11-20: 2/4 files (50.0%), 6.7 files/s, ETA 0s"
            "\rbatch 2026-11-20: 4/4 files (100.0%), 6.6 files/s, ETA 0s"
            "\rbatch 2026-11-20: 4/4 files (100.0%), 6.6 files/s, ETA 0s\n");
}

TEST_F(ProgressReporterTest, AShorterLineBlanksOutTheRestOfTheLongerOne) {
  ProgressReporter p("x", "files", Options(true));
  now_ += 1s;
  p.Update(1000, 0);
  now_ += 1s;
  p.Update(1000, 0);  // the rate halves: one character shorter
  const std::string w = Written();
  EXPECT_EQ(w, "\rx: 1,000 files, 1000 files/s\rx: 1,000 files, 500 files/s ");
}

TEST_F(ProgressReporterTest, NotATerminalWritesNothingAtAll) {
  {
    ProgressReporter p("batch", "files", Options(false));
    EXPECT_FALSE(p.enabled());
    EXPECT_FALSE(p.fn()) << "the job need not even count";
    for (int i = 1; i <= 10; ++i) {
      now_ += 1s;
      p.Update(i, 10);
    }
    p.Finish();
  }
  EXPECT_EQ(Written(), "");
}

TEST_F(ProgressReporterTest, NoProgressSilencesATerminalAndProgressForcesAPipe) {
  {
    ProgressReporter p("batch", "files", Options(true, ProgressReporter::Mode::kNever));
    now_ += 1s;
    p.Update(1, 2);
  }
  EXPECT_EQ(Written(), "");
  std::fclose(out_);
  std::free(buf_);
  buf_ = nullptr;
  {
    ProgressReporter p("batch", "files", Options(false, ProgressReporter::Mode::kAlways));
    now_ += 1s;
    p.Update(1, 2);
  }
  EXPECT_EQ(Written(), "\rbatch: 1/2 files (50.0%), 1.0 files/s, ETA 1s\rbatch: 1/2 files (50.0%), 1.0 files/s, ETA 1s\n");
}

TEST_F(ProgressReporterTest, NothingPrintedForAQuickJobNotEvenTheNewline) {
  {
    ProgressReporter p("batch", "files", Options(true));
    now_ += 10ms;
    p.Update(3, 3);
  }
  EXPECT_EQ(Written(), "");
}

TEST_F(ProgressReporterTest, ThreadsReportingAtOnceOnlyMoveItForward) {
  ProgressReporter p("batch", "files", Options(true));
  ProgressFn fn = p.fn();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (uint64_t i = 0; i < 1000; ++i) fn(i * 4 + t, 4000);
    });
  }
  for (auto& th : threads) th.join();
  now_ += 1s;
  fn(0, 4000);  // a late, smaller count does not move it back
  EXPECT_EQ(Written(), "\rbatch: 3,999/4,000 files (100.0%), 3999 files/s, ETA 0s");
}

}  // namespace
}  // namespace portrait
