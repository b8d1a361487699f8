#include "core/http.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "core/config.h"
#include "core/json.h"

namespace portrait {

bool HttpStream::Write(std::string_view data) {
  std::function<void()> overflow;
  {
    std::lock_guard lk(mu_);
    if (ended_ || closing_) return false;
    last_data_ms_ = SteadyMs();
    if (max_pending_ && pending_.size() + data.size() > max_pending_) {
      // The client does not read: nothing more is queued for it, only why it ends.
      pending_ += ClosedEvent("the client read too slowly: more than " + std::to_string(max_pending_) +
                              " bytes unsent");
      closing_ = true;
      overflow = on_overflow_;
    } else {
      pending_.append(data);
    }
    if (suspended_) {
      suspended_ = false;
      resume_();
    }
    if (!overflow) return true;
  }
  overflow();
  return false;
}

std::string HttpStream::ClosedEvent(std::string_view reason) {
  std::string out = "event: closed\ndata: {\"reason\":";
  JsonWriter(&out).String(reason);
  return out + "}\n\n";
}

void HttpStream::Abandon() {
  std::function<void()> on_end;
  {
    std::lock_guard lk(mu_);
    if (ended_) return;
    ended_ = true;
    closing_ = true;
    on_end = std::move(on_end_);
  }
  if (on_end) on_end();
}

void HttpStream::Close() {
  std::lock_guard lk(mu_);
  closing_ = true;
  if (suspended_ && !ended_) {
    suspended_ = false;
    resume_();
  }
}

void HttpStream::OnEnd(std::function<void()> fn) {
  std::lock_guard lk(mu_);
  if (ended_) {
    fn();
    return;
  }
  on_end_ = std::move(fn);
}

HttpResponse Error(int status, std::string_view code, std::string_view message) {
  return {status, "application/json", JsonError(code, message)};
}

int HttpStatusFor(const Status& s) {
  switch (s.code()) {
    case StatusCode::kInvalidArgument: return 400;
    case StatusCode::kNotFound: return 404;
    case StatusCode::kTooLarge: return 413;
    case StatusCode::kUnavailable: return 503;
    default: return 500;
  }
}

HttpResponse ErrorFor(const Status& s) {
  int code = HttpStatusFor(s);
  std::string_view name = code == 400 ? "invalid_argument" : code == 404 ? "not_found" : code == 413 ? "too_large"
                          : code == 503 ? "unavailable" : "internal";
  return Error(code, name, s.message());
}

std::optional<HttpResponse> ParseLimit(const HttpRequest& req, size_t* limit) {
  *limit = 100;
  if (auto it = req.query.find("limit"); it != req.query.end()) {
    char* end = nullptr;
    long v = std::strtol(it->second.c_str(), &end, 10);
    if (it->second.empty() || *end != '\0' || v < 1 || v > 10000) {
      return Error(400, "invalid_value", "limit must be 1 to 10000");
    }
    *limit = static_cast<size_t>(v);
  }
  return std::nullopt;
}

std::string_view ScopeName(Scope s) {
  switch (s) {
    case Scope::kUnset: return "unset";
    case Scope::kPublic: return "public";
    case Scope::kRead: return "read";
    case Scope::kWrite: return "write";
    case Scope::kAdmin: return "admin";
  }
  return "?";
}

unsigned ScopeBit(Scope s) {
  switch (s) {
    case Scope::kRead: return kScopeRead;
    case Scope::kWrite: return kScopeWrite;
    case Scope::kAdmin: return kScopeAdmin;
    default: return 0;
  }
}

bool MatchPattern(std::string_view pattern, std::string_view path, std::vector<std::string>* params) {
  params->clear();
  size_t pi = 0, si = 0;
  while (pi < pattern.size()) {
    if (pattern[pi] != '{') {
      size_t brace = pattern.find('{', pi);
      std::string_view lit = pattern.substr(pi, brace == std::string_view::npos ? std::string_view::npos : brace - pi);
      if (path.substr(si, lit.size()) != lit) return false;
      pi += lit.size();
      si += lit.size();
      continue;
    }
    size_t close = pattern.find('}', pi);
    if (close == std::string_view::npos) return false;
    pi = close + 1;
    if (pi == pattern.size()) {  // the last parameter takes the rest
      if (si >= path.size()) return false;
      params->emplace_back(path.substr(si));
      return true;
    }
    size_t brace = pattern.find('{', pi);
    std::string_view lit = pattern.substr(pi, brace == std::string_view::npos ? std::string_view::npos : brace - pi);
    size_t at = brace == std::string_view::npos ? path.rfind(lit) : path.find(lit, si + 1);
    if (at == std::string_view::npos || at <= si) return false;
    if (brace == std::string_view::npos && at + lit.size() != path.size()) return false;
    params->emplace_back(path.substr(si, at - si));
    si = at;
  }
  return si == path.size();
}

namespace {

size_t LiteralBytes(std::string_view pattern) {
  size_t n = 0;
  bool in = false;
  for (char c : pattern) {
    if (c == '{') in = true;
    if (!in) ++n;
    if (c == '}') in = false;
  }
  return n;
}

}  // namespace

void RouteTable::Add(Route route) {
  if (route.scope == Scope::kUnset) {  // a programming error: caught by any test that starts a server
    std::fprintf(stderr, "portrait: route %s %s declares no scope (public, read, write or admin)\n",
                 route.method.c_str(), route.pattern.c_str());
    std::abort();
  }
  if (route.label.empty()) route.label = route.pattern;
  routes_.push_back(std::move(route));
  by_match_.resize(routes_.size());
  for (size_t i = 0; i < routes_.size(); ++i) by_match_[i] = i;
  std::stable_sort(by_match_.begin(), by_match_.end(), [&](size_t a, size_t b) {
    return LiteralBytes(routes_[a].pattern) > LiteralBytes(routes_[b].pattern);
  });
}

const Route* RouteTable::Match(std::string_view method, std::string_view path, std::vector<std::string>* params,
                               bool* path_known, std::string* allowed) const {
  *path_known = false;
  allowed->clear();
  std::string_view known_pattern;
  std::vector<std::string> p;
  for (size_t i : by_match_) {
    const Route& r = routes_[i];
    if (!known_pattern.empty() && r.pattern != known_pattern) continue;
    if (!MatchPattern(r.pattern, path, &p)) continue;
    if (r.method == method) {
      *params = std::move(p);
      return &r;
    }
    known_pattern = r.pattern;
    *path_known = true;
    if (!allowed->empty()) *allowed += " or ";
    *allowed += r.method;
  }
  return nullptr;
}

std::string RouteTable::Hint() const {
  std::string out = "see ";
  std::vector<std::string_view> seen;
  for (const Route& r : routes_) {
    if (std::find(seen.begin(), seen.end(), r.pattern) != seen.end()) continue;
    if (!seen.empty()) out += ", ";
    seen.push_back(r.pattern);
    out += r.pattern;
  }
  return out;
}

std::string RouteTable::Markdown() const {
  std::string out = "| route | scope | what |\n|---|---|---|\n";
  for (const Route& r : routes_) {
    std::string summary;
    for (char c : r.summary) {
      if (c == '|') summary += '\\';  // a bar would end the table cell
      summary += c;
    }
    out += "| `" + r.method + " " + r.pattern + "` | " + std::string(ScopeName(r.scope)) + " | " + summary + " |\n";
  }
  return out;
}

}  // namespace portrait
