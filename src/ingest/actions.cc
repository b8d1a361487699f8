// Collector: Actions sent by other systems, and profile deletions.
#include <simdjson.h>
#include <xxhash.h>

#include "core/json.h"
#include "fusion/fusion.h"
#include "ingest/collector.h"
#include "ingest/json_body.h"
#include "ingest/operand.h"
#include "fusion/records.h"

namespace portrait {

namespace {

using ActionError = BodyError;

bool IsScalar(simdjson::dom::element v) {
  auto t = v.type();
  return t != simdjson::dom::element_type::ARRAY && t != simdjson::dom::element_type::OBJECT &&
         t != simdjson::dom::element_type::NULL_VALUE;
}

bool MakeItem(simdjson::dom::element v, const TagConfig& cfg, const Action& a, ActionError* err) {
  simdjson::dom::object obj;
  if (v.get_object().get(obj)) {
    *err = {"wrong_type", "list items must be JSON objects, not " + std::string(JsonTypeName(v.type()))};
    return false;
  }
  std::vector<std::pair<std::string, std::string>> fields;
  for (auto f : obj) fields.emplace_back(std::string(f.key), simdjson::to_string(f.value));
  auto item = fusion::MakeListItem(fields, cfg, a.ts, a.source);
  if (!item.ok()) {
    *err = {"invalid_value", item.status().message()};
    return false;
  }
  const_cast<Action&>(a).items.push_back(std::move(item).value());
  return true;
}

}  // namespace

bool ReadOperand(const TagConfig& cfg, simdjson::dom::element* value, simdjson::dom::element* key,
                 simdjson::dom::element* keys, Action* a, ActionError* err) {
  std::string op(OpName(a->op));
  auto need_value = [&]() {
    if (!value) *err = {"missing_field", op + " needs \"value\""};
    return value != nullptr;
  };
  auto need_number = [&](double* out) {
    if (!need_value()) return false;
    if (!value->is_number()) {
      *err = {"wrong_type", op + " needs a numeric value, not " + std::string(JsonTypeName(value->type()))};
      return false;
    }
    *out = value->is_double() ? value->get_double().value()
           : value->is_int64() ? static_cast<double>(value->get_int64().value())
                               : static_cast<double>(value->get_uint64().value());
    return true;
  };
  auto need_key = [&](std::string* out) {
    if (!key) {
      *err = {"missing_field", op + " needs \"key\""};
      return false;
    }
    return ReadIdField(*key, "key", out, err);
  };
  switch (a->op) {
    case OpCode::kStringSet:
      if (!need_value()) return false;
      if (!value->is_string()) {
        *err = {"wrong_type", "string.set needs a string value, not " + std::string(JsonTypeName(value->type()))};
        return false;
      }
      a->text = std::string(value->get_string().value());
      return true;
    case OpCode::kNumberSet:
    case OpCode::kNumberIncr:
    case OpCode::kNumberMax:
    case OpCode::kNumberMin:
      return need_number(&a->number);
    case OpCode::kMapPut: {
      MapEntry e;
      if (!need_key(&e.key) || !need_value()) return false;
      e.json = simdjson::to_string(*value);
      a->entries.push_back(std::move(e));
      return true;
    }
    case OpCode::kMapIncr: {
      MapEntry e;
      if (!need_key(&e.key) || !need_number(&e.number)) return false;
      a->entries.push_back(std::move(e));
      return true;
    }
    case OpCode::kMapMerge: {
      if (!need_value()) return false;
      simdjson::dom::object obj;
      if (value->get_object().get(obj)) {
        *err = {"wrong_type", "map.merge needs an object value {key: value, ...}"};
        return false;
      }
      for (auto f : obj) a->entries.push_back({std::string(f.key), simdjson::to_string(f.value), 0});
      return true;
    }
    case OpCode::kMapDel: {
      if (key) {
        MapEntry e;
        if (!ReadIdField(*key, "key", &e.key, err)) return false;
        a->entries.push_back(std::move(e));
      }
      if (keys) {
        simdjson::dom::array arr;
        if (keys->get_array().get(arr)) {
          *err = {"wrong_type", "map.del \"keys\" must be an array"};
          return false;
        }
        for (auto k : arr) {
          MapEntry e;
          if (!ReadIdField(k, "keys[]", &e.key, err)) return false;
          a->entries.push_back(std::move(e));
        }
      }
      if (a->entries.empty()) {
        *err = {"missing_field", "map.del needs \"key\" or \"keys\""};
        return false;
      }
      return true;
    }
    case OpCode::kSetAdd:
      if (!need_value()) return false;
      if (!IsScalar(*value)) {
        *err = {"wrong_type", "set.add needs a string, number or bool"};
        return false;
      }
      a->members.push_back(simdjson::to_string(*value));
      return true;
    case OpCode::kSetAddl: {
      if (!need_value()) return false;
      simdjson::dom::array arr;
      if (value->get_array().get(arr)) {
        *err = {"wrong_type", "set.addl needs an array of strings, numbers or bools"};
        return false;
      }
      for (auto m : arr) {
        if (!IsScalar(m)) {
          *err = {"wrong_type", "set.addl members must be strings, numbers or bools"};
          return false;
        }
        a->members.push_back(simdjson::to_string(m));
      }
      return true;
    }
    case OpCode::kListRpush:
      return need_value() && MakeItem(*value, cfg, *a, err);
    case OpCode::kListRpushl: {
      if (!need_value()) return false;
      simdjson::dom::array arr;
      if (value->get_array().get(arr)) {
        *err = {"wrong_type", "list.rpushl needs an array of item objects"};
        return false;
      }
      for (auto v : arr) {
        if (!MakeItem(v, cfg, *a, err)) return false;
      }
      return true;
    }
    case OpCode::kTagDel:
      if (value) {
        *err = {"invalid_value", "tag.del takes no value"};
        return false;
      }
      return true;
  }
  return false;
}

namespace {

bool BuildAction(const Config& cfg, simdjson::dom::element doc, Action* a, ActionError* err) {
  simdjson::dom::object obj;
  if (doc.get_object().get(obj)) {
    *err = {"not_object", "an action must be a JSON object, not " + std::string(JsonTypeName(doc.type()))};
    return false;
  }
  std::string op_name, source = "external";
  bool has_ts = false;
  simdjson::dom::element value, key, keys;
  bool has_value = false, has_key = false, has_keys = false;
  for (auto f : obj) {
    std::string_view k = f.key;
    simdjson::dom::element v = f.value;
    auto need_string = [&](std::string* out) {
      if (!v.is_string()) {
        *err = {"wrong_type", "field \"" + std::string(k) + "\" must be a string, not " + std::string(JsonTypeName(v.type()))};
        return false;
      }
      *out = std::string(v.get_string().value());
      return true;
    };
    if (k == "id") {
      if (!ReadIdField(v, k, &a->id, err)) return false;
    } else if (k == "uid") {
      if (!ReadIdField(v, k, &a->uid, err)) return false;
    } else if (k == "tag") {
      if (!need_string(&a->tag)) return false;
    } else if (k == "op") {
      if (!need_string(&op_name)) return false;
    } else if (k == "source") {
      if (!need_string(&source)) return false;
    } else if (k == "ts") {
      if (!v.is_int64()) {
        *err = {"wrong_type", "field \"ts\" must be an integer (milliseconds since the epoch), not " +
                                  std::string(JsonTypeName(v.type()))};
        return false;
      }
      a->ts = v.get_int64().value();
      has_ts = true;
    } else if (k == "value") {
      value = v;
      has_value = true;
    } else if (k == "key") {
      key = v;
      has_key = true;
    } else if (k == "keys") {
      keys = v;
      has_keys = true;
    } else {
      *err = {"unknown_field", "unknown field \"" + std::string(k) +
                                   "\"; actions have id, uid, tag, op, ts, source, value, key and keys"};
      return false;
    }
  }
  if (a->uid.empty()) {
    *err = {"missing_field", "an action needs \"uid\""};
    return false;
  }
  if (a->tag.empty()) {
    *err = {"missing_field", "an action needs \"tag\""};
    return false;
  }
  const TagConfig* tag = cfg.tags.FindDeclared(a->tag);
  if (!tag) {
    *err = {"unknown_tag", "unknown tag \"" + a->tag + "\"; declared tags are: " + cfg.tags.DeclaredNames()};
    return false;
  }
  auto op = ParseOp(op_name);
  if (!op) {
    *err = {op_name.empty() ? "missing_field" : "unknown_op",
            op_name.empty() ? "an action needs \"op\"" : "unknown operator \"" + op_name + "\""};
    return false;
  }
  a->op = *op;
  if (!tag->Allows(*op)) {
    *err = {"wrong_op", "operator " + op_name + " is not allowed on " + std::string(TagTypeName(tag->type)) +
                            " tag \"" + a->tag + "\""};
    return false;
  }
  if (source == "external") a->source = Source::kExternal;
  else if (source == "offline") a->source = Source::kOffline;
  else if (source == "realtime") a->source = Source::kRealtime;
  else {
    *err = {"invalid_value", "source must be \"external\", \"offline\" or \"realtime\", not \"" + source + "\""};
    return false;
  }
  if (!has_ts) {
    *err = {"missing_field", "an action needs \"ts\" (milliseconds since the epoch)"};
    return false;
  }
  if (a->ts < 946684800000LL || a->ts > 4102444800000LL) {
    *err = {"invalid_value", "field \"ts\" = " + std::to_string(a->ts) +
                                 " is not milliseconds between 2000 and 2100 (seconds given?)"};
    return false;
  }
  bool map_key_op = *op == OpCode::kMapPut || *op == OpCode::kMapIncr || *op == OpCode::kMapDel;
  if ((has_key && !map_key_op) || (has_keys && *op != OpCode::kMapDel)) {
    *err = {"unknown_field", "\"key\"/\"keys\" are only for map.put, map.incr and map.del"};
    return false;
  }
  if (!ReadOperand(*tag, has_value ? &value : nullptr, has_key ? &key : nullptr, has_keys ? &keys : nullptr, a, err)) {
    return false;
  }
  if (a->id.empty() && fusion::NeedsExactlyOnce(a->op)) {
    // A retry of the same content must not count twice: derive the id from the content.
    std::string buf = a->uid + '\x1f' + a->tag + '\x1f';
    fusion::EncodeAction(*a, &buf);
    XXH128_hash_t h = XXH3_128bits(buf.data(), buf.size());
    char hex[40];
    std::snprintf(hex, sizeof hex, "h:%016llx%016llx", static_cast<unsigned long long>(h.high64),
                  static_cast<unsigned long long>(h.low64));
    a->id = hex;
  }
  return true;
}

}  // namespace

void Collector::ParseActions(std::string_view body, std::vector<Action>* actions, std::vector<Rejection>* rejected) {
  ForEachDocument(
      body, config_.server.max_json_depth,
      [&](simdjson::dom::element doc, size_t index, std::string_view raw) {
        Action a;
        ActionError err;
        if (BuildAction(config_, doc, &a, &err)) {
          actions->push_back(std::move(a));
        } else {
          rejected->push_back({index, std::move(err.reason), std::move(err.message),
                               raw.empty() ? simdjson::to_string(doc) : std::string(raw)});
        }
      },
      [&](size_t index, BodyError err, std::string_view raw) {
        rejected->push_back({index, std::move(err.reason), std::move(err.message), std::string(raw)});
      });
}

Result<IngestResult> Collector::IngestActions(std::string_view body, std::string_view source) {
  requests_->Inc();
  RETURN_IF_ERROR(CheckLag());
  std::vector<Action> actions;
  IngestResult result;
  ParseActions(body, &actions, &result.rejected);
  for (const auto& r : result.rejected) CountRejection(r, "actions");
  KeepFailed(result.rejected, source, "action");
  if (actions.empty()) return result;
  std::vector<std::string> payloads(actions.size());
  std::vector<PartitionId> partitions(actions.size());
  for (size_t i = 0; i < actions.size(); ++i) {
    EncodeActionRecord(actions[i], &payloads[i]);
    partitions[i] = PartitionOf(actions[i].uid);
  }
  RETURN_IF_ERROR(AppendRecords(payloads, partitions));
  result.accepted = actions.size();
  actions_accepted_->Inc(actions.size());
  return result;
}

Result<Action> Collector::ParseAction(std::string_view json) {
  simdjson::padded_string padded(json);
  std::vector<Action> actions;
  std::vector<Rejection> rejected;
  ParseActions(std::string_view(padded.data(), padded.size()), &actions, &rejected);
  if (!rejected.empty()) return Status::InvalidArgument(rejected[0].reason + ": " + rejected[0].message);
  if (actions.size() != 1) return Status::InvalidArgument("expected exactly one action");
  return std::move(actions[0]);
}

Status Collector::DeleteProfile(std::string_view uid) {
  if (uid.empty() || uid.size() > 256) return Status::InvalidArgument("uid must hold 1 to 256 bytes");
  if (std::string problem = IdProblem(uid); !problem.empty()) return Status::InvalidArgument("uid " + problem);
  std::vector<std::string> payloads(1);
  EncodeDeleteRecord(uid, NowMs(), &payloads[0]);
  RETURN_IF_ERROR(AppendRecords(payloads, {PartitionOf(uid)}));
  deletions_->Inc();
  return Status::Ok();
}

}  // namespace portrait
