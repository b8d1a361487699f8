// A webhook endpoint for the end-to-end tests: a plain HTTP/1.1 server on loopback
// recording each POST (body and Idempotency-Key).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace portrait::testing_util {

class WebhookReceiver {
 public:
  struct Post {
    std::string body;
    std::string idempotency_key;
  };
  // A free port, not listened on yet.
  static int FreePort() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    close(fd);
    return ntohs(a.sin_port);
  }
  explicit WebhookReceiver(int port) : port_(port) {}
  ~WebhookReceiver() { Stop(); }
  bool Start() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port_));
    if (bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd_, 64) != 0) return false;
    thread_ = std::thread([this] { Loop(); });
    return true;
  }
  void Stop() {
    if (fd_ >= 0) {
      shutdown(fd_, SHUT_RDWR);
      close(fd_);
      fd_ = -1;
    }
    if (thread_.joinable()) thread_.join();
  }
  std::vector<Post> posts() {
    std::lock_guard lk(mu_);
    return posts_;
  }

 private:
  void Loop() {
    for (;;) {
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string in;
      char buf[4096];
      size_t body_at = std::string::npos, length = 0;
      for (;;) {
        ssize_t n = recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        in.append(buf, static_cast<size_t>(n));
        if (body_at == std::string::npos && (body_at = in.find("\r\n\r\n")) != std::string::npos) {
          body_at += 4;
          size_t cl = in.find("Content-Length: ");
          length = cl == std::string::npos ? 0 : std::stoul(in.substr(cl + 16));
        }
        if (body_at != std::string::npos && in.size() >= body_at + length) break;
      }
      Post p;
      if (body_at != std::string::npos) p.body = in.substr(body_at, length);
      size_t k = in.find("Idempotency-Key: ");
      if (k != std::string::npos) p.idempotency_key = in.substr(k + 17, in.find("\r\n", k) - k - 17);
      {
        std::lock_guard lk(mu_);
        posts_.push_back(std::move(p));
      }
      const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      send(c, ok, sizeof ok - 1, MSG_NOSIGNAL);
      close(c);
    }
  }

  int port_;
  int fd_ = -1;
  std::thread thread_;
  std::mutex mu_;
  std::vector<Post> posts_;
};

}  // namespace portrait::testing_util
