// Config: everything `portrait serve` reads from its TOML file, validated.
//
// ParseConfigWith parses and checks the whole file and returns every problem it finds, each
// as `FILE:LINE:COL: what is wrong; what to do`. A Config that loaded is consistent:
// every rule names a declared tag with an operator its type allows, every event type a
// rule listens on is declared, and every list item carries its tag's sort and dedup
// fields. Immutable after loading; share it by const reference.
#pragma once

#include <map>
#include <memory>
#include <typeindex>
#include <typeinfo>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/action.h"
#include "core/status.h"

namespace portrait {

enum class FieldType { kString, kInt, kNumber, kBool, kObject, kArray, kAny };
std::string_view FieldTypeName(FieldType t);

struct FieldSpec {
  std::string name;
  FieldType type = FieldType::kAny;
  bool required = true;
  std::optional<double> min, max;  // numbers
  size_t max_len = 0;              // strings (bytes); 0 = no limit
};

struct EventTypeSpec {
  std::string name;
  std::vector<FieldSpec> props;
  bool allow_unknown_props = true;
  const FieldSpec* FindProp(std::string_view name) const;
};

struct TagConfig {
  std::string name;
  TagType type = TagType::kString;
  std::vector<OpCode> ops;  // allowed operators; empty = every operator of the type
  // list tags
  size_t size_limit = 0;
  std::string sort_by;  // numeric item field; empty = the action's ts
  bool descending = false;  // output order; storage is always ascending
  std::vector<std::string> dedup_by;  // empty = the whole item
  // lifetime
  int64_t ttl_ms = 0;      // tag expires when not updated for this long; 0 = never
  int64_t max_age_ms = 0;  // list items older than this (by sort field) drop out
  // offline: `portrait batch` computes the tag from the archived events of this window
  // (ending with the snapshot's date; 0 = all archived history) by the tag's rules of the
  // offline layer, and the lazy loader merges it into profiles with `load`.
  bool offline = false;
  int64_t offline_window_ms = 0;
  OpCode load = OpCode::kStringSet;  // also used for imported columns of tags without offline
  // portrait's own tags (names start with `~`, which config cannot declare): kept and
  // fused like any tag, never shown to or written by clients, rules or snapshots.
  bool internal = false;

  bool Allows(OpCode op) const;
};

class TagRegistry {
 public:
  // Every tag, portrait's internal ones too (stores and the processor).
  const TagConfig* Find(std::string_view name) const;
  // Only tags declared in config (what clients, rules and snapshots may name).
  const TagConfig* FindDeclared(std::string_view name) const {
    const TagConfig* t = Find(name);
    return t && !t->internal ? t : nullptr;
  }
  // "a, b, c": the declared tags, for messages.
  std::string DeclaredNames() const;
  void Add(TagConfig tag);
  const std::map<std::string, TagConfig, std::less<>>& all() const { return tags_; }

 private:
  std::map<std::string, TagConfig, std::less<>> tags_;
};

// A reference to part of an event, written `$uid`, `$ts`, `$props.item_id`, ...
struct FieldRef {
  enum class Kind { kUid, kDeviceId, kId, kType, kTs, kTsIso, kProduct, kChannel, kProp };
  Kind kind = Kind::kUid;
  std::string prop;  // for kProp
};

// How a rule computes a value from an event: a literal, a field, or an object of those.
struct ValueTemplate {
  enum class Kind { kLiteral, kField, kObject };
  Kind kind = Kind::kLiteral;
  std::string literal_json;  // kLiteral
  bool literal_is_number = false;
  FieldRef field;            // kField
  std::vector<std::pair<std::string, ValueTemplate>> fields;  // kObject
};

struct RuleSpec {
  std::string where;  // "portrait.toml:40:1" for messages
  std::vector<std::string> on;  // event types
  std::string tag;
  OpCode op = OpCode::kStringSet;
  std::optional<ValueTemplate> key;  // map.put / map.incr / map.del
  ValueTemplate value;
  // layer = "both" (default), "realtime" (only the processor) or "offline" (only `portrait
  // batch`, for tags with offline = {...}).
  bool realtime = true;
  bool offline = true;
};

// The operator that loads an offline value into a tag of type `t` when the tag names none.
OpCode DefaultLoadOp(TagType t);
// Whether `op` can load offline values: it must replace or merge, never add up.
bool IsLoadOp(OpCode op);

enum class FsyncPolicy { kAlways, kBatch, kNone };
std::string_view FsyncPolicyName(FsyncPolicy p);

// What a bearer token may call, as a bit set; each route declares the scope it needs
// (core/http.h Scope).
inline constexpr unsigned kScopeRead = 1, kScopeWrite = 2, kScopeAdmin = 4;

struct ApiToken {
  std::string name;    // its writes are attributed to the source "http:NAME"
  std::string secret;  // resolved at load from `env:NAME`, `file:PATH` or the text; never logged
  unsigned scopes = kScopeWrite;
};

struct ServerConfig {
  std::string listen = "127.0.0.1:8080";
  size_t max_body_bytes = 16u << 20;
  int threads = 4;
  int max_json_depth = 32;
  std::vector<std::string> cors_origins;  // origins allowed to call from a browser; "*" = any
  std::vector<ApiToken> tokens;           // empty: every route is open (loopback by default)
  bool open_metrics = false;              // with tokens: /metrics without one (else scope read)
  // Limits (each refused or closed call is counted in /metrics).
  int max_connections = 2048;              // past it new connections are answered 503
  int max_streams = 1000;                  // open SSE streams; past it 503
  size_t stream_buffer_bytes = 1u << 20;   // unsent bytes of one stream before it is closed
  int64_t stream_heartbeat_ms = 15'000;    // a comment line to every stream this often
  int64_t stream_idle_timeout_ms = 3'600'000;  // a stream with nothing sent this long is closed
};

struct TopicRetention {
  int64_t age_ms = 0;   // delete segments older than this; 0 = keep
  uint64_t bytes = 0;   // per partition; 0 = no limit
};

// [log.kafka]: where the Kafka log lives. Topics are TOPIC_PREFIX + "events" / "failed";
// portrait creates them (with the configured partitions and retention) when missing.
struct KafkaLogConfig {
  std::string brokers;                  // bootstrap servers "host:port,host:port"
  std::string topic_prefix = "portrait.";
  std::string group = "portrait";       // consumer groups are GROUP + "." + consumer
  int replication_factor = 3;           // for topics portrait creates
  int session_timeout_ms = 6000;        // how soon the group notices a dead process
  std::map<std::string, std::string> properties;  // any other librdkafka setting
};

struct LogConfig {
  std::map<std::string, TopicRetention> retention;  // by topic: "events", "failed"
  KafkaLogConfig kafka;
  int retention_check_ms = 60'000;
  std::string backend = "embedded";
  int partitions = 8;
  FsyncPolicy fsync = FsyncPolicy::kBatch;
  int fsync_max_delay_ms = 2;
  uint64_t segment_bytes = 64u << 20;
};

struct StoreConfig {
  std::string backend = "rocksdb";
  size_t block_cache_mb = 256;              // rocksdb
  std::string redis_url;                    // redis: "redis://host:port" (standalone)
  std::vector<std::string> cluster_nodes;   // redis: "host:port" seed nodes of a cluster
};

// A pull source: where events come from besides HTTP pushes.
struct SourceConfig {
  std::string where;    // "FILE:LINE:COL" for messages
  std::string name;
  std::string type;     // "file" or "kafka"
  std::string path;     // file: the file to tail; rotation renames it and starts a new one
  std::string brokers;  // kafka: bootstrap servers "host:port,..."
  std::string topic;    // kafka: the topic to consume (each message: one or more lines)
  std::string group;    // kafka: consumer group, default "portrait-source-NAME"
  std::string format = "ndjson";      // "ndjson" or "csv"
  std::vector<std::string> columns;   // csv: uid, device_id, type, ts, product, channel, id,
                                      // props.NAME, or "" to skip a column
  bool header = false;                // csv: the first line names columns; skip it
  char delimiter = ',';
  int64_t ts_scale = 1;               // ts_unit "s" -> 1000, "ms" -> 1
  std::map<std::string, std::string> type_map;  // raw type value -> event type
  int poll_ms = 200;
};

struct HistoryConfig {
  bool enabled = false;  // opt-in: it writes every event to the store a second time
  int64_t retention_ms = 30LL * 86'400'000;  // events older than this (by event time) are not kept
  size_t max_per_user = 10'000;              // newest events kept per user
};

struct ArchiveConfig {
  bool enabled = true;
  std::string dir;                  // default DATA/archive
  int flush_seconds = 5;            // longest an event waits in memory before its part file is written
  int64_t retention_ms = 90LL * 86'400'000;  // part files written longer ago than this are deleted; 0 = keep
  int gzip_level = 1;               // 1 (fastest) .. 9 (smallest); docs/benchmarks.md has the trade
  bool compact = true;              // merge a closed hour's part files into one per partition
  int64_t compact_after_ms = 2 * 3'600'000;  // an hour is closed this long after its end
  int64_t compact_grace_ms = 600'000;        // merged inputs are deleted this long after the merge
};

// [retry]: when a downstream step (a sink) fails, the item waits in the retry topic for
// initial_backoff * multiplier^(n-1) (at most max_backoff) after its n-th failure, and
// after `attempts` failed deliveries goes to the dead-letter topic.
struct RetryConfig {
  int64_t initial_backoff_ms = 1000;
  double multiplier = 2.0;
  int64_t max_backoff_ms = 600'000;
  int attempts = 6;
  int64_t BackoffMs(int failures) const;  // the wait after the `failures`-th failure (>= 1)
};

// [[routes]]: events of these types are also appended to a named topic of the log, for
// other consumers; with exclusive = true they go only there (not to profiles).
struct RouteConfig {
  std::vector<std::string> types;
  std::string topic;
  bool exclusive = false;
};

// [privacy]: what an erasure (DELETE /v1/profiles/{uid}) reaches beyond the stores.
struct PrivacyConfig {
  std::string erasure_list;  // default DATA/erasures.list
  // An erased user's archived events are rewritten out of the archive at most this long
  // after the erasure (the archiver batches rewrites); 0 = at its next pass.
  int64_t erase_archive_within_ms = 30LL * 86'400'000;
};

struct CollectorConfig {
  size_t dedup_window = 1'000'000;  // recent event ids remembered (all partitions) to drop repeats
  // Backpressure: while the processor is more than this many log records behind, ingestion
  // answers 503 with Retry-After instead of growing the lag (0: never). Embedded log only.
  int64_t max_lag = 1'000'000;
};

struct ProcessorConfig {
  int workers = 2;
  size_t batch_max_events = 8192;
};

// The feature sections of a Config: one value per section type, copied with the Config.
class ConfigSections {
 public:
  ConfigSections() = default;
  ConfigSections(const ConfigSections& o) { *this = o; }
  ConfigSections& operator=(const ConfigSections& o) {
    if (this == &o) return *this;
    values_.clear();
    for (const auto& [type, v] : o.values_) values_.emplace(type, v->Clone());
    return *this;
  }
  ConfigSections(ConfigSections&&) = default;
  ConfigSections& operator=(ConfigSections&&) = default;

  template <typename T>
  const T& Get() const {
    auto it = values_.find(std::type_index(typeid(T)));
    if (it == values_.end()) {
      static const T kDefaults{};
      return kDefaults;
    }
    return static_cast<const Holder<T>&>(*it->second).value;
  }
  template <typename T>
  T& Mutable() {
    auto& slot = values_[std::type_index(typeid(T))];
    if (!slot) slot = std::make_unique<Holder<T>>();
    return static_cast<Holder<T>&>(*slot).value;
  }

 private:
  struct Base {
    virtual ~Base() = default;
    virtual std::unique_ptr<Base> Clone() const = 0;
  };
  template <typename T>
  struct Holder : Base {
    T value{};
    std::unique_ptr<Base> Clone() const override { return std::make_unique<Holder<T>>(*this); }
  };
  std::map<std::type_index, std::unique_ptr<Base>> values_;
};

struct Config {
  std::string path;  // where it was loaded from, for messages
  std::string data_dir = "./data";
  ServerConfig server;
  LogConfig log;
  StoreConfig store;
  ProcessorConfig processor;
  CollectorConfig collector;
  RetryConfig retry;
  std::vector<RouteConfig> routes;
  HistoryConfig history;
  ArchiveConfig archive;
  PrivacyConfig privacy;
  std::vector<SourceConfig> sources;
  std::map<std::string, EventTypeSpec, std::less<>> events;
  TagRegistry tags;
  std::vector<RuleSpec> rules;
  // The features' sections (features/*/..._config.h), each a struct of its own.
  ConfigSections sections;

  // A feature's section; its defaults when the file has none.
  template <typename T>
  const T& section() const {
    return sections.Get<T>();
  }
  template <typename T>
  T& mutable_section() {
    return sections.Mutable<T>();
  }
};

struct ConfigSection;  // core/config_check.h

// Parses and checks a config; `sections` are the features' own (features/registry.h has
// LoadConfig / ParseConfig with every feature's). `name` is used in messages in place of
// a file path.
Result<Config> ParseConfigWith(std::string_view toml_text, const std::string& name,
                               const std::vector<ConfigSection>& sections);
Result<Config> LoadConfigWith(const std::string& path, const std::vector<ConfigSection>& sections);

// Where the archive and the erasure list live: their configured paths, else under data_dir.
std::string ArchiveDir(const Config& config);
std::string ErasureListPath(const Config& config);

// "http://host[:port]/path" -> its parts; false when it is not such a URL.
bool ParseHttpUrl(std::string_view url, std::string* host, int* port, std::string* path);

// "HH:MM" -> minutes after midnight.
std::optional<int> ParseClockMinutes(std::string_view text);

// "30d", "12h", "15m", "90s", "250ms" -> milliseconds.
std::optional<int64_t> ParseDurationMs(std::string_view text);

}  // namespace portrait
