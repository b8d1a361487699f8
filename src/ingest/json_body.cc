#include "ingest/json_body.h"

#include <cstdio>
#include <vector>

namespace portrait {

namespace {

simdjson::dom::parser& ThreadParser(int max_depth) {
  thread_local simdjson::dom::parser parser;
  thread_local int depth = -1;
  if (depth != max_depth) {
    // Only fails on out-of-memory; parse() then reports the same error per document.
    simdjson::error_code err = parser.allocate(1 << 16, static_cast<size_t>(max_depth));
    (void)err;
    depth = max_depth;
  }
  return parser;
}

BodyError ParseError(simdjson::error_code code, int max_depth) {
  if (code == simdjson::DEPTH_ERROR) {
    return {"too_deep", "JSON nesting is deeper than the limit of " + std::to_string(max_depth) + " levels"};
  }
  return {"malformed_json", std::string("malformed JSON: ") + simdjson::error_message(code)};
}

bool IsSpace(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

}  // namespace

std::string_view JsonTypeName(simdjson::dom::element_type t) {
  using T = simdjson::dom::element_type;
  switch (t) {
    case T::ARRAY: return "array";
    case T::OBJECT: return "object";
    case T::INT64:
    case T::UINT64: return "integer";
    case T::DOUBLE: return "number";
    case T::STRING: return "string";
    case T::BOOL: return "bool";
    case T::NULL_VALUE: return "null";
  }
  return "?";
}

bool ReadIdField(simdjson::dom::element v, std::string_view name, std::string* out, BodyError* err) {
  if (v.is_string()) {
    *out = std::string(v.get_string().value());
  } else if (v.is_int64()) {
    *out = std::to_string(v.get_int64().value());
  } else if (v.is_uint64()) {
    *out = std::to_string(v.get_uint64().value());
  } else {
    *err = {"wrong_type", "field \"" + std::string(name) + "\" must be a string or an integer, not " +
                              std::string(JsonTypeName(v.type()))};
    return false;
  }
  if (out->empty() || out->size() > 256) {
    *err = {"invalid_value", "field \"" + std::string(name) + "\" must hold 1 to 256 bytes"};
    return false;
  }
  if (std::string problem = IdProblem(*out); !problem.empty()) {
    *err = {"invalid_value", "field \"" + std::string(name) + "\" " + problem};
    return false;
  }
  return true;
}

std::string IdProblem(std::string_view id) {
  for (size_t i = 0; i < id.size(); ++i) {
    auto c = static_cast<unsigned char>(id[i]);
    if (c < 0x20 || c == 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02x", c);
      return "holds the control byte " + std::string(hex) + " at " + std::to_string(i) +
             "; ids, products and channels are text without control characters";
    }
  }
  return "";
}

void ForEachDocument(std::string_view body, int max_depth,
                     const std::function<void(simdjson::dom::element, size_t index, std::string_view raw)>& on_doc,
                     const std::function<void(size_t index, BodyError, std::string_view raw)>& on_error) {
  simdjson::dom::parser& parser = ThreadParser(max_depth);
  size_t start = 0;
  while (start < body.size() && IsSpace(body[start])) ++start;
  if (start == body.size()) {
    on_error(0, {"empty_body", "the request body holds no document"}, body);
    return;
  }
  if (body[start] == '[') {
    simdjson::dom::element doc;
    auto code = parser.parse(body.data(), body.size(), false).get(doc);
    if (code) {
      BodyError err = ParseError(code, max_depth);
      err.message += " (the array could not be read; nothing in it was kept)";
      on_error(0, std::move(err), body);
      return;
    }
    size_t i = 0;
    for (simdjson::dom::element v : doc.get_array()) on_doc(v, i++, {});
    if (i == 0) on_error(0, {"empty_body", "the array is empty"}, body);
    return;
  }
  // NDJSON, or one (possibly pretty-printed) document.
  std::vector<std::string_view> lines;
  size_t pos = start;
  while (pos < body.size()) {
    size_t nl = body.find('\n', pos);
    if (nl == std::string_view::npos) nl = body.size();
    std::string_view line = body.substr(pos, nl - pos);
    while (!line.empty() && IsSpace(line.back())) line.remove_suffix(1);
    size_t lead = 0;
    while (lead < line.size() && IsSpace(line[lead])) ++lead;
    if (lead < line.size()) lines.push_back(line.substr(lead));
    pos = nl + 1;
  }
  if (lines.size() > 1) {
    simdjson::dom::element first;
    if (parser.parse(lines[0].data(), lines[0].size(), false).get(first)) {
      // The first line alone is not a document: maybe the body is one multi-line document.
      simdjson::dom::element whole;
      if (!parser.parse(body.data(), body.size(), false).get(whole)) {
        on_doc(whole, 0, body);
        return;
      }
    }
  }
  for (size_t i = 0; i < lines.size(); ++i) {
    simdjson::dom::element doc;
    auto code = parser.parse(lines[i].data(), lines[i].size(), false).get(doc);
    if (code) {
      on_error(i, ParseError(code, max_depth), lines[i]);
      continue;
    }
    on_doc(doc, i, lines[i]);
  }
}

}  // namespace portrait
