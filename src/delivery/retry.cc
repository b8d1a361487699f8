#include "delivery/retry.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <algorithm>
#include <deque>

#include "fusion/records.h"
#include "core/coding.h"
#include "core/record_kind.h"
#include "core/event.h"
#include "core/json.h"

namespace portrait {

namespace {
constexpr uint8_t kRetryKind = static_cast<uint8_t>(RecordKind::kRetry);
}

void EncodeRetryItem(const RetryItem& r, std::string* out) {
  Writer w(out);
  w.U8(kRetryKind);
  w.Bytes(r.sink);
  w.Bytes(r.key);
  w.Bytes(r.payload);
  w.Bytes(r.error);
  w.Varint(static_cast<uint64_t>(r.failures));
  w.SignedVarint(r.first_failed_ms);
  w.SignedVarint(r.due_ms);
}

Status DecodeRetryItem(std::string_view in, RetryItem* r) {
  Reader rd(in);
  if (rd.U8() != kRetryKind) return Status::Corruption("retry item: wrong kind");
  r->sink = rd.Bytes();
  r->key = rd.Bytes();
  r->payload = rd.Bytes();
  r->error = rd.Bytes();
  r->failures = static_cast<int>(rd.Varint());
  r->first_failed_ms = rd.SignedVarint();
  r->due_ms = rd.SignedVarint();
  if (!rd.ok() || !rd.done()) return Status::Corruption("retry item: truncated");
  return Status::Ok();
}

std::string RetryItemToJson(const RetryItem& r, Offset offset) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("offset").Int(offset.value).Key("sink").String(r.sink).Key("key").String(r.key);
  w.Key("failures").Int(r.failures).Key("first_failed_at").Int(r.first_failed_ms).Key("error").String(r.error);
  // A quarantined record (stream/quarantine.h) is shown as what it was: its place in the
  // log and the event as JSON, instead of its binary encoding.
  ReleaseRecord rr;
  Event e;
  if (PeekRecordKind(r.payload) == RecordKind::kRelease && DecodeReleaseRecord(r.payload, &rr).ok()) {
    w.Key("partition").Int(rr.partition).Key("log_offset").Int(rr.offset);
    if (PeekRecordKind(rr.record) == RecordKind::kEvent && DecodeEvent(rr.record, &e).ok()) {
      w.Key("event").Raw(EventToJson(e));
    }
    w.EndObject();
    return out;
  }
  w.Key("payload").String(r.payload).EndObject();
  return out;
}

Status LogSink::Deliver(std::string_view key, std::string_view payload) {
  LogEntry e{PartitionFor(key, log_->partitions()), payload};
  return log_->Append({&e, 1});
}

Result<RetryLogs> OpenRetryLogs(const Config& config, MetricsRegistry* metrics, bool read_only) {
  LogConfig local = config.log;
  local.backend = "embedded";
  RetryLogs logs;
  ASSIGN_OR_RETURN(logs.retry, MakeLog(local, config.data_dir, "retry", RetryQueue::Steps(config.retry), metrics, read_only));
  ASSIGN_OR_RETURN(logs.dead, MakeLog(local, config.data_dir, "dead", 1, metrics, read_only));
  logs.replay_marks = config.data_dir + "/log/dead/replayed.offsets";
  logs.quarantine_journal = config.data_dir + "/log/dead/quarantine.journal";
  return logs;
}

RetryQueue::RetryQueue(const RetryConfig& config, Log* retry, Log* dead, MetricsRegistry* m)
    : config_(config), retry_(retry), dead_(dead) {
  first_failures_ = m->GetCounter("portrait_retry_queued_total", "Sink deliveries that failed and were queued for retry");
  retried_ok_ = m->GetCounter("portrait_retry_delivered_total", "Retried items delivered");
  retried_failed_ = m->GetCounter("portrait_retry_failed_total", "Retries that failed again");
  dead_items_ = m->GetCounter("portrait_dead_letters_total", "Items moved to the dead-letter topic");
  waiting_ = m->GetGauge("portrait_retry_waiting", "Items in the retry topic not yet delivered");
}

RetryQueue::~RetryQueue() { Stop(); }

void RetryQueue::AddSink(Sink* sink) { sinks_[sink->name()] = sink; }

Status RetryQueue::Start() {
  thread_ = std::thread([this] { Run(); });
  return Status::Ok();
}

void RetryQueue::Stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

Status RetryQueue::Deliver(Sink& sink, std::string_view key, std::string_view payload) {
  Status st = sink.Deliver(key, payload);
  if (st.ok()) return st;
  return Enqueue(sink.name(), key, payload, st.message());
}

Status RetryQueue::Enqueue(std::string_view sink, std::string_view key, std::string_view payload,
                           std::string_view error) {
  first_failures_->Inc();
  RetryItem item{std::string(sink), std::string(key), std::string(payload), std::string(error), 1, NowMs(), 0};
  spdlog::warn("sink {}: {} (key {}; queued for retry)", item.sink, item.error, item.key);
  return Queue(std::move(item));
}

Status RetryQueue::Queue(RetryItem item) {
  std::string rec;
  if (item.failures >= config_.attempts) {
    EncodeRetryItem(item, &rec);
    LogEntry e{PartitionId(0), rec};
    RETURN_IF_ERROR(dead_->Append({&e, 1}));
    dead_items_->Inc();
    spdlog::error("sink {}: key {} failed {} times, moved to the dead-letter topic: {}", item.sink, item.key,
                  item.failures, item.error);
    return Status::Ok();
  }
  int step = std::min(item.failures, retry_->partitions()) - 1;
  item.due_ms = NowMs() + config_.BackoffMs(item.failures);
  EncodeRetryItem(item, &rec);
  LogEntry e{PartitionId(step), rec};
  return retry_->Append({&e, 1});
}

void RetryQueue::Run() {
  struct Step {
    std::unique_ptr<LogReader> reader;
    std::deque<std::pair<Offset, RetryItem>> pending;
  };
  std::vector<Step> steps(static_cast<size_t>(retry_->partitions()));
  std::vector<LogRecord> recs;
  auto open = [&](size_t s) -> bool {
    PartitionId p(static_cast<int32_t>(s));
    auto committed = retry_->CommittedOffset(kConsumer, p);
    if (!committed.ok()) return false;
    auto reader = retry_->OpenReader(p, std::max(*committed, retry_->StartOffset(p)));
    if (!reader.ok()) {
      spdlog::error("retry: step {}: {}", s, reader.status().ToString());
      return false;
    }
    steps[s].reader = std::move(reader).value();
    return true;
  };
  while (!stop_.load()) {
    uint64_t epoch = retry_->DataEpoch();
    TimestampMs now = NowMs();
    TimestampMs next_due = now + 200;
    bool stuck = false;
    int64_t waiting = 0;
    for (size_t s = 0; s < steps.size() && !stop_.load(); ++s) {
      Step& st = steps[s];
      PartitionId p(static_cast<int32_t>(s));
      if (!st.reader && !open(s)) continue;
      if (st.pending.empty()) {
        if (Status rs = st.reader->Read(256 << 10, &recs); !rs.ok()) {
          spdlog::error("retry: step {}: {}", s, rs.ToString());
          st.reader.reset();
          continue;
        }
        for (const LogRecord& r : recs) {
          RetryItem item;
          if (Status ds = DecodeRetryItem(r.payload, &item); !ds.ok()) {
            spdlog::error("retry: step {} offset {}: {} (skipped)", s, r.offset.value, ds.ToString());
            continue;
          }
          st.pending.emplace_back(r.offset, std::move(item));
        }
      }
      while (!st.pending.empty() && st.pending.front().second.due_ms <= now && !stop_.load()) {
        auto& [offset, item] = st.pending.front();
        auto sink = sinks_.find(item.sink);
        Status ds = sink == sinks_.end() ? Status::NotFound("no sink named \"" + item.sink + "\" is configured")
                                         : sink->second->Deliver(item.key, item.payload);
        if (ds.ok()) {
          retried_ok_->Inc();
        } else {
          RetryItem again = item;
          again.failures++;
          again.error = ds.message();
          if (Status qs = Queue(std::move(again)); !qs.ok()) {
            spdlog::error("retry: cannot queue an item again: {}", qs.ToString());
            stuck = true;  // keep it in hand and try again shortly
            break;
          }
          retried_failed_->Inc();
        }
        if (Status cs = retry_->CommitOffset(kConsumer, p, Offset(offset.value + 1)); !cs.ok()) {
          spdlog::error("retry: commit: {}", cs.ToString());
        }
        st.pending.pop_front();
        now = NowMs();
      }
      if (!st.pending.empty()) next_due = std::min(next_due, st.pending.front().second.due_ms);
      waiting += static_cast<int64_t>(st.pending.size()) + (retry_->EndOffset(p).value - st.reader->position().value);
    }
    waiting_->Set(waiting);
    int64_t wait = stuck ? 500 : std::clamp<int64_t>(next_due - NowMs(), 1, 200);
    retry_->WaitForData(epoch, std::chrono::milliseconds(wait));
  }
}

namespace {

Status ReadMarks(const std::string& path, std::set<int64_t>* marks) {
  std::ifstream in(path);
  int64_t v;
  while (in >> v) marks->insert(v);
  return Status::Ok();
}

Status AppendMarks(const std::string& path, const std::vector<int64_t>& offsets) {
  if (offsets.empty()) return Status::Ok();
  std::string text;
  for (int64_t o : offsets) text += std::to_string(o) + "\n";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IOError("dead-letter replay marks " + path + ": " + std::strerror(errno));
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fdatasync(fd) == 0;
  ::close(fd);
  if (!ok) return Status::IOError("dead-letter replay marks " + path + ": cannot write");
  return Status::Ok();
}

}  // namespace

Result<size_t> RetryQueue::ReplayDead(std::string_view sink) {
  std::lock_guard lk(replay_mu_);
  std::set<int64_t> marks_from_file;
  std::set<int64_t>& replayed = replay_marks_.empty() ? replayed_ : marks_from_file;
  if (!replay_marks_.empty()) RETURN_IF_ERROR(ReadMarks(replay_marks_, &replayed));
  // Items before the oldest kept one or before every earlier unfiltered replay's end are done.
  PartitionId p(0);
  ASSIGN_OR_RETURN(Offset from, dead_->CommittedOffset(kReplayConsumer, p));
  from = std::max(from, dead_->StartOffset(p));
  Offset end = dead_->EndOffset(p);
  std::vector<int64_t> taken;
  ASSIGN_OR_RETURN(auto reader, dead_->OpenReader(p, from));
  std::vector<LogRecord> recs;
  std::vector<std::string> out;
  while (reader->position() < end) {
    RETURN_IF_ERROR(reader->Read(1 << 20, &recs));
    if (recs.empty()) break;
    for (const LogRecord& r : recs) {
      if (r.offset >= end) break;
      RetryItem item;
      RETURN_IF_ERROR(DecodeRetryItem(r.payload, &item).WithContext("dead-letter offset " + std::to_string(r.offset.value)));
      if (!sink.empty() && item.sink != sink) continue;
      if (replayed.count(r.offset.value)) continue;
      taken.push_back(r.offset.value);
      item.failures = 0;
      item.due_ms = NowMs();
      EncodeRetryItem(item, &out.emplace_back());
    }
  }
  std::vector<LogEntry> entries;
  for (const std::string& rec : out) entries.push_back({PartitionId(0), rec});
  if (!entries.empty()) RETURN_IF_ERROR(retry_->Append(entries));
  if (replay_marks_.empty()) {
    replayed.insert(taken.begin(), taken.end());
  } else {
    RETURN_IF_ERROR(AppendMarks(replay_marks_, taken));
  }
  // An unfiltered replay has taken everything up to `end`: later replays start there.
  if (sink.empty()) RETURN_IF_ERROR(dead_->CommitOffset(kReplayConsumer, p, end));
  return out.size();
}

Result<std::vector<std::pair<Offset, RetryItem>>> ReadLatestDead(Log& dead, size_t limit) {
  std::vector<std::pair<Offset, RetryItem>> out;
  RETURN_IF_ERROR(ReadTail(dead, PartitionId(0), limit, [&](Offset offset, std::string_view payload) {
    RetryItem r;
    RETURN_IF_ERROR(DecodeRetryItem(payload, &r).WithContext("dead-letter offset " + std::to_string(offset.value)));
    out.emplace_back(offset, std::move(r));
    return Status::Ok();
  }));
  std::reverse(out.begin(), out.end());
  return out;
}

}  // namespace portrait
