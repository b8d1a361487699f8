#include "core/openapi.h"

#include <cctype>
#include <map>
#include <set>
#include <vector>

#include "core/json.h"

namespace portrait {
namespace {

// The shapes more than one route shares.
constexpr const char* kSchemas = R"({
"Error":{"type":"object","required":["error"],"properties":{"error":{"type":"object","required":["code","message"],"properties":{"code":{"type":"string","description":"a stable machine-readable code, e.g. unknown_tag"},"message":{"type":"string","description":"what went wrong, for people"}}}}},
"Event":{"type":"object","required":["type"],"properties":{"id":{"type":"string","description":"idempotency id; derived from the content when absent"},"uid":{"type":"string"},"device_id":{"type":"string"},"type":{"type":"string","description":"a declared event type"},"ts":{"type":"integer","description":"event time, unix ms"},"product":{"type":"string"},"channel":{"type":"string"},"props":{"type":"object","description":"the type's declared properties"}}},
"Action":{"type":"object","required":["uid","tag","op"],"properties":{"id":{"type":"string"},"uid":{"type":"string"},"tag":{"type":"string"},"op":{"type":"string","description":"string.set, number.incr, map.incr, list.rpush, ..."},"ts":{"type":"integer"},"source":{"type":"string","enum":["external","offline","realtime"]},"key":{"type":"string"},"value":{}}},
"IngestAnswer":{"type":"object","properties":{"accepted":{"type":"integer"},"duplicates":{"type":"integer"},"rejected":{"type":"array","items":{"type":"object","properties":{"index":{"type":"integer"},"reason":{"type":"string"},"error":{"type":"string"}}}}}},
"Profile":{"type":"object","required":["uid","tags","freshness"],"properties":{"uid":{"type":"string"},"resolved_from":{"type":"string","description":"the device id asked for, when it belongs to this user"},"tags":{"type":"object","additionalProperties":{"type":"object","properties":{"value":{},"updated_at":{"type":"integer"}}}},"freshness":{"type":"object","properties":{"realtime_updated_at":{"type":["integer","null"]},"snapshot":{"type":["object","null"],"properties":{"date":{"type":"string"},"version":{"type":"integer"}}}}},"devices":{"type":"array","items":{"type":"string"}},"segments":{"type":"array","items":{"type":"string"}}}}
})";

void WriteSchema(JsonWriter& w, const std::string& schema) {
  if (schema.empty()) {
    w.BeginObject().Key("type").String("object").EndObject();
  } else if (schema[0] == '{') {
    w.Raw(schema);
  } else {
    w.BeginObject().Key("$ref").String("#/components/schemas/" + schema).EndObject();
  }
}

// `?limit=N`, `&from=`: the query parameter names a summary mentions, in order.
std::vector<std::string> QueryNames(std::string_view summary) {
  std::vector<std::string> out;
  for (size_t i = 0; i < summary.size(); ++i) {
    if (summary[i] != '?' && summary[i] != '&') continue;
    size_t j = i + 1;
    while (j < summary.size() && (std::islower(static_cast<unsigned char>(summary[j])) || summary[j] == '_')) ++j;
    if (j > i + 1 && j < summary.size() && summary[j] == '=') {
      std::string name(summary.substr(i + 1, j - i - 1));
      bool seen = false;
      for (const auto& n : out) seen = seen || n == name;
      if (!seen) out.push_back(std::move(name));
    }
  }
  return out;
}

std::vector<std::string> PathNames(std::string_view pattern) {
  std::vector<std::string> out;
  for (size_t at = pattern.find('{'); at != std::string_view::npos; at = pattern.find('{', at + 1)) {
    size_t end = pattern.find('}', at);
    if (end == std::string_view::npos) break;
    out.emplace_back(pattern.substr(at + 1, end - at - 1));
  }
  return out;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

void WriteOperation(JsonWriter& w, const Route& r, const std::string& operation_id) {
  w.Key(Lower(r.method)).BeginObject();
  w.Key("operationId").String(operation_id);
  w.Key("summary").String(r.summary);
  std::string tag = r.pattern.substr(1);
  if (tag.starts_with("v1/")) tag = tag.substr(3);
  tag = tag.substr(0, tag.find_first_of("/:{"));
  w.Key("tags").BeginArray().String(tag.empty() ? "service" : tag).EndArray();
  w.Key("x-portrait-scope").String(ScopeName(r.scope));
  w.Key("security").BeginArray();
  if (r.scope != Scope::kPublic) w.BeginObject().Key("bearer").BeginArray().EndArray().EndObject();
  w.EndArray();
  w.Key("parameters").BeginArray();
  for (const std::string& p : PathNames(r.pattern)) {
    w.BeginObject().Key("name").String(p).Key("in").String("path").Key("required").Bool(true);
    w.Key("schema").BeginObject().Key("type").String("string").EndObject().EndObject();
  }
  for (const std::string& q : QueryNames(r.summary)) {
    w.BeginObject().Key("name").String(q).Key("in").String("query").Key("required").Bool(false);
    w.Key("schema").BeginObject().Key("type").String("string").EndObject().EndObject();
  }
  w.EndArray();
  if (r.method == "POST") {
    w.Key("requestBody").BeginObject().Key("required").Bool(!r.request_schema.empty());
    w.Key("content").BeginObject().Key("application/json").BeginObject().Key("schema");
    WriteSchema(w, r.request_schema);
    w.EndObject();
    if (r.request_schema == "Event" || r.request_schema == "Action") {
      w.Key("application/x-ndjson").BeginObject().Key("schema").BeginObject().Key("type").String("string");
      w.EndObject().EndObject();
    }
    w.EndObject().EndObject();
  }
  const std::string type = r.answer_type.empty() ? "application/json" : r.answer_type;
  w.Key("responses").BeginObject();
  w.Key("200").BeginObject().Key("description").String(r.summary).Key("content").BeginObject().Key(type).BeginObject();
  w.Key("schema");
  if (type == "application/json") WriteSchema(w, r.answer_schema);
  else w.BeginObject().Key("type").String("string").EndObject();
  w.EndObject().EndObject().EndObject();
  std::vector<std::pair<const char*, const char*>> errors = {
      {"400", "BadRequest"}, {"404", "NotFound"}, {"503", "Unavailable"}};
  if (r.scope != Scope::kPublic) errors.insert(errors.begin() + 1, {{"401", "Unauthorized"}, {"403", "Forbidden"}});
  if (r.method == "POST") errors.push_back({"413", "TooLarge"});
  for (const auto& [code, name] : errors) {
    w.Key(code).BeginObject().Key("$ref").String(std::string("#/components/responses/") + name).EndObject();
  }
  w.EndObject();
  w.EndObject();
}

}  // namespace

std::string OpenApiDocument(const RouteTable& routes, std::string_view version) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("openapi").String("3.1.0");
  w.Key("info").BeginObject().Key("title").String("portrait");
  w.Key("summary").String("real-time and offline user profiles: events in, fused profiles, channels and decisions out");
  w.Key("version").String(version);
  w.Key("license").BeginObject().Key("name").String("Proprietary").Key("identifier").String("LicenseRef-Proprietary");
  w.EndObject().EndObject();
  w.Key("servers").BeginArray().BeginObject().Key("url").String("http://127.0.0.1:8080");
  w.Key("description").String("`make run`'s default; any [server] listen address").EndObject().EndArray();
  // Paths in declaration order, the methods of one path together.
  std::vector<std::string> order;
  std::map<std::string, std::vector<const Route*>> by_path;
  for (const Route& r : routes.routes()) {
    if (by_path[r.pattern].empty()) order.push_back(r.pattern);
    by_path[r.pattern].push_back(&r);
  }
  std::set<std::string> ids;
  w.Key("paths").BeginObject();
  for (const std::string& path : order) {
    w.Key(path).BeginObject();
    for (const Route* r : by_path[path]) {
      std::string id = r->label.empty() || r->label == r->pattern ? Lower(r->method) + r->pattern : r->label;
      for (char& c : id) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') c = '_';
      }
      if (!ids.insert(id).second) ids.insert(id = Lower(r->method) + "_" + id);
      WriteOperation(w, *r, id);
    }
    w.EndObject();
  }
  w.EndObject();
  w.Key("components").BeginObject();
  w.Key("securitySchemes").BeginObject().Key("bearer").BeginObject().Key("type").String("http");
  w.Key("scheme").String("bearer").Key("description")
      .String("a token of [server] tokens; its scopes (read, write, admin) must include the route's x-portrait-scope");
  w.EndObject().EndObject();
  w.Key("schemas").Raw(kSchemas);
  w.Key("responses").BeginObject();
  const std::pair<const char*, const char*> answers[] = {
      {"BadRequest", "the request is malformed (the message names the field or value)"},
      {"Unauthorized", "no known token (with [server] tokens set)"},
      {"Forbidden", "the token lacks the route's scope"},
      {"NotFound", "nothing there (or the feature is off), named in the message"},
      {"TooLarge", "the body is over [server] max_body_bytes"},
      {"Unavailable", "the store or log cannot take it now; retry after Retry-After"},
  };
  for (const auto& [name, what] : answers) {
    w.Key(name).BeginObject().Key("description").String(what).Key("content").BeginObject();
    w.Key("application/json").BeginObject().Key("schema").BeginObject().Key("$ref").String("#/components/schemas/Error");
    w.EndObject().EndObject().EndObject().EndObject();
  }
  w.EndObject().EndObject().EndObject();
  return out;
}

}  // namespace portrait
