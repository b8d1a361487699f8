#include "serve/http_server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "core/json.h"

namespace portrait {

struct HttpServer::Call {
  HttpRequest req;
  bool too_large = false;
};

struct HttpStream::Access {
  struct Holder {
    std::shared_ptr<HttpStream> stream;
    HttpServer* server;
    MHD_Connection* conn;
  };

  static ssize_t Read(void* cls, uint64_t, char* buf, size_t max) {
    HttpStream& s = *static_cast<Holder*>(cls)->stream;
    std::lock_guard lk(s.mu_);
    if (!s.pending_.empty()) {
      size_t n = std::min(max, s.pending_.size());
      std::memcpy(buf, s.pending_.data(), n);
      s.pending_.erase(0, n);
      return static_cast<ssize_t>(n);
    }
    if (s.closing_) return MHD_CONTENT_READER_END_OF_STREAM;
    // Nothing to send: park the connection until Write or Close resumes it.
    s.suspended_ = true;
    MHD_suspend_connection(static_cast<Holder*>(cls)->conn);
    return 0;
  }

  static void Free(void* cls) {
    auto* h = static_cast<Holder*>(cls);
    std::function<void()> on_end;
    {
      std::lock_guard lk(h->stream->mu_);
      h->stream->ended_ = true;
      h->stream->resume_ = nullptr;
      on_end = std::move(h->stream->on_end_);
    }
    h->server->Untrack(h->stream.get());
    if (on_end) on_end();
    delete h;
  }

  static void Attach(HttpStream& s, MHD_Connection* c, const HttpServerOptions& o, Counter* closed_slow) {
    std::lock_guard lk(s.mu_);
    s.resume_ = [c] { MHD_resume_connection(c); };
    s.max_pending_ = o.stream_buffer_bytes;
    s.on_overflow_ = [closed_slow] { closed_slow->Inc(); };
    s.last_data_ms_ = SteadyMs();
  }

  // The heartbeat: a comment line, or the stream's end when it has been idle too long.
  // True when the stream was closed for idling.
  static bool Beat(HttpStream& s, int64_t idle_ms) {
    std::lock_guard lk(s.mu_);
    if (s.ended_ || s.closing_) return false;
    bool idle = idle_ms > 0 && SteadyMs() - s.last_data_ms_ >= idle_ms;
    if (idle) {
      s.pending_ += HttpStream::ClosedEvent("idle for " + std::to_string(idle_ms / 1000) + " s; reconnect to go on");
      s.closing_ = true;
    } else if (s.pending_.size() < s.max_pending_ || !s.max_pending_) {
      s.pending_ += ": heartbeat\n\n";
    }
    if (s.suspended_) {
      s.suspended_ = false;
      s.resume_();
    }
    return idle;
  }
};

void HttpServer::Track(const std::shared_ptr<HttpStream>& s) {
  std::lock_guard lk(streams_mu_);
  std::erase_if(streams_, [](const auto& w) { return w.expired(); });
  streams_.push_back(s);
  streams_gauge->Set(static_cast<int64_t>(streams_.size()));
}

size_t HttpServer::open_streams() {
  std::lock_guard lk(streams_mu_);
  return streams_.size();
}

void HttpServer::Heartbeats() {
  std::unique_lock lk(beat_mu_);
  const auto every = std::chrono::milliseconds(std::max<int64_t>(options_.stream_heartbeat_ms, 10));
  while (!beat_cv_.wait_for(lk, every, [&] { return stopping_; })) {
    std::vector<std::shared_ptr<HttpStream>> open;
    {
      std::lock_guard sl(streams_mu_);
      for (auto& w : streams_) {
        if (auto s = w.lock()) open.push_back(std::move(s));
      }
    }
    for (auto& s : open) {
      if (HttpStream::Access::Beat(*s, options_.stream_idle_timeout_ms)) closed_idle->Inc();
    }
  }
}

void HttpServer::Untrack(const HttpStream* s) {
  std::lock_guard lk(streams_mu_);
  std::erase_if(streams_, [&](const auto& w) {
    auto p = w.lock();
    return !p || p.get() == s;
  });
  streams_gauge->Set(static_cast<int64_t>(streams_.size()));
}

namespace {

MHD_Result Send(MHD_Connection* c, const HttpResponse& r);

MHD_Result SendStream(HttpServer* server, MHD_Connection* c, const HttpResponse& r) {
  const HttpServerOptions& o = server->options();
  if (o.max_streams > 0 && server->open_streams() >= static_cast<size_t>(o.max_streams)) {
    server->refused_streams->Inc();
    r.stream->Abandon();
    HttpResponse busy = Error(503, "too_many_streams",
                              "this server has " + std::to_string(o.max_streams) +
                                  " streams open ([server] max_streams); try again later");
    busy.headers.emplace_back("Retry-After", "5");
    busy.headers.emplace_back("Connection", "close");  // an idle client must not keep holding it
    return Send(c, busy);
  }
  HttpStream::Access::Attach(*r.stream, c, o, server->closed_slow);
  server->Track(r.stream);
  auto* holder = new HttpStream::Access::Holder{r.stream, server, c};
  MHD_Response* resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 << 10, &HttpStream::Access::Read,
                                                         holder, &HttpStream::Access::Free);
  MHD_add_response_header(resp, "Content-Type", r.content_type.c_str());
  for (const auto& [k, v] : r.headers) MHD_add_response_header(resp, k.c_str(), v.c_str());
  MHD_Result ret = MHD_queue_response(c, static_cast<unsigned>(r.status), resp);
  MHD_destroy_response(resp);
  return ret;
}

MHD_Result Send(MHD_Connection* c, const HttpResponse& r) {
  MHD_Response* resp =
      MHD_create_response_from_buffer(r.body.size(), const_cast<char*>(r.body.data()), MHD_RESPMEM_MUST_COPY);
  MHD_add_response_header(resp, "Content-Type", r.content_type.c_str());
  for (const auto& [k, v] : r.headers) MHD_add_response_header(resp, k.c_str(), v.c_str());
  MHD_Result ret = MHD_queue_response(c, static_cast<unsigned>(r.status), resp);
  MHD_destroy_response(resp);
  return ret;
}

HttpResponse TooLarge(size_t limit) {
  return {413, "application/json",
          JsonError("body_too_large", "request body exceeds the limit of " + std::to_string(limit) +
                                          " bytes ([server] max_body_bytes); split the batch")};
}

MHD_Result CollectKv(void* cls, MHD_ValueKind, const char* key, const char* value) {
  auto* m = static_cast<std::map<std::string, std::string>*>(cls);
  std::string k = key ? key : "";
  (*m)[k] = value ? value : "";
  return MHD_YES;
}

MHD_Result CollectHeader(void* cls, MHD_ValueKind, const char* key, const char* value) {
  auto* m = static_cast<std::map<std::string, std::string>*>(cls);
  std::string k = key ? key : "";
  std::transform(k.begin(), k.end(), k.begin(), [](unsigned char ch) { return std::tolower(ch); });
  (*m)[k] = value ? value : "";
  return MHD_YES;
}

MHD_Result OnRequest(void* cls, MHD_Connection* c, const char* url, const char* method, const char*,
                     const char* upload, size_t* upload_size, void** con_cls) {
  auto* server = static_cast<HttpServer*>(cls);
  const size_t limit = server->options().max_body_bytes;
  auto* call = static_cast<HttpServer::Call*>(*con_cls);
  if (!call) {
    call = new HttpServer::Call();
    *con_cls = call;
    if (server->connections.load() > server->options().max_connections) {
      server->refused_connections->Inc();
      HttpResponse busy = Error(503, "too_many_connections",
                                "this server has more than " + std::to_string(server->options().max_connections) +
                                    " connections open ([server] max_connections); try again later");
      busy.headers.emplace_back("Retry-After", "1");
      busy.headers.emplace_back("Connection", "close");
      return Send(c, busy);
    }
    call->req.method = method;
    call->req.path = url;
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, CollectKv, &call->req.query);
    MHD_get_connection_values(c, MHD_HEADER_KIND, CollectHeader, &call->req.headers);
    auto cl = call->req.headers.find("content-length");
    if (cl != call->req.headers.end()) {
      unsigned long long n = std::strtoull(cl->second.c_str(), nullptr, 10);
      if (n > limit) {
        server->too_large()->Inc();
        return Send(c, TooLarge(limit));
      }
      call->req.body.reserve(n + 64);
    }
    return MHD_YES;
  }
  if (*upload_size > 0) {
    if (!call->too_large && call->req.body.size() + *upload_size > limit) {
      call->too_large = true;
      call->req.body.clear();
      call->req.body.shrink_to_fit();
    }
    if (!call->too_large) call->req.body.append(upload, *upload_size);
    *upload_size = 0;
    return MHD_YES;
  }
  if (call->too_large) {
    server->too_large()->Inc();
    return Send(c, TooLarge(limit));
  }
  call->req.body.reserve(call->req.body.size() + 64);
  HttpResponse resp = server->Dispatch(call->req);
  if (resp.stream) return SendStream(server, c, resp);
  return Send(c, resp);
}

void OnCompleted(void*, MHD_Connection*, void** con_cls, MHD_RequestTerminationCode) {
  delete static_cast<HttpServer::Call*>(*con_cls);
  *con_cls = nullptr;
}

void OnConnection(void* cls, MHD_Connection* c, void**, MHD_ConnectionNotificationCode code) {
  auto* server = static_cast<HttpServer*>(cls);
  if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
    server->connections_gauge->Set(--server->connections);
    return;
  }
  if (code != MHD_CONNECTION_NOTIFY_STARTED) return;
  server->connections_gauge->Set(++server->connections);
  const MHD_ConnectionInfo* info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
  if (!info) return;
  int one = 1;
  setsockopt(info->connect_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

}  // namespace

bool ParseHostPort(const std::string& listen, std::string* host, int* port) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  *host = listen.substr(0, colon);
  char* end = nullptr;
  long p = std::strtol(listen.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || p < 0 || p > 65535 || colon + 1 == listen.size()) return false;
  *port = static_cast<int>(p);
  return true;
}

HttpServer::HttpServer(HttpServerOptions options, HttpHandler handler, MetricsRegistry* metrics)
    : options_(std::move(options)), handler_(std::move(handler)) {
  too_large_ = metrics->GetCounter("portrait_http_bodies_too_large_total", "Request bodies refused for their size");
  connections_gauge = metrics->GetGauge("portrait_http_connections", "Open HTTP connections");
  streams_gauge = metrics->GetGauge("portrait_http_streams", "Open streamed answers (Server-Sent Events)");
  refused_connections = metrics->GetCounter("portrait_http_refused_total", "Requests answered 503 for a limit",
                                            "limit=\"max_connections\"");
  refused_streams = metrics->GetCounter("portrait_http_refused_total", "Requests answered 503 for a limit",
                                        "limit=\"max_streams\"");
  closed_slow = metrics->GetCounter("portrait_http_streams_closed_total", "Streams closed by the server",
                                    "reason=\"buffer\"");
  closed_idle = metrics->GetCounter("portrait_http_streams_closed_total", "Streams closed by the server",
                                    "reason=\"idle\"");
}

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Start() {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(options_.port));
  std::string host = options_.host == "localhost" ? "127.0.0.1" : options_.host;
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    return Status::InvalidArgument("listen address \"" + options_.host + "\" is not an IPv4 address");
  }
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;
  daemon_ = MHD_start_daemon(
      flags, static_cast<uint16_t>(options_.port), nullptr, nullptr, &OnRequest, this, MHD_OPTION_SOCK_ADDR,
      reinterpret_cast<sockaddr*>(&addr), MHD_OPTION_THREAD_POOL_SIZE, static_cast<unsigned>(options_.threads),
      MHD_OPTION_NOTIFY_COMPLETED, &OnCompleted, nullptr, MHD_OPTION_NOTIFY_CONNECTION, &OnConnection, this,
      MHD_OPTION_CONNECTION_TIMEOUT, options_.timeout_seconds,
      // Above max_connections, so that the connections past it are answered 503, not dropped.
      MHD_OPTION_CONNECTION_LIMIT, static_cast<unsigned>(options_.max_connections + 512), MHD_OPTION_END);
  if (!daemon_) {
    return Status::Unavailable("cannot listen on " + options_.host + ":" + std::to_string(options_.port) +
                               " (in use, or not allowed); pick another with --listen HOST:PORT");
  }
  const MHD_DaemonInfo* info = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT);
  port_ = info ? info->port : options_.port;
  heartbeat_ = std::thread([this] { Heartbeats(); });
  return Status::Ok();
}

void HttpServer::Stop() {
  {
    std::lock_guard lk(beat_mu_);
    stopping_ = true;
  }
  beat_cv_.notify_all();
  if (heartbeat_.joinable()) heartbeat_.join();
  if (daemon_) {
    // A suspended connection must be resumed before the daemon stops: end every stream.
    std::vector<std::shared_ptr<HttpStream>> open;
    {
      std::lock_guard lk(streams_mu_);
      for (auto& w : streams_) {
        if (auto s = w.lock()) open.push_back(std::move(s));
      }
    }
    for (auto& s : open) s->Close();
    MHD_stop_daemon(daemon_);
    daemon_ = nullptr;
  }
}

}  // namespace portrait
