// Reading an Action's operand from JSON, shared by POST /v1/actions and offline values.
#pragma once

#include <simdjson.h>

#include "core/action.h"
#include "core/config.h"
#include "ingest/json_body.h"

namespace portrait {

// Reads the operand of `a->op` from `value` (and `key` / `keys` for map operators; any may
// be null when absent) into `a`; false with `err` naming what is wrong otherwise. List
// items take `a->ts` and `a->source`.
bool ReadOperand(const TagConfig& cfg, simdjson::dom::element* value, simdjson::dom::element* key,
                 simdjson::dom::element* keys, Action* a, BodyError* err);

}  // namespace portrait
