#include "core/config.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <charconv>
#include <fstream>
#include <set>
#include <sstream>
#include <toml++/toml.h>

#include "core/config_check.h"

#include "core/json.h"

namespace portrait {

std::string_view FieldTypeName(FieldType t) {
  switch (t) {
    case FieldType::kString: return "string";
    case FieldType::kInt: return "int";
    case FieldType::kNumber: return "number";
    case FieldType::kBool: return "bool";
    case FieldType::kObject: return "object";
    case FieldType::kArray: return "array";
    case FieldType::kAny: return "any";
  }
  return "?";
}

std::string_view FsyncPolicyName(FsyncPolicy p) {
  switch (p) {
    case FsyncPolicy::kAlways: return "always";
    case FsyncPolicy::kBatch: return "batch";
    case FsyncPolicy::kNone: return "none";
  }
  return "?";
}

const FieldSpec* EventTypeSpec::FindProp(std::string_view n) const {
  for (const auto& f : props) {
    if (f.name == n) return &f;
  }
  return nullptr;
}

bool TagConfig::Allows(OpCode op) const {
  if (op == OpCode::kTagDel) return ops.empty() || std::find(ops.begin(), ops.end(), op) != ops.end();
  if (TagTypeOfOp(op) != type) return false;
  return ops.empty() || std::find(ops.begin(), ops.end(), op) != ops.end();
}

OpCode DefaultLoadOp(TagType t) {
  switch (t) {
    case TagType::kString: return OpCode::kStringSet;
    case TagType::kNumber: return OpCode::kNumberSet;
    case TagType::kMap: return OpCode::kMapMerge;
    case TagType::kSet: return OpCode::kSetAddl;
    case TagType::kList: return OpCode::kListRpushl;
  }
  return OpCode::kStringSet;
}

bool IsLoadOp(OpCode op) {
  switch (op) {
    case OpCode::kStringSet:
    case OpCode::kNumberSet:
    case OpCode::kNumberMax:
    case OpCode::kNumberMin:
    case OpCode::kMapMerge:
    case OpCode::kSetAddl:
    case OpCode::kListRpushl:
      return true;
    default:
      return false;
  }
}

const TagConfig* TagRegistry::Find(std::string_view name) const {
  auto it = tags_.find(name);
  return it == tags_.end() ? nullptr : &it->second;
}

std::string TagRegistry::DeclaredNames() const {
  std::string out;
  for (const auto& [name, t] : tags_) {
    if (t.internal) continue;
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

void TagRegistry::Add(TagConfig tag) {
  std::string name = tag.name;
  tags_.insert_or_assign(std::move(name), std::move(tag));
}

std::optional<int64_t> ParseDurationMs(std::string_view s) {
  int64_t n = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || p == s.data() || n < 0) return std::nullopt;
  std::string_view unit(p, s.data() + s.size() - p);
  int64_t mul = 0;
  if (unit == "ms") mul = 1;
  else if (unit == "s") mul = 1000;
  else if (unit == "m") mul = 60'000;
  else if (unit == "h") mul = 3'600'000;
  else if (unit == "d") mul = 86'400'000;
  else return std::nullopt;
  return n * mul;
}

// "HH:MM" -> minutes after midnight.
std::optional<int> ParseClockMinutes(std::string_view s) {
  if (s.size() != 5 || s[2] != ':') return std::nullopt;
  auto digits = [&](size_t i) { return std::isdigit(static_cast<unsigned char>(s[i])) ? s[i] - '0' : -100; };
  int h = digits(0) * 10 + digits(1), m = digits(3) * 10 + digits(4);
  if (h < 0 || h > 23 || m < 0 || m > 59) return std::nullopt;
  return h * 60 + m;
}

namespace {

// A token's secret: `env:NAME` (an environment variable), `file:PATH` (the file's text,
// trailing whitespace dropped) or the text itself; what went wrong, or "".
std::string ResolveSecret(const std::string& spec, std::string* secret) {
  if (spec.starts_with("env:")) {
    const char* v = std::getenv(spec.c_str() + 4);
    if (!v) return "environment variable " + spec.substr(4) + " is not set";
    *secret = v;
  } else if (spec.starts_with("file:")) {
    std::ifstream in(spec.substr(5), std::ios::binary);
    if (!in) return "cannot read " + spec.substr(5);
    std::stringstream ss;
    ss << in.rdbuf();
    *secret = ss.str();
    while (!secret->empty() && std::isspace(static_cast<unsigned char>(secret->back()))) secret->pop_back();
  } else {
    *secret = spec;
  }
  if (secret->size() < 8) return "must be 8 or more characters";
  return "";
}

void ParseToken(ConfigChecker& c, const std::string& name, const toml::node& v, ServerConfig* s) {
  const std::string what = "[server] token \"" + name + "\"";
  ApiToken tok;
  tok.name = name;
  std::optional<std::string> spec = v.value<std::string>();
  if (const toml::table* tt = v.as_table()) {
    c.KnownKeys(*tt, what, {"token", "scopes"});
    spec = (*tt)["token"].value<std::string>();
    if (!spec) c.Error(v, what + ": needs token = \"...\" (or \"env:NAME\", \"file:PATH\")");
    tok.scopes = 0;
    const toml::array* arr = (*tt)["scopes"].as_array();
    if (!arr || arr->empty()) c.Error(v, what + ": needs scopes, some of [\"read\", \"write\", \"admin\"]");
    for (size_t i = 0; arr && i < arr->size(); ++i) {
      auto sc = (*arr)[i].value<std::string>();
      if (sc == "read") tok.scopes |= kScopeRead;
      else if (sc == "write") tok.scopes |= kScopeWrite;
      else if (sc == "admin") tok.scopes |= kScopeAdmin;
      else c.Error((*arr)[i], what + ": scope must be \"read\", \"write\" or \"admin\"");
    }
  } else if (!spec) {
    c.Error(v, what + ": must be a string (\"...\", \"env:NAME\", \"file:PATH\") or { token, scopes }");
    return;
  }
  if (!spec) return;
  if (std::string problem = ResolveSecret(*spec, &tok.secret); !problem.empty()) {
    c.Error(v, what + ": " + problem);  // names where the secret comes from, never the secret
    return;
  }
  s->tokens.push_back(std::move(tok));
}

void ParseServer(ConfigChecker& c, const toml::table& t, ServerConfig* s) {
  c.KnownKeys(t, "[server]",
              {"listen", "max_body_bytes", "threads", "max_json_depth", "cors_origins", "tokens", "open_metrics",
               "max_connections", "max_streams", "stream_buffer_bytes", "stream_heartbeat", "stream_idle_timeout"});
  if (auto v = c.GetInt(t, "max_connections", "[server]", 16, 1'000'000)) s->max_connections = static_cast<int>(*v);
  if (auto v = c.GetInt(t, "max_streams", "[server]", 0, 1'000'000)) s->max_streams = static_cast<int>(*v);
  if (auto v = c.GetInt(t, "stream_buffer_bytes", "[server]", 4096, int64_t{1} << 32)) s->stream_buffer_bytes = *v;
  if (auto v = c.GetDurationMs(t, "stream_heartbeat", "[server]")) s->stream_heartbeat_ms = *v;
  if (auto v = c.GetDurationMs(t, "stream_idle_timeout", "[server]")) s->stream_idle_timeout_ms = *v;
  if (auto v = c.Get<bool>(t, "open_metrics", "[server]", "true or false")) s->open_metrics = *v;
  if (const toml::node* n = t.get("cors_origins")) {
    const toml::array* arr = n->as_array();
    if (!arr) c.Error(*n, "[server]: cors_origins must be an array such as [\"https://shop.example\"] or [\"*\"]");
    for (size_t i = 0; arr && i < arr->size(); ++i) {
      if (auto o = (*arr)[i].value<std::string>()) s->cors_origins.push_back(*o);
      else c.Error((*arr)[i], "[server]: cors_origins entries are strings");
    }
  }
  if (const toml::node* n = t.get("tokens")) {
    const toml::table* tt = n->as_table();
    if (!tt) c.Error(*n, "[server]: tokens must be a table of NAME = \"token\" or NAME = { token = \"...\", scopes = [...] }");
    for (auto&& [name, v] : tt ? *tt : toml::table{}) ParseToken(c, std::string(name.str()), v, s);
  }
  if (auto v = c.Get<std::string>(t, "listen", "[server]", "a \"host:port\" string")) {
    if (v->find(':') == std::string::npos) c.Error(*t.get("listen"), "[server]: listen must be \"host:port\"");
    s->listen = *v;
  }
  if (auto v = c.GetInt(t, "max_body_bytes", "[server]", 1024, int64_t{1} << 32)) s->max_body_bytes = *v;
  if (auto v = c.GetInt(t, "threads", "[server]", 1, 256)) s->threads = static_cast<int>(*v);
  if (auto v = c.GetInt(t, "max_json_depth", "[server]", 2, 1000)) s->max_json_depth = static_cast<int>(*v);
}

void ParseKafka(ConfigChecker& c, const toml::table& t, KafkaLogConfig* k) {
  const char* what = "[log.kafka]";
  c.KnownKeys(t, what, {"brokers", "topic_prefix", "group", "replication_factor", "session_timeout_ms", "properties"});
  if (auto v = c.Get<std::string>(t, "brokers", what, "a \"host:port,host:port\" string")) k->brokers = *v;
  if (auto v = c.Get<std::string>(t, "topic_prefix", what, "a string")) k->topic_prefix = *v;
  if (auto v = c.Get<std::string>(t, "group", what, "a string")) {
    if (v->empty()) c.Error(*t.get("group"), std::string(what) + ": group must not be empty");
    k->group = *v;
  }
  if (auto v = c.GetInt(t, "replication_factor", what, 1, 16)) k->replication_factor = static_cast<int>(*v);
  if (auto v = c.GetInt(t, "session_timeout_ms", what, 1000, 300'000)) k->session_timeout_ms = static_cast<int>(*v);
  if (const toml::node* n = t.get("properties")) {
    const toml::table* props = n->as_table();
    if (!props) c.Error(*n, std::string(what) + ": properties must be a table of librdkafka settings");
    for (auto&& [name, node] : props ? *props : toml::table{}) {
      if (auto s = node.value<std::string>()) {
        k->properties[std::string(name.str())] = *s;
      } else if (auto i = node.value<int64_t>()) {
        k->properties[std::string(name.str())] = std::to_string(*i);
      } else if (auto b = node.value<bool>()) {
        k->properties[std::string(name.str())] = *b ? "true" : "false";
      } else {
        c.Error(node, std::string(what) + ": property \"" + std::string(name.str()) + "\" must be a string, integer or boolean");
      }
    }
  }
}

void ParseRetry(ConfigChecker& c, const toml::table& t, RetryConfig* r) {
  const char* what = "[retry]";
  c.KnownKeys(t, what, {"initial_backoff", "multiplier", "max_backoff", "attempts"});
  if (auto v = c.GetDurationMs(t, "initial_backoff", what)) r->initial_backoff_ms = std::max<int64_t>(1, *v);
  if (auto v = c.GetDurationMs(t, "max_backoff", what)) r->max_backoff_ms = std::max<int64_t>(1, *v);
  if (const toml::node* n = t.get("multiplier")) {
    auto v = n->value<double>();
    if (!v || *v < 1.0 || *v > 100.0) c.Error(*n, std::string(what) + ": multiplier must be a number from 1 to 100");
    else r->multiplier = *v;
  }
  if (auto v = c.GetInt(t, "attempts", what, 1, 64)) r->attempts = static_cast<int>(*v);
  if (r->max_backoff_ms < r->initial_backoff_ms) {
    c.Error(t, std::string(what) + ": max_backoff is shorter than initial_backoff");
  }
}

void ParseRoutes(ConfigChecker& c, const toml::array& arr, Config* cfg) {
  for (size_t i = 0; i < arr.size(); ++i) {
    const toml::table* t = arr[i].as_table();
    std::string what = "route #" + std::to_string(i + 1);
    if (!t) {
      c.Error(arr[i], what + ": must be a table ([[routes]])");
      continue;
    }
    c.KnownKeys(*t, what, {"types", "topic", "exclusive"});
    RouteConfig r;
    if (auto v = c.Get<std::string>(*t, "topic", what, "a topic name")) r.topic = *v;
    static const std::set<std::string> kReserved = {"events", "failed", "retry", "dead"};
    if (r.topic.empty() || kReserved.count(r.topic) ||
        !std::all_of(r.topic.begin(), r.topic.end(), [](unsigned char ch) { return std::isalnum(ch) || ch == '_' || ch == '-' || ch == '.'; })) {
      c.Error(*t, what + ": needs topic = \"NAME\" of letters, digits, . _ - (not events, failed, retry or dead)");
      continue;
    }
    if (auto v = c.Get<bool>(*t, "exclusive", what, "true or false")) r.exclusive = *v;
    const toml::node* n = t->get("types");
    const toml::array* types = n ? n->as_array() : nullptr;
    if (!types || types->empty()) {
      c.Error(n ? n->source() : t->source(), what + ": needs types = [\"event type\", ...]");
      continue;
    }
    for (auto&& e : *types) {
      auto type = e.value<std::string>();
      if (!type || !cfg->events.count(*type)) {
        c.Error(e, what + ": \"" + (type ? *type : std::string("?")) + "\" is not a declared event type");
        continue;
      }
      r.types.push_back(*type);
    }
    cfg->routes.push_back(std::move(r));
  }
}

void ParseLog(ConfigChecker& c, const toml::table& t, LogConfig* l) {
  c.KnownKeys(t, "[log]", {"backend", "partitions", "fsync", "fsync_max_delay_ms", "segment_bytes", "topics",
                           "retention_check_ms", "kafka"});
  if (auto v = c.GetInt(t, "retention_check_ms", "[log]", 10, 86'400'000)) l->retention_check_ms = static_cast<int>(*v);
  if (const toml::node* n = t.get("topics")) {
    const toml::table* topics = n->as_table();
    if (!topics) c.Error(*n, "[log]: topics must be tables such as [log.topics.events]");
    for (auto&& [name, node] : topics ? *topics : toml::table{}) {
      std::string topic(name.str());
      std::string what = "[log.topics." + topic + "]";
      if (topic != "events" && topic != "failed") {
        c.Error(node, what + ": unknown topic; the log has \"events\" and \"failed\"");
        continue;
      }
      const toml::table* tt = node.as_table();
      if (!tt) {
        c.Error(node, what + ": must be a table");
        continue;
      }
      c.KnownKeys(*tt, what, {"retention", "retention_bytes"});
      TopicRetention r;
      if (auto v = c.GetDurationMs(*tt, "retention", what)) r.age_ms = *v;
      if (auto v = c.GetInt(*tt, "retention_bytes", what, 0, int64_t{1} << 50)) r.bytes = static_cast<uint64_t>(*v);
      l->retention[topic] = r;
    }
  }
  if (auto v = c.Get<std::string>(t, "backend", "[log]", "a string")) {
    if (*v != "embedded" && *v != "kafka") {
      c.Error(*t.get("backend"), "[log]: backend \"" + *v + "\" is unknown; use \"embedded\" or \"kafka\"");
    }
    l->backend = *v;
  }
  if (const toml::node* n = t.get("kafka")) {
    if (const toml::table* k = n->as_table()) {
      ParseKafka(c, *k, &l->kafka);
    } else {
      c.Error(*n, "[log]: kafka must be a table ([log.kafka])");
    }
  }
  if (l->backend == "kafka" && l->kafka.brokers.empty()) {
    c.Error(t, "[log]: backend \"kafka\" needs [log.kafka] brokers = \"host:port,...\"");
  }
  if (auto v = c.GetInt(t, "partitions", "[log]", 1, 4096)) l->partitions = static_cast<int>(*v);
  if (auto v = c.Get<std::string>(t, "fsync", "[log]", "a string")) {
    if (*v == "always") l->fsync = FsyncPolicy::kAlways;
    else if (*v == "batch") l->fsync = FsyncPolicy::kBatch;
    else if (*v == "none") l->fsync = FsyncPolicy::kNone;
    else c.Error(*t.get("fsync"), "[log]: fsync must be \"always\", \"batch\" or \"none\", not \"" + *v + "\"");
  }
  if (auto v = c.GetInt(t, "fsync_max_delay_ms", "[log]", 0, 10'000)) l->fsync_max_delay_ms = static_cast<int>(*v);
  if (auto v = c.GetInt(t, "segment_bytes", "[log]", 4096, int64_t{1} << 40)) l->segment_bytes = *v;
}

void ParseStore(ConfigChecker& c, const toml::table& t, StoreConfig* s) {
  c.KnownKeys(t, "[store]", {"backend", "block_cache_mb", "url", "cluster_nodes"});
  if (auto v = c.Get<std::string>(t, "backend", "[store]", "a string")) {
    if (*v != "rocksdb" && *v != "redis") {
      c.Error(*t.get("backend"), "[store]: backend \"" + *v + "\" is unknown; use \"rocksdb\" or \"redis\"");
    }
    s->backend = *v;
  }
  if (auto v = c.GetInt(t, "block_cache_mb", "[store]", 0, 1 << 20)) s->block_cache_mb = *v;
  if (auto v = c.Get<std::string>(t, "url", "[store]", "a string such as \"redis://127.0.0.1:6379\"")) {
    if (!v->starts_with("redis://") || v->find(':', 8) == std::string::npos) {
      c.Error(*t.get("url"), "[store]: url must look like \"redis://host:port\"");
    }
    s->redis_url = *v;
  }
  if (const toml::node* n = t.get("cluster_nodes")) {
    const toml::array* arr = n->as_array();
    if (!arr || arr->empty()) c.Error(*n, "[store]: cluster_nodes must list \"host:port\" seed nodes");
    for (size_t i = 0; arr && i < arr->size(); ++i) {
      auto node = (*arr)[i].value<std::string>();
      if (!node || node->find(':') == std::string::npos) c.Error((*arr)[i], "[store]: cluster_nodes entries are \"host:port\"");
      else s->cluster_nodes.push_back(*node);
    }
  }
  if (s->backend == "redis" && s->redis_url.empty() && s->cluster_nodes.empty()) {
    c.Error(t, "[store]: backend \"redis\" needs url = \"redis://host:port\" or cluster_nodes = [\"host:port\", ...]");
  }
}

void ParseCollector(ConfigChecker& c, const toml::table& t, CollectorConfig* col) {
  c.KnownKeys(t, "[collector]", {"dedup_window", "max_lag"});
  if (auto v = c.GetInt(t, "max_lag", "[collector]", 0, int64_t{1} << 50)) col->max_lag = *v;
  if (auto v = c.GetInt(t, "dedup_window", "[collector]", 1, 1'000'000'000)) col->dedup_window = *v;
}

void ParseSources(ConfigChecker& c, const toml::array& arr, Config* cfg) {
  std::set<std::string> names;
  for (size_t i = 0; i < arr.size(); ++i) {
    const toml::table* t = arr[i].as_table();
    std::string what = "source #" + std::to_string(i + 1);
    if (!t) {
      c.Error(arr[i], what + ": must be a table ([[sources]])");
      continue;
    }
    c.KnownKeys(*t, what, {"name", "type", "path", "brokers", "topic", "group", "format", "columns", "header",
                           "delimiter", "ts_unit", "type_map", "poll_ms"});
    SourceConfig s;
    s.where = c.Where(t->source());
    if (auto v = c.Get<std::string>(*t, "name", what, "a name")) s.name = *v;
    if (s.name.empty() || !std::all_of(s.name.begin(), s.name.end(), [](unsigned char ch) { return std::isalnum(ch) || ch == '_' || ch == '-'; })) {
      c.Error(*t, what + ": needs name = \"...\" of letters, digits, _ and -");
      continue;
    }
    if (!names.insert(s.name).second) c.Error(*t, what + ": another source is named \"" + s.name + "\"");
    what = "source \"" + s.name + "\"";
    if (auto v = c.Get<std::string>(*t, "type", what, "a string")) s.type = *v;
    if (s.type != "file" && s.type != "kafka") {
      c.Error(t->get("type") ? t->get("type")->source() : t->source(), what + ": type must be \"file\" or \"kafka\"");
      continue;
    }
    if (auto v = c.Get<std::string>(*t, "path", what, "a file path")) s.path = *v;
    if (auto v = c.Get<std::string>(*t, "brokers", what, "a \"host:port,...\" string")) s.brokers = *v;
    if (auto v = c.Get<std::string>(*t, "topic", what, "a topic name")) s.topic = *v;
    if (auto v = c.Get<std::string>(*t, "group", what, "a consumer group name")) s.group = *v;
    if (s.group.empty()) s.group = "portrait-source-" + s.name;
    if (s.type == "file" && s.path.empty()) c.Error(*t, what + ": needs path = \"/path/to/file\"");
    if (s.type == "kafka" && (s.brokers.empty() || s.topic.empty())) {
      c.Error(*t, what + ": a kafka source needs brokers = \"host:port,...\" and topic = \"...\"");
    }
    if (auto v = c.Get<std::string>(*t, "format", what, "\"ndjson\" or \"csv\"")) s.format = *v;
    if (s.format != "ndjson" && s.format != "csv") c.Error(*t->get("format"), what + ": format must be \"ndjson\" or \"csv\"");
    if (auto v = c.Get<bool>(*t, "header", what, "true or false")) s.header = *v;
    if (auto v = c.Get<std::string>(*t, "delimiter", what, "one character")) {
      if (v->size() != 1) c.Error(*t->get("delimiter"), what + ": delimiter must be one character");
      else s.delimiter = (*v)[0];
    }
    if (auto v = c.Get<std::string>(*t, "ts_unit", what, "\"s\" or \"ms\"")) {
      if (*v == "s") s.ts_scale = 1000;
      else if (*v != "ms") c.Error(*t->get("ts_unit"), what + ": ts_unit must be \"s\" or \"ms\"");
    }
    if (auto v = c.GetInt(*t, "poll_ms", what, 1, 60'000)) s.poll_ms = static_cast<int>(*v);
    if (const toml::node* n = t->get("columns")) {
      const toml::array* cols = n->as_array();
      if (!cols) c.Error(*n, what + ": columns must be an array of field names");
      for (size_t k = 0; cols && k < cols->size(); ++k) {
        auto col = (*cols)[k].value<std::string>();
        static const std::set<std::string> kFields = {"", "uid", "device_id", "type", "ts", "product", "channel", "id"};
        if (!col || (!kFields.count(*col) && !(col->starts_with("props.") && col->size() > 6))) {
          c.Error((*cols)[k], what + ": column " + std::to_string(k + 1) +
                                  " must be uid, device_id, type, ts, product, channel, id, props.NAME or \"\" (skip)");
        } else {
          s.columns.push_back(*col);
        }
      }
    }
    if (s.format == "csv") {
      auto has = [&](const char* f) { return std::find(s.columns.begin(), s.columns.end(), f) != s.columns.end(); };
      if (!has("type") || !has("ts") || (!has("uid") && !has("device_id"))) {
        c.Error(*t, what + ": csv columns must include type, ts and uid (or device_id)");
      }
    }
    if (const toml::node* n = t->get("type_map")) {
      const toml::table* tm = n->as_table();
      if (!tm) c.Error(*n, what + ": type_map must be a table of raw value = \"event type\"");
      for (auto&& [raw, v] : tm ? *tm : toml::table{}) {
        auto type = v.value<std::string>();
        if (!type || !cfg->events.count(*type)) {
          c.Error(v, what + ": type_map." + std::string(raw.str()) + " must name a declared event type");
        } else {
          s.type_map[std::string(raw.str())] = *type;
        }
      }
    }
    cfg->sources.push_back(std::move(s));
  }
}

void ParseHistory(ConfigChecker& c, const toml::table& t, HistoryConfig* h) {
  c.KnownKeys(t, "[history]", {"enabled", "retention", "max_per_user"});
  if (auto v = c.Get<bool>(t, "enabled", "[history]", "true or false")) h->enabled = *v;
  if (auto v = c.GetDurationMs(t, "retention", "[history]")) h->retention_ms = *v;
  if (auto v = c.GetInt(t, "max_per_user", "[history]", 1, 10'000'000)) h->max_per_user = *v;
}

void ParseArchive(ConfigChecker& c, const toml::table& t, ArchiveConfig* a) {
  c.KnownKeys(t, "[archive]",
              {"enabled", "dir", "flush_seconds", "retention", "gzip_level", "compact", "compact_after", "compact_grace"});
  if (auto v = c.Get<bool>(t, "enabled", "[archive]", "true or false")) a->enabled = *v;
  if (auto v = c.Get<std::string>(t, "dir", "[archive]", "a directory")) a->dir = *v;
  if (auto v = c.GetInt(t, "flush_seconds", "[archive]", 1, 3600)) a->flush_seconds = static_cast<int>(*v);
  if (auto v = c.GetDurationMs(t, "retention", "[archive]")) a->retention_ms = *v;
  if (auto v = c.GetInt(t, "gzip_level", "[archive]", 1, 9)) a->gzip_level = static_cast<int>(*v);
  if (auto v = c.Get<bool>(t, "compact", "[archive]", "true or false")) a->compact = *v;
  if (auto v = c.GetDurationMs(t, "compact_after", "[archive]")) a->compact_after_ms = *v;
  if (auto v = c.GetDurationMs(t, "compact_grace", "[archive]")) a->compact_grace_ms = *v;
}

void ParsePrivacy(ConfigChecker& c, const toml::table& t, PrivacyConfig* p) {
  c.KnownKeys(t, "[privacy]", {"erasure_list", "erase_archive_within"});
  if (auto v = c.Get<std::string>(t, "erasure_list", "[privacy]", "a file path")) p->erasure_list = *v;
  if (auto v = c.GetDurationMs(t, "erase_archive_within", "[privacy]")) p->erase_archive_within_ms = *v;
}

void ParseProcessor(ConfigChecker& c, const toml::table& t, ProcessorConfig* p) {
  c.KnownKeys(t, "[processor]", {"workers", "batch_max_events"});
  if (auto v = c.GetInt(t, "workers", "[processor]", 1, 256)) p->workers = static_cast<int>(*v);
  if (auto v = c.GetInt(t, "batch_max_events", "[processor]", 1, 1'000'000)) p->batch_max_events = *v;
}

}  // namespace

bool ParseHttpUrl(std::string_view url, std::string* host, int* port, std::string* path) {
  constexpr std::string_view kScheme = "http://";
  if (!url.starts_with(kScheme)) return false;
  url.remove_prefix(kScheme.size());
  size_t slash = url.find('/');
  std::string_view hostport = url.substr(0, slash);
  *path = slash == std::string_view::npos ? "/" : std::string(url.substr(slash));
  size_t colon = hostport.rfind(':');
  if (colon == std::string_view::npos) {
    *host = std::string(hostport);
    *port = 80;
  } else {
    *host = std::string(hostport.substr(0, colon));
    auto [p, ec] = std::from_chars(hostport.data() + colon + 1, hostport.data() + hostport.size(), *port);
    if (ec != std::errc() || p != hostport.data() + hostport.size() || *port <= 0 || *port > 65535) return false;
  }
  return !host->empty();
}

namespace {

// Combinations that cannot work when several processes share the Kafka log: each process
// would keep its own copy of what must be one.
void CheckScaleOut(ConfigChecker& c, const Config& cfg) {
  if (cfg.log.backend != "kafka") return;
  if (cfg.store.backend == "rocksdb") {
    c.ErrorNoPos("[store] backend = \"rocksdb\" cannot serve [log] backend = \"kafka\": each process would keep "
                 "the profiles of the partitions it happens to hold on its own disk; use backend = \"redis\" "
                 "(url = \"redis://host:port\" or cluster_nodes = [...]) so that every process reads and writes one store");
  }
  if (cfg.archive.enabled && cfg.archive.dir.empty()) {
    c.ErrorNoPos("[archive] with [log] backend = \"kafka\" needs dir = \"...\": a directory every process mounts "
                 "(a shared file system); each process archives the partitions it holds there. Or enabled = false");
  }
  if (cfg.privacy.erasure_list.empty()) {
    c.ErrorNoPos("[privacy] erasure_list = \"...\" must be set with [log] backend = \"kafka\": a file every process "
                 "mounts (a shared file system), so that an erasure applied by one process is honoured by all of them");
  }
}

}  // namespace

Result<Config> ParseConfigWith(std::string_view text, const std::string& name, const std::vector<ConfigSection>& sections) {
  toml::table root;
  try {
    root = toml::parse(text, std::string_view(name));
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    return Status::InvalidArgument(name + ":" + std::to_string(b.line) + ":" + std::to_string(b.column) +
                                   ": " + std::string(e.description()));
  }
  ConfigChecker c(name);
  Config cfg;
  cfg.path = name;
  std::vector<std::string_view> known = {"data_dir", "server", "log",     "store",  "processor", "collector", "history",
                                         "archive",  "privacy", "events", "tags",  "rules",     "sources",   "retry",
                                         "routes"};
  for (const ConfigSection& sec : sections) {
    if (!sec.key.empty()) known.push_back(sec.key);
  }
  c.KnownKeys(root, "top level", known);
  if (auto v = c.Get<std::string>(root, "data_dir", "top level", "a directory path")) cfg.data_dir = *v;
  auto section = [&](std::string_view key) -> const toml::table* {
    const toml::node* n = root.get(key);
    if (!n) return nullptr;
    if (!n->is_table()) {
      c.Error(*n, "\"" + std::string(key) + "\" must be a table ([" + std::string(key) + "])");
      return nullptr;
    }
    return n->as_table();
  };
  if (auto* t = section("server")) ParseServer(c, *t, &cfg.server);
  if (auto* t = section("log")) ParseLog(c, *t, &cfg.log);
  if (auto* t = section("store")) ParseStore(c, *t, &cfg.store);
  if (auto* t = section("processor")) ParseProcessor(c, *t, &cfg.processor);
  if (auto* t = section("collector")) ParseCollector(c, *t, &cfg.collector);
  if (auto* t = section("history")) ParseHistory(c, *t, &cfg.history);
  if (auto* t = section("archive")) ParseArchive(c, *t, &cfg.archive);
  if (auto* t = section("retry")) ParseRetry(c, *t, &cfg.retry);
  if (auto* t = section("events")) ParseEventsSection(c, *t, &cfg);
  if (auto* t = section("privacy")) ParsePrivacy(c, *t, &cfg.privacy);
  if (auto* t = section("tags")) ParseTagsSection(c, *t, &cfg);
  if (const toml::node* n = root.get("rules")) {
    if (const toml::array* a = n->as_array()) ParseRulesSection(c, *a, &cfg);
    else c.Error(*n, "rules must be an array of tables ([[rules]])");
  }
  if (const toml::node* n = root.get("sources")) {
    if (const toml::array* a = n->as_array()) ParseSources(c, *a, &cfg);
    else c.Error(*n, "sources must be an array of tables ([[sources]])");
  }
  if (const toml::node* n = root.get("routes")) {
    if (const toml::array* a = n->as_array()) ParseRoutes(c, *a, &cfg);
    else c.Error(*n, "routes must be an array of tables ([[routes]])");
  }
  // The features' sections, each read by the feature that declares it, after the
  // behaviour model and the tags they refer to; then their cross-checks.
  for (const ConfigSection& sec : sections) {
    const toml::node* n = sec.key.empty() ? nullptr : root.get(sec.key);
    if (!n && !sec.always) continue;
    if (n && sec.array != n->is_array()) {
      c.Error(*n, "\"" + std::string(sec.key) + "\" must be " +
                      (sec.array ? "an array of tables ([[" + std::string(sec.key) + "]])"
                                 : "a table ([" + std::string(sec.key) + "])"));
      continue;
    }
    sec.parse(c, n, &cfg);
  }
  if (cfg.events.empty()) c.ErrorNoPos("no event types declared; add at least one [events.NAME] table");
  CheckScaleOut(c, cfg);
  if (!c.ok()) return c.ToStatus();
  return cfg;
}

int64_t RetryConfig::BackoffMs(int failures) const {
  double ms = static_cast<double>(initial_backoff_ms);
  for (int i = 1; i < failures && ms < static_cast<double>(max_backoff_ms); ++i) ms *= multiplier;
  return std::min(max_backoff_ms, static_cast<int64_t>(ms));
}

std::string ArchiveDir(const Config& c) { return c.archive.dir.empty() ? c.data_dir + "/archive" : c.archive.dir; }
std::string ErasureListPath(const Config& c) {
  return c.privacy.erasure_list.empty() ? c.data_dir + "/erasures.list" : c.privacy.erasure_list;
}

Result<Config> LoadConfigWith(const std::string& path, const std::vector<ConfigSection>& sections) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("config " + path + ": cannot open file");
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseConfigWith(ss.str(), path, sections);
}

}  // namespace portrait
