// HTTP as the layers above see it: requests, responses (also streamed ones), and the
// route table every route of portrait is declared in (method, pattern, scope, handler),
// from which the server dispatches, the 404 hint and the README's route table are made.
// The server itself (libmicrohttpd) is in serve/; features declare their routes here.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/types.h"
#include "core/status.h"

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
  // Ends it before it was ever sent (the server refused it): OnEnd runs now.
  void Abandon();

  // Internal, for the server.
  struct Access;

 private:
  std::mutex mu_;
  std::string pending_;
  std::function<void()> resume_;  // wakes the parked connection (set by the server)
  bool suspended_ = false;
  bool closing_ = false;
  bool ended_ = false;
  std::function<void()> on_end_;
  // Set by the server: unsent bytes past which the stream is closed (0: no cap), and what
  // to count then; when data (not a heartbeat) was last queued (steady clock, ms).
  size_t max_pending_ = 0;
  std::function<void()> on_overflow_;
  int64_t last_data_ms_ = 0;
  // The last event of a stream the server ends.
  static std::string ClosedEvent(std::string_view reason);
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

// An error answer {"error": {"code", "message"}}, and the HTTP status of a Status.
HttpResponse Error(int status, std::string_view code, std::string_view message);
int HttpStatusFor(const Status& s);
// The error answer for a failed Status.
HttpResponse ErrorFor(const Status& s);

// The `limit` query parameter (1 to 10000, default 100), or the error answer.
std::optional<HttpResponse> ParseLimit(const HttpRequest& req, size_t* limit);

// Who may call a route when tokens are configured (ARCHITECTURE.md "Access control").
// What a route needs from the caller's token once any token is configured: kPublic
// nothing; kRead / kWrite / kAdmin that scope (ServerConfig::tokens). kUnset is refused by
// RouteTable::Add: every route says what it needs.
enum class Scope { kUnset, kPublic, kRead, kWrite, kAdmin };
// The token scope bit a route's scope needs (kScopeRead...; 0 for kPublic).
unsigned ScopeBit(Scope s);
std::string_view ScopeName(Scope s);

// A request matched to a route: its path parameters in pattern order, and the source the
// caller was authenticated as ("http" or "http:<token name>").
struct RouteCall {
  HttpRequest& http;
  std::vector<std::string> params;
  std::string source;
  const std::string& param(size_t i) const { return params[i]; }
};
using RouteHandler = std::function<HttpResponse(RouteCall&)>;

struct Route {
  std::string method;   // "GET", "POST", "DELETE"
  std::string pattern;  // "/v1/profiles/{uid}/tags/{tag}": a {param} takes one or more bytes
  Scope scope = Scope::kUnset;
  std::string summary;  // one line, for the route table in the README and the 404 hint
  RouteHandler handler;
  std::string label;    // metrics label; default: the pattern
  // For the OpenAPI document (core/openapi.h): the answer's content type (default JSON), and
  // the request body's and the answer's JSON Schema, inline (`{...}`) or the name of a shared
  // schema there (`Profile`); empty: a JSON object, described by the summary.
  std::string answer_type = {};
  std::string request_schema = {};
  std::string answer_schema = {};
};

class RouteTable {
 public:
  void Add(Route route);
  // The route for (method, path) with its parameters; null when none. `path_known` tells
  // whether some route has this path with another method (405, with `allowed`).
  const Route* Match(std::string_view method, std::string_view path, std::vector<std::string>* params,
                     bool* path_known, std::string* allowed) const;
  // "see /v1/events, /v1/profiles/{uid}, ..." for 404 answers: every pattern, once.
  std::string Hint() const;
  // A Markdown table | route | scope | what | of every route, in declaration order.
  std::string Markdown() const;
  const std::vector<Route>& routes() const { return routes_; }

 private:
  std::vector<Route> routes_;     // declaration order
  std::vector<size_t> by_match_;  // more literal bytes first, so /v1/decisions/stream wins over {uid}
};

// Matches `path` against `pattern`; fills `params`. A parameter followed by a literal ends
// at that literal's first occurrence (its last one when the literal ends the pattern).
bool MatchPattern(std::string_view pattern, std::string_view path, std::vector<std::string>* params);

}  // namespace portrait
