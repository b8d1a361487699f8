// Fuzz target: any request body through the collector (parse, validate, append). It must
// never crash, and every event is either accepted or rejected with a reason.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "log/embedded/segment_log.h"
#include "ingest/collector.h"
#include "features/registry.h"

namespace {

constexpr const char* kConfig = R"(
[server]
max_json_depth = 16
[events.click.props]
item_id = "int"
category_id = { type = "int", min = 0 }
name = { type = "string", required = false, max_len = 16 }
[events.APPSTART]
)";

struct Env {
  portrait::MetricsRegistry metrics;
  portrait::Config config;
  std::unique_ptr<portrait::Log> log;
  std::unique_ptr<portrait::Collector> collector;
  Env() {
    config = portrait::ParseConfig(kConfig, "fuzz.toml").value();
    std::string dir = (std::filesystem::temp_directory_path() / ("portrait-fuzz-" + std::to_string(getpid()))).string();
    std::filesystem::remove_all(dir);
    portrait::SegmentLogOptions o;
    o.dir = dir;
    o.partitions = 2;
    o.fsync = portrait::FsyncPolicy::kNone;
    log = portrait::OpenSegmentLog(o, &metrics).value();
    collector = std::make_unique<portrait::Collector>(config, log.get(), nullptr, &metrics);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Env env;
  std::string body(reinterpret_cast<const char*>(data), size);
  body.reserve(size + portrait::Collector::kPadding);
  auto r = env.collector->Ingest(body);
  if (!r.ok()) std::abort();
  for (const auto& rej : r->rejected) {
    if (rej.reason.empty() || rej.message.empty()) std::abort();
  }
  return 0;
}
