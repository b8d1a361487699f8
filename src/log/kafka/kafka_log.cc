#include "log/kafka/kafka_log.h"

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

namespace portrait {
namespace {

struct HandleDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using KafkaHandle = std::unique_ptr<rd_kafka_t, HandleDeleter>;

std::string ErrText(rd_kafka_resp_err_t err) { return rd_kafka_err2str(err); }

void LogToSpdlog(const rd_kafka_t* rk, int level, const char* fac, const char* buf) {
  // syslog levels: 0-3 errors, 4 warning, 5-6 info, 7 debug
  if (level <= 3) spdlog::error("kafka {}: {}", fac, buf);
  else if (level == 4) spdlog::warn("kafka {}: {}", fac, buf);
  else if (level <= 6) spdlog::info("kafka {}: {}", fac, buf);
  else spdlog::debug("kafka {}: {}", fac, buf);
}

// A librdkafka handle from our defaults, then `settings`, then the user's [log.kafka]
// properties (which win).
Result<KafkaHandle> NewHandle(rd_kafka_type_t type, const KafkaLogConfig& k,
                              std::initializer_list<std::pair<const char*, std::string>> settings,
                              const std::function<void(rd_kafka_conf_t*)>& extra = {}) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  auto set = [&](const std::string& key, const std::string& value) -> Status {
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      return Status::InvalidArgument("[log.kafka] " + key + " = \"" + value + "\": " + err);
    }
    return Status::Ok();
  };
  Status st = set("bootstrap.servers", k.brokers);
  for (const auto& [key, value] : settings) {
    if (st.ok()) st = set(key, value);
  }
  for (const auto& [key, value] : k.properties) {
    if (st.ok()) st = set(key, value);
  }
  if (!st.ok()) {
    rd_kafka_conf_destroy(conf);
    return st;
  }
  rd_kafka_conf_set_log_cb(conf, LogToSpdlog);
  if (extra) extra(conf);
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof err);  // owns conf from here on success
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    return Status::InvalidArgument(std::string("kafka: cannot create a client: ") + err);
  }
  return KafkaHandle(rk);
}

struct PartitionList {
  rd_kafka_topic_partition_list_t* list;
  explicit PartitionList(int size) : list(rd_kafka_topic_partition_list_new(size)) {}
  ~PartitionList() { rd_kafka_topic_partition_list_destroy(list); }
  PartitionList(const PartitionList&) = delete;
  PartitionList& operator=(const PartitionList&) = delete;
};

// ---- reading one partition -------------------------------------------------------------

class KafkaReader : public LogReader {
 public:
  KafkaReader(KafkaHandle rk, Offset from) : rk_(std::move(rk)), next_(from) {}
  ~KafkaReader() override {
    Release();
    rd_kafka_consumer_close(rk_.get());
  }

  Status Read(size_t max_bytes, std::vector<LogRecord>* out) override {
    out->clear();
    Release();
    size_t bytes = 0;
    while (bytes < max_bytes) {
      // Wait for the first record unless the partition is known to be read to its end.
      int timeout = out->empty() && !at_end_ ? 200 : 0;
      rd_kafka_message_t* m = rd_kafka_consumer_poll(rk_.get(), timeout);
      if (!m) break;
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        at_end_ = true;
        rd_kafka_message_destroy(m);
        break;
      }
      if (m->err) {
        std::string what = rd_kafka_message_errstr(m);
        rd_kafka_message_destroy(m);
        return Status::Unavailable("kafka read: " + what);
      }
      at_end_ = false;
      held_.push_back(m);
      out->push_back({Offset(m->offset), std::string_view(static_cast<const char*>(m->payload), m->len)});
      next_ = Offset(m->offset + 1);
      bytes += m->len;
    }
    return Status::Ok();
  }

  Offset position() const override { return next_; }

 private:
  void Release() {
    for (rd_kafka_message_t* m : held_) rd_kafka_message_destroy(m);
    held_.clear();
  }

  KafkaHandle rk_;
  Offset next_;
  bool at_end_ = false;
  std::vector<rd_kafka_message_t*> held_;
};

// ---- a consumer group member -----------------------------------------------------------

class KafkaGroupMember : public GroupMember {
 public:
  KafkaGroupMember(GroupStart start, std::string topic) : start_(std::move(start)), topic_(std::move(topic)) {}

  Status Init(KafkaHandle rk) {
    rk_ = std::move(rk);
    rd_kafka_poll_set_consumer(rk_.get());
    PartitionList topics(1);
    rd_kafka_topic_partition_list_add(topics.list, topic_.c_str(), RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(rk_.get(), topics.list);
    if (err) return Status::Unavailable("kafka: cannot subscribe to " + topic_ + ": " + ErrText(err));
    return Status::Ok();
  }

  ~KafkaGroupMember() override {
    if (!rk_) return;
    current_ = nullptr;
    Release();
    rd_kafka_consumer_close(rk_.get());  // leaves the group; its partitions move at once
  }

  Status Poll(size_t max_records, std::chrono::milliseconds wait, std::vector<PartitionBatch>* out) override {
    out->clear();
    Release();
    current_ = out;
    auto deadline = std::chrono::steady_clock::now() + wait;
    size_t n = 0;
    while (n < max_records) {
      int timeout = 0;
      if (n == 0) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        timeout = static_cast<int>(left.count());
      }
      rd_kafka_message_t* m = rd_kafka_consumer_poll(rk_.get(), timeout);
      if (!m) {
        if (n > 0) break;
        continue;
      }
      if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) spdlog::warn("kafka consumer: {}", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        continue;
      }
      held_.push_back(m);
      PartitionId p(m->partition);
      if (out->empty() || out->back().partition != p) {
        auto it = std::find_if(out->begin(), out->end(), [&](const PartitionBatch& b) { return b.partition == p; });
        if (it == out->end()) {
          out->push_back({p, {}});
        } else if (it != out->end() - 1) {
          std::rotate(it, it + 1, out->end());  // the partition being read goes last
        }
      }
      out->back().records.push_back({Offset(m->offset), {static_cast<const char*>(m->payload), m->len}});
      ++n;
    }
    current_ = nullptr;
    return Status::Ok();
  }

  Status Commit(std::span<const PartitionOffset> done) override {
    if (done.empty()) return Status::Ok();
    PartitionList list(static_cast<int>(done.size()));
    for (const PartitionOffset& d : done) {
      rd_kafka_topic_partition_list_add(list.list, topic_.c_str(), d.partition.value)->offset = d.next.value;
    }
    rd_kafka_resp_err_t err = rd_kafka_commit(rk_.get(), list.list, /*async=*/1);
    if (err) return Status::Unavailable("kafka commit: " + ErrText(err));
    return Status::Ok();
  }

  std::vector<PartitionId> Assignment() const override {
    std::lock_guard lk(mu_);
    return held_partitions_;
  }

  static void OnRebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                          void* opaque) {
    static_cast<KafkaGroupMember*>(opaque)->Rebalance(rk, err, parts);
  }

 private:
  void Rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts) {
    bool cooperative = std::string_view(rd_kafka_rebalance_protocol(rk)) == "COOPERATIVE";
    std::vector<PartitionId> changed;
    for (int i = 0; i < parts->cnt; ++i) changed.push_back(PartitionId(parts->elems[i].partition));
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      for (int i = 0; i < parts->cnt; ++i) {
        std::optional<Offset> at = start_ ? start_(changed[i]) : std::nullopt;
        parts->elems[i].offset = at ? at->value : RD_KAFKA_OFFSET_INVALID;  // INVALID = the committed offset
      }
      if (cooperative) rd_kafka_error_destroy(rd_kafka_incremental_assign(rk, parts));
      else rd_kafka_assign(rk, parts);
      std::lock_guard lk(mu_);
      if (!cooperative) held_partitions_.clear();
      held_partitions_.insert(held_partitions_.end(), changed.begin(), changed.end());
      spdlog::info("kafka group: given {} partition(s) of {}", changed.size(), topic_);
    } else {
      // Records already taken from these partitions in the running Poll are dropped: their
      // new holder starts from what was applied.
      if (current_) {
        std::erase_if(*current_, [&](const PartitionBatch& b) {
          return std::find(changed.begin(), changed.end(), b.partition) != changed.end();
        });
      }
      if (cooperative) rd_kafka_error_destroy(rd_kafka_incremental_unassign(rk, parts));
      else rd_kafka_assign(rk, nullptr);
      std::lock_guard lk(mu_);
      std::erase_if(held_partitions_, [&](PartitionId p) {
        return std::find(changed.begin(), changed.end(), p) != changed.end();
      });
      spdlog::info("kafka group: gave up {} partition(s) of {}", changed.size(), topic_);
    }
  }

  void Release() {
    for (rd_kafka_message_t* m : held_) rd_kafka_message_destroy(m);
    held_.clear();
  }

  GroupStart start_;
  std::string topic_;
  KafkaHandle rk_;
  std::vector<rd_kafka_message_t*> held_;
  std::vector<PartitionBatch>* current_ = nullptr;
  mutable std::mutex mu_;
  std::vector<PartitionId> held_partitions_;
};

// ---- the log ---------------------------------------------------------------------------

// One Append's messages in flight: the delivery reports count them down.
struct Delivery {
  std::mutex mu;
  std::condition_variable cv;
  size_t pending = 0;
  std::vector<Offset>* offsets = nullptr;
  std::string error;
};

struct DeliverySlot {
  Delivery* delivery;
  size_t index;
};

void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
  auto* slot = static_cast<DeliverySlot*>(m->_private);
  Delivery* d = slot->delivery;
  std::lock_guard lk(d->mu);
  if (m->err) {
    if (d->error.empty()) d->error = ErrText(m->err);
  } else if (d->offsets) {
    (*d->offsets)[slot->index] = Offset(m->offset);
  }
  if (--d->pending == 0) d->cv.notify_all();
}

class KafkaLog : public Log {
 public:
  KafkaLog(const LogConfig& config, std::string topic, int partitions, MetricsRegistry* m)
      : config_(config), name_(std::move(topic)), topic_(config.kafka.topic_prefix + name_), partitions_(partitions) {
    produced_ = m->GetCounter("portrait_kafka_produced_total", "Records acknowledged by Kafka", "topic=\"" + name_ + "\"");
    produce_errors_ =
        m->GetCounter("portrait_kafka_produce_errors_total", "Records Kafka did not acknowledge", "topic=\"" + name_ + "\"");
    for (int p = 0; p < partitions; ++p) ends_.push_back(std::make_unique<std::atomic<int64_t>>(0));
  }

  ~KafkaLog() override {
    Close();
    for (auto& [name, rk] : offset_clients_) rd_kafka_consumer_close(rk.get());
    if (rkt_) rd_kafka_topic_destroy(rkt_);
  }

  Status Open() {
    ASSIGN_OR_RETURN(producer_, NewHandle(RD_KAFKA_PRODUCER, config_.kafka,
                                          {{"enable.idempotence", "true"},
                                           {"acks", "all"},
                                           {"linger.ms", "2"},
                                           {"message.timeout.ms", "30000"},
                                           {"allow.auto.create.topics", "false"}},
                                          [](rd_kafka_conf_t* c) { rd_kafka_conf_set_dr_msg_cb(c, OnDelivery); }));
    rkt_ = rd_kafka_topic_new(producer_.get(), topic_.c_str(), nullptr);
    RETURN_IF_ERROR(EnsureTopic());
    poller_ = std::thread([this] {
      while (!stop_.load()) rd_kafka_poll(producer_.get(), 100);
    });
    return Status::Ok();
  }

  int partitions() const override { return partitions_; }

  Status Append(std::span<const LogEntry> entries, std::vector<Offset>* offsets) override {
    if (stop_.load()) return Status::FailedPrecondition("log " + name_ + " is closed");
    if (offsets) offsets->assign(entries.size(), Offset(-1));
    Delivery d;
    d.offsets = offsets;
    d.pending = entries.size();
    std::vector<DeliverySlot> slots(entries.size());
    for (size_t i = 0; i < entries.size(); ++i) {
      slots[i] = {&d, i};
      rd_kafka_resp_err_t err;
      while (true) {
        err = rd_kafka_producev(producer_.get(), RD_KAFKA_V_RKT(rkt_), RD_KAFKA_V_PARTITION(entries[i].partition.value),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_VALUE(const_cast<char*>(entries[i].payload.data()), entries[i].payload.size()),
                                RD_KAFKA_V_OPAQUE(&slots[i]), RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));  // the poller drains reports meanwhile
      }
      if (err) {
        std::lock_guard lk(d.mu);
        if (d.error.empty()) d.error = ErrText(err);
        d.pending -= entries.size() - i;  // these were never queued
        break;
      }
    }
    std::unique_lock lk(d.mu);
    d.cv.wait(lk, [&] { return d.pending == 0; });
    if (!d.error.empty()) {
      produce_errors_->Inc(entries.size());
      return Status::Unavailable("kafka: appending to " + topic_ + ": " + d.error);
    }
    produced_->Inc(entries.size());
    return Status::Ok();
  }

  Result<std::unique_ptr<LogReader>> OpenReader(PartitionId p, Offset from) override {
    ASSIGN_OR_RETURN(auto rk, NewHandle(RD_KAFKA_CONSUMER, config_.kafka,
                                        {{"group.id", config_.kafka.group + ".readers"},
                                         {"enable.auto.commit", "false"},
                                         {"enable.partition.eof", "true"},
                                         {"auto.offset.reset", "earliest"}}));
    PartitionList list(1);
    rd_kafka_topic_partition_list_add(list.list, topic_.c_str(), p.value)->offset = from.value;
    rd_kafka_resp_err_t err = rd_kafka_assign(rk.get(), list.list);
    if (err) return Status::Unavailable("kafka: cannot read " + topic_ + " partition " + std::to_string(p.value) + ": " + ErrText(err));
    return std::unique_ptr<LogReader>(new KafkaReader(std::move(rk), from));
  }

  Offset EndOffset(PartitionId p) const override { return Watermark(p, /*high=*/true); }
  Offset StartOffset(PartitionId p) const override { return Watermark(p, /*high=*/false); }

  Result<uint64_t> Trim(PartitionId, Offset, int64_t, uint64_t) override { return uint64_t{0}; }

  // A named consumer's offsets are those of the Kafka group GROUP.CONSUMER, committed
  // synchronously by a client that never joins it (so they are seen by every process,
  // e.g. by the next holder of a partition the archiver wrote).
  Status CommitOffset(std::string_view consumer, PartitionId p, Offset next) override {
    ASSIGN_OR_RETURN(rd_kafka_t * rk, OffsetClient(consumer));
    PartitionList list(1);
    rd_kafka_topic_partition_list_add(list.list, topic_.c_str(), p.value)->offset = next.value;
    rd_kafka_resp_err_t err = rd_kafka_commit(rk, list.list, /*async=*/0);
    if (!err) err = list.list->elems[0].err;
    if (err) return Status::Unavailable("kafka: committing " + std::string(consumer) + " offsets of " + topic_ + ": " + ErrText(err));
    return Status::Ok();
  }
  Result<Offset> CommittedOffset(std::string_view consumer, PartitionId p) override {
    ASSIGN_OR_RETURN(rd_kafka_t * rk, OffsetClient(consumer));
    PartitionList list(1);
    rd_kafka_topic_partition_list_add(list.list, topic_.c_str(), p.value);
    rd_kafka_resp_err_t err = rd_kafka_committed(rk, list.list, 10'000);
    if (!err) err = list.list->elems[0].err;
    if (err) return Status::Unavailable("kafka: reading " + std::string(consumer) + " offsets of " + topic_ + ": " + ErrText(err));
    int64_t at = list.list->elems[0].offset;
    return Offset(at < 0 ? 0 : at);  // RD_KAFKA_OFFSET_INVALID: never committed
  }

  uint64_t DataEpoch() const override { return 0; }
  void WaitForData(uint64_t, std::chrono::milliseconds timeout) override { std::this_thread::sleep_for(timeout); }

  bool HasGroups() const override { return true; }

  Result<std::unique_ptr<GroupMember>> JoinGroup(const std::string& group, GroupStart start) override {
    auto member = std::make_unique<KafkaGroupMember>(std::move(start), topic_);
    KafkaGroupMember* raw = member.get();
    ASSIGN_OR_RETURN(auto rk, NewHandle(RD_KAFKA_CONSUMER, config_.kafka,
                                        {{"group.id", config_.kafka.group + "." + group},
                                         {"enable.auto.commit", "false"},
                                         {"enable.auto.offset.store", "false"},
                                         {"auto.offset.reset", "earliest"},
                                         {"session.timeout.ms", std::to_string(config_.kafka.session_timeout_ms)},
                                         {"heartbeat.interval.ms", std::to_string(config_.kafka.session_timeout_ms / 4)}},
                                        [raw](rd_kafka_conf_t* c) {
                                          rd_kafka_conf_set_opaque(c, raw);
                                          rd_kafka_conf_set_rebalance_cb(c, KafkaGroupMember::OnRebalance);
                                        }));
    RETURN_IF_ERROR(member->Init(std::move(rk)));
    return std::unique_ptr<GroupMember>(std::move(member));
  }

  void Close() override {
    if (stop_.exchange(true)) return;
    if (producer_) {
      rd_kafka_resp_err_t err = rd_kafka_flush(producer_.get(), 30'000);
      if (err) spdlog::error("kafka: {} records of {} not delivered at close: {}", rd_kafka_outq_len(producer_.get()), topic_, ErrText(err));
    }
    if (poller_.joinable()) poller_.join();
  }

 private:
  Offset Watermark(PartitionId p, bool high) const {
    int64_t lo = 0, hi = 0;
    rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(producer_.get(), topic_.c_str(), p.value, &lo, &hi, 10'000);
    if (err) {
      spdlog::warn("kafka: offsets of {} partition {}: {} (using the last known)", topic_, p.value, ErrText(err));
      return high ? Offset(ends_[p.value]->load()) : Offset(0);
    }
    ends_[p.value]->store(hi);
    return Offset(high ? hi : lo);
  }

  // Creates the topic when it is missing, then checks its partition count: users are
  // spread by portrait's own hash, so another count would send them elsewhere.
  Status EnsureTopic() {
    bool created = false;
    for (int attempt = 0;; ++attempt) {
      const rd_kafka_metadata_t* md = nullptr;
      rd_kafka_resp_err_t err = rd_kafka_metadata(producer_.get(), 0, rkt_, &md, 10'000);
      if (err) {
        return Status::Unavailable("kafka: no answer from brokers \"" + config_.kafka.brokers + "\": " + ErrText(err));
      }
      int have = md->topic_cnt == 1 ? md->topics[0].partition_cnt : 0;
      rd_kafka_resp_err_t terr = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
      rd_kafka_metadata_destroy(md);
      if (!terr && have == partitions_) return Status::Ok();
      if (!terr && have != partitions_) {
        return Status::FailedPrecondition("kafka topic " + topic_ + " has " + std::to_string(have) +
                                          " partitions but portrait needs " + std::to_string(partitions_) +
                                          " ([log] partitions); use another topic_prefix or set partitions to match");
      }
      if (!created) {
        created = true;
        if (!CreateTopic()) {
          return Status::Unavailable("kafka topic " + topic_ + " does not exist and could not be created; create it with " +
                                     std::to_string(partitions_) + " partitions");
        }
      }
      if (attempt >= 50) return Status::Unavailable("kafka topic " + topic_ + ": " + ErrText(terr));
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }

  // True when the brokers created the topic (or it appeared meanwhile).
  bool CreateTopic() {
    char err[512];
    rd_kafka_NewTopic_t* nt =
        rd_kafka_NewTopic_new(topic_.c_str(), partitions_, config_.kafka.replication_factor, err, sizeof err);
    if (!nt) {
      spdlog::warn("kafka: cannot describe topic {}: {}", topic_, err);
      return false;
    }
    if (auto it = config_.retention.find(name_); it != config_.retention.end()) {
      if (it->second.age_ms > 0) rd_kafka_NewTopic_set_config(nt, "retention.ms", std::to_string(it->second.age_ms).c_str());
      if (it->second.bytes > 0) {
        uint64_t per_partition = std::max<uint64_t>(1, it->second.bytes / static_cast<uint64_t>(partitions_));
        rd_kafka_NewTopic_set_config(nt, "retention.bytes", std::to_string(per_partition).c_str());
      }
    }
    rd_kafka_queue_t* q = rd_kafka_queue_new(producer_.get());
    rd_kafka_CreateTopics(producer_.get(), &nt, 1, nullptr, q);
    rd_kafka_event_t* ev = rd_kafka_queue_poll(q, 10'000);
    bool ok = false;
    if (!ev) {
      spdlog::warn("kafka: no answer creating topic {}", topic_);
    } else {
      const rd_kafka_CreateTopics_result_t* res = rd_kafka_event_CreateTopics_result(ev);
      size_t n = 0;
      const rd_kafka_topic_result_t** tr = res ? rd_kafka_CreateTopics_result_topics(res, &n) : nullptr;
      rd_kafka_resp_err_t e = rd_kafka_event_error(ev);
      if (!e && n == 1) e = rd_kafka_topic_result_error(tr[0]);
      ok = !e || e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS;
      if (!e) spdlog::info("kafka: created topic {} with {} partitions", topic_, partitions_);
      else if (e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) spdlog::warn("kafka: creating topic {}: {}", topic_, ErrText(e));
      rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    return ok;
  }

  Result<rd_kafka_t*> OffsetClient(std::string_view consumer) {
    std::lock_guard lk(offsets_mu_);
    auto it = offset_clients_.find(std::string(consumer));
    if (it != offset_clients_.end()) return it->second.get();
    ASSIGN_OR_RETURN(auto rk, NewHandle(RD_KAFKA_CONSUMER, config_.kafka,
                                        {{"group.id", config_.kafka.group + "." + std::string(consumer)},
                                         {"enable.auto.commit", "false"},
                                         {"enable.auto.offset.store", "false"}}));
    rd_kafka_t* raw = rk.get();
    offset_clients_.emplace(std::string(consumer), std::move(rk));
    return raw;
  }

  const LogConfig config_;
  std::string name_;
  std::string topic_;
  int partitions_;
  KafkaHandle producer_;
  rd_kafka_topic_t* rkt_ = nullptr;
  std::thread poller_;
  std::atomic<bool> stop_{false};
  std::vector<std::unique_ptr<std::atomic<int64_t>>> ends_;
  Counter* produced_;
  Counter* produce_errors_;
  std::mutex offsets_mu_;
  std::map<std::string, KafkaHandle> offset_clients_;
};

}  // namespace

Result<std::unique_ptr<Log>> OpenKafkaLog(const LogConfig& config, const std::string& topic, int partitions,
                                          MetricsRegistry* metrics) {
  auto log = std::make_unique<KafkaLog>(config, topic, partitions, metrics);
  RETURN_IF_ERROR(log->Open());
  return std::unique_ptr<Log>(std::move(log));
}

}  // namespace portrait
