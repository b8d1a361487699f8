// The behaviour model and the tag rules of a config: [events.*], [tags.*], [[rules]], and
// the field references and value templates rules (and decision rules) are written with.
#include <algorithm>
#include <cctype>
#include <set>

#include "core/config_check.h"
#include "core/json.h"

namespace portrait {
namespace {

std::optional<FieldType> ParseFieldType(std::string_view s) {
  for (FieldType t : {FieldType::kString, FieldType::kInt, FieldType::kNumber, FieldType::kBool,
                      FieldType::kObject, FieldType::kArray, FieldType::kAny}) {
    if (FieldTypeName(t) == s) return t;
  }
  return std::nullopt;
}

}  // namespace

void ParseEventsSection(ConfigChecker& c, const toml::table& t, Config* cfg) {
  for (auto&& [name, node] : t) {
    std::string what = "event type \"" + std::string(name.str()) + "\"";
    const toml::table* et = node.as_table();
    if (!et) {
      c.Error(node, what + ": must be a table such as [events." + std::string(name.str()) + "]");
      continue;
    }
    c.KnownKeys(*et, what, {"props", "allow_unknown_props"});
    EventTypeSpec spec;
    spec.name = name.str();
    if (auto v = c.Get<bool>(*et, "allow_unknown_props", what, "true or false")) spec.allow_unknown_props = *v;
    if (const toml::node* pn = et->get("props")) {
      const toml::table* props = pn->as_table();
      if (!props) {
        c.Error(*pn, what + ": props must be a table of field = type");
      } else {
        for (auto&& [fname, fnode] : *props) {
          FieldSpec f;
          f.name = fname.str();
          std::string fwhat = what + ": prop \"" + f.name + "\"";
          std::optional<std::string> type_name;
          if (auto s = fnode.value<std::string>()) {
            type_name = *s;
          } else if (const toml::table* ft = fnode.as_table()) {
            c.KnownKeys(*ft, fwhat, {"type", "required", "min", "max", "max_len"});
            type_name = c.Get<std::string>(*ft, "type", fwhat, "a type name");
            if (!type_name) c.Error(fnode, fwhat + ": needs a type, e.g. { type = \"int\" }");
            if (auto v = c.Get<bool>(*ft, "required", fwhat, "true or false")) f.required = *v;
            if (auto v = c.Get<double>(*ft, "min", fwhat, "a number")) f.min = *v;
            if (auto v = c.Get<double>(*ft, "max", fwhat, "a number")) f.max = *v;
            if (auto v = c.GetInt(*ft, "max_len", fwhat, 1, int64_t{1} << 30)) f.max_len = *v;
          } else {
            c.Error(fnode, fwhat + ": must be a type name (\"int\") or a table ({ type = \"int\", required = false })");
            continue;
          }
          if (type_name) {
            if (auto ft = ParseFieldType(*type_name)) {
              f.type = *ft;
            } else {
              c.Error(fnode, fwhat + ": unknown type \"" + *type_name +
                                 "\"; use string, int, number, bool, object, array or any");
            }
          }
          spec.props.push_back(std::move(f));
        }
      }
    }
    cfg->events.emplace(spec.name, std::move(spec));
  }
}

void ParseTagsSection(ConfigChecker& c, const toml::table& t, Config* cfg) {
  for (auto&& [name, node] : t) {
    std::string what = "tag \"" + std::string(name.str()) + "\"";
    const toml::table* tt = node.as_table();
    if (!tt) {
      c.Error(node, what + ": must be a table such as [tags." + std::string(name.str()) + "]");
      continue;
    }
    c.KnownKeys(*tt, what, {"type", "ops", "size_limit", "sort_by", "order", "dedup_by", "ttl", "max_age", "offline"});
    TagConfig tag;
    tag.name = name.str();
    if (tag.name.empty() || tag.name.size() > 128 ||
        !std::all_of(tag.name.begin(), tag.name.end(), [](unsigned char ch) {
          return std::isalnum(ch) || ch == '_' || ch == '-' || ch == '.' || ch == ':';
        })) {
      c.Error(node, what + ": tag names use letters, digits, _ - . : (up to 128)");
      continue;
    }
    auto type = c.Get<std::string>(*tt, "type", what, "a string");
    if (!type) {
      if (!tt->get("type")) c.Error(node, what + ": needs type = \"string\" | \"number\" | \"map\" | \"set\" | \"list\"");
      continue;
    }
    auto parsed = ParseTagType(*type);
    if (!parsed) {
      c.Error(*tt->get("type"), what + ": unknown type \"" + *type + "\"; use string, number, map, set or list");
      continue;
    }
    tag.type = *parsed;
    if (const toml::node* on = tt->get("ops")) {
      const toml::array* arr = on->as_array();
      if (!arr) c.Error(*on, what + ": ops must be an array of operator names");
      for (size_t i = 0; arr && i < arr->size(); ++i) {
        auto s = (*arr)[i].value<std::string>();
        auto op = s ? ParseOp(*s) : std::nullopt;
        if (!op) {
          c.Error((*arr)[i], what + ": ops[" + std::to_string(i) + "] is not an operator name");
        } else if (*op != OpCode::kTagDel && TagTypeOfOp(*op) != tag.type) {
          c.Error((*arr)[i], what + ": operator " + *s + " does not apply to a " + *type + " tag");
        } else {
          tag.ops.push_back(*op);
        }
      }
    }
    bool is_list = tag.type == TagType::kList;
    auto list_only = [&](std::string_view key) {
      if (!is_list && tt->get(key)) c.Error(*tt->get(key), what + ": " + std::string(key) + " applies to list tags only");
    };
    list_only("size_limit");
    list_only("sort_by");
    list_only("order");
    list_only("dedup_by");
    list_only("max_age");
    if (is_list) {
      tag.size_limit = 1000;
      if (auto v = c.GetInt(*tt, "size_limit", what, 1, 10'000'000)) tag.size_limit = *v;
      if (tt->get("size_limit") && !tt->get("size_limit")->is_integer()) {}
      if (auto v = c.Get<std::string>(*tt, "sort_by", what, "a field name")) tag.sort_by = *v;
      if (auto v = c.Get<std::string>(*tt, "order", what, "\"asc\" or \"desc\"")) {
        if (*v == "desc") tag.descending = true;
        else if (*v != "asc") c.Error(*tt->get("order"), what + ": order must be \"asc\" or \"desc\"");
      }
      if (const toml::node* dn = tt->get("dedup_by")) {
        const toml::array* arr = dn->as_array();
        if (!arr || arr->empty()) c.Error(*dn, what + ": dedup_by must be a non-empty array of field names");
        for (size_t i = 0; arr && i < arr->size(); ++i) {
          if (auto s = (*arr)[i].value<std::string>()) tag.dedup_by.push_back(*s);
          else c.Error((*arr)[i], what + ": dedup_by entries must be field names");
        }
      }
      if (auto v = c.GetDurationMs(*tt, "max_age", what)) tag.max_age_ms = *v;
    }
    if (auto v = c.GetDurationMs(*tt, "ttl", what)) tag.ttl_ms = *v;
    tag.load = DefaultLoadOp(tag.type);
    if (const toml::node* on = tt->get("offline")) {
      std::string owhat = what + ": offline";
      if (const toml::table* ot = on->as_table()) {
        c.KnownKeys(*ot, owhat, {"window", "load"});
        tag.offline = true;
        if (auto v = c.GetDurationMs(*ot, "window", owhat)) tag.offline_window_ms = *v;
        if (auto v = c.Get<std::string>(*ot, "load", owhat, "an operator name")) {
          auto op = ParseOp(*v);
          if (!op || !IsLoadOp(*op) || TagTypeOfOp(*op) != tag.type) {
            c.Error(*ot->get("load"), owhat + ": load \"" + *v + "\" cannot load a " + *type +
                                          " tag; use " + std::string(OpName(DefaultLoadOp(tag.type))) +
                                          " (or string.set, number.set|max|min, map.merge, set.addl, list.rpushl "
                                          "for their types)");
          } else {
            tag.load = *op;
          }
        }
      } else {
        c.Error(*on, owhat + " must be a table such as offline = { window = \"30d\", load = \"" +
                         std::string(OpName(DefaultLoadOp(tag.type))) + "\" }");
      }
    }
    if (!tag.Allows(tag.load)) {
      c.Error(node, what + ": ops must allow " + std::string(OpName(tag.load)) +
                        ", the operator that loads its offline values");
    }
    cfg->tags.Add(std::move(tag));
  }
}

void ParseRulesSection(ConfigChecker& c, const toml::array& arr, Config* cfg) {
  for (size_t i = 0; i < arr.size(); ++i) {
    const toml::table* rt = arr[i].as_table();
    std::string what = "rule #" + std::to_string(i + 1);
    if (!rt) {
      c.Error(arr[i], what + ": must be a table ([[rules]])");
      continue;
    }
    c.KnownKeys(*rt, what, {"on", "tag", "op", "key", "value", "layer"});
    RuleSpec r;
    r.where = c.Where(rt->source());
    if (const toml::node* on = rt->get("on")) {
      if (auto s = on->value<std::string>()) {
        r.on.push_back(*s);
      } else if (const toml::array* a = on->as_array()) {
        for (auto&& e : *a) {
          if (auto s = e.value<std::string>()) r.on.push_back(*s);
          else c.Error(e, what + ": on must list event type names");
        }
      } else {
        c.Error(*on, what + ": on must be an event type name or an array of them");
      }
      for (const auto& type : r.on) {
        if (!cfg->events.count(type)) c.Error(*on, what + ": event type \"" + type + "\" is not declared; add [events." + type + "]");
      }
    } else {
      c.Error(*rt, what + ": needs on = \"event type\"");
    }
    auto tag_name = c.Get<std::string>(*rt, "tag", what, "a tag name");
    const TagConfig* tag = tag_name ? cfg->tags.FindDeclared(*tag_name) : nullptr;
    if (!tag_name) {
      if (!rt->get("tag")) c.Error(*rt, what + ": needs tag = \"name\"");
      continue;
    }
    if (!tag) {
      c.Error(*rt->get("tag"), what + ": tag \"" + *tag_name + "\" is not declared; add [tags." + *tag_name + "]");
      continue;
    }
    r.tag = *tag_name;
    what += " (tag \"" + r.tag + "\")";
    if (auto layer = c.Get<std::string>(*rt, "layer", what, "\"both\", \"realtime\" or \"offline\"")) {
      if (*layer == "realtime") r.offline = false;
      else if (*layer == "offline") r.realtime = false;
      else if (*layer != "both") c.Error(*rt->get("layer"), what + ": layer must be \"both\", \"realtime\" or \"offline\"");
      if (!r.realtime && !tag->offline) {
        c.Error(*rt->get("layer"), what + ": an offline rule needs its tag computed offline; add offline = { window = "
                                          "\"30d\" } to [tags." + r.tag + "]");
      }
    }
    auto op_name = c.Get<std::string>(*rt, "op", what, "an operator name");
    if (!op_name) {
      if (!rt->get("op")) c.Error(*rt, what + ": needs op, e.g. op = \"list.rpush\"");
      continue;
    }
    auto op = ParseOp(*op_name);
    if (!op) {
      c.Error(*rt->get("op"), what + ": unknown operator \"" + *op_name + "\"");
      continue;
    }
    if (!tag->Allows(*op)) {
      c.Error(*rt->get("op"), what + ": operator " + *op_name + " is not allowed on " +
                                  std::string(TagTypeName(tag->type)) + " tag \"" + r.tag + "\"");
      continue;
    }
    r.op = *op;
    bool needs_key = *op == OpCode::kMapPut || *op == OpCode::kMapIncr || *op == OpCode::kMapDel;
    if (const toml::node* kn = rt->get("key")) {
      if (!needs_key) c.Error(*kn, what + ": key is only used by map.put, map.incr and map.del");
      r.key = ParseTemplate(c, *kn, what + ": key");
    } else if (needs_key) {
      c.Error(*rt, what + ": " + *op_name + " needs key = \"$props.NAME\" (or a literal)");
    }
    const toml::node* vn = rt->get("value");
    if (*op == OpCode::kTagDel || *op == OpCode::kMapDel) {
      if (vn) c.Error(*vn, what + ": " + *op_name + " takes no value");
    } else if (!vn) {
      c.Error(*rt, what + ": needs value = ...");
      continue;
    } else if (auto v = ParseTemplate(c, *vn, what + ": value")) {
      r.value = std::move(*v);
      bool is_list = tag->type == TagType::kList;
      if (is_list && r.value.kind != ValueTemplate::Kind::kObject) {
        c.Error(*vn, what + ": list items must be a table, e.g. value = { item_id = \"$props.item_id\", et = \"$ts\" }");
      }
      if (!is_list && r.value.kind == ValueTemplate::Kind::kObject && *op != OpCode::kMapPut) {
        c.Error(*vn, what + ": value must be a single literal or $field for " + *op_name);
      }
      bool numeric = *op == OpCode::kNumberSet || *op == OpCode::kNumberIncr || *op == OpCode::kNumberMax ||
                     *op == OpCode::kNumberMin || *op == OpCode::kMapIncr;
      if (numeric && r.value.kind == ValueTemplate::Kind::kLiteral && !r.value.literal_is_number) {
        c.Error(*vn, what + ": " + *op_name + " needs a numeric value");
      }
      if (is_list && r.value.kind == ValueTemplate::Kind::kObject) {
        auto has = [&](const std::string& f) {
          return std::any_of(r.value.fields.begin(), r.value.fields.end(), [&](auto& p) { return p.first == f; });
        };
        if (!tag->sort_by.empty() && !has(tag->sort_by)) {
          c.Error(*vn, what + ": the item lacks the tag's sort_by field \"" + tag->sort_by + "\"");
        }
        for (const auto& d : tag->dedup_by) {
          if (!has(d)) c.Error(*vn, what + ": the item lacks the tag's dedup_by field \"" + d + "\"");
        }
      }
    }
    // Every $props.NAME a rule reads must be declared by each event type it listens on.
    std::vector<const ValueTemplate*> refs;
    if (r.key) refs.push_back(&*r.key);
    refs.push_back(&r.value);
    for (size_t j = 0; j < refs.size(); ++j) {
      for (const auto& [_, sub] : refs[j]->fields) refs.push_back(&sub);
    }
    for (const ValueTemplate* t : refs) {
      if (t->kind != ValueTemplate::Kind::kField || t->field.kind != FieldRef::Kind::kProp) continue;
      for (const auto& type : r.on) {
        auto it = cfg->events.find(type);
        if (it != cfg->events.end() && !it->second.FindProp(t->field.prop)) {
          c.Error(*rt, what + ": reads $props." + t->field.prop + ", which event type \"" + type +
                           "\" does not declare; add it under [events." + type + ".props]");
        }
      }
    }
    cfg->rules.push_back(std::move(r));
  }
}


std::vector<std::string> ReadTypeList(ConfigChecker& c, const toml::node& n, const std::string& what, const Config& cfg) {
  std::vector<std::string> out;
  auto add = [&](const toml::node& e) {
    auto s = e.value<std::string>();
    if (!s) {
      c.Error(e, what + ": must name event types");
    } else if (!cfg.events.count(*s)) {
      c.Error(e, what + ": event type \"" + *s + "\" is not declared; add [events." + *s + "]");
    } else {
      out.push_back(*s);
    }
  };
  if (const toml::array* a = n.as_array()) {
    for (auto&& e : *a) add(e);
  } else {
    add(n);
  }
  return out;
}


std::optional<FieldRef> ParseFieldRef(std::string_view s) {
  FieldRef r;
  if (s == "uid") r.kind = FieldRef::Kind::kUid;
  else if (s == "device_id") r.kind = FieldRef::Kind::kDeviceId;
  else if (s == "id") r.kind = FieldRef::Kind::kId;
  else if (s == "type") r.kind = FieldRef::Kind::kType;
  else if (s == "ts") r.kind = FieldRef::Kind::kTs;
  else if (s == "ts_iso") r.kind = FieldRef::Kind::kTsIso;
  else if (s == "product") r.kind = FieldRef::Kind::kProduct;
  else if (s == "channel") r.kind = FieldRef::Kind::kChannel;
  else if (s.starts_with("props.") && s.size() > 6) {
    r.kind = FieldRef::Kind::kProp;
    r.prop = s.substr(6);
  } else {
    return std::nullopt;
  }
  return r;
}

std::optional<ValueTemplate> ParseTemplate(ConfigChecker& c, const toml::node& n, const std::string& what) {
  ValueTemplate t;
  if (auto s = n.value_exact<std::string>()) {
    if (s->starts_with("$") && !s->starts_with("$$")) {
      auto ref = ParseFieldRef(std::string_view(*s).substr(1));
      if (!ref) {
        c.Error(n, what + ": unknown field \"" + *s +
                       "\"; use $uid, $device_id, $id, $type, $ts, $ts_iso, $product, $channel or $props.NAME");
        return std::nullopt;
      }
      t.kind = ValueTemplate::Kind::kField;
      t.field = *ref;
      return t;
    }
    t.literal_json.clear();
    AppendJsonString(&t.literal_json, s->starts_with("$$") ? s->substr(1) : *s);
    return t;
  }
  if (n.is_integer() || n.is_floating_point()) {
    t.literal_is_number = true;
    AppendJsonNumber(&t.literal_json, n.value<double>().value_or(0));
    return t;
  }
  if (auto b = n.value_exact<bool>()) {
    t.literal_json = *b ? "true" : "false";
    return t;
  }
  if (const toml::table* tt = n.as_table()) {
    t.kind = ValueTemplate::Kind::kObject;
    for (auto&& [k, v] : *tt) {
      auto sub = ParseTemplate(c, v, what + "." + std::string(k.str()));
      if (!sub) return std::nullopt;
      if (sub->kind == ValueTemplate::Kind::kObject) {
        c.Error(v, what + ": nested objects in item templates are not supported; flatten the field");
        return std::nullopt;
      }
      t.fields.emplace_back(std::string(k.str()), std::move(*sub));
    }
    return t;
  }
  c.Error(n, what + ": must be a literal, a \"$field\" reference, or (for lists) a table of those");
  return std::nullopt;
}


}  // namespace portrait
