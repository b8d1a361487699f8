// Test and benchmark helpers for whole processes: a libcurl HTTP client over a real
// socket, and a `portrait serve` child process on an ephemeral port.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace portrait::testing_util {

struct HttpResult {
  long status = 0;  // 0 when the request did not complete (connection refused, reset)
  std::string body;
  std::string headers;  // raw response header lines
};

// One keep-alive connection; not thread-safe (use one client per thread).
class HttpClient {
 public:
  explicit HttpClient(std::string base_url);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpResult Get(const std::string& path);
  HttpResult Post(const std::string& path, const std::string& body);
  HttpResult Request(const std::string& method, const std::string& path, const std::string& body = "",
                     const std::vector<std::string>& headers = {});
  // Sent with every request that does not give its own Authorization header.
  void SetBearer(const std::string& token) { bearer_ = token; }

 private:
  std::string base_;
  std::string bearer_;
  void* curl_;
};

// Runs `portrait serve --config CONFIG --listen 127.0.0.1:0 --data-dir DIR` and waits for
// its "listening on" line.
class ServerProcess {
 public:
  ServerProcess(std::string config, std::string data_dir);
  ~ServerProcess();
  bool Start();           // false if it exited or did not listen within 30 s
  void Kill(int signal);  // and reap it
  void Signal(int signal);  // without waiting (SIGHUP)
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  const std::string& output() const { return output_; }

 private:
  std::string config_, data_dir_, output_;
  pid_t pid_ = -1;
  int port_ = 0;
};

// Connects to 127.0.0.1:port and sends `GET path` (for streamed answers read from the
// socket as they come, e.g. Server-Sent Events); the socket, or -1.
int OpenGetStream(int port, const std::string& path);

// Runs a command, returns its exit code and combined output.
int RunCommand(const std::string& cmd, std::string* output);

}  // namespace portrait::testing_util
