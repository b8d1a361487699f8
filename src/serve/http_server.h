// HttpServer: a small libmicrohttpd front with bounded bodies and JSON errors.
//
// A pool of threads, each with its own epoll loop, calls the handler synchronously
// (the handler may block, e.g. until events are durable). Bodies over the limit are
// refused with 413 before they are buffered; TCP_NODELAY is set on every connection;
// idle clients time out. Start/Stop from one thread; the handler must be thread-safe.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/metrics.h"
#include "core/status.h"

struct MHD_Daemon;
struct MHD_Connection;

namespace portrait {

struct HttpRequest {
  std::string method;
  std::string path;  // percent-decoded
  std::map<std::string, std::string> query;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;  // has at least 64 spare bytes of capacity after its end
};

// A response body written over time (Server-Sent Events). The connection is parked
// (suspended, no thread held) while there is nothing to send and woken by Write/Close.
// Thread-safe.
class HttpStream {
 public:
  // Queues `data` for the client; false once the client is gone.
  bool Write(std::string_view data);
  // Ends the response after what is queued.
  void Close();
  // Runs once when the response ends (client gone, Close, server stop), on a server thread.
  void OnEnd(std::function<void()> fn);

  // Internal, for the server.
  struct Access;

 private:
  std::mutex mu_;
  std::string pending_;
  MHD_Connection* conn_ = nullptr;
  bool suspended_ = false;
  bool closing_ = false;
  bool ended_ = false;
  std::function<void()> on_end_;
};

struct HttpResponse {
  HttpResponse() = default;
  HttpResponse(int s, std::string type, std::string b, std::vector<std::pair<std::string, std::string>> h = {})
      : status(s), content_type(std::move(type)), body(std::move(b)), headers(std::move(h)) {}
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra response headers
  std::shared_ptr<HttpStream> stream;  // set: the body is streamed from it instead of `body`
};

using HttpHandler = std::function<HttpResponse(HttpRequest&)>;

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0 = any free port
  int threads = 4;
  size_t max_body_bytes = 16u << 20;
  unsigned timeout_seconds = 60;
};

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, HttpHandler handler, MetricsRegistry* metrics);
  ~HttpServer();
  Status Start();
  void Stop();
  int port() const { return port_; }

  // Internal: state of one request while its body arrives.
  struct Call;
  const HttpServerOptions& options() const { return options_; }
  HttpResponse Dispatch(HttpRequest& req) { return handler_(req); }
  Counter* too_large() const { return too_large_; }
  void Track(const std::shared_ptr<HttpStream>& s);
  void Untrack(const HttpStream* s);

 private:
  HttpServerOptions options_;
  HttpHandler handler_;
  MHD_Daemon* daemon_ = nullptr;
  int port_ = 0;
  Counter* too_large_;
  std::mutex streams_mu_;
  std::vector<std::weak_ptr<HttpStream>> streams_;  // open streams, closed before the daemon stops
};

// Splits "host:port"; false if malformed.
bool ParseHostPort(const std::string& listen, std::string* host, int* port);

}  // namespace portrait
