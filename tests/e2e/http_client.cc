#include "e2e/http_client.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

namespace portrait::testing_util {

namespace {
size_t Append(char* p, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(p, size * n);
  return size * n;
}
}  // namespace

HttpClient::HttpClient(std::string base_url) : base_(std::move(base_url)), curl_(curl_easy_init()) {}
HttpClient::~HttpClient() { curl_easy_cleanup(static_cast<CURL*>(curl_)); }

HttpResult HttpClient::Get(const std::string& path) { return Request("GET", path); }
HttpResult HttpClient::Post(const std::string& path, const std::string& body) { return Request("POST", path, body); }

HttpResult HttpClient::Request(const std::string& method, const std::string& path, const std::string& body,
                               const std::vector<std::string>& extra_headers) {
  CURL* c = static_cast<CURL*>(curl_);
  HttpResult r;
  std::string url = base_ + path;
  curl_easy_reset(c);
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &Append);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &Append);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &r.headers);
  curl_slist* headers = nullptr;
  bool has_auth = false;
  for (const auto& h : extra_headers) {
    headers = curl_slist_append(headers, h.c_str());
    has_auth = has_auth || h.starts_with("Authorization:");
  }
  if (!bearer_.empty() && !has_auth) headers = curl_slist_append(headers, ("Authorization: Bearer " + bearer_).c_str());
  if (method == "POST") {
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Expect:");
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  } else if (method != "GET") {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  } else {
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  }
  if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  curl_slist_free_all(headers);
  return r;
}

ServerProcess::ServerProcess(std::string config, std::string data_dir)
    : config_(std::move(config)), data_dir_(std::move(data_dir)) {}

ServerProcess::~ServerProcess() { Kill(SIGTERM); }

bool ServerProcess::Start() {
  int fds[2];
  if (pipe(fds) != 0) return false;
  pid_ = fork();
  if (pid_ == 0) {
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    close(fds[0]);
    close(fds[1]);
    execl(PORTRAIT_BINARY, PORTRAIT_BINARY, "serve", "--config", config_.c_str(), "--listen", "127.0.0.1:0",
          "--data-dir", data_dir_.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fds[1]);
  output_.clear();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  const std::string marker = "listening on http://127.0.0.1:";
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fds[0], POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    char buf[4096];
    ssize_t n = read(fds[0], buf, sizeof buf);
    if (n <= 0) break;
    output_.append(buf, static_cast<size_t>(n));
    size_t at = output_.find(marker);
    if (at != std::string::npos && output_.find(' ', at + marker.size()) != std::string::npos) {
      port_ = std::atoi(output_.c_str() + at + marker.size());
      // Keep draining the child's output so it never blocks on a full pipe.
      int fd = fds[0];
      std::thread([fd] {
        char sink[4096];
        while (read(fd, sink, sizeof sink) > 0) {
        }
        close(fd);
      }).detach();
      return true;
    }
  }
  close(fds[0]);
  Kill(SIGKILL);
  return false;
}

void ServerProcess::Kill(int signal) {
  if (pid_ <= 0) return;
  kill(pid_, signal);
  int status;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

int OpenGetStream(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n";
  send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  return fd;
}

void ServerProcess::Signal(int signal) {
  if (pid_ > 0) kill(pid_, signal);
}

int RunCommand(const std::string& cmd, std::string* output) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  size_t n;
  output->clear();
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) output->append(buf, n);
  int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace portrait::testing_util
