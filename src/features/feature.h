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
#include "core/metrics.h"
#include "core/status.h"
#include "log/log.h"
#include "store/profile_store.h"
#include "stream/stage.h"

namespace portrait {

class Collector;
class RetryQueue;

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
