// Decisions benchmark.
//
//   1. rule evaluation per event (the example config's two decision rules), in memory and
//      through the RocksDB rule state (Add + Evaluate + Commit per batch of 8192), side by
//      side with the tag rules of the same events (RuleSet::Evaluate) as the yardstick;
//   2. event-to-decision latency: a whole portrait (App) in this process under a steady
//      background load (default 50k events/s over HTTP); probe users complete the
//      same-category rule with their third click; p50 / p99 from the POST carrying that
//      click to the decision arriving on GET /v1/decisions/stream (SSE, raw socket);
//   3. with --taobao FILE (user,item,category,behavior,seconds): the category rule over a
//      real sample in file order, against a plain recomputation of the same conditions.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "features/decisions/decision_store.h"
#include "e2e/http_client.h"
#include "features/decisions/decisions.h"
#include "fusion/rules.h"
#include "serve/app.h"
#include "store/rocksdb/rocksdb_store.h"
#include "features/registry.h"
#include "features/decisions/decisions_config.h"

namespace portrait {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int64_t kMin = 60'000;

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

Config ExampleConfig() {
  auto cfg = LoadConfig(std::string(PORTRAIT_SOURCE_DIR) + "/examples/portrait.toml");
  if (!cfg.ok()) {
    std::fprintf(stderr, "%s\n", cfg.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(cfg).value();
}

// A day of behaviour: `users` users, one event a minute each on average, categories skewed.
std::vector<Event> Synthetic(size_t n, int users, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<Event> out;
  out.reserve(n);
  const TimestampMs t0 = 1'790'000'000'000;
  for (size_t i = 0; i < n; ++i) {
    Event e;
    e.uid = "u" + std::to_string(rng() % static_cast<uint64_t>(users));
    uint64_t r = rng() % 100;
    e.type = r < 80 ? "click" : r < 88 ? "cart" : r < 98 ? "fav" : "buy";
    e.ts = t0 + static_cast<TimestampMs>(i) * 60'000 / users;
    int64_t item = static_cast<int64_t>(rng() % 2000);
    int64_t cat = static_cast<int64_t>((rng() % 50) * (rng() % 50) % 300);  // skewed
    e.id = "e" + std::to_string(i);
    e.props = {{"item_id", std::to_string(item)}, {"category_id", std::to_string(cat)}};
    out.push_back(std::move(e));
  }
  return out;
}

void EvaluationCost() {
  Config cfg = ExampleConfig();
  MetricsRegistry metrics;
  auto rules = DecisionRules::Compile(cfg.section<DecisionsConfig>().rules, cfg);
  if (!rules.ok()) return;
  const size_t n = 1'000'000;
  auto events = Synthetic(n, 20'000, 7);
  // Yardstick: the tag rules of the same events.
  RuleSet tag_rules(cfg);
  std::vector<Action> actions;
  size_t skipped = 0;
  auto t = Clock::now();
  for (const Event& e : events) {
    actions.clear();
    tag_rules.Evaluate(e, &actions, &skipped);
  }
  double tag_ns = std::chrono::duration<double, std::nano>(Clock::now() - t).count() / n;

  DecisionEngine mem(cfg, nullptr, nullptr, &metrics);
  std::unordered_map<std::string, RuleState> states;
  std::vector<Decision> out;
  t = Clock::now();
  std::vector<RuleState*> touched;
  for (size_t i = 0; i < n; ++i) {
    RuleState* st = &states[events[i].uid];
    mem.Apply(**rules, events[i], st, nullptr, &out);
    touched.push_back(st);
    if (i % 8192 == 8191) {  // as a batch commit would
      for (RuleState* p : touched) mem.Prune(**rules, p);
      touched.clear();
    }
  }
  double mem_ns = std::chrono::duration<double, std::nano>(Clock::now() - t).count() / n;
  size_t mem_decisions = out.size();

  std::string dir = (std::filesystem::temp_directory_path() / "portrait-decisions-bench").string();
  std::filesystem::remove_all(dir);
  auto store = OpenRocksDbStore({dir + "/db", 256}, &cfg.tags, &metrics);
  if (!store.ok()) return;
  auto decision_store = OpenDecisionStore(store->get());
  if (!decision_store.ok()) return;
  DecisionEngine engine(cfg, store->get(), decision_store->get(), &metrics, cfg.section<DecisionsConfig>().cache_users);
  size_t stored_decisions = 0;
  t = Clock::now();
  for (size_t i = 0; i < n; i += 8192) {
    for (size_t j = i; j < std::min(n, i + 8192); ++j) engine.Add(**rules, events[j]);
    out.clear();
    if (!engine.Evaluate(**rules, {}, &out).ok() || !engine.Commit(**rules, out).ok()) {
      std::fprintf(stderr, "store write failed\n");
      return;
    }
    stored_decisions += out.size();
  }
  double store_ns = std::chrono::duration<double, std::nano>(Clock::now() - t).count() / n;
  std::printf("rule evaluation, %zu events of 20,000 users (example rules: same category x3 in 30 min, fav then cart in 1 h)\n", n);
  std::printf("  tag rules (yardstick)            %8.1f ns/event\n", tag_ns);
  std::printf("  decision rules, state in memory  %8.1f ns/event  (%.2fx the tag rules)  %zu decisions\n", mem_ns,
              mem_ns / tag_ns, mem_decisions);
  std::printf("  decision rules, RocksDB state    %8.1f ns/event  (%.2fx the tag rules)  %zu decisions\n", store_ns,
              store_ns / tag_ns, stored_decisions);
  // The same without the worker's cache of decoded states (as with Kafka consumer groups).
  std::filesystem::remove_all(dir);
  auto store2 = OpenRocksDbStore({dir + "/db2", 256}, &cfg.tags, &metrics);
  if (!store2.ok()) return;
  auto decision_store2 = OpenDecisionStore(store2->get());
  if (!decision_store2.ok()) return;
  DecisionEngine uncached(cfg, store2->get(), decision_store2->get(), &metrics, 0);
  t = Clock::now();
  for (size_t i = 0; i < n; i += 8192) {
    for (size_t j = i; j < std::min(n, i + 8192); ++j) uncached.Add(**rules, events[j]);
    out.clear();
    if (!uncached.Evaluate(**rules, {}, &out).ok() || !uncached.Commit(**rules, out).ok()) return;
  }
  double uncached_ns = std::chrono::duration<double, std::nano>(Clock::now() - t).count() / n;
  std::printf("  ... without the state cache      %8.1f ns/event  (%.2fx the tag rules)\n", uncached_ns, uncached_ns / tag_ns);
  std::filesystem::remove_all(dir);
}

// Reads decisions from GET /v1/decisions/stream; records when each event_id's decision came.
class StreamReader {
 public:
  bool Start(int port) {
    fd_ = testing_util::OpenGetStream(port, "/v1/decisions/stream");
    if (fd_ < 0) return false;
    thread_ = std::thread([this] { Loop(); });
    return true;
  }
  void Stop() {
    shutdown(fd_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    close(fd_);
  }
  std::unordered_map<std::string, Clock::time_point> arrivals() {
    std::lock_guard lk(mu_);
    return arrivals_;
  }

 private:
  void Loop() {
    std::string buf;
    char chunk[16384];
    for (;;) {
      ssize_t n = recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) return;
      auto now = Clock::now();
      buf.append(chunk, static_cast<size_t>(n));
      size_t at;
      while ((at = buf.find("\"event_id\":\"")) != std::string::npos) {
        size_t end = buf.find('"', at + 12);
        if (end == std::string::npos) break;
        std::lock_guard lk(mu_);
        arrivals_.emplace(buf.substr(at + 12, end - at - 12), now);
        buf.erase(0, end);
      }
    }
  }
  int fd_ = -1;
  std::thread thread_;
  std::mutex mu_;
  std::unordered_map<std::string, Clock::time_point> arrivals_;
};

void Latency(int rate, int seconds) {
  Config cfg = ExampleConfig();
  std::string dir = (std::filesystem::temp_directory_path() / "portrait-decisions-latency").string();
  std::filesystem::remove_all(dir);
  cfg.data_dir = dir;
  cfg.server.listen = "127.0.0.1:0";
  auto started = App::Start(std::move(cfg));
  if (!started.ok()) {
    std::fprintf(stderr, "%s\n", started.status().ToString().c_str());
    return;
  }
  App& app = **started;
  StreamReader stream;
  if (!stream.Start(app.port())) return;
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const std::string url = "http://127.0.0.1:" + std::to_string(app.port());
  // Two senders, each posting every 10 ms; each post carries background clicks and one
  // click of each of 2 probe users (their third click decides).
  const int senders = 2;
  const int per_post = std::max(1, rate / senders / 100);
  std::mutex mu;
  std::map<std::string, Clock::time_point> probe_sent;  // deciding event id -> POST start
  std::atomic<int64_t> sent_events{0}, failed{0};
  const TimestampMs now = NowMs();
  auto sender = [&](int s) {
    testing_util::HttpClient http(url);
    std::mt19937_64 rng(static_cast<uint64_t>(s) + 1);
    auto next = Clock::now();
    const auto end = next + std::chrono::seconds(seconds);
    int64_t post = 0;
    while (Clock::now() < end) {
      std::string body;
      body.reserve(static_cast<size_t>(per_post) * 130);
      for (int i = 0; i < per_post; ++i) {
        body += R"({"uid":"b)" + std::to_string(rng() % 50'000) + R"(","type":"click","ts":)" +
                std::to_string(now + static_cast<int64_t>(rng() % 1000)) + R"(,"props":{"item_id":)" +
                std::to_string(rng() % 100'000) + R"(,"category_id":)" + std::to_string(rng() % 1000) + "}}\n";
      }
      // Probe users: clicks 1, 2, 3 of user (s, k) go out in posts k, k+1, k+2.
      std::vector<std::string> deciding;
      for (int k = 0; k < 3; ++k) {
        int64_t probe = post - k;
        if (probe < 0) continue;
        std::string uid = "p" + std::to_string(s) + "-" + std::to_string(probe);
        std::string id = uid + "-" + std::to_string(k);
        body += R"({"id":")" + id + R"(","uid":")" + uid + R"(","type":"click","ts":)" + std::to_string(now + k * 1000) +
                R"(,"props":{"item_id":)" + std::to_string(k) + R"(,"category_id":42}})" + "\n";
        if (k == 2) deciding.push_back(id);
      }
      auto start = Clock::now();
      auto r = http.Post("/v1/events", body);
      if (r.status != 200) {
        failed++;
      } else {
        sent_events += per_post + static_cast<int64_t>(std::min<int64_t>(post + 1, 3));
        std::lock_guard lk(mu);
        for (auto& id : deciding) probe_sent.emplace(id, start);
      }
      ++post;
      next += std::chrono::milliseconds(10);
      std::this_thread::sleep_until(next);
    }
  };
  auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int s = 0; s < senders; ++s) threads.emplace_back(sender, s);
  for (auto& t : threads) t.join();
  double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  auto arrivals = stream.arrivals();
  std::vector<double> ms;
  size_t missing = 0;
  for (auto& [id, sent] : probe_sent) {
    auto it = arrivals.find(id);
    if (it == arrivals.end()) {
      ++missing;
      continue;
    }
    ms.push_back(std::chrono::duration<double, std::milli>(it->second - sent).count());
  }
  std::printf("event-to-decision latency, POST -> decision on the SSE stream (embedded log fsync=batch + RocksDB, "
              "in-process load generator)\n");
  std::printf("  offered %.0f events/s for %d s (%lld failed posts), %zu probe decisions, %zu missing\n",
              static_cast<double>(sent_events.load()) / elapsed, seconds, static_cast<long long>(failed.load()),
              ms.size(), missing);
  std::printf("  p50 %.2f ms   p90 %.2f ms   p99 %.2f ms   max %.2f ms\n", Percentile(ms, 0.5), Percentile(ms, 0.9),
              Percentile(ms, 0.99), Percentile(ms, 1.0));
  std::printf("target 4b: event -> decision at %.0f events/s: p99 %.2f ms (aim <= 10 ms)\n",
              static_cast<double>(sent_events.load()) / elapsed, Percentile(ms, 0.99));
  stream.Stop();
  app.Stop();
  std::filesystem::remove_all(dir);
}

// The category rule over the Taobao sample, events in file order, against a plain
// recomputation: per (user, category) the pv times sorted; a decision at the third of
// any three within 30 minutes, greedy, none within a day of the previous one.
void Taobao(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    std::printf("taobao: cannot read %s\n", path.c_str());
    return;
  }
  Config cfg = ExampleConfig();
  MetricsRegistry metrics;
  auto rules = DecisionRules::Compile(cfg.section<DecisionsConfig>().rules, cfg);
  DecisionEngine engine(cfg, nullptr, nullptr, &metrics);
  std::unordered_map<std::string, RuleState> states;
  std::vector<Decision> out;
  std::map<std::pair<std::string, std::string>, std::vector<TimestampMs>> views;
  std::string line;
  size_t rows = 0;
  const std::map<std::string, std::string> type_of = {{"pv", "click"}, {"cart", "cart"}, {"fav", "fav"}, {"buy", "buy"}};
  while (std::getline(in, line)) {
    std::stringstream ss(line);
    std::string user, item, cat, behavior, secs;
    if (!std::getline(ss, user, ',') || !std::getline(ss, item, ',') || !std::getline(ss, cat, ',') ||
        !std::getline(ss, behavior, ',') || !std::getline(ss, secs, ',')) {
      continue;
    }
    auto type = type_of.find(behavior);
    if (type == type_of.end()) continue;
    Event e;
    e.uid = user;
    e.type = type->second;
    e.ts = std::stoll(secs) * 1000;
    e.id = std::to_string(rows++);
    e.props = {{"item_id", item}, {"category_id", cat}};
    engine.Apply(**rules, e, &states[e.uid], nullptr, &out);
    if (e.type == "click") views[{user, cat}].push_back(e.ts);
  }
  std::set<std::tuple<std::string, std::string, TimestampMs>> model, got;
  for (auto& [key, times] : views) {
    std::sort(times.begin(), times.end());
    TimestampMs last = INT64_MIN / 2;
    for (size_t i = 2; i < times.size(); ++i) {
      if (times[i] - times[i - 2] <= 30 * kMin && times[i] - last >= 24 * 60 * kMin) {
        model.insert({key.first, key.second, times[i]});
        last = times[i];
      }
    }
  }
  for (const Decision& d : out) {
    if (d.rule == "category_coupon") got.insert({d.uid, d.key, d.at});
  }
  size_t same = 0;
  for (const auto& m : model) same += got.count(m);
  std::printf("taobao sample %s: %zu events in file order; category rule: recomputation %zu decisions, engine %zu, "
              "identical %zu\n",
              path.c_str(), rows, model.size(), got.size(), same);
}

}  // namespace
}  // namespace portrait

int main(int argc, char** argv) {
  int rate = 50'000, seconds = 10;
  std::string taobao;
  bool latency = true;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--rate" && i + 1 < argc) rate = std::atoi(argv[++i]);
    else if (a == "--seconds" && i + 1 < argc) seconds = std::atoi(argv[++i]);
    else if (a == "--taobao" && i + 1 < argc) taobao = argv[++i];
    else if (a == "--no-latency") latency = false;
  }
  portrait::EvaluationCost();
  if (latency) {
    std::printf("\n");
    portrait::Latency(rate, seconds);
  }
  if (!taobao.empty()) {
    std::printf("\n");
    portrait::Taobao(taobao);
  }
  return 0;
}
