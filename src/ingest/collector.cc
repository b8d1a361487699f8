#include "ingest/collector.h"

#include <simdjson.h>

#include <algorithm>
#include <cmath>

#include "core/json.h"
#include "ingest/failed.h"
#include "ingest/json_body.h"
#include "fusion/records.h"

#include <spdlog/spdlog.h>

namespace portrait {

namespace {

static_assert(Collector::kPadding >= simdjson::SIMDJSON_PADDING);


using EventError = BodyError;

// An identifier-like field: a non-empty string, or an integer (stored as its decimal text).
bool CheckProp(const FieldSpec& f, simdjson::dom::element v, EventError* err) {
  using T = simdjson::dom::element_type;
  auto wrong = [&](std::string_view want) {
    *err = {"wrong_type", "props." + f.name + " must be " + std::string(want) + ", not " + std::string(JsonTypeName(v.type()))};
    return false;
  };
  switch (f.type) {
    case FieldType::kString:
      if (!v.is_string()) return wrong("a string");
      if (f.max_len && v.get_string().value().size() > f.max_len) {
        *err = {"invalid_value", "props." + f.name + " is longer than " + std::to_string(f.max_len) + " bytes"};
        return false;
      }
      return true;
    case FieldType::kInt:
      if (!v.is_int64() && !v.is_uint64()) return wrong("an integer");
      break;
    case FieldType::kNumber:
      if (!v.is_number()) return wrong("a number");
      break;
    case FieldType::kBool:
      if (!v.is_bool()) return wrong("true or false");
      return true;
    case FieldType::kObject:
      if (v.type() != T::OBJECT) return wrong("an object");
      return true;
    case FieldType::kArray:
      if (v.type() != T::ARRAY) return wrong("an array");
      return true;
    case FieldType::kAny:
      return true;
  }
  double d = v.is_double() ? v.get_double().value() : v.is_int64() ? static_cast<double>(v.get_int64().value())
                                                                   : static_cast<double>(v.get_uint64().value());
  if ((f.min && d < *f.min) || (f.max && d > *f.max)) {
    std::string range = "[" + (f.min ? std::to_string(*f.min) : std::string("-inf")) + ", " +
                        (f.max ? std::to_string(*f.max) : std::string("inf")) + "]";
    *err = {"invalid_value", "props." + f.name + " is out of range " + range};
    return false;
  }
  return true;
}

// Validates one parsed document against the behaviour model and fills `e`.
bool BuildEvent(const Config& cfg, simdjson::dom::element doc, Event* e, EventError* err) {
  simdjson::dom::object obj;
  if (doc.get_object().get(obj)) {
    *err = {"not_object", std::string("an event must be a JSON object, not ") + std::string(JsonTypeName(doc.type()))};
    return false;
  }
  bool has_ts = false;
  simdjson::dom::object props;
  bool has_props = false;
  for (auto field : obj) {
    std::string_view k = field.key;
    simdjson::dom::element v = field.value;
    if (k == "uid") {
      if (!ReadIdField(v, k, &e->uid, err)) return false;
    } else if (k == "device_id") {
      if (!ReadIdField(v, k, &e->device_id, err)) return false;
    } else if (k == "channel") {
      if (!ReadIdField(v, k, &e->channel, err)) return false;
    } else if (k == "id") {
      if (!ReadIdField(v, k, &e->id, err)) return false;
    } else if (k == "type" || k == "product") {
      if (!v.is_string()) {
        *err = {"wrong_type", "field \"" + std::string(k) + "\" must be a string, not " + std::string(JsonTypeName(v.type()))};
        return false;
      }
      (k == "type" ? e->type : e->product) = std::string(v.get_string().value());
      if (k == "product") {
        if (std::string problem = IdProblem(e->product); !problem.empty()) {
          *err = {"invalid_value", "field \"product\" " + problem};
          return false;
        }
      }
    } else if (k == "ts") {
      if (!v.is_int64()) {
        *err = {"wrong_type", "field \"ts\" must be an integer (milliseconds since the epoch), not " +
                                  std::string(JsonTypeName(v.type()))};
        return false;
      }
      e->ts = v.get_int64().value();
      has_ts = true;
    } else if (k == "props") {
      if (v.get_object().get(props)) {
        *err = {"wrong_type", "field \"props\" must be an object, not " + std::string(JsonTypeName(v.type()))};
        return false;
      }
      has_props = true;
    } else {
      *err = {"unknown_field", "unknown field \"" + std::string(k) +
                                   "\"; events have id, uid, device_id, type, ts, product, channel and props"};
      return false;
    }
  }
  if (e->uid.empty() && e->device_id.empty()) {
    *err = {"missing_field", "an event needs \"uid\" (or \"device_id\" before login)"};
    return false;
  }
  if (e->type.empty()) {
    *err = {"missing_field", "an event needs \"type\""};
    return false;
  }
  auto spec_it = cfg.events.find(e->type);
  if (spec_it == cfg.events.end()) {
    std::string known;
    for (const auto& [name, _] : cfg.events) known += (known.empty() ? "" : ", ") + name;
    *err = {"unknown_type", "unknown event type \"" + e->type + "\"; declared types are: " + known};
    return false;
  }
  if (!has_ts) {
    *err = {"missing_field", "an event needs \"ts\" (milliseconds since the epoch)"};
    return false;
  }
  // 2000-01-01 .. 2100-01-01: catches seconds-for-milliseconds and garbage.
  if (e->ts < 946684800000LL || e->ts > 4102444800000LL) {
    *err = {"invalid_value", "field \"ts\" = " + std::to_string(e->ts) +
                                 " is not milliseconds between 2000 and 2100 (seconds given?)"};
    return false;
  }
  const EventTypeSpec& spec = spec_it->second;
  if (has_props) {
    for (auto field : props) {
      const FieldSpec* f = spec.FindProp(field.key);
      if (f) {
        if (!CheckProp(*f, field.value, err)) return false;
      } else if (!spec.allow_unknown_props) {
        *err = {"unknown_field", "event type \"" + e->type + "\" does not declare props." + std::string(field.key)};
        return false;
      }
      e->props.emplace_back(std::string(field.key), simdjson::to_string(field.value));
    }
  }
  for (const FieldSpec& f : spec.props) {
    if (f.required && e->Prop(f.name).empty()) {
      *err = {"missing_field", "event type \"" + e->type + "\" requires props." + f.name + " (" +
                                   std::string(FieldTypeName(f.type)) + ")"};
      return false;
    }
  }
  if (e->id.empty()) e->id = DeriveEventId(*e);
  return true;
}

}  // namespace

Collector::Collector(const Config& config, Log* log, Log* failed, MetricsRegistry* metrics)
    : config_(config), log_(log), failed_(failed), metrics_(metrics) {
  routed_ = metrics->GetCounter("portrait_events_routed_total", "Event copies appended to [[routes]] topics");
  duplicates_ = metrics->GetCounter("portrait_events_duplicates_total", "Events already logged (same id), not logged again");
  inflight_waits_ = metrics->GetCounter("portrait_events_inflight_waits_total",
                                        "Requests that waited for another request's append of the same event id");
  size_t per_partition = std::max<size_t>(1, config.collector.dedup_window / static_cast<size_t>(std::max(1, log ? log->partitions() : 1)));
  for (int p = 0; log && p < log->partitions(); ++p) recent_.push_back(std::make_unique<RecentIds>(per_partition));
  failed_kept_ = metrics->GetCounter("portrait_failed_records_total", "Rejected events and Actions kept in the failed topic");
  failed_errors_ = metrics->GetCounter("portrait_failed_record_errors_total",
                                       "Rejected events and Actions that could not be written to the failed topic");
  accepted_ = metrics->GetCounter("portrait_events_accepted_total", "Events validated and durably logged");
  actions_accepted_ = metrics->GetCounter("portrait_actions_accepted_total", "Actions validated and durably logged");
  deletions_ = metrics->GetCounter("portrait_profile_deletions_total", "Profile erasures logged");
  requests_ = metrics->GetCounter("portrait_ingest_bodies_total", "Request bodies given to the collector");
  backpressure_ = metrics->GetCounter("portrait_ingest_backpressure_total",
                                      "Request bodies refused (503) while the processor lagged past [collector] max_lag");
}

void Collector::CountRejection(const Rejection& r, std::string_view what) {
  std::string name = "portrait_" + std::string(what) + "_rejected_total";
  metrics_->GetCounter(name, "Rejected " + std::string(what) + ", by reason", "reason=\"" + r.reason + "\"")->Inc();
}

void Collector::KeepFailed(const std::vector<Rejection>& rejected, std::string_view source, std::string_view kind) {
  if (!failed_ || rejected.empty()) return;
  std::vector<std::string> payloads(rejected.size());
  std::vector<LogEntry> entries(rejected.size());
  TimestampMs now = NowMs();
  for (size_t i = 0; i < rejected.size(); ++i) {
    FailedRecord f{now, std::string(source), std::string(kind), rejected[i].reason, rejected[i].message,
                   rejected[i].payload};
    EncodeFailed(f, &payloads[i]);
    entries[i] = {PartitionId(0), payloads[i]};
  }
  Status st = failed_->Append(entries);
  if (st.ok()) {
    failed_kept_->Inc(rejected.size());
  } else {
    failed_errors_->Inc(rejected.size());
    spdlog::error("collector: cannot keep {} rejected {}s in the failed topic: {}", rejected.size(), kind, st.ToString());
  }
}

Status Collector::LoadRecentIds() {
  const int64_t window = static_cast<int64_t>(std::max<size_t>(1, config_.collector.dedup_window / recent_.size()));
  Event e;
  std::vector<LogRecord> recs;
  for (int p = 0; p < log_->partitions(); ++p) {
    int64_t end = log_->EndOffset(PartitionId(p)).value;
    int64_t from = std::max(log_->StartOffset(PartitionId(p)).value, end - window);
    ASSIGN_OR_RETURN(auto reader, log_->OpenReader(PartitionId(p), Offset(std::max<int64_t>(0, from))));
    while (reader->position().value < end) {
      RETURN_IF_ERROR(reader->Read(4 << 20, &recs));
      if (recs.empty()) break;
      for (const auto& rec : recs) {
        if (PeekRecordKind(rec.payload) == RecordKind::kEvent && DecodeEvent(rec.payload, &e).ok()) {
          recent_[p]->Insert(RecentIds::Hash(e.id));
        }
      }
    }
  }
  return Status::Ok();
}

Status Collector::AppendRecords(const std::vector<std::string>& payloads, const std::vector<PartitionId>& partitions) {
  std::vector<LogEntry> entries(payloads.size());
  for (size_t i = 0; i < payloads.size(); ++i) entries[i] = {partitions[i], payloads[i]};
  return log_->Append(entries);
}

void Collector::Parse(std::string_view body, std::vector<Event>* events, std::vector<size_t>* indexes,
                      std::vector<Rejection>* rejected) {
  ForEachDocument(
      body, config_.server.max_json_depth,
      [&](simdjson::dom::element doc, size_t index, std::string_view raw) {
        Event e;
        EventError err;
        if (BuildEvent(config_, doc, &e, &err)) {
          events->push_back(std::move(e));
          indexes->push_back(index);
        } else {
          rejected->push_back({index, std::move(err.reason), std::move(err.message),
                               raw.empty() ? simdjson::to_string(doc) : std::string(raw)});
        }
      },
      [&](size_t index, BodyError err, std::string_view raw) {
        rejected->push_back({index, std::move(err.reason), std::move(err.message), std::string(raw)});
      });
}

Status Collector::CheckLag() {
  const int64_t max = config_.collector.max_lag;
  if (!lag_ || max <= 0) return Status::Ok();
  int64_t lag = lag_();
  if (lag <= max) return Status::Ok();
  backpressure_->Inc();
  return Status::Unavailable("the processor is " + std::to_string(lag) + " records behind the log (more than " +
                             "[collector] max_lag = " + std::to_string(max) + "); nothing was taken, retry later");
}

Result<IngestResult> Collector::Ingest(std::string_view body, std::string_view source) {
  requests_->Inc();
  RETURN_IF_ERROR(CheckLag());
  std::vector<Event> events;
  std::vector<size_t> indexes;
  IngestResult result;
  Parse(body, &events, &indexes, &result.rejected);
  for (const auto& r : result.rejected) CountRejection(r, "events");
  KeepFailed(result.rejected, source, "event");
  if (events.empty()) return result;

  // Drop repeats of recently logged ids (and repeats within this body).
  std::vector<std::string> payloads;
  std::vector<PartitionId> partitions;
  std::vector<std::pair<size_t, uint64_t>> claimed;  // (partition, id hash) to release on failure
  payloads.reserve(events.size());
  std::vector<const Event*> routed;
  std::vector<std::pair<size_t, uint64_t>> only_routed;  // claimed ids of events for routed topics only
  // Claiming ids and seeing whose append is in flight happen under one lock: an id another
  // request is still appending is not a repeat yet; this request waits for that append (and
  // claims the id itself if it failed), so no answer says 200 before its event is durable.
  // A request never waits while it holds claims (two requests with the same ids in another
  // order would wait on each other): it gives them back, waits, and claims again.
  auto Key = [](size_t p, uint64_t h) { return h ^ (static_cast<uint64_t>(p) * 0x9E3779B97F4A7C15ull); };
  const uint64_t token = next_request_.fetch_add(1) + 1;
  std::vector<uint8_t> take(events.size());
  std::vector<std::pair<size_t, uint64_t>> ids(events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    ids[i] = {static_cast<size_t>(PartitionOf(events[i].PartitionKey()).value), RecentIds::Hash(events[i].id)};
  }
  {
    std::unique_lock lk(inflight_mu_);
    for (bool done = false; !done;) {
      done = true;
      claimed.clear();
      for (size_t i = 0; i < events.size(); ++i) {
        auto [p, h] = ids[i];
        take[i] = 0;
        if (recent_[p]->Insert(h)) {
          inflight_[Key(p, h)] = token;
          claimed.emplace_back(p, h);
          take[i] = 1;
          continue;
        }
        auto it = inflight_.find(Key(p, h));
        if (it == inflight_.end() || it->second == token) continue;  // durable already, or twice in this body
        for (auto [cp, ch] : claimed) {
          recent_[cp]->Erase(ch);
          inflight_.erase(Key(cp, ch));
        }
        inflight_cv_.notify_all();
        inflight_waits_->Inc();
        const uint64_t key = Key(p, h);
        inflight_cv_.wait(lk, [&] { return !inflight_.count(key); });
        done = false;
        break;
      }
    }
  }
  for (size_t i = 0; i < events.size(); ++i) {
    const Event& e = events[i];
    if (!take[i]) {
      ++result.duplicates;
      continue;
    }
    auto [p, h] = ids[i];
    bool exclusive = false;
    if (auto r = routes_.find(e.type); r != routes_.end()) {
      routed.push_back(&e);
      for (const Route& route : r->second) exclusive |= route.exclusive;
    }
    if (exclusive) {
      only_routed.emplace_back(p, h);
      continue;
    }
    payloads.emplace_back();
    EncodeEvent(e, &payloads.back());
    partitions.push_back(PartitionId(static_cast<int32_t>(p)));
  }
  // Releases this request's claims: ids of what did not become durable are forgotten (a
  // retry logs them), and requests waiting on any of them go on.
  auto release = [&](const std::vector<std::pair<size_t, uint64_t>>& forget) {
    {
      std::lock_guard lk(inflight_mu_);
      for (auto [p, h] : forget) recent_[p]->Erase(h);
      for (auto [p, h] : claimed) inflight_.erase(Key(p, h));
    }
    inflight_cv_.notify_all();
  };
  Status st = payloads.empty() ? Status::Ok() : AppendRecords(payloads, partitions);
  if (!st.ok()) {
    release(claimed);
    return st;
  }
  if (!routed.empty()) {
    // Only when not even the retry topic takes a copy: the events topic has the rest, so a
    // client's retry drops those as repeats; the routed-only ones are sent again.
    if (Status rs = AppendRouted(routed); !rs.ok()) {
      release(only_routed);
      return rs;
    }
  }
  release({});
  result.accepted = events.size();
  accepted_->Inc(events.size() - result.duplicates);
  duplicates_->Inc(result.duplicates);
  return result;
}

void Collector::SetRoutes(std::map<std::string, std::vector<Route>> by_type, RetryQueue* retry) {
  routes_ = std::move(by_type);
  retry_ = retry;
}

Status Collector::AppendRouted(const std::vector<const Event*>& events) {
  std::map<Route*, std::vector<std::pair<const Event*, std::string>>> by_route;
  for (const Event* e : events) {
    for (Route& r : routes_.at(e->type)) by_route[&r].emplace_back(e, EventToJson(*e));
  }
  for (auto& [route, copies] : by_route) {
    std::vector<LogEntry> entries;
    Log* log = route->sink->log();
    for (const auto& [e, json] : copies) entries.push_back({PartitionFor(e->PartitionKey(), log->partitions()), json});
    Status st = log->Append(entries);
    if (st.ok()) {
      routed_->Inc(copies.size());
      continue;
    }
    // The topic did not take them: each copy waits in the retry topic instead.
    for (const auto& [e, json] : copies) {
      RETURN_IF_ERROR(retry_->Enqueue(route->sink->name(), e->PartitionKey(), json, st.message()));
    }
  }
  return Status::Ok();
}

Result<Event> Collector::ParseOne(std::string_view json) {
  simdjson::padded_string padded(json);
  std::vector<Event> events;
  std::vector<size_t> indexes;
  std::vector<Rejection> rejected;
  Parse(std::string_view(padded.data(), padded.size()), &events, &indexes, &rejected);
  if (!rejected.empty()) return Status::InvalidArgument(rejected[0].reason + ": " + rejected[0].message);
  if (events.size() != 1) return Status::InvalidArgument("expected exactly one event");
  return std::move(events[0]);
}

}  // namespace portrait
