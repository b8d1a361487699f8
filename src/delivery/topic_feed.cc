#include "delivery/topic_feed.h"

#include <spdlog/spdlog.h>

namespace portrait {

uint64_t LiveFeed::Subscribe(Listener l) {
  std::lock_guard lk(mu_);
  listeners_.emplace(next_, std::move(l));
  return next_++;
}

void LiveFeed::Unsubscribe(uint64_t id) {
  std::lock_guard lk(mu_);
  listeners_.erase(id);
}

void LiveFeed::Publish(const std::string& json) {
  std::lock_guard lk(mu_);
  for (auto& [_, l] : listeners_) l(json);
}

size_t LiveFeed::subscribers() const {
  std::lock_guard lk(mu_);
  return listeners_.size();
}

HttpResponse LiveFeed::Serve(std::string_view banner, std::string event, RecordIdOf id_of,
                             std::function<bool(std::string_view json)> keep) {
  auto stream = std::make_shared<HttpStream>();
  // Opens the stream at once, so a client knows it is subscribed before any record.
  stream->Write(": " + std::string(banner) + "\nretry: 1000\n\n");
  std::weak_ptr<HttpStream> weak = stream;
  uint64_t id = Subscribe([weak, event, id_of, keep](const std::string& json) {
    auto s = weak.lock();
    if (!s || (keep && !keep(json))) return;
    std::string out = "event: " + event + "\nid: ";
    out += id_of(json);
    out += "\ndata: ";
    out += json;
    out += "\n\n";
    s->Write(out);
  });
  stream->OnEnd([this, id] { Unsubscribe(id); });
  HttpResponse resp{200, "text/event-stream", ""};
  resp.headers.emplace_back("Cache-Control", "no-cache");
  resp.headers.emplace_back("X-Accel-Buffering", "no");
  resp.stream = std::move(stream);
  return resp;
}

TopicDispatcher::TopicDispatcher(std::string what, Log* topic, std::string consumer, RetryQueue* retry, Sink* sink,
                                 RecordIdOf id_of, Metrics metrics)
    : what_(std::move(what)), topic_(topic), consumer_(std::move(consumer)), retry_(retry), sink_(sink),
      id_of_(std::move(id_of)), metrics_(metrics) {}

TopicDispatcher::~TopicDispatcher() { Stop(); }

Status TopicDispatcher::Start() {
  if (topic_->HasGroups()) {
    ASSIGN_OR_RETURN(member_, topic_->JoinGroup(consumer_, [](PartitionId) { return std::optional<Offset>(); }));
    thread_ = std::thread([this] { RunMember(member_.get()); });
  } else {
    thread_ = std::thread([this] { Run(); });
  }
  return Status::Ok();
}

void TopicDispatcher::Stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
  member_.reset();
}

bool TopicDispatcher::Dispatch(std::string_view payload) {
  Status st = retry_->Deliver(*sink_, id_of_(payload), payload);
  if (!st.ok()) {
    spdlog::error("{}: cannot deliver or queue a record: {}", what_, st.ToString());
    return false;
  }
  if (metrics_.dispatched) metrics_.dispatched->Inc();
  return true;
}

void TopicDispatcher::Run() {
  const int n = topic_->partitions();
  std::vector<std::unique_ptr<LogReader>> readers(static_cast<size_t>(n));
  std::vector<LogRecord> recs;
  while (!stop_.load()) {
    uint64_t epoch = topic_->DataEpoch();
    bool any = false, stuck = false;
    int64_t lag = 0;
    for (int p = 0; p < n && !stop_.load(); ++p) {
      PartitionId pid(p);
      auto& reader = readers[static_cast<size_t>(p)];
      if (!reader) {
        auto from = topic_->CommittedOffset(consumer_, pid);
        if (!from.ok()) continue;
        auto r = topic_->OpenReader(pid, std::max(*from, topic_->StartOffset(pid)));
        if (!r.ok()) {
          spdlog::error("{}: partition {}: {}", what_, p, r.status().ToString());
          continue;
        }
        reader = std::move(r).value();
      }
      if (Status st = reader->Read(1 << 20, &recs); !st.ok()) {
        spdlog::error("{}: partition {}: {}", what_, p, st.ToString());
        reader.reset();
        continue;
      }
      for (const LogRecord& rec : recs) {
        if (stop_.load() || !Dispatch(rec.payload)) {
          stuck = true;
          reader.reset();  // read again from the committed offset
          break;
        }
        if (Status cs = topic_->CommitOffset(consumer_, pid, Offset(rec.offset.value + 1)); !cs.ok()) {
          spdlog::error("{}: commit: {}", what_, cs.ToString());
        }
        any = true;
      }
      if (reader) lag += topic_->EndOffset(pid).value - reader->position().value;
    }
    if (metrics_.lag) metrics_.lag->Set(lag);
    if (stuck) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    } else if (!any) {
      topic_->WaitForData(epoch, std::chrono::milliseconds(200));
    }
  }
}

void TopicDispatcher::RunMember(GroupMember* member) {
  std::vector<PartitionBatch> batches;
  std::vector<PartitionOffset> done;
  while (!stop_.load()) {
    if (Status st = member->Poll(256, std::chrono::milliseconds(200), &batches); !st.ok()) {
      spdlog::error("{}: {}", what_, st.ToString());
      continue;
    }
    done.clear();
    for (const PartitionBatch& b : batches) {
      Offset next = b.records.front().offset;
      for (const LogRecord& rec : b.records) {
        while (!stop_.load() && !Dispatch(rec.payload)) std::this_thread::sleep_for(std::chrono::milliseconds(500));
        if (stop_.load()) break;
        next = Offset(rec.offset.value + 1);
      }
      done.push_back({b.partition, next});
    }
    if (!done.empty()) {
      if (Status cs = member->Commit(done); !cs.ok()) spdlog::warn("{}: {}", what_, cs.ToString());
    }
  }
}

TopicTail::~TopicTail() { Stop(); }

Status TopicTail::Start() {
  for (int p = 0; p < topic_->partitions(); ++p) {
    ASSIGN_OR_RETURN(auto reader, topic_->OpenReader(PartitionId(p), topic_->EndOffset(PartitionId(p))));
    readers_.push_back(std::move(reader));
  }
  thread_ = std::thread([this] { Run(); });
  return Status::Ok();
}

void TopicTail::Stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
  readers_.clear();
}

void TopicTail::Run() {
  std::vector<LogRecord> recs;
  while (!stop_.load()) {
    bool any = false;
    for (auto& reader : readers_) {
      if (Status st = reader->Read(1 << 20, &recs); !st.ok()) {
        spdlog::warn("{}: live stream: {}", what_, st.ToString());
        continue;
      }
      for (const LogRecord& rec : recs) {
        if (seen_.Add(IdWindow::Hash(id_of_(rec.payload)))) continue;
        feed_->Publish(std::string(rec.payload));
      }
      any |= !recs.empty();
    }
    if (!any) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace portrait
