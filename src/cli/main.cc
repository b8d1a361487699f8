// portrait: the command line. `serve` runs the whole engine; `check-config` validates a
// config file and names every problem with FILE:LINE:COL; `batch` and `snapshot` make and
// list offline snapshots; `calibrate` and `consistency` check real time against the
// archive and the snapshots; `replay`, `failed` and `dlq` operate on the logs.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <iostream>
#include <optional>
#include <sstream>

#include "features/offline/batch.h"
#include "features/channels/calibrate.h"
#include "features/consistency/consistency_config.h"
#include "features/consistency/consistency_report.h"
#include "core/config.h"
#include "log/log.h"
#include "core/dir_lock.h"
#include "core/progress.h"
#include "ingest/failed.h"
#include "delivery/retry.h"
#include "serve/api.h"
#include "serve/app.h"
#include "serve/replay.h"
#include "features/registry.h"
#include "features/offline/offline_config.h"

namespace {

using portrait::Config;

int Serve(const std::string& config_path, const std::string& listen, const std::string& data_dir) {
  auto loaded = portrait::LoadConfig(config_path);
  if (!loaded.ok()) {
    std::cerr << "portrait: invalid config:\n" << loaded.status().message() << "\n";
    return 2;
  }
  Config cfg = std::move(loaded).value();
  if (!listen.empty()) cfg.server.listen = listen;
  if (!data_dir.empty()) cfg.data_dir = data_dir;

  // Block the stop signals in every thread; the main thread waits for them below.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGHUP);  // reload the decision rules
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  auto app = portrait::App::Start(std::move(cfg));
  if (!app.ok()) {
    std::cerr << "portrait: cannot start: " << app.status().message() << "\n";
    return 1;
  }
  const Config& c = (*app)->config();
  std::string host = c.server.listen.substr(0, c.server.listen.rfind(':'));
  std::printf("portrait: listening on http://%s:%d (data in %s, log %s fsync=%s, store %s)\n", host.c_str(),
              (*app)->port(), c.data_dir.c_str(), c.log.backend.c_str(),
              std::string(portrait::FsyncPolicyName(c.log.fsync)).c_str(), c.store.backend.c_str());
  std::fflush(stdout);
  int sig = 0;
  for (;;) {
    sigwait(&stop, &sig);
    if (sig != SIGHUP) break;
    auto n = (*app)->Reload();  // logs the outcome either way
    if (n.ok()) std::printf("portrait: reloaded %s: {%s}\n", config_path.c_str(), n->c_str());
    std::fflush(stdout);
  }
  spdlog::info("portrait: signal {}, shutting down", sig);
  (*app)->Stop();
  return 0;
}

int FailedList(const std::string& config_path, const std::string& data_dir, size_t limit) {
  auto loaded = portrait::LoadConfig(config_path);
  if (!loaded.ok()) {
    std::cerr << "portrait: invalid config:\n" << loaded.status().message() << "\n";
    return 2;
  }
  std::string dir = data_dir.empty() ? loaded->data_dir : data_dir;
  portrait::MetricsRegistry metrics;
  // Read-only: safe while a server writes the same topic.
  auto log = portrait::MakeLog(loaded->log, dir, "failed", 1, &metrics, /*read_only=*/true);
  if (!log.ok()) {
    std::cerr << "portrait: " << log.status().message() << "\n";
    return 1;
  }
  auto records = portrait::ReadLatestFailed(**log, limit);
  if (!records.ok()) {
    std::cerr << "portrait: " << records.status().message() << "\n";
    return 1;
  }
  for (const auto& [offset, r] : *records) std::printf("%s\n", portrait::FailedToJson(r, offset).c_str());
  return 0;
}

// The config of a command, with --data-dir applied; prints why not and returns nullopt.
std::optional<Config> LoadForCommand(const std::string& config_path, const std::string& data_dir) {
  auto loaded = portrait::LoadConfig(config_path);
  if (!loaded.ok()) {
    std::cerr << "portrait: invalid config:\n" << loaded.status().message() << "\n";
    return std::nullopt;
  }
  Config cfg = std::move(loaded).value();
  if (!data_dir.empty()) cfg.data_dir = data_dir;
  return cfg;
}

int DlqCmd(const std::string& config_path, const std::string& data_dir, bool replay, size_t limit,
           const std::string& sink) {
  std::optional<Config> loaded = LoadForCommand(config_path, data_dir);
  if (!loaded) return 2;
  Config& cfg = *loaded;
  portrait::MetricsRegistry metrics;
  std::unique_ptr<portrait::DirLock> lock;
  if (replay) {  // appends to the retry topic: not next to a running server
    auto l = portrait::DirLock::Acquire(cfg.data_dir);
    if (!l.ok()) {
      std::cerr << "portrait: " << l.status().message() << " (stop the server, or use POST /v1/dlq:replay)\n";
      return 1;
    }
    lock = std::move(l).value();
  }
  auto logs = portrait::OpenRetryLogs(cfg, &metrics, /*read_only=*/!replay);
  if (!logs.ok()) {
    std::cerr << "portrait: " << logs.status().message() << "\n";
    return 1;
  }
  if (!replay) {
    auto items = portrait::ReadLatestDead(*logs->dead, limit);
    if (!items.ok()) {
      std::cerr << "portrait: " << items.status().message() << "\n";
      return 1;
    }
    for (const auto& [offset, item] : *items) std::printf("%s\n", portrait::RetryItemToJson(item, offset).c_str());
    return 0;
  }
  portrait::RetryQueue queue(cfg.retry, logs->retry.get(), logs->dead.get(), &metrics);
  queue.SetReplayMarks(logs->replay_marks);
  auto n = queue.ReplayDead(sink);
  if (!n.ok()) {
    std::cerr << "portrait: " << n.status().message() << "\n";
    return 1;
  }
  std::printf("%zu dead item(s) queued again; the server delivers them when it runs\n", *n);
  return 0;
}

// --progress / --no-progress; without either, progress shows on a terminal only.
portrait::ProgressReporter::Mode progress_mode = portrait::ProgressReporter::Mode::kAuto;

portrait::ProgressReporter::Options ProgressOptions() {
  portrait::ProgressReporter::Options o;
  o.mode = progress_mode;
  return o;
}

void AddProgressFlag(CLI::App* cmd) {
  cmd->add_flag_function(
      "--progress,!--no-progress",
      [](int64_t n) {
        progress_mode = n > 0 ? portrait::ProgressReporter::Mode::kAlways : portrait::ProgressReporter::Mode::kNever;
      },
      "Show (or not) progress on stderr; default: only when stderr is a terminal");
}

int ReplayCmd(const std::string& config_path, const std::string& data_dir, std::optional<int64_t> offset,
              const std::string& time) {
  std::optional<Config> loaded = LoadForCommand(config_path, data_dir);
  if (!loaded) return 2;
  Config& cfg = *loaded;
  portrait::ReplayFrom from;
  from.offset = offset;
  if (!time.empty()) {
    char* end = nullptr;
    long long ms = std::strtoll(time.c_str(), &end, 10);
    if (*end != '\0') {
      std::cerr << "portrait: --from-time takes milliseconds since the epoch, not \"" << time << "\"\n";
      return 2;
    }
    from.time = ms;
  }
  portrait::MetricsRegistry metrics;
  portrait::ReplayStats stats;
  portrait::ProgressReporter progress("replay", "records", ProgressOptions());
  portrait::Status st = portrait::Replay(cfg, from, &metrics, &stats, progress.fn());
  progress.Finish();
  if (!st.ok()) {
    std::cerr << "portrait: replay failed: " << st.message() << "\n";
    return 1;
  }
  std::printf("replayed %lld log records into %s\n", static_cast<long long>(stats.records), cfg.store.backend.c_str());
  return 0;
}

std::string Yesterday() { return portrait::DateOf(portrait::NowMs() - 86'400'000); }

// "0-3,6" -> {0, 1, 2, 3, 6}; nullopt when malformed.
std::optional<std::vector<int>> ParsePartitionList(const std::string& text) {
  std::vector<int> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    int from = 0, to = 0;
    char dash = 0, extra = 0;
    std::stringstream is(item);
    if (!(is >> from)) return std::nullopt;
    if (is >> dash) {
      if (dash != '-' || !(is >> to) || (is >> extra) || to < from) return std::nullopt;
    } else {
      to = from;
    }
    for (int p = from; p <= to; ++p) out.push_back(p);
  }
  if (out.empty()) return std::nullopt;
  return out;
}

std::string IntList(const std::vector<int>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + std::to_string(v[i]);
  return out + "]";
}

int BatchCmd(const std::string& config_path, const std::string& data_dir, std::string date,
             const std::string& partitions_text) {
  std::optional<Config> cfg = LoadForCommand(config_path, data_dir);
  if (!cfg) return 2;
  if (date.empty()) date = Yesterday();
  std::vector<int> partitions;
  if (!partitions_text.empty()) {
    auto parsed = ParsePartitionList(partitions_text);
    if (!parsed) {
      std::cerr << "portrait: --partitions \"" << partitions_text << "\" must be a list such as 0-3,6\n";
      return 2;
    }
    partitions = std::move(*parsed);
  }
  portrait::ProgressReporter progress("batch " + date, "files", ProgressOptions());
  auto stats = portrait::RunBatch(*cfg, date, partitions, progress.fn());
  progress.Finish();
  if (!stats.ok()) {
    std::cerr << "portrait: batch failed: " << stats.status().message() << "\n";
    return 1;
  }
  if (stats->snapshot.version == 0) {
    // Other runs compute the rest; the one finishing the last part commits the snapshot.
    std::printf("{\"date\":\"%s\",\"computed\":%s,\"waiting_for\":%s}\n", date.c_str(),
                IntList(stats->partitions).c_str(), IntList(stats->waiting_for).c_str());
  } else {
    std::printf("%s\n", stats->snapshot.ToJson().c_str());
  }
  std::fprintf(stderr, "batch %s: %llu events from %llu archive files (%llu used, %llu unreadable lines) in %.2f s\n",
               date.c_str(), static_cast<unsigned long long>(stats->events),
               static_cast<unsigned long long>(stats->files), static_cast<unsigned long long>(stats->used),
               static_cast<unsigned long long>(stats->bad_lines), stats->seconds);
  return 0;
}

int CalibrateCmd(const std::string& config_path, const std::string& data_dir, std::string date, bool json,
                 const std::string& partitions_text) {
  std::optional<Config> loaded = LoadForCommand(config_path, data_dir);
  if (!loaded) return 2;
  Config& cfg = *loaded;
  if (date.empty()) date = Yesterday();
  std::unique_ptr<portrait::DirLock> lock;
  if (cfg.store.backend == "rocksdb") {  // the embedded store is the server's alone
    auto l = portrait::DirLock::Acquire(cfg.data_dir);
    if (!l.ok()) {
      std::cerr << "portrait: " << l.status().message() << " (stop the server, or use POST /v1/channels:calibrate?date="
                << date << ")\n";
      return 1;
    }
    lock = std::move(l).value();
  }
  portrait::MetricsRegistry metrics;
  auto store = portrait::MakeProfileStore(cfg.store, cfg.data_dir, &cfg.tags, &metrics);
  if (!store.ok()) {
    std::cerr << "portrait: " << store.status().message() << "\n";
    return 1;
  }
  auto channels = portrait::OpenChannelStore(store->get());
  if (!channels.ok()) {
    std::cerr << "portrait: " << channels.status().message() << "\n";
    return 1;
  }
  portrait::Result<portrait::CalibrationReport> report = portrait::Status::Ok();
  if (partitions_text.empty()) {
    portrait::ProgressReporter progress("calibrate " + date, "files", ProgressOptions());
    report = portrait::Calibrate(cfg, channels->get(), date, progress.fn());
    progress.Finish();
  } else {
    auto partitions = ParsePartitionList(partitions_text);
    if (!partitions) {
      std::cerr << "portrait: --partitions \"" << partitions_text << "\" must be a list such as 0-3,6\n";
      return 2;
    }
    std::vector<int> waiting_for;
    auto shared = portrait::CalibrateShare(cfg, channels->get(), date, *partitions, &waiting_for);
    if (!shared.ok()) {
      report = shared.status();
    } else if (!*shared) {
      // Other runs scan the rest; the one finishing the last scan calibrates the day.
      std::printf("{\"date\":\"%s\",\"scanned\":%s,\"waiting_for\":%s}\n", date.c_str(), IntList(*partitions).c_str(),
                  IntList(waiting_for).c_str());
      return 0;
    } else {
      report = std::move(**shared);
    }
  }
  if (!report.ok()) {
    std::cerr << "portrait: calibrate failed: " << report.status().message() << "\n";
    return 1;
  }
  if (json) {
    std::printf("%s\n", report->ToJson().c_str());
  } else {
    std::printf("%-16s %-20s %-17s %10s %10s %8s\n", "product", "channel", "hour (UTC)", "realtime", "calibrated", "diff");
    for (const auto& b : report->buckets) {
      std::printf("%-16s %-20s %-17s %10lld %10lld %+8lld\n", b.product.c_str(), b.channel.c_str(),
                  portrait::FormatIsoUtc(b.hour).substr(0, 16).c_str(), static_cast<long long>(b.realtime),
                  static_cast<long long>(b.calibrated), static_cast<long long>(b.realtime - b.calibrated));
    }
    for (const auto& p : report->products) {
      std::printf("product %s: realtime %lld, calibrated %lld, error %lld users (%.4f %%)\n", p.product.c_str(),
                  static_cast<long long>(p.realtime), static_cast<long long>(p.calibrated),
                  static_cast<long long>(p.abs_error), 100 * p.error_ratio());
    }
  }
  std::fprintf(stderr,
               "calibrate %s: %llu events from %llu archive files in %.2f s; real-time error %lld of %lld new users "
               "(%.4f %%); the served figures of the day are now the calibrated ones\n",
               date.c_str(), static_cast<unsigned long long>(report->events),
               static_cast<unsigned long long>(report->files), report->seconds,
               static_cast<long long>(report->overall.abs_error), static_cast<long long>(report->overall.calibrated),
               100 * report->overall.error_ratio());
  return 0;
}

int ConsistencyCmd(const std::string& config_path, const std::string& data_dir, std::string date, bool json,
                   std::optional<double> sample, std::optional<size_t> examples) {
  std::optional<Config> loaded = LoadForCommand(config_path, data_dir);
  if (!loaded) return 2;
  Config& cfg = *loaded;
  if (date.empty()) date = Yesterday();
  std::unique_ptr<portrait::DirLock> lock;
  if (cfg.store.backend == "rocksdb") {  // the embedded store is the server's alone
    auto l = portrait::DirLock::Acquire(cfg.data_dir);
    if (!l.ok()) {
      std::cerr << "portrait: " << l.status().message() << " (stop the server, or use GET /v1/consistency?date=" << date
                << ")\n";
      return 1;
    }
    lock = std::move(l).value();
  }
  portrait::ConsistencyOptions options;
  options.sample = sample.value_or(cfg.section<portrait::ConsistencyConfig>().sample);
  options.examples = examples.value_or(static_cast<size_t>(cfg.section<portrait::ConsistencyConfig>().examples));
  portrait::MetricsRegistry metrics;
  auto store = portrait::MakeProfileStore(cfg.store, cfg.data_dir, &cfg.tags, &metrics);
  if (!store.ok()) {
    std::cerr << "portrait: " << store.status().message() << "\n";
    return 1;
  }
  auto report = portrait::RunConsistency(cfg, store->get(), date, options);
  if (!report.ok()) {
    std::cerr << "portrait: consistency failed: " << report.status().message() << "\n";
    return 1;
  }
  if (json) {
    std::printf("%s\n", report->ToJson().c_str());
  } else {
    std::printf("%-28s %9s %8s %8s %8s %9s %8s %8s %8s\n", "tag", "users", "equal %", "missing", "extra", "different",
                "later", "overlap", "rank");
    for (const auto& t : report->tags) {
      auto opt = [](std::optional<double> v) { return v ? *v : -1.0; };
      std::printf("%-28s %9llu %8.3f %8llu %8llu %9llu %8llu %8.3f %8.3f\n", t.tag.c_str(),
                  static_cast<unsigned long long>(t.users()), 100 * t.ratio(portrait::Outcome::kEqual),
                  static_cast<unsigned long long>(t.count(portrait::Outcome::kMissing)),
                  static_cast<unsigned long long>(t.count(portrait::Outcome::kExtra)),
                  static_cast<unsigned long long>(t.count(portrait::Outcome::kDifferent)),
                  static_cast<unsigned long long>(t.count(portrait::Outcome::kLater)), opt(t.mean_overlap()),
                  opt(t.mean_rank_distance()));
      for (const auto& e : t.worst) {
        std::printf("  %-9s %s\n    realtime: %s\n    offline:  %s\n",
                    std::string(portrait::OutcomeName(e.comparison.outcome)).c_str(), e.uid.c_str(),
                    e.comparison.realtime.empty() ? "-" : e.comparison.realtime.c_str(),
                    e.comparison.offline.empty() ? "-" : e.comparison.offline.c_str());
      }
    }
  }
  std::fprintf(stderr,
               "consistency %s: snapshot %s, %llu users of the snapshot and %llu only in the archive of the day "
               "compared (sample %g) in %.2f s%s\n",
               date.c_str(), report->snapshot.Mark().c_str(), static_cast<unsigned long long>(report->snapshot_users),
               static_cast<unsigned long long>(report->archive_only_users), report->sample, report->seconds,
               report->archive_read ? "" : "; no archive of the day, so no user only real time knows was seen");
  return 0;
}

int SnapshotImportCmd(const std::string& config_path, const std::string& data_dir, const std::string& date,
                      const std::string& file, portrait::ImportOptions options, const std::vector<std::string>& maps) {
  std::optional<Config> cfg = LoadForCommand(config_path, data_dir);
  if (!cfg) return 2;
  for (const auto& m : maps) {
    size_t eq = m.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == m.size()) {
      std::cerr << "portrait: --map takes COLUMN=TAG, not \"" << m << "\"\n";
      return 2;
    }
    options.map[m.substr(0, eq)] = m.substr(eq + 1);
  }
  portrait::ProgressReporter progress("import " + date, "bytes", ProgressOptions());
  options.progress = progress.fn();
  auto stats = portrait::ImportSnapshot(*cfg, date, file, options);
  progress.Finish();
  if (!stats.ok()) {
    std::cerr << "portrait: import failed: " << stats.status().message() << "\n";
    return 1;
  }
  for (const auto& p : stats->problems) std::cerr << "bad row: " << p << "\n";
  std::printf("%s\n", stats->snapshot.ToJson().c_str());
  std::fprintf(stderr, "imported %llu rows (%llu bad, skipped) in %.2f s\n",
               static_cast<unsigned long long>(stats->rows), static_cast<unsigned long long>(stats->bad_rows),
               stats->seconds);
  return 0;
}

int SnapshotListCmd(const std::string& config_path, const std::string& data_dir) {
  std::optional<Config> cfg = LoadForCommand(config_path, data_dir);
  if (!cfg) return 2;
  auto rows = portrait::ReadCompletionLog(portrait::SnapshotDir(*cfg));
  if (!rows.ok()) {
    std::cerr << "portrait: " << rows.status().message() << "\n";
    return 1;
  }
  for (const auto& r : *rows) std::printf("%s\n", r.ToJson().c_str());
  return 0;
}

int CheckConfig(const std::string& path) {
  auto loaded = portrait::LoadConfig(path);
  if (!loaded.ok()) {
    std::cerr << loaded.status().message() << "\n";
    return 1;
  }
  const Config& c = *loaded;
  size_t declared = 0;
  for (const auto& [_, t] : c.tags.all()) declared += t.internal ? 0 : 1;
  std::printf("%s: ok (%zu event types, %zu tags, %zu rules)\n", path.c_str(), c.events.size(), declared,
              c.rules.size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli{"portrait: real-time + offline user-profile engine"};
  cli.require_subcommand(1);

  std::string config_path, listen, data_dir;
  auto* serve = cli.add_subcommand("serve", "Run the engine: HTTP API, log, processor and profile store");
  serve->add_option("--config", config_path, "Config file (TOML)")->required()->check(CLI::ExistingFile);
  serve->add_option("--listen", listen, "HOST:PORT to listen on; overrides [server] listen (port 0 = any free port)");
  serve->add_option("--data-dir", data_dir, "Directory for the log and the store; overrides data_dir");

  std::string check_path;
  auto* check = cli.add_subcommand("check-config", "Validate a config file; errors name FILE:LINE:COL and the fix");
  check->add_option("file", check_path, "Config file (TOML)")->required();

  auto* openapi = cli.add_subcommand("openapi", "Print the OpenAPI 3.1 document of every HTTP route (GET /openapi.json)");
  auto* routes = cli.add_subcommand("routes", "Print every HTTP route (method, pattern, scope, what) as a Markdown table");

  auto* failed = cli.add_subcommand("failed", "Rejected events and Actions kept in the failed topic");
  failed->require_subcommand(1);
  auto* failed_list = failed->add_subcommand("list", "Print the newest failed records as NDJSON, newest first");
  std::string failed_config = "examples/portrait.toml", failed_dir;
  size_t failed_limit = 100;
  failed_list->add_option("--config", failed_config, "Config file (for data_dir and the log backend)");
  failed_list->add_option("--data-dir", failed_dir, "Data directory; overrides the config's data_dir");
  failed_list->add_option("--limit", failed_limit, "How many records")->check(CLI::Range(1, 1000000));

  auto* dlq = cli.add_subcommand("dlq", "Items a sink (routed topic, webhook) could not take after every retry");
  dlq->require_subcommand(1);
  auto* dlq_list = dlq->add_subcommand("list", "Print the newest dead-letter items as NDJSON, newest first");
  auto* dlq_replay = dlq->add_subcommand(
      "replay", "Queue dead items (not replayed before) for delivery again; stop the server first or use POST /v1/dlq:replay");
  std::string dlq_config = "examples/portrait.toml", dlq_dir, dlq_sink;
  size_t dlq_limit = 100;
  for (auto* c : {dlq_list, dlq_replay}) {
    c->add_option("--config", dlq_config, "Config file (for data_dir and [retry])");
    c->add_option("--data-dir", dlq_dir, "Data directory; overrides the config's data_dir");
  }
  dlq_list->add_option("--limit", dlq_limit, "How many items")->check(CLI::Range(1, 1000000));
  dlq_replay->add_option("--sink", dlq_sink, "Only items of this sink (e.g. route:orders)");

  auto* replay = cli.add_subcommand(
      "replay", "Rebuild profiles from the log (erases them first; running it twice changes nothing). Stop the server first.");
  std::string replay_config, replay_dir, replay_time;
  int64_t replay_offset = 0;
  replay->add_option("--config", replay_config, "Config file (TOML)")->required()->check(CLI::ExistingFile);
  replay->add_option("--data-dir", replay_dir, "Data directory; overrides the config's data_dir");
  auto* opt_offset = replay->add_option("--from-offset", replay_offset, "Replay from this offset in every partition");
  auto* opt_time = replay->add_option("--from-time", replay_time,
                                      "Replay from the first record with event time >= this (ms since the epoch)");
  opt_offset->excludes(opt_time);

  auto* batch = cli.add_subcommand(
      "batch", "Compute the offline tags of every user from the archive up to the end of a day into a snapshot");
  std::string batch_config, batch_dir, batch_date;
  batch->add_option("--config", batch_config, "Config file (TOML)")->required()->check(CLI::ExistingFile);
  batch->add_option("--data-dir", batch_dir, "Data directory; overrides the config's data_dir");
  batch->add_option("--date", batch_date, "The day YYYY-MM-DD (UTC); default yesterday");
  std::string batch_partitions;
  batch->add_option("--partitions", batch_partitions,
                    "Only these log partitions, e.g. 0-3,6 (several runs share one snapshot; the last to finish "
                    "commits it); default all");

  auto* calibrate = cli.add_subcommand(
      "calibrate", "Recompute a day's new users per channel from the archive, report the real-time error, and serve "
                   "the calibrated figures");
  std::string cal_config, cal_dir, cal_date;
  bool cal_json = false;
  calibrate->add_option("--config", cal_config, "Config file (TOML)")->required()->check(CLI::ExistingFile);
  calibrate->add_option("--data-dir", cal_dir, "Data directory; overrides the config's data_dir");
  calibrate->add_option("--date", cal_date, "The day YYYY-MM-DD (UTC); default yesterday");
  calibrate->add_flag("--json", cal_json, "Print the report as JSON");
  std::string cal_partitions;
  calibrate->add_option("--partitions", cal_partitions,
                        "Only scan these log partitions, e.g. 0-3 (several runs share a day; the last to finish its scan "
                        "calibrates); default all in this run");

  auto* consistency = cli.add_subcommand(
      "consistency", "Compare every tag computed in both layers: real-time values against the batch's snapshot of a day");
  std::string cons_config, cons_dir, cons_date;
  bool cons_json = false;
  double cons_sample = 1;
  size_t cons_examples = 5;
  consistency->add_option("--config", cons_config, "Config file (TOML)")->required()->check(CLI::ExistingFile);
  consistency->add_option("--data-dir", cons_dir, "Data directory; overrides the config's data_dir");
  consistency->add_option("--date", cons_date, "The snapshot's day YYYY-MM-DD (UTC); default yesterday");
  consistency->add_flag("--json", cons_json, "Print the report as JSON");
  auto* opt_sample = consistency->add_option("--sample", cons_sample,
                                             "Compare this share of users, chosen by a hash of the uid (default "
                                             "[consistency] sample, else 1)")
                         ->check(CLI::Range(0.0, 1.0));
  auto* opt_examples =
      consistency->add_option("--examples", cons_examples, "Worst mismatches shown per tag (default 5)")->check(CLI::Range(0, 100));

  auto* snapshot = cli.add_subcommand("snapshot", "Offline snapshots: import from a warehouse, list");
  snapshot->require_subcommand(1);
  auto* snap_import = snapshot->add_subcommand("import", "Load offline profiles (one user per row) into a snapshot");
  auto* snap_list = snapshot->add_subcommand("list", "Print the completion log (NDJSON, oldest first)");
  std::string snap_config, snap_dir, snap_date, snap_file;
  std::vector<std::string> snap_maps;
  portrait::ImportOptions import_options;
  for (auto* c : {snap_import, snap_list}) {
    c->add_option("--config", snap_config, "Config file (TOML)")->required()->check(CLI::ExistingFile);
    c->add_option("--data-dir", snap_dir, "Data directory; overrides the config's data_dir");
  }
  snap_import->add_option("--date", snap_date, "The day the profiles are as of, YYYY-MM-DD")->required();
  snap_import->add_option("--file", snap_file, "NDJSON or CSV file")->required()->check(CLI::ExistingFile);
  snap_import->add_option("--format", import_options.format, "ndjson (default) or csv (first line: column names)");
  snap_import->add_option("--uid-column", import_options.uid_column, "The column holding the user id (default uid)");
  snap_import->add_option("--map", snap_maps, "COLUMN=TAG for a column not named like its tag (repeatable)");
  snap_import->add_flag("--ignore-unknown", import_options.ignore_unknown, "Skip columns that name no tag");
  snap_import->add_option("--max-bad-rows", import_options.max_bad_rows,
                          "Import anyway when at most this many rows are bad (default 0)");

  for (auto* c : {replay, batch, calibrate, snap_import}) AddProgressFlag(c);

  CLI11_PARSE(cli, argc, argv);
  if (*batch) return BatchCmd(batch_config, batch_dir, batch_date, batch_partitions);
  if (*calibrate) return CalibrateCmd(cal_config, cal_dir, cal_date, cal_json, cal_partitions);
  if (*consistency) {
    return ConsistencyCmd(cons_config, cons_dir, cons_date, cons_json,
                          opt_sample->count() ? std::optional<double>(cons_sample) : std::nullopt,
                          opt_examples->count() ? std::optional<size_t>(cons_examples) : std::nullopt);
  }
  if (*snap_import) return SnapshotImportCmd(snap_config, snap_dir, snap_date, snap_file, import_options, snap_maps);
  if (*snap_list) return SnapshotListCmd(snap_config, snap_dir);
  if (*replay) {
    std::optional<int64_t> off;
    if (opt_offset->count() > 0 || opt_time->count() == 0) off = replay_offset;
    return ReplayCmd(replay_config, replay_dir, off, replay_time);
  }
  if (*serve) return Serve(config_path, listen, data_dir);
  if (*failed_list) return FailedList(failed_config, failed_dir, failed_limit);
  if (*dlq_list) return DlqCmd(dlq_config, dlq_dir, false, dlq_limit, "");
  if (*dlq_replay) return DlqCmd(dlq_config, dlq_dir, true, 0, dlq_sink);
  if (*check) return CheckConfig(check_path);
  if (*openapi) {
    std::puts(portrait::RoutesOpenApi().c_str());
    return 0;
  }
  if (*routes) {
    std::fputs(portrait::RoutesMarkdown().c_str(), stdout);
    return 0;
  }
  return 1;
}
