// The offline layer through the real binary: events archived by `portrait serve`, a
// snapshot made by `portrait batch`, listed by the CLI and GET /v1/snapshots, and loaded
// into the profile on APPSTART; and `portrait batch` killed mid-run at many points, after
// which readers still see only whole snapshots.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <random>

#include "core/event.h"
#include "e2e/e2e_util.h"
#include "temp_dir.h"

namespace portrait::testing_util {
namespace {

namespace fs = std::filesystem;

// The completion log as the CLI prints it: one JSON row per line.
std::vector<std::string> SnapshotList(const std::string& config, const std::string& data) {
  std::string out;
  int rc = RunCommand(Portrait("snapshot list --config " + config + " --data-dir " + data + " 2>/dev/null"), &out);
  EXPECT_EQ(rc, 0) << out;
  std::vector<std::string> rows;
  std::stringstream ss(out);
  for (std::string line; std::getline(ss, line);) {
    if (!line.empty()) rows.push_back(line);
  }
  return rows;
}

int64_t Field(const std::string& row, const std::string& name) {
  simdjson::dom::parser p;
  int64_t v = -1;
  if (p.parse(row).get_object()[name].get(v)) return -1;
  return v;
}

TEST(OfflineE2eTest, BatchSnapshotIsListedAndLoadedOnAppstart) {
  TempDir dir;
  std::string config = WriteExampleConfig(dir.path(), {{"flush_seconds = 5", "flush_seconds = 1"}});
  ASSERT_FALSE(config.empty());
  std::string data = dir.path() + "/data";
  ServerProcess server(config, data);
  ASSERT_TRUE(server.Start()) << server.output();
  HttpClient http(server.url());
  const int64_t yesterday = NowMs() - 86'400'000;
  std::string body;
  for (int i = 0; i < 20; ++i) {
    body += R"({"uid":"o1","type":"click","ts":)" + std::to_string(yesterday - i * 1000) +
            R"(,"props":{"item_id":)" + std::to_string(500 + i) + R"(,"category_id":3}})" + "\n";
  }
  body += R"({"uid":"o1","type":"buy","ts":)" + std::to_string(yesterday) +
          R"(,"props":{"item_id":500,"category_id":3}})" + "\n";
  ASSERT_EQ(http.Post("/v1/events", body).status, 200);
  // Wait for the archive to hold the events, then compute yesterday's snapshot.
  auto archived = [&] {
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(data + "/archive", ec); !ec && it != fs::recursive_directory_iterator(); ++it) {
      if (it->path().string().ends_with(".ndjson.gz")) return true;
    }
    return false;
  };
  for (int i = 0; i < 100 && !archived(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_TRUE(archived());
  std::string out;
  std::string date = DateOf(yesterday);
  ASSERT_EQ(RunCommand(Portrait("batch --config " + config + " --data-dir " + data + " --date " + date), &out), 0) << out;
  auto rows = SnapshotList(config, data);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_NE(rows[0].find(R"("date":")" + date + R"(","version":1,"users":1,)"), std::string::npos) << rows[0];
  auto listed = http.Get("/v1/snapshots");
  EXPECT_EQ(listed.status, 200);
  EXPECT_NE(listed.body.find(rows[0]), std::string::npos) << listed.body;

  // Before the trigger the profile has no offline-only tag and no snapshot.
  auto before = http.Get("/v1/profiles/o1");
  EXPECT_NE(before.body.find(R"("snapshot":null)"), std::string::npos) << before.body;
  EXPECT_EQ(before.body.find("purchases_by_category_90d"), std::string::npos) << before.body;
  ASSERT_EQ(http.Post("/v1/events", R"({"uid":"o1","type":"APPSTART","ts":)" + std::to_string(NowMs()) + "}").status, 200);
  std::string want = R"("snapshot":{"date":")" + date + R"(","version":1})";
  HttpResult after;
  for (int i = 0; i < 100; ++i) {
    after = http.Get("/v1/profiles/o1");
    if (after.body.find(want) != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_NE(after.body.find(want), std::string::npos) << after.body;
  EXPECT_NE(after.body.find(R"("purchases_by_category_90d":{"value":{"3":1})"), std::string::npos) << after.body;
  EXPECT_NE(after.body.find(R"("last_purchase_at":{"value":)" + std::to_string(yesterday)), std::string::npos)
      << after.body;
}

// An archive of `users` users' clicks and buys on `date`, written as the archiver does.
void WriteArchive(const std::string& dir, const std::string& date, int events, int users) {
  std::mt19937 rng(3);
  std::map<std::string, std::string> files;
  int64_t day = 0;
  {
    std::tm tm{};
    strptime(date.c_str(), "%Y-%m-%d", &tm);
    day = static_cast<int64_t>(timegm(&tm)) * 1000;
  }
  for (int i = 0; i < events; ++i) {
    int u = static_cast<int>(rng() % static_cast<unsigned>(users));
    int64_t ts = day + static_cast<int64_t>(rng() % 86'400'000);
    int hour = static_cast<int>((ts - day) / 3'600'000);
    char line[256];
    std::snprintf(line, sizeof line,
                  R"({"id":"e%d","uid":"u%d","type":"%s","ts":%lld,"props":{"item_id":%u,"category_id":%u}})"
                  "\n",
                  i, u, i % 10 == 0 ? "buy" : "click", static_cast<long long>(ts), static_cast<unsigned>(rng() % 5000), static_cast<unsigned>(rng() % 40));
    char path[128];
    // The archive's partitions are the log's (the example config's 8), by uid.
    std::snprintf(path, sizeof path, "/date=%s/hour=%02d/part-%d-0.ndjson.gz", date.c_str(), hour,
                  PartitionFor("u" + std::to_string(u), 8).value);
    files[dir + path] += line;
  }
  for (const auto& [path, text] : files) {
    fs::create_directories(fs::path(path).parent_path());
    gzFile gz = gzopen(path.c_str(), "wb1");
    ASSERT_TRUE(gz);
    gzwrite(gz, text.data(), static_cast<unsigned>(text.size()));
    gzclose(gz);
  }
}

TEST(OfflineE2eTest, BatchKilledMidRunLeavesOnlyWholeSnapshots) {
  TempDir dir;
  std::string config = WriteExampleConfig(dir.path(), {{"keep = 3", "keep = 100"}});
  ASSERT_FALSE(config.empty());
  std::string data = dir.path() + "/data";
  const std::string date = "2026-11-20";
  WriteArchive(data + "/archive", date, 400'000, 20'000);
  const std::string cmd = Portrait("batch --config " + config + " --data-dir " + data + " --date " + date);

  // One whole run first: how long it takes, and how many users a whole snapshot has.
  auto start = std::chrono::steady_clock::now();
  std::string out;
  ASSERT_EQ(RunCommand(cmd + " 2>&1", &out), 0) << out;
  double full_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  auto rows = SnapshotList(config, data);
  ASSERT_EQ(rows.size(), 1u);
  const int64_t users = Field(rows[0], "users");
  ASSERT_GT(users, 19'000);

  int completed = 1, killed = 0;
  for (double at : {0.05, 0.15, 0.3, 0.45, 0.6, 0.75, 0.85, 0.95}) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      int devnull = ::open("/dev/null", O_WRONLY);
      dup2(devnull, 1);
      dup2(devnull, 2);
      execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(static_cast<int64_t>(full_ms * at * 1000)));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) ++killed;
    else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) ++completed;  // it finished before the kill
    // Every snapshot a reader can see is whole: one per completed run, and a killed run
    // may complete one from the partitions' parts that earlier killed runs finished.
    rows = SnapshotList(config, data);
    ASSERT_GE(static_cast<int>(rows.size()), completed) << "after a kill at " << at;
    ASSERT_LE(static_cast<int>(rows.size()), completed + killed) << "after a kill at " << at;
    for (const auto& row : rows) {
      EXPECT_EQ(Field(row, "users"), users) << row;
      int64_t v = Field(row, "version");
      EXPECT_TRUE(fs::exists(data + "/snapshots/date=" + date + "/v=" + std::to_string(v))) << row;
    }
  }
  EXPECT_GE(killed, 4) << "the kills came too late to test anything";
  // The next run completes with the next version and clears what killed runs left.
  const size_t before = SnapshotList(config, data).size();
  ASSERT_EQ(RunCommand(cmd + " 2>&1", &out), 0) << out;
  rows = SnapshotList(config, data);
  ASSERT_EQ(rows.size(), before + 1);
  EXPECT_EQ(Field(rows.back(), "version"), static_cast<int64_t>(before + 1));
  EXPECT_EQ(Field(rows.back(), "users"), users);
  for (const std::string& d : {data + "/snapshots", data + "/snapshots/date=" + date}) {
    for (const auto& e : fs::directory_iterator(d)) {
      EXPECT_FALSE(e.path().filename().string().starts_with(".tmp-")) << e.path();
    }
  }
}

// Progress is for terminals: a batch whose stderr is a pipe prints its summary and no
// progress line; --progress forces the line (rewritten with '\r', ended by a newline).
TEST(OfflineE2eTest, BatchShowsNoProgressWithoutATerminal) {
  TempDir dir;
  std::string config = WriteExampleConfig(dir.path(), {});
  ASSERT_FALSE(config.empty());
  std::string data = dir.path() + "/data";
  const std::string date = "2026-11-20";
  WriteArchive(data + "/archive", date, 400'000, 20'000);
  const std::string cmd = Portrait("batch --config " + config + " --data-dir " + data + " --date " + date);
  std::string out;
  ASSERT_EQ(RunCommand(cmd + " 2>&1", &out), 0) << out;
  EXPECT_EQ(out.find('\r'), std::string::npos) << out;
  EXPECT_EQ(out.find("/192 files ("), std::string::npos) << out;
  EXPECT_NE(out.find("batch " + date + ": 400000 events from 192 archive files"), std::string::npos) << out;

  auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(RunCommand(cmd + " --progress 2>&1", &out), 0) << out;
  const bool long_enough = std::chrono::steady_clock::now() - start > std::chrono::seconds(1);
  if (out.find('\r') != std::string::npos) {
    EXPECT_NE(out.find("\rbatch " + date + ": "), std::string::npos) << out;
    EXPECT_NE(out.find("/192 files ("), std::string::npos) << out;
    EXPECT_NE(out.find("192/192 files (100.0%)"), std::string::npos) << "the last line shows the end: " << out;
  } else {
    EXPECT_FALSE(long_enough) << "a batch of over a second shows its progress with --progress: " << out;
  }
  ASSERT_EQ(RunCommand(cmd + " --no-progress 2>&1", &out), 0) << out;
  EXPECT_EQ(out.find('\r'), std::string::npos) << out;
}

}  // namespace
}  // namespace portrait::testing_util
