// Fuzz target: stored bytes (tag states, merge operands, log events) decoded from
// anything. Decoding may fail, but never crashes, and whatever decodes re-encodes and
// can be fused.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/event.h"
#include "fusion/fusion.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  portrait::fusion::TagState state;
  portrait::Action action;
  portrait::Event event;
  bool have_state = portrait::fusion::DecodeState(in, &state).ok();
  bool have_action = portrait::fusion::DecodeAction(in, &action).ok();
  (void)portrait::DecodeEvent(in, &event);
  portrait::TagConfig cfg;
  cfg.name = "t";
  cfg.type = have_state ? state.type : portrait::TagType::kList;
  cfg.size_limit = 8;
  if (have_state) {
    std::string out;
    portrait::fusion::EncodeState(state, &out);
    portrait::fusion::TagState again;
    if (!portrait::fusion::DecodeState(out, &again).ok()) std::abort();
    std::string rendered;
    portrait::fusion::RenderValue(again, cfg, 0, &rendered);
  }
  if (have_action) {
    if (!have_state) state.type = cfg.type;
    portrait::fusion::Apply(state, action, cfg);
    portrait::Action copy = action;
    (void)portrait::fusion::TryCombine(copy, action, cfg);
  }
  return 0;
}
