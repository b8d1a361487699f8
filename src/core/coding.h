// Little binary codec used by the log records and stored tag states.
// Writer appends to a std::string; Reader consumes a string_view and reports
// truncation through ok() instead of crashing, so corrupt bytes never abort.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace portrait {

class Writer {
 public:
  explicit Writer(std::string* out) : out_(out) {}
  void U8(uint8_t v) { out_->push_back(static_cast<char>(v)); }
  void Varint(uint64_t v) {
    while (v >= 0x80) {
      out_->push_back(static_cast<char>(v | 0x80));
      v >>= 7;
    }
    out_->push_back(static_cast<char>(v));
  }
  void SignedVarint(int64_t v) { Varint((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63)); }
  void Fixed32(uint32_t v) { out_->append(reinterpret_cast<const char*>(&v), 4); }
  void Fixed64(uint64_t v) { out_->append(reinterpret_cast<const char*>(&v), 8); }
  void Double(double d) {
    uint64_t v;
    std::memcpy(&v, &d, 8);
    Fixed64(v);
  }
  void Bytes(std::string_view s) {
    Varint(s.size());
    out_->append(s);
  }

 private:
  std::string* out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : p_(in.data()), end_(in.data() + in.size()) {}
  bool ok() const { return ok_; }
  bool done() const { return p_ == end_; }
  uint8_t U8() {
    if (p_ >= end_) return Fail();
    return static_cast<uint8_t>(*p_++);
  }
  uint64_t Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift <= 63; shift += 7) {
      if (p_ >= end_) return Fail();
      uint8_t b = static_cast<uint8_t>(*p_++);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    return Fail();
  }
  int64_t SignedVarint() {
    uint64_t v = Varint();
    return static_cast<int64_t>((v >> 1) ^ (~(v & 1) + 1));
  }
  uint32_t Fixed32() {
    uint32_t v = 0;
    if (end_ - p_ < 4) return Fail();
    std::memcpy(&v, p_, 4);
    p_ += 4;
    return v;
  }
  uint64_t Fixed64() {
    uint64_t v = 0;
    if (end_ - p_ < 8) return Fail();
    std::memcpy(&v, p_, 8);
    p_ += 8;
    return v;
  }
  double Double() {
    uint64_t v = Fixed64();
    double d;
    std::memcpy(&d, &v, 8);
    return d;
  }
  std::string_view Bytes() {
    uint64_t n = Varint();
    if (!ok_ || static_cast<uint64_t>(end_ - p_) < n) {
      Fail();
      return {};
    }
    std::string_view s(p_, n);
    p_ += n;
    return s;
  }

 private:
  uint8_t Fail() {
    ok_ = false;
    p_ = end_;
    return 0;
  }
  const char* p_;
  const char* end_;
  bool ok_ = true;
};

// Lower-case hex of any bytes, for ids in line-based files (an id may hold any byte).
inline void AppendHex(std::string_view bytes, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (unsigned char c : bytes) {
    out->push_back(kHex[c >> 4]);
    out->push_back(kHex[c & 15]);
  }
}
// False on an odd length or a byte that is not a lower-case hex digit.
inline bool DecodeHex(std::string_view hex, std::string* out) {
  auto value = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1; };
  if (hex.size() % 2) return false;
  out->clear();
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = value(hex[i]), lo = value(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
  }
  return true;
}

}  // namespace portrait
