#include "ingest/sources/kafka_source.h"

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <thread>

#include "ingest/sources/file_source.h"

namespace portrait {
namespace {

class KafkaSource : public PullSource {
 public:
  KafkaSource(const SourceConfig& src, const Config& cfg, Collector* collector, MetricsRegistry* m)
      : src_(src), cfg_(cfg), collector_(collector) {
    std::string label = "source=\"" + src.name + "\"";
    messages_ = m->GetCounter("portrait_source_kafka_messages_total", "Kafka messages ingested", label);
    lines_ = m->GetCounter("portrait_source_lines_total", "Lines read by a pull source", label);
    errors_ = m->GetCounter("portrait_source_errors_total", "Batches a source could not hand over (retried)", label);
  }

  ~KafkaSource() override {
    Stop();
    if (rk_) rd_kafka_destroy(rk_);
  }

  Status Start() override {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char err[512];
    const std::pair<const char*, std::string> settings[] = {
        {"bootstrap.servers", src_.brokers}, {"group.id", src_.group},          {"enable.auto.commit", "false"},
        {"auto.offset.reset", "earliest"},   {"session.timeout.ms", "6000"}, {"heartbeat.interval.ms", "1500"}};
    for (const auto& [k, v] : settings) {
      if (rd_kafka_conf_set(conf, k, v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        return Status::InvalidArgument("source \"" + src_.name + "\": " + k + ": " + err);
      }
    }
    rk_ = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk_) {
      rd_kafka_conf_destroy(conf);
      return Status::InvalidArgument("source \"" + src_.name + "\": " + err);
    }
    rd_kafka_poll_set_consumer(rk_);
    rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, src_.topic.c_str(), RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rk_, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e) return Status::Unavailable("source \"" + src_.name + "\": subscribe " + src_.topic + ": " + rd_kafka_err2str(e));
    thread_ = std::thread([this] { Run(); });
    return Status::Ok();
  }

  void Stop() override {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
    if (rk_ && !closed_) {
      rd_kafka_consumer_close(rk_);
      closed_ = true;
    }
  }

 private:
  void Run() {
    std::vector<rd_kafka_message_t*> batch;
    std::vector<std::string_view> lines;
    while (!stop_.load()) {
      // Gather up to 2000 messages or poll_ms, whichever comes first.
      auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(src_.poll_ms);
      while (batch.size() < 2000 && !stop_.load()) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        rd_kafka_message_t* m = rd_kafka_consumer_poll(rk_, batch.empty() ? static_cast<int>(left.count()) : 0);
        if (!m) {
          if (!batch.empty()) break;
          continue;
        }
        if (m->err) {
          if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            errors_->Inc();
            spdlog::warn("source {}: {}", src_.name, rd_kafka_message_errstr(m));
          }
          rd_kafka_message_destroy(m);
          continue;
        }
        batch.push_back(m);
      }
      if (batch.empty()) continue;
      lines.clear();
      for (rd_kafka_message_t* m : batch) {
        std::string_view v(static_cast<const char*>(m->payload), m->len);
        while (!v.empty()) {
          size_t nl = v.find('\n');
          std::string_view line = v.substr(0, nl);
          if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
          if (!line.empty()) lines.push_back(line);
          v = nl == std::string_view::npos ? std::string_view() : v.substr(nl + 1);
        }
      }
      std::vector<std::pair<size_t, std::string>> unreadable;
      std::string body = LinesToBody(lines, src_, cfg_, &unreadable);
      // Held until durable: a failing log is retried with the same batch.
      while (!stop_.load()) {
        auto r = collector_->Ingest(body, "kafka:" + src_.name);
        if (r.ok()) break;
        errors_->Inc();
        spdlog::error("source {}: {} (will retry)", src_.name, r.status().ToString());
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
      }
      if (stop_.load()) {
        Release(&batch);
        return;  // not committed: delivered again after the restart
      }
      for (const auto& [i, why] : unreadable) spdlog::warn("source {}: line {}: {}", src_.name, i, why);
      // The consumer's position covers exactly what was polled, i.e. this batch.
      rd_kafka_resp_err_t e = rd_kafka_commit(rk_, nullptr, /*async=*/0);
      if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        errors_->Inc();
        spdlog::warn("source {}: commit: {} (the batch may be read again; repeats are dropped)", src_.name,
                     rd_kafka_err2str(e));
      }
      messages_->Inc(batch.size());
      lines_->Inc(lines.size());
      Release(&batch);
    }
  }

  static void Release(std::vector<rd_kafka_message_t*>* batch) {
    for (rd_kafka_message_t* m : *batch) rd_kafka_message_destroy(m);
    batch->clear();
  }

  SourceConfig src_;
  const Config& cfg_;
  Collector* collector_;
  rd_kafka_t* rk_ = nullptr;
  bool closed_ = false;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  Counter* messages_;
  Counter* lines_;
  Counter* errors_;
};

}  // namespace

Result<std::unique_ptr<PullSource>> MakeKafkaSource(const SourceConfig& source, const Config& config,
                                                    Collector* collector, MetricsRegistry* metrics) {
  return std::unique_ptr<PullSource>(std::make_unique<KafkaSource>(source, config, collector, metrics));
}

}  // namespace portrait
