// Shared pieces of the end-to-end tests: the example config (with overrides) and
// reading fused profiles back through the HTTP API.
#pragma once

#include <gtest/gtest.h>
#include <simdjson.h>
#include <zlib.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "e2e/http_client.h"
#include "temp_dir.h"

namespace portrait::testing_util {

inline int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// "YYYY-MM-DD" (UTC) of a unix-ms time.
inline std::string DateOf(int64_t ms) {
  std::time_t s = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&s, &tm);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
  return buf;
}

// Polls `done` every 20 ms until it holds or `seconds` pass; its last answer.
// The value of an unlabelled (or fully labelled, e.g. `name{k="v"}`) series in Prometheus
// text, or -1 when it is not there.
inline int64_t MetricValue(const std::string& text, const std::string& name) {
  size_t at = text.find("\n" + name + " ");
  return at == std::string::npos ? -1 : std::atoll(text.c_str() + at + name.size() + 2);
}

template <typename Pred>
bool WaitUntil(Pred done, int seconds = 30) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done();
}

// The whole decompressed content of a gzip file ("" when it cannot be read).
inline std::string Gunzip(const std::string& path) {
  gzFile gz = gzopen(path.c_str(), "rb");
  std::string out;
  char buf[65536];
  int n;
  while (gz && (n = gzread(gz, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  if (gz) gzclose(gz);
  return out;
}

// Every event id in the archive under `dir`, with how often it is there.
inline std::map<std::string, int> ArchivedIds(const std::string& dir) {
  std::map<std::string, int> ids;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); ++it) {
    std::string name = it->path().filename().string();
    if (!name.starts_with("part-") || !name.ends_with(".ndjson.gz")) continue;
    std::string text = Gunzip(it->path().string());
    for (size_t at = text.find("\"id\":\""); at != std::string::npos; at = text.find("\"id\":\"", at + 1)) {
      size_t from = at + 6;
      ++ids[text.substr(from, text.find('"', from) - from)];
    }
  }
  return ids;
}

// A command line running the portrait binary under test.
inline std::string Portrait(const std::string& args) { return std::string(PORTRAIT_BINARY) + " " + args; }

// The example config users get, with `replacements` applied (each must match).
inline std::string WriteExampleConfig(const std::string& dir,
                                      const std::vector<std::pair<std::string, std::string>>& replacements = {}) {
  std::ifstream in(std::string(PORTRAIT_SOURCE_DIR) + "/examples/portrait.toml");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  for (const auto& [from, to] : replacements) {
    size_t at = text.find(from);
    if (at == std::string::npos) return "";
    text.replace(at, from.size(), to);
  }
  std::string path = dir + "/portrait.toml";
  std::ofstream(path) << text;
  return path;
}

struct ProfileView {
  long status = 0;
  std::vector<int64_t> click_items;  // in the order served
  std::map<std::string, int64_t> category_prefs;
  int64_t purchases = 0;
  std::string last_seen;
};

inline ProfileView ReadProfile(HttpClient& http, const std::string& uid) {
  ProfileView v;
  HttpResult r = http.Get("/v1/profiles/" + uid);
  v.status = r.status;
  if (r.status != 200) return v;
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(r.body);
  simdjson::dom::object tags = doc["tags"];
  for (auto field : tags) {
    std::string_view name = field.key;
    simdjson::dom::element value = field.value["value"];
    if (name == "clicks") {
      for (auto item : value.get_array()) v.click_items.push_back(item["item_id"].get_int64());
    } else if (name == "category_prefs") {
      for (auto kv : value.get_object()) v.category_prefs[std::string(kv.key)] = kv.value.get_int64();
    } else if (name == "purchases") {
      v.purchases = value.get_int64();
    } else if (name == "last_seen") {
      v.last_seen = std::string(value.get_string().value());
    }
  }
  return v;
}

// Polls until `done(profile)` holds or 20 s pass; returns the last profile read.
template <typename Pred>
ProfileView WaitForProfile(HttpClient& http, const std::string& uid, Pred done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  ProfileView v;
  while (std::chrono::steady_clock::now() < deadline) {
    v = ReadProfile(http, uid);
    if (done(v)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return v;
}

// A test with its own `portrait serve` on the example config (with `replacements`).
class ServerFixture : public ::testing::Test {
 protected:
  void StartServer(const std::vector<std::pair<std::string, std::string>>& replacements = {}) {
    config_ = WriteExampleConfig(dir_.path(), replacements);
    ASSERT_FALSE(config_.empty()) << "a replacement did not match examples/portrait.toml";
    server_ = std::make_unique<ServerProcess>(config_, dir_.path() + "/data");
    ASSERT_TRUE(server_->Start()) << server_->output();
    http_ = std::make_unique<HttpClient>(server_->url());
  }

  TempDir dir_;
  std::string config_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<HttpClient> http_;
};

}  // namespace portrait::testing_util
