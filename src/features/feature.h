// Feature: the one shape every feature of portrait has (ARCHITECTURE.md "The house").
//
// A feature lives in src/features/NAME/ and holds its config section, its processor stage,
// its state on each store backend, its routes, its services and its tests. The app knows
// features only through this interface and the list in features/registry.cc: adding one is
// its folder plus one line there.
//
// Life cycle, driven by the app (serve) or a command (replay, batch):
//   Open   -> the feature opens its state beside the profile store and its topics; a
//             feature that is off or whose store keeps nothing for it opens nothing
//   stage  -> the processor makes one Stage per worker from it (may be null)
//   AddRoutes, Start -> only in `portrait serve`, after the processor has started
//   Stop   -> before the processor stops (services first), in reverse feature order
//   Close  -> after the processor has stopped (topics made durable)
// Not thread-safe itself; what it hands out (routes, stages) says what it allows.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/config_check.h"
#include "core/erasure_list.h"
#include "core/http.h"
#include "core/json.h"
#include "core/metrics.h"
#include "core/status.h"
#include "log/log.h"
#include "store/profile_store.h"
#include "stream/stage.h"

namespace portrait {

class Collector;
class RetryQueue;

// The ids that make up the person a reader asks for: whose profile answers (`uid`), the
// further ids whose profiles are merged into it (devices linked to the user), and the id
// asked for when it was not `uid` itself.
struct PersonIds {
  std::string uid;
  std::vector<std::string> merged;
  std::string resolved_from;
};

// How features shape the profile a reader is shown; the profiles feature's routes render
// through it. One feature may resolve an id to its person (identity); any may add members
// to a rendered profile (segments: `"segments": [...]`). Filled in Open, then read by the
// HTTP threads: what is handed in must be thread-safe.
class ProfileView {
 public:
  using Resolver = std::function<Result<PersonIds>(std::string_view id)>;
  // Writes its members (Key(...) and value) into the profile object being rendered.
  using Member = std::function<Status(const PersonIds& person, JsonWriter& w)>;

  void SetResolver(Resolver r) { resolver_ = std::move(r); }
  void AddMember(Member m) { members_.push_back(std::move(m)); }
  // The id itself when no feature resolves ids.
  Result<PersonIds> Resolve(std::string_view id) const {
    if (!resolver_) return PersonIds{std::string(id), {}, {}};
    return resolver_(id);
  }
  Status RenderMembers(const PersonIds& person, JsonWriter& w) const {
    for (const Member& m : members_) RETURN_IF_ERROR(m(person, w));
    return Status::Ok();
  }

 private:
  Resolver resolver_;
  std::vector<Member> members_;
};

// What a feature is opened with. Everything outlives the feature.
struct FeatureHost {
  const Config* config = nullptr;
  Log* events = nullptr;           // the events log
  ProfileStore* store = nullptr;   // the profile store; a feature keeps its state beside it
  MetricsRegistry* metrics = nullptr;
  Collector* collector = nullptr;  // null outside `portrait serve`
  RetryQueue* retry = nullptr;     // null outside `portrait serve`
  ErasureList* erasures = nullptr; // the durable erasure list (core/erasure_list.h)
  bool serving = false;            // `portrait serve` (routes, services) rather than a command
  ProfileView* profile_view = nullptr;  // null outside `portrait serve`
  // With consumer groups: the log partitions this process holds now (callable once the
  // features have started); empty on the embedded log, where it holds them all.
  std::function<std::vector<PartitionId>()> held;
};

class Feature {
 public:
  virtual ~Feature() = default;
  virtual std::string_view name() const = 0;
  // Its sections of the config file, read by LoadConfig (features/registry.h).
  virtual std::vector<ConfigSection> ConfigSections() const { return {}; }
  virtual Status Open(const FeatureHost& host) { return Status::Ok(); }
  // How each processor worker makes this feature's stage; empty when it runs none.
  virtual StageFactory stage() { return nullptr; }
  virtual void AddRoutes(RouteTable& routes) {}
  virtual Status Start() { return Status::Ok(); }
  virtual void Stop() {}
  virtual void Close() {}
  // Puts the reloadable parts of `loaded` (the config file read again) in force, after
  // checking them against the running config; on error nothing changes. Appends to
  // `summary` what is in force now, as JSON members (`"decision_rules":2`).
  virtual Status Reload(const Config& loaded, std::string* summary) { return Status::Ok(); }
};

}  // namespace portrait
