#include "core/config.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <set>
#include <sstream>
#include <toml++/toml.h>

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

// Collects every problem in the file with its position, so one run shows them all.
class Checker {
 public:
  explicit Checker(std::string file) : file_(std::move(file)) {}

  std::string Where(const toml::source_region& r) const {
    return file_ + ":" + std::to_string(r.begin.line) + ":" + std::to_string(r.begin.column);
  }
  void Error(const toml::node& at, std::string_view msg) { Error(at.source(), msg); }
  void Error(const toml::source_region& r, std::string_view msg) {
    errors_.push_back(Where(r) + ": " + std::string(msg));
  }
  void ErrorNoPos(std::string_view msg) { errors_.push_back(file_ + ": " + std::string(msg)); }
  bool ok() const { return errors_.empty(); }
  Status ToStatus() const {
    std::string m;
    for (const auto& e : errors_) {
      if (!m.empty()) m += "\n";
      m += e;
    }
    return Status::InvalidArgument(m);
  }

  // Reports keys of `t` that are not in `known`.
  void KnownKeys(const toml::table& t, std::string_view what, std::initializer_list<std::string_view> known) {
    for (auto&& [k, v] : t) {
      if (std::find(known.begin(), known.end(), k.str()) != known.end()) continue;
      std::string list;
      for (auto n : known) {
        if (!list.empty()) list += ", ";
        list += n;
      }
      Error(k.source(), std::string(what) + ": unknown key \"" + std::string(k.str()) +
                            "\"; known keys are: " + list);
    }
  }

  template <typename T>
  std::optional<T> Get(const toml::table& t, std::string_view key, std::string_view what,
                       std::string_view type_name) {
    const toml::node* n = t.get(key);
    if (!n) return std::nullopt;
    auto v = n->value<T>();
    if (!v) {
      Error(*n, std::string(what) + ": \"" + std::string(key) + "\" must be " + std::string(type_name));
      return std::nullopt;
    }
    return v;
  }

  std::optional<int64_t> GetInt(const toml::table& t, std::string_view key, std::string_view what,
                                int64_t min, int64_t max) {
    const toml::node* n = t.get(key);
    if (!n) return std::nullopt;
    if (!n->is_integer()) {
      Error(*n, std::string(what) + ": \"" + std::string(key) + "\" must be an integer");
      return std::nullopt;
    }
    int64_t v = n->as_integer()->get();
    if (v < min || v > max) {
      Error(*n, std::string(what) + ": \"" + std::string(key) + "\" must be between " +
                    std::to_string(min) + " and " + std::to_string(max) + ", not " + std::to_string(v));
      return std::nullopt;
    }
    return v;
  }

  // A duration: "30d" style string, or an integer number of seconds.
  std::optional<int64_t> GetDurationMs(const toml::table& t, std::string_view key, std::string_view what) {
    const toml::node* n = t.get(key);
    if (!n) return std::nullopt;
    if (n->is_integer() && n->as_integer()->get() >= 0) return n->as_integer()->get() * 1000;
    if (auto s = n->value<std::string>()) {
      if (auto ms = ParseDurationMs(*s)) return ms;
    }
    Error(*n, std::string(what) + ": \"" + std::string(key) +
                  "\" must be a duration such as \"30d\", \"12h\", \"15m\", \"90s\", \"250ms\" "
                  "or a number of seconds");
    return std::nullopt;
  }

  const std::string& file() const { return file_; }

 private:
  std::string file_;
  std::vector<std::string> errors_;
};

std::optional<FieldType> ParseFieldType(std::string_view s) {
  for (FieldType t : {FieldType::kString, FieldType::kInt, FieldType::kNumber, FieldType::kBool,
                      FieldType::kObject, FieldType::kArray, FieldType::kAny}) {
    if (FieldTypeName(t) == s) return t;
  }
  return std::nullopt;
}

void ParseServer(Checker& c, const toml::table& t, ServerConfig* s) {
  c.KnownKeys(t, "[server]", {"listen", "max_body_bytes", "threads", "max_json_depth", "cors_origins", "tokens"});
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
    if (!tt) c.Error(*n, "[server]: tokens must be a table of source = \"token\"");
    for (auto&& [name, v] : tt ? *tt : toml::table{}) {
      auto tok = v.value<std::string>();
      if (!tok || tok->size() < 8) {
        c.Error(v, "[server]: token of source \"" + std::string(name.str()) + "\" must be a string of 8 or more characters");
      } else {
        s->tokens[std::string(name.str())] = *tok;
      }
    }
  }
  if (auto v = c.Get<std::string>(t, "listen", "[server]", "a \"host:port\" string")) {
    if (v->find(':') == std::string::npos) c.Error(*t.get("listen"), "[server]: listen must be \"host:port\"");
    s->listen = *v;
  }
  if (auto v = c.GetInt(t, "max_body_bytes", "[server]", 1024, int64_t{1} << 32)) s->max_body_bytes = *v;
  if (auto v = c.GetInt(t, "threads", "[server]", 1, 256)) s->threads = static_cast<int>(*v);
  if (auto v = c.GetInt(t, "max_json_depth", "[server]", 2, 1000)) s->max_json_depth = static_cast<int>(*v);
}

void ParseKafka(Checker& c, const toml::table& t, KafkaLogConfig* k) {
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

void ParseRetry(Checker& c, const toml::table& t, RetryConfig* r) {
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

void ParseRoutes(Checker& c, const toml::array& arr, Config* cfg) {
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

void ParseLog(Checker& c, const toml::table& t, LogConfig* l) {
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

void ParseStore(Checker& c, const toml::table& t, StoreConfig* s) {
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

void ParseCollector(Checker& c, const toml::table& t, CollectorConfig* col) {
  c.KnownKeys(t, "[collector]", {"dedup_window"});
  if (auto v = c.GetInt(t, "dedup_window", "[collector]", 1, 1'000'000'000)) col->dedup_window = *v;
}

void ParseSources(Checker& c, const toml::array& arr, Config* cfg) {
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

void ParseHistory(Checker& c, const toml::table& t, HistoryConfig* h) {
  c.KnownKeys(t, "[history]", {"enabled", "retention", "max_per_user"});
  if (auto v = c.Get<bool>(t, "enabled", "[history]", "true or false")) h->enabled = *v;
  if (auto v = c.GetDurationMs(t, "retention", "[history]")) h->retention_ms = *v;
  if (auto v = c.GetInt(t, "max_per_user", "[history]", 1, 10'000'000)) h->max_per_user = *v;
}

void ParseArchive(Checker& c, const toml::table& t, ArchiveConfig* a) {
  c.KnownKeys(t, "[archive]", {"enabled", "dir", "flush_seconds", "retention"});
  if (auto v = c.Get<bool>(t, "enabled", "[archive]", "true or false")) a->enabled = *v;
  if (auto v = c.Get<std::string>(t, "dir", "[archive]", "a directory")) a->dir = *v;
  if (auto v = c.GetInt(t, "flush_seconds", "[archive]", 1, 3600)) a->flush_seconds = static_cast<int>(*v);
  if (auto v = c.GetDurationMs(t, "retention", "[archive]")) a->retention_ms = *v;
}

void ParsePrivacy(Checker& c, const toml::table& t, PrivacyConfig* p) {
  c.KnownKeys(t, "[privacy]", {"erasure_list", "erase_archive_within"});
  if (auto v = c.Get<std::string>(t, "erasure_list", "[privacy]", "a file path")) p->erasure_list = *v;
  if (auto v = c.GetDurationMs(t, "erase_archive_within", "[privacy]")) p->erase_archive_within_ms = *v;
}

void ParseBatch(Checker& c, const toml::table& t, BatchConfig* b) {
  c.KnownKeys(t, "[batch]", {"at", "snapshot_dir", "keep", "threads"});
  if (auto v = c.Get<std::string>(t, "at", "[batch]", "a time of day \"HH:MM\" (UTC)")) {
    if (!ParseClockMinutes(*v)) c.Error(*t.get("at"), "[batch]: at must be a time of day \"HH:MM\" (UTC), such as \"02:00\"");
    else b->at = *v;
  }
  if (auto v = c.Get<std::string>(t, "snapshot_dir", "[batch]", "a directory")) b->snapshot_dir = *v;
  if (auto v = c.GetInt(t, "keep", "[batch]", 1, 1000)) b->keep = static_cast<int>(*v);
  if (auto v = c.GetInt(t, "threads", "[batch]", 1, 256)) b->threads = static_cast<int>(*v);
}

void ParseChannels(Checker& c, const toml::table& t, ChannelsConfig* ch) {
  c.KnownKeys(t, "[channels]", {"enabled", "default_product", "calibrate_at", "filter_mb"});
  if (auto v = c.Get<bool>(t, "enabled", "[channels]", "true or false")) ch->enabled = *v;
  if (auto v = c.Get<std::string>(t, "default_product", "[channels]", "a product name")) {
    if (v->empty()) c.Error(*t.get("default_product"), "[channels]: default_product must not be empty");
    else ch->default_product = *v;
  }
  if (auto v = c.Get<std::string>(t, "calibrate_at", "[channels]", "a time of day \"HH:MM\" (UTC)")) {
    if (!ParseClockMinutes(*v)) {
      c.Error(*t.get("calibrate_at"), "[channels]: calibrate_at must be a time of day \"HH:MM\" (UTC), such as \"03:00\"");
    } else {
      ch->calibrate_at = *v;
    }
  }
  if (auto v = c.GetInt(t, "filter_mb", "[channels]", 1, 1 << 20)) ch->filter_mb = static_cast<size_t>(*v);
}

void ParseLazyLoad(Checker& c, const toml::table& t, Config* cfg) {
  c.KnownKeys(t, "[lazy_load]", {"enabled", "triggers"});
  if (auto v = c.Get<bool>(t, "enabled", "[lazy_load]", "true or false")) cfg->lazy_load.enabled = *v;
  if (const toml::node* n = t.get("triggers")) {
    cfg->lazy_load.triggers.clear();
    const toml::array* arr = n->as_array();
    if (!arr) c.Error(*n, "[lazy_load]: triggers must be an array of event type names");
    for (size_t i = 0; arr && i < arr->size(); ++i) {
      auto s = (*arr)[i].value<std::string>();
      if (!s || !cfg->events.count(*s)) {
        c.Error((*arr)[i], "[lazy_load]: triggers[" + std::to_string(i) + "] must name a declared event type");
      } else {
        cfg->lazy_load.triggers.push_back(*s);
      }
    }
  }
}

void ParseProcessor(Checker& c, const toml::table& t, ProcessorConfig* p) {
  c.KnownKeys(t, "[processor]", {"workers", "batch_max_events"});
  if (auto v = c.GetInt(t, "workers", "[processor]", 1, 256)) p->workers = static_cast<int>(*v);
  if (auto v = c.GetInt(t, "batch_max_events", "[processor]", 1, 1'000'000)) p->batch_max_events = *v;
}

void ParseEvents(Checker& c, const toml::table& t, Config* cfg) {
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

void ParseTags(Checker& c, const toml::table& t, Config* cfg) {
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

std::optional<ValueTemplate> ParseTemplate(Checker& c, const toml::node& n, const std::string& what) {
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

void ParseRules(Checker& c, const toml::array& arr, Config* cfg) {
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


std::vector<std::string> ReadTypeList(Checker& c, const toml::node& n, const std::string& what, const Config& cfg) {
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

// `unless` / `when`: [{ tag = "name", key = "$props.NAME" }, ...]
void ParseProfileTests(Checker& c, const toml::node& n, const std::string& what, bool present, const Config& cfg,
                       DecisionRuleSpec* r) {
  const toml::array* a = n.as_array();
  if (!a) {
    c.Error(n, what + ": must be an array of { tag = \"name\", key = \"$props.NAME\" } tables");
    return;
  }
  for (auto&& e : *a) {
    const toml::table* t = e.as_table();
    if (!t) {
      c.Error(e, what + ": each test is a table { tag = \"name\", key = ... }");
      continue;
    }
    c.KnownKeys(*t, what, {"tag", "key"});
    ProfileTest test;
    test.present = present;
    auto tag = c.Get<std::string>(*t, "tag", what, "a tag name");
    if (!tag) {
      if (!t->get("tag")) c.Error(e, what + ": needs tag = \"name\"");
      continue;
    }
    const TagConfig* tc = cfg.tags.FindDeclared(*tag);
    if (!tc) {
      c.Error(*t->get("tag"), what + ": tag \"" + *tag + "\" is not declared; add [tags." + *tag + "]");
      continue;
    }
    test.tag = *tag;
    if (const toml::node* k = t->get("key")) {
      if (tc->type != TagType::kMap && tc->type != TagType::kSet) {
        c.Error(*k, what + ": key tests a map entry or a set member; tag \"" + *tag + "\" is a " +
                        std::string(TagTypeName(tc->type)));
        continue;
      }
      test.key = ParseTemplate(c, *k, what + ": key");
      if (test.key && test.key->kind == ValueTemplate::Kind::kObject) {
        c.Error(*k, what + ": key must be a literal or a $field");
        continue;
      }
    }
    r->profile.push_back(std::move(test));
  }
}

void ParseDecisions(Checker& c, const toml::table& t, Config* cfg) {
  DecisionsConfig& d = cfg->decisions;
  c.KnownKeys(t, "[decisions]", {"webhook", "webhook_timeout_ms", "keep_per_user", "keep", "max_entries_per_user", "cache_users", "rules"});
  if (auto v = c.Get<std::string>(t, "webhook", "[decisions]", "a URL such as \"http://127.0.0.1:9000/decisions\"")) {
    d.webhook = *v;
    std::string host, path;
    int port = 0;
    if (!d.webhook.empty() && !ParseHttpUrl(d.webhook, &host, &port, &path)) {
      c.Error(*t.get("webhook"), "[decisions]: webhook must be \"http://HOST:PORT/PATH\" (plain HTTP), not \"" + d.webhook + "\"");
    }
  }
  if (auto v = c.GetInt(t, "webhook_timeout_ms", "[decisions]", 10, 600'000)) d.webhook_timeout_ms = static_cast<int>(*v);
  if (auto v = c.GetInt(t, "keep_per_user", "[decisions]", 1, 100'000)) d.keep_per_user = static_cast<size_t>(*v);
  if (auto v = c.GetDurationMs(t, "keep", "[decisions]")) d.keep_ms = *v;
  if (auto v = c.GetInt(t, "max_entries_per_user", "[decisions]", 1, 1'000'000)) d.max_entries_per_user = static_cast<size_t>(*v);
  if (auto v = c.GetInt(t, "cache_users", "[decisions]", 0, 100'000'000)) d.cache_users = static_cast<size_t>(*v);
  const toml::node* rn = t.get("rules");
  if (!rn) return;
  const toml::array* arr = rn->as_array();
  if (!arr) {
    c.Error(*rn, "[decisions]: rules must be an array of tables ([[decisions.rules]])");
    return;
  }
  std::set<std::string> names;
  for (size_t i = 0; i < arr->size(); ++i) {
    const toml::table* rt = (*arr)[i].as_table();
    std::string what = "decision rule #" + std::to_string(i + 1);
    if (!rt) {
      c.Error((*arr)[i], what + ": must be a table ([[decisions.rules]])");
      continue;
    }
    c.KnownKeys(*rt, what, {"name", "on", "key", "at_least", "after", "within", "cooldown", "when", "unless", "action",
                            "payload"});
    DecisionRuleSpec r;
    r.where = c.Where(rt->source());
    if (auto v = c.Get<std::string>(*rt, "name", what, "a string")) r.name = *v;
    if (r.name.empty() || r.name.find_first_of("\x1f\n\"") != std::string::npos) {
      c.Error(*rt, what + ": needs name = \"...\" (a non-empty name without quotes or control characters)");
      continue;
    }
    if (!names.insert(r.name).second) c.Error(*rt, what + ": the name \"" + r.name + "\" is used twice");
    what = "decision rule \"" + r.name + "\"";
    if (const toml::node* on = rt->get("on")) r.on = ReadTypeList(c, *on, what + ": on", *cfg);
    if (r.on.empty()) c.Error(*rt, what + ": needs on = \"event type\" (or an array of them)");
    if (auto v = c.Get<std::string>(*rt, "key", what, "a prop name")) {
      r.key = *v;
    }
    if (auto v = c.GetInt(*rt, "at_least", what, 1, 10'000)) r.at_least = static_cast<int>(*v);
    if (const toml::node* a = rt->get("after")) {
      auto types = ReadTypeList(c, *a, what + ": after", *cfg);
      if (types.size() == 1) r.after = types[0];
      if (std::find(r.on.begin(), r.on.end(), r.after) != r.on.end()) {
        c.Error(*a, what + ": after names a type that is also in on; a sequence needs two different types");
      }
      else if (a->as_array()) c.Error(*a, what + ": after names one event type");
      if (r.at_least != 1) c.Error(*a, what + ": a sequence rule (after) fires on one `on` event; drop at_least");
    }
    if (auto v = c.GetDurationMs(*rt, "within", what)) r.within_ms = *v;
    if ((r.at_least > 1 || !r.after.empty()) && r.within_ms <= 0) {
      c.Error(*rt, what + ": needs within = \"30m\" (the window the events must fall in)");
    }
    r.cooldown_ms = r.within_ms;
    if (auto v = c.GetDurationMs(*rt, "cooldown", what)) r.cooldown_ms = *v;
    if (!r.key.empty()) {
      for (const std::string& type : r.Types()) {
        auto it = cfg->events.find(type);
        if (it != cfg->events.end() && !it->second.FindProp(r.key)) {
          c.Error(*rt->get("key"), what + ": key \"" + r.key + "\" is not a prop of event type \"" + type +
                                       "\"; declare it under [events." + type + ".props]");
        }
      }
    }
    if (const toml::node* n = rt->get("when")) ParseProfileTests(c, *n, what + ": when", true, *cfg, &r);
    if (const toml::node* n = rt->get("unless")) ParseProfileTests(c, *n, what + ": unless", false, *cfg, &r);
    if (auto v = c.Get<std::string>(*rt, "action", what, "a string")) r.action = *v;
    if (r.action.empty()) c.Error(*rt, what + ": needs action = \"name\" (what the decision asks for, e.g. \"coupon\")");
    r.payload.kind = ValueTemplate::Kind::kObject;
    if (const toml::node* p = rt->get("payload")) {
      if (!p->is_table()) {
        c.Error(*p, what + ": payload must be a table of literals and $fields, e.g. { coupon = \"PHONE10\" }");
      } else if (auto v = ParseTemplate(c, *p, what + ": payload")) {
        r.payload = std::move(*v);
      }
    }
    cfg->decisions.rules.push_back(std::move(r));
  }
}
}  // namespace

std::vector<std::string> DecisionRuleSpec::Types() const {
  std::vector<std::string> out = on;
  if (!after.empty() && std::find(out.begin(), out.end(), after) == out.end()) out.push_back(after);
  return out;
}

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

Result<Config> ParseConfig(std::string_view text, const std::string& name) {
  toml::table root;
  try {
    root = toml::parse(text, std::string_view(name));
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    return Status::InvalidArgument(name + ":" + std::to_string(b.line) + ":" + std::to_string(b.column) +
                                   ": " + std::string(e.description()));
  }
  Checker c(name);
  Config cfg;
  cfg.path = name;
  c.KnownKeys(root, "top level",
              {"data_dir", "server", "log", "store", "processor", "collector", "history", "archive", "privacy", "events", "tags",
               "rules", "sources", "retry", "routes", "batch", "lazy_load", "channels", "decisions"});
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
  if (auto* t = section("events")) ParseEvents(c, *t, &cfg);
  if (auto* t = section("batch")) ParseBatch(c, *t, &cfg.batch);
  if (auto* t = section("privacy")) ParsePrivacy(c, *t, &cfg.privacy);
  if (auto* t = section("lazy_load")) ParseLazyLoad(c, *t, &cfg);
  if (auto* t = section("channels")) ParseChannels(c, *t, &cfg.channels);
  if (auto* t = section("tags")) ParseTags(c, *t, &cfg);
  if (const toml::node* n = root.get("rules")) {
    if (const toml::array* a = n->as_array()) ParseRules(c, *a, &cfg);
    else c.Error(*n, "rules must be an array of tables ([[rules]])");
  }
  if (auto* t = section("decisions")) ParseDecisions(c, *t, &cfg);
  if (const toml::node* n = root.get("sources")) {
    if (const toml::array* a = n->as_array()) ParseSources(c, *a, &cfg);
    else c.Error(*n, "sources must be an array of tables ([[sources]])");
  }
  if (const toml::node* n = root.get("routes")) {
    if (const toml::array* a = n->as_array()) ParseRoutes(c, *a, &cfg);
    else c.Error(*n, "routes must be an array of tables ([[routes]])");
  }
  {
    // The profiles feature links devices to the user they logged in as (features/profiles).
    TagConfig devices;
    devices.name = "~devices";
    devices.type = TagType::kSet;
    devices.internal = true;
    cfg.tags.Add(std::move(devices));
  }
  if (cfg.events.empty()) c.ErrorNoPos("no event types declared; add at least one [events.NAME] table");
  if (cfg.log.backend == "kafka" && cfg.archive.enabled) {
    c.ErrorNoPos("[archive] is not available with [log] backend = \"kafka\" yet (each process would archive "
                 "every partition); set [archive] enabled = false");
  }
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

std::string SnapshotDir(const Config& c) {
  return c.batch.snapshot_dir.empty() ? c.data_dir + "/snapshots" : c.batch.snapshot_dir;
}

Result<Config> LoadConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("config " + path + ": cannot open file");
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseConfig(ss.str(), path);
}

}  // namespace portrait
