// File source benchmark: N rows in the public Taobao CSV format in a file, a whole portrait
// (App, embedded log with fsync = batch, RocksDB) with a csv file source on it: how fast
// rows are read, validated and durably logged (source), and until the profiles hold them.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "serve/app.h"
#include "features/registry.h"

namespace portrait {
namespace {

using Clock = std::chrono::steady_clock;

int Run(int64_t rows) {
  std::string dir = (std::filesystem::temp_directory_path() / "portrait-source-bench").string();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::string csv = dir + "/UserBehavior.csv";
  {
    std::ofstream out(csv);
    std::mt19937_64 rng(1);
    const char* b[] = {"pv", "pv", "pv", "pv", "pv", "pv", "cart", "fav", "buy"};
    for (int64_t i = 0; i < rows; ++i) {
      out << rng() % 100000 << ',' << rng() % 4000000 << ',' << rng() % 9000 << ',' << b[rng() % 9] << ','
          << 1511539200 + static_cast<int64_t>(rng() % (9 * 86400)) << '\n';
    }
  }
  auto cfg = LoadConfig(std::string(PORTRAIT_SOURCE_DIR) + "/examples/portrait.toml").value();
  cfg.data_dir = dir + "/data";
  cfg.server.listen = "127.0.0.1:0";
  SourceConfig s;
  s.name = "taobao";
  s.type = "file";
  s.path = csv;
  s.format = "csv";
  s.columns = {"uid", "props.item_id", "props.category_id", "type", "ts"};
  s.ts_scale = 1000;
  s.type_map = {{"pv", "click"}, {"buy", "buy"}, {"cart", "cart"}, {"fav", "fav"}};
  s.poll_ms = 5;
  cfg.sources.push_back(s);
  auto t0 = Clock::now();
  auto app = App::Start(std::move(cfg));
  if (!app.ok()) {
    std::fprintf(stderr, "%s\n", app.status().ToString().c_str());
    return 1;
  }
  Counter* lines = (*app)->metrics().GetCounter("portrait_source_lines_total", "", "source=\"taobao\"");
  while (static_cast<int64_t>(lines->value()) < rows) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  auto t_read = Clock::now();
  while (!(*app)->processor().CaughtUp()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  auto t_done = Clock::now();
  auto secs = [&](Clock::time_point t) { return std::chrono::duration<double>(t - t0).count(); };
  std::printf("| file source, %lld Taobao CSV rows | value |\n|---|---|\n", static_cast<long long>(rows));
  std::printf("| rows/s read, converted, validated and durably logged | %.0f |\n", static_cast<double>(rows) / secs(t_read));
  std::printf("| rows/s until the profiles hold every row | %.0f |\n", static_cast<double>(rows) / secs(t_done));
  (*app)->Stop();
  std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace portrait

int main(int argc, char** argv) { return portrait::Run(argc > 1 ? std::stoll(argv[1]) : 1000000); }
