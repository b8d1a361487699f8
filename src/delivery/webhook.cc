#include "delivery/webhook.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>


namespace portrait {

namespace {

// Closes the socket when it goes out of scope.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// Waits for `events` on `fd` until `deadline`; false on timeout or error.
bool WaitFor(int fd, short events, std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return false;
  }
}

}  // namespace

Result<int> HttpPost(const std::string& host, int port, const std::string& path, std::string_view body,
                     const std::vector<std::pair<std::string, std::string>>& headers, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  const std::string where = "http://" + host + ":" + std::to_string(port) + path;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res); rc != 0) {
    return Status::Unavailable(where + ": cannot resolve " + host + ": " + gai_strerror(rc));
  }
  Fd s;
  s.fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int rc = s.fd < 0 ? -1 : ::connect(s.fd, res->ai_addr, res->ai_addrlen);
  ::freeaddrinfo(res);
  if (s.fd < 0) return Status::Unavailable(where + ": socket: " + std::strerror(errno));
  if (rc != 0) {
    if (errno != EINPROGRESS) return Status::Unavailable(where + ": connect: " + std::strerror(errno));
    if (!WaitFor(s.fd, POLLOUT, deadline)) return Status::Unavailable(where + ": connect timed out");
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return Status::Unavailable(where + ": connect: " + std::strerror(err));
  }
  int one = 1;
  ::setsockopt(s.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  std::string req = "POST " + path + " HTTP/1.1\r\nHost: " + host + ":" + std::to_string(port) +
                    "\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\n";
  for (const auto& [k, v] : headers) req += k + ": " + v + "\r\n";
  req += "\r\n";
  req.append(body);
  for (size_t sent = 0; sent < req.size();) {
    ssize_t n = ::send(s.fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!WaitFor(s.fd, POLLOUT, deadline)) return Status::Unavailable(where + ": send timed out");
    } else {
      return Status::Unavailable(where + ": send: " + std::strerror(errno));
    }
  }
  // The status line is all we need.
  std::string head;
  char buf[1024];
  while (head.find("\r\n") == std::string::npos) {
    ssize_t n = ::recv(s.fd, buf, sizeof buf, 0);
    if (n > 0) {
      head.append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      break;
    } else if (errno == EAGAIN || errno == EINTR) {
      if (!WaitFor(s.fd, POLLIN, deadline)) return Status::Unavailable(where + ": no answer within " + std::to_string(timeout_ms) + " ms");
    } else {
      return Status::Unavailable(where + ": recv: " + std::strerror(errno));
    }
  }
  int code = 0;
  if (std::sscanf(head.c_str(), "HTTP/%*d.%*d %d", &code) != 1) {
    return Status::Unavailable(where + ": not an HTTP answer");
  }
  return code;
}

WebhookSink::WebhookSink(std::string url, int timeout_ms, MetricsRegistry* m)
    : url_(std::move(url)), timeout_ms_(timeout_ms) {
  ParseHttpUrl(url_, &host_, &port_, &path_);
  posted_ = m->GetCounter("portrait_webhook_posts_total", "Items POSTed to the webhook");
  seconds_ = m->GetHistogram("portrait_webhook_seconds", "Time of one webhook POST");
}

Status WebhookSink::Deliver(std::string_view key, std::string_view payload) {
  auto start = std::chrono::steady_clock::now();
  std::vector<std::pair<std::string, std::string>> headers;
  if (!key.empty()) headers.emplace_back("Idempotency-Key", std::string(key));
  auto code = HttpPost(host_, port_, path_, payload, headers, timeout_ms_);
  seconds_->Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  posted_->Inc();
  if (!code.ok()) return code.status();
  if (*code < 200 || *code > 299) {
    return Status::Unavailable("webhook " + url_ + " answered " + std::to_string(*code));
  }
  return Status::Ok();
}

}  // namespace portrait
