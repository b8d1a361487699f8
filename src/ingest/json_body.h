// Splits a request body into JSON documents: a JSON array (each element), NDJSON (each
// non-empty line), or one document that may span lines. Malformed NDJSON lines are
// reported one by one; a malformed array is reported once (its elements cannot be told
// apart safely). `body` needs simdjson::SIMDJSON_PADDING readable bytes past its end.
#pragma once

#include <simdjson.h>

#include <functional>
#include <string>
#include <string_view>

namespace portrait {

struct BodyError {
  std::string reason;   // malformed_json, too_deep, empty_body
  std::string message;
};

// `raw` is the document's text as sent: the line for NDJSON, the whole body for one
// document or a malformed array, and empty for array elements (use simdjson::to_string).
void ForEachDocument(std::string_view body, int max_depth,
                     const std::function<void(simdjson::dom::element, size_t index, std::string_view raw)>& on_doc,
                     const std::function<void(size_t index, BodyError, std::string_view raw)>& on_error);

std::string_view JsonTypeName(simdjson::dom::element_type t);

// Reads an identifier field (uid, id, channel, ...): a string or an integer (kept as its
// decimal text), 1 to 256 bytes.
// What is wrong with an id, product or channel value ("" when nothing): control bytes
// (they are separators in stored records) are refused.
std::string IdProblem(std::string_view id);

bool ReadIdField(simdjson::dom::element v, std::string_view name, std::string* out, BodyError* err);

}  // namespace portrait
