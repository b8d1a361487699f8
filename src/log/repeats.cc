#include "log/repeats.h"

#include <xxhash.h>

#include <algorithm>
#include <chrono>

#include "core/event.h"

namespace portrait {

uint64_t IdWindow::Hash(std::string_view id) {
  uint64_t h = XXH3_64bits(id.data(), id.size());
  return h ? h : 1;  // 0 marks an empty slot and a record without an id
}

IdWindow::IdWindow(size_t capacity) {
  capacity = std::max<size_t>(1, capacity);
  size_t slots = 16;
  while (slots < 2 * capacity) slots <<= 1;
  table_.assign(slots, Slot{});
  mask_ = slots - 1;
  ring_.assign(capacity, 0);
}

void IdWindow::Clear() {
  std::fill(table_.begin(), table_.end(), Slot{});
  std::fill(ring_.begin(), ring_.end(), 0);
  next_ = 0;
  full_ = false;
}

size_t IdWindow::Find(uint64_t h) const {
  size_t i = h & mask_;
  while (table_[i].h != 0 && table_[i].h != h) i = (i + 1) & mask_;
  return i;
}

void IdWindow::Drop(uint64_t h) {
  size_t i = Find(h);
  if (table_[i].h != h || --table_[i].n > 0) return;
  // Backward-shift deletion: later entries of the probe run move up into the hole when
  // their home slot does not lie between the hole and them.
  for (size_t j = (i + 1) & mask_; table_[j].h != 0; j = (j + 1) & mask_) {
    size_t home = table_[j].h & mask_;
    bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
    if (stays) continue;
    table_[i] = table_[j];
    i = j;
  }
  table_[i] = Slot{};
}

bool IdWindow::Add(uint64_t h) {
  if (full_ && ring_[next_] != 0) Drop(ring_[next_]);
  ring_[next_] = h;
  if (++next_ == ring_.size()) {
    next_ = 0;
    full_ = true;
  }
  if (h == 0) return false;
  size_t i = Find(h);
  if (table_[i].h == h) {
    ++table_[i].n;
    return true;
  }
  table_[i] = Slot{h, 1};
  return false;
}

RepeatFilter::RepeatFilter(Log* log, size_t window, Counter* skipped)
    : log_(log), window_(std::max<size_t>(1, window)), skipped_(skipped) {}

void RepeatFilter::Retain(std::span<const PartitionId> held) {
  std::erase_if(partitions_, [&](const auto& kv) {
    return std::find(held.begin(), held.end(), PartitionId(kv.first)) == held.end();
  });
}

namespace {

uint64_t IdHashOf(std::string_view payload) {
  std::string_view id = PeekEventId(payload);
  return id.empty() ? 0 : IdWindow::Hash(id);
}

}  // namespace

Status RepeatFilter::Rebuild(PartitionId p, Offset at, Partition* part) {
  part->ids.Clear();
  part->next = at;
  int64_t from = std::max<int64_t>(log_->StartOffset(p).value, at.value - static_cast<int64_t>(window_));
  if (from >= at.value) return Status::Ok();
  ASSIGN_OR_RETURN(auto reader, log_->OpenReader(p, Offset(from)));
  std::vector<LogRecord> recs;
  // A remote log may answer the first reads empty while it connects.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (reader->position() < at) {
    RETURN_IF_ERROR(reader->Read(4 << 20, &recs));
    if (recs.empty() && std::chrono::steady_clock::now() > deadline) {
      return Status::Unavailable("repeats: partition " + std::to_string(p.value) + ": no records past offset " +
                                 std::to_string(reader->position().value) + " while reading up to " +
                                 std::to_string(at.value));
    }
    for (const LogRecord& rec : recs) {
      if (rec.offset >= at) break;
      part->ids.Add(IdHashOf(rec.payload));
    }
  }
  return Status::Ok();
}

Status RepeatFilter::Filter(PartitionId p, std::vector<LogRecord>* records) {
  if (records->empty()) return Status::Ok();
  auto it = partitions_.try_emplace(p.value, window_).first;
  Partition& part = it->second;
  if (part.next != records->front().offset) {
    if (Status st = Rebuild(p, records->front().offset, &part); !st.ok()) {
      partitions_.erase(it);
      return st;
    }
  }
  size_t kept = 0;
  for (const LogRecord& rec : *records) {
    part.next = Offset(rec.offset.value + 1);
    if (part.ids.Add(IdHashOf(rec.payload))) {
      skipped_->Inc();
      continue;
    }
    (*records)[kept++] = rec;
  }
  records->resize(kept);
  return Status::Ok();
}

}  // namespace portrait
