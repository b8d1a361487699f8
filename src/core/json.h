// JSON output helpers. JsonWriter builds compact JSON into a string; it trusts the
// caller for structure (keys inside objects) and escapes every string it writes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace portrait {

// Appends `s` as a quoted, escaped JSON string.
void AppendJsonString(std::string* out, std::string_view s);
// Appends a number: integral values within 2^53 print without a fraction.
void AppendJsonNumber(std::string* out, double v);

class JsonWriter {
 public:
  explicit JsonWriter(std::string* out) : out_(out) {}
  JsonWriter& BeginObject() { Sep(); out_->push_back('{'); first_ = true; return *this; }
  JsonWriter& EndObject() { out_->push_back('}'); first_ = false; return *this; }
  JsonWriter& BeginArray() { Sep(); out_->push_back('['); first_ = true; return *this; }
  JsonWriter& EndArray() { out_->push_back(']'); first_ = false; return *this; }
  JsonWriter& Key(std::string_view k) {
    Sep();
    AppendJsonString(out_, k);
    out_->push_back(':');
    first_ = true;  // the value that follows needs no comma
    return *this;
  }
  JsonWriter& String(std::string_view s) { Sep(); AppendJsonString(out_, s); return *this; }
  JsonWriter& Int(int64_t v) { Sep(); out_->append(std::to_string(v)); return *this; }
  JsonWriter& Number(double v) { Sep(); AppendJsonNumber(out_, v); return *this; }
  JsonWriter& Bool(bool v) { Sep(); out_->append(v ? "true" : "false"); return *this; }
  JsonWriter& Null() { Sep(); out_->append("null"); return *this; }
  // Inserts already-valid JSON text.
  JsonWriter& Raw(std::string_view json) { Sep(); out_->append(json); return *this; }

 private:
  void Sep() {
    if (!first_) out_->push_back(',');
    first_ = false;
  }
  std::string* out_;
  bool first_ = true;
};

// {"error": {"code": code, "message": message}}
std::string JsonError(std::string_view code, std::string_view message);

}  // namespace portrait

namespace portrait {
// Decodes a quoted JSON string literal (as produced by a validating parser) into `out`.
bool UnescapeJsonString(std::string_view quoted, std::string* out);
}  // namespace portrait
