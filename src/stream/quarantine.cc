#include "stream/quarantine.h"

#include <spdlog/spdlog.h>

#include <charconv>
#include <tuple>
#include <vector>

#include "core/coding.h"
#include "core/files.h"
#include "delivery/retry.h"
#include "fusion/records.h"

namespace portrait {
namespace {

// Journal lines: `P owner p o` (parked), `R owner p o at_p at_o` (being released by the
// release record at (at_p, at_o)), `X owner p o at_p at_o` (that release failed),
// `E owner` (erased); owners in hex.
std::string Line(char kind, std::string_view owner, std::initializer_list<int64_t> numbers) {
  std::string line(1, kind);
  line.push_back(' ');
  AppendHex(owner, &line);
  for (int64_t n : numbers) {
    line.push_back(' ');
    line += std::to_string(n);
  }
  line.push_back('\n');
  return line;
}

struct Parsed {
  char kind = 0;
  std::string owner;
  std::vector<int64_t> numbers;
};

bool ParseLine(std::string_view line, Parsed* out) {
  if (line.size() < 3 || line[1] != ' ') return false;
  out->kind = line[0];
  line.remove_prefix(2);
  size_t sp = line.find(' ');
  if (!DecodeHex(line.substr(0, sp), &out->owner)) return false;
  out->numbers.clear();
  while (sp != std::string_view::npos) {
    line.remove_prefix(sp + 1);
    sp = line.find(' ');
    std::string_view n = line.substr(0, sp);
    int64_t v = 0;
    auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), v);
    if (ec != std::errc() || end != n.data() + n.size()) return false;
    out->numbers.push_back(v);
  }
  size_t want = out->kind == 'P' ? 2 : (out->kind == 'R' || out->kind == 'X') ? 4 : out->kind == 'E' ? 0 : 99;
  return out->numbers.size() == want;
}

}  // namespace

Quarantine::Quarantine(std::string journal, Log* dead, MetricsRegistry* m) : journal_(std::move(journal)), dead_(dead) {
  parked_total_ = m->GetCounter("portrait_quarantine_records_total",
                                "Records put in the dead letters because their write failed for good, or their user waits behind one");
  released_total_ = m->GetCounter("portrait_quarantine_released_total", "Quarantined records applied after a release");
  parked_now_ = m->GetGauge("portrait_quarantine_parked_records", "Records in quarantine now");
  owners_now_ = m->GetGauge("portrait_quarantine_parked_users", "Users (or devices) whose records wait in quarantine");
}

Result<std::unique_ptr<Quarantine>> Quarantine::Open(std::string journal, Log* dead, MetricsRegistry* metrics) {
  RETURN_IF_ERROR(CreateFileIfMissing(journal).WithContext("quarantine journal"));
  return std::unique_ptr<Quarantine>(new Quarantine(std::move(journal), dead, metrics));
}

Status Quarantine::Load(const std::function<Result<std::optional<Offset>>(PartitionId)>& checkpoint) {
  std::string data;
  RETURN_IF_ERROR(ReadFileFrom(journal_, 0, &data).WithContext("quarantine journal"));
  using Release = std::tuple<std::string, Place, Place>;  // owner, record, release record
  std::set<Release> releasing;
  std::lock_guard lk(mu_);
  parked_.clear();
  Parsed l;
  size_t start = 0;
  for (size_t nl; (nl = data.find('\n', start)) != std::string::npos; start = nl + 1) {
    if (!ParseLine(std::string_view(data).substr(start, nl - start), &l)) {
      spdlog::warn("quarantine journal {}: unreadable line at byte {}, skipped", journal_, start);
      continue;
    }
    const auto& n = l.numbers;
    switch (l.kind) {
      case 'P': parked_[l.owner].insert({static_cast<int32_t>(n[0]), n[1]}); break;
      case 'R': releasing.insert({l.owner, {static_cast<int32_t>(n[0]), n[1]}, {static_cast<int32_t>(n[2]), n[3]}}); break;
      case 'X': releasing.erase({l.owner, {static_cast<int32_t>(n[0]), n[1]}, {static_cast<int32_t>(n[2]), n[3]}}); break;
      case 'E':
        parked_.erase(l.owner);
        std::erase_if(releasing, [&](const Release& r) { return std::get<0>(r) == l.owner; });
        break;
    }
  }
  // A release is done once the store has processed past its release record.
  for (const auto& [owner, record, at] : releasing) {
    ASSIGN_OR_RETURN(std::optional<Offset> cp, checkpoint(PartitionId(at.first)));
    if (!cp || cp->value <= at.second) continue;
    auto it = parked_.find(owner);
    if (it == parked_.end()) continue;
    it->second.erase(record);
    if (it->second.empty()) parked_.erase(it);
  }
  Count();
  if (!parked_.empty()) {
    spdlog::warn("quarantine: {} record(s) of {} user(s) wait in the dead letters (sink \"{}\"); "
                 "release them with POST /v1/dlq:replay?sink={}",
                 parked_records(), parked_.size(), kSink, kSink);
  }
  return Status::Ok();
}

void Quarantine::Count() {
  size_t records = 0;
  for (const auto& [_, places] : parked_) records += places.size();
  parked_now_->Set(static_cast<int64_t>(records));
  owners_now_->Set(static_cast<int64_t>(parked_.size()));
  owners_.store(parked_.size(), std::memory_order_relaxed);
  records_.store(records, std::memory_order_relaxed);
}

bool Quarantine::Parked(std::string_view owner) const {
  if (empty()) return false;
  std::lock_guard lk(mu_);
  return parked_.count(std::string(owner)) > 0;
}

Quarantine::Standing Quarantine::Of(std::string_view owner, PartitionId p, Offset o) const {
  std::lock_guard lk(mu_);
  auto it = parked_.find(std::string(owner));
  if (it == parked_.end() || !it->second.count({p.value, o.value})) return Standing::kNotParked;
  return *it->second.begin() == Place{p.value, o.value} ? Standing::kOldest : Standing::kBehind;
}

Status Quarantine::Journal(const std::string& lines) {
  return AppendSynced(journal_, lines).WithContext("quarantine journal");
}

Status Quarantine::Bury(std::string_view owner, PartitionId p, Offset o, std::string_view record,
                        std::string_view reason) {
  RetryItem item;
  item.sink = kSink;
  item.key = owner;
  EncodeReleaseRecord({owner, p.value, o.value, record}, &item.payload);
  item.error = std::string(reason) +
               "; this user's later records wait behind it. Fix the cause, then release them with "
               "POST /v1/dlq:replay?sink=" + kSink;
  item.failures = 1;
  item.first_failed_ms = NowMs();
  std::string rec;
  EncodeRetryItem(item, &rec);
  LogEntry e{PartitionId(0), rec};
  RETURN_IF_ERROR(dead_->Append({&e, 1}).WithContext("quarantine dead letter"));
  parked_total_->Inc();
  return Status::Ok();
}

Status Quarantine::Park(std::string_view owner, PartitionId p, Offset o, std::string_view record,
                        std::string_view reason) {
  {
    std::lock_guard lk(mu_);
    auto it = parked_.find(std::string(owner));
    if (it != parked_.end() && it->second.count({p.value, o.value})) return Status::Ok();
  }
  // The dead letter first: a record in the journal is always one an operator can replay.
  RETURN_IF_ERROR(Bury(owner, p, o, record, reason));
  RETURN_IF_ERROR(Journal(Line('P', owner, {p.value, o.value})));
  std::lock_guard lk(mu_);
  bool first = parked_.count(std::string(owner)) == 0;
  parked_[std::string(owner)].insert({p.value, o.value});
  Count();
  if (first) {
    spdlog::error("quarantine: the record at partition {} offset {} failed for good ({}); its user's records wait "
                  "in the dead letters until released (POST /v1/dlq:replay?sink={})",
                  p.value, o.value, reason, kSink);
  }
  return Status::Ok();
}

Status Quarantine::Releasing(std::string_view owner, PartitionId p, Offset o, PartitionId at_p, Offset at_o) {
  return Journal(Line('R', owner, {p.value, o.value, at_p.value, at_o.value}));
}

void Quarantine::Released(std::string_view owner, PartitionId p, Offset o) {
  std::lock_guard lk(mu_);
  auto it = parked_.find(std::string(owner));
  if (it == parked_.end()) return;
  it->second.erase({p.value, o.value});
  if (it->second.empty()) parked_.erase(it);
  released_total_->Inc();
  Count();
}

Status Quarantine::Refused(std::string_view owner, PartitionId p, Offset o, PartitionId at_p, Offset at_o,
                           std::string_view record, std::string_view reason) {
  RETURN_IF_ERROR(Bury(owner, p, o, record, reason));
  return Journal(Line('X', owner, {p.value, o.value, at_p.value, at_o.value}));
}

Status Quarantine::Forget(std::span<const std::string> ids) {
  std::string lines;
  {
    std::lock_guard lk(mu_);
    for (const std::string& id : ids) {
      if (parked_.count(id)) lines += Line('E', id, {});
    }
  }
  if (lines.empty()) return Status::Ok();
  RETURN_IF_ERROR(Journal(lines));
  std::lock_guard lk(mu_);
  for (const std::string& id : ids) parked_.erase(id);
  Count();
  return Status::Ok();
}

}  // namespace portrait
