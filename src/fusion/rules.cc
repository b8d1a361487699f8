#include "fusion/rules.h"

#include <charconv>

#include "core/json.h"
#include "fusion/fusion.h"

namespace portrait {

namespace {

// A template's value for one event, as JSON text plus convenient decoded forms.
struct Value {
  std::string json;
  std::string text;  // the string itself for JSON strings, else the JSON text
  bool is_number = false;
  double number = 0;
};

void FromString(std::string_view s, Value* v) {
  v->json.clear();
  AppendJsonString(&v->json, s);
  v->text = s;
}

bool FromRaw(std::string_view raw, Value* v) {
  v->json = raw;
  if (!raw.empty() && raw[0] == '"') return UnescapeJsonString(raw, &v->text);
  v->text = raw;
  auto [p, ec] = std::from_chars(raw.data(), raw.data() + raw.size(), v->number);
  v->is_number = ec == std::errc() && p == raw.data() + raw.size();
  return true;
}

bool Eval(const ValueTemplate& t, const Event& e, Value* v) {
  if (t.kind == ValueTemplate::Kind::kLiteral) return FromRaw(t.literal_json, v);
  switch (t.field.kind) {
    case FieldRef::Kind::kUid: FromString(e.uid, v); return !e.uid.empty();
    case FieldRef::Kind::kDeviceId: FromString(e.device_id, v); return !e.device_id.empty();
    case FieldRef::Kind::kId: FromString(e.id, v); return true;
    case FieldRef::Kind::kType: FromString(e.type, v); return true;
    case FieldRef::Kind::kProduct: FromString(e.product, v); return !e.product.empty();
    case FieldRef::Kind::kChannel: FromString(e.channel, v); return !e.channel.empty();
    case FieldRef::Kind::kTsIso: FromString(FormatIsoUtc(e.ts), v); return true;
    case FieldRef::Kind::kTs:
      v->json = std::to_string(e.ts);
      v->text = v->json;
      v->is_number = true;
      v->number = static_cast<double>(e.ts);
      return true;
    case FieldRef::Kind::kProp: {
      std::string_view raw = e.Prop(t.field.prop);
      return !raw.empty() && FromRaw(raw, v);
    }
  }
  return false;
}

}  // namespace

bool EvalTemplate(const ValueTemplate& t, const Event& e, std::string* json, std::string* text) {
  Value v;
  if (t.kind != ValueTemplate::Kind::kObject) {
    if (!Eval(t, e, &v)) return false;
    *json = std::move(v.json);
    if (text) *text = std::move(v.text);
    return true;
  }
  json->clear();
  JsonWriter w(json);
  w.BeginObject();
  for (const auto& [name, sub] : t.fields) {
    if (Eval(sub, e, &v)) w.Key(name).Raw(v.json);
  }
  w.EndObject();
  if (text) *text = *json;
  return true;
}

std::string PropText(std::string_view raw) {
  Value v;
  FromRaw(raw, &v);
  return v.text;
}

RuleSet::RuleSet(const Config& config, Layer layer) {
  for (const RuleSpec& r : config.rules) {
    const TagConfig* tag = config.tags.Find(r.tag);
    if (!tag) continue;  // LoadConfig rejects this; keep the set usable regardless
    if (layer == Layer::kRealtime ? !r.realtime : !(r.offline && tag->offline)) continue;
    for (const std::string& type : r.on) by_type_[type].push_back({&r, tag});
  }
}

void RuleSet::Evaluate(const Event& e, std::vector<Action>* out, size_t* skipped) const {
  auto it = by_type_.find(e.type);
  if (it == by_type_.end()) return;
  Value key, val;
  for (const Compiled& c : it->second) {
    const RuleSpec& r = *c.spec;
    Action a;
    a.uid = e.PartitionKey();
    a.tag = r.tag;
    a.op = r.op;
    a.ts = e.ts;
    a.source = Source::kRealtime;
    if (r.key && !Eval(*r.key, e, &key)) {
      ++*skipped;
      continue;
    }
    bool ok = true;
    switch (r.op) {
      case OpCode::kStringSet:
        ok = Eval(r.value, e, &val);
        a.text = val.text;
        break;
      case OpCode::kNumberSet:
      case OpCode::kNumberIncr:
      case OpCode::kNumberMax:
      case OpCode::kNumberMin:
        ok = Eval(r.value, e, &val) && val.is_number;
        a.number = val.number;
        break;
      case OpCode::kMapIncr:
        ok = Eval(r.value, e, &val) && val.is_number;
        a.entries.push_back({key.text, "", val.number});
        break;
      case OpCode::kMapPut:
      case OpCode::kMapMerge:
        if (r.value.kind == ValueTemplate::Kind::kObject) {
          for (const auto& [name, sub] : r.value.fields) {
            if (!Eval(sub, e, &val)) continue;
            a.entries.push_back({r.op == OpCode::kMapPut ? key.text : name, val.json, 0});
          }
          ok = !a.entries.empty();
        } else {
          ok = Eval(r.value, e, &val);
          a.entries.push_back({key.text, val.json, 0});
        }
        break;
      case OpCode::kMapDel:
        a.entries.push_back({key.text, "", 0});
        break;
      case OpCode::kSetAdd:
      case OpCode::kSetAddl:
        ok = Eval(r.value, e, &val);
        a.members.push_back(val.json);
        break;
      case OpCode::kListRpush:
      case OpCode::kListRpushl: {
        std::vector<std::pair<std::string, std::string>> fields;
        fields.reserve(r.value.fields.size());
        for (const auto& [name, sub] : r.value.fields) {
          if (Eval(sub, e, &val)) fields.emplace_back(name, val.json);
        }
        auto item = fusion::MakeListItem(fields, *c.tag, e.ts, Source::kRealtime);
        ok = item.ok();
        if (ok) a.items.push_back(std::move(item).value());
        break;
      }
      case OpCode::kTagDel:
        break;
    }
    if (!ok) {
      ++*skipped;
      continue;
    }
    out->push_back(std::move(a));
  }
}

}  // namespace portrait
