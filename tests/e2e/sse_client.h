// A client of GET /v1/decisions/stream (Server-Sent Events) over a raw socket, for the
// end-to-end tests.
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/types.h"
#include "e2e/http_client.h"

namespace portrait::testing_util {

// A stream of Server-Sent Events (GET /v1/decisions/stream by default) over a raw socket;
// records each event's data line and when it came.
class SseClient {
 public:
  bool Connect(int port, const std::string& query = "", const std::string& path = "/v1/decisions/stream") {
    fd_ = OpenGetStream(port, path + query);
    if (fd_ < 0) return false;
    thread_ = std::thread([this] { Loop(); });
    // Subscribed once the stream's opening comment arrives.
    for (int i = 0; i < 500 && !opened_.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return opened_.load();
  }
  ~SseClient() {
    if (fd_ >= 0) shutdown(fd_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) close(fd_);
  }
  std::vector<std::pair<std::string, int64_t>> events() {
    std::lock_guard lk(mu_);
    return events_;
  }
  bool ended() const { return ended_.load(); }
  std::string head() {
    std::lock_guard lk(mu_);
    return raw_.substr(0, raw_.find("\r\n\r\n"));
  }

 private:
  void Loop() {
    char buf[8192];
    size_t scanned = 0;
    for (;;) {
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) break;
      std::lock_guard lk(mu_);
      raw_.append(buf, static_cast<size_t>(n));
      if (raw_.find("\n: portrait ") != std::string::npos) opened_.store(true);
      size_t at;
      while ((at = raw_.find("data: ", scanned)) != std::string::npos) {
        size_t end = raw_.find('\n', at);
        if (end == std::string::npos) break;
        events_.emplace_back(raw_.substr(at + 6, end - at - 6), NowMs());
        scanned = end;
      }
    }
    ended_.store(true);
  }

  int fd_ = -1;
  std::thread thread_;
  std::mutex mu_;
  std::string raw_;
  std::vector<std::pair<std::string, int64_t>> events_;
  std::atomic<bool> opened_{false}, ended_{false};
};

}  // namespace portrait::testing_util
