#include "delivery/webhook.h"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <vector>

namespace portrait {

namespace {

// curl_global_init is not thread-safe; the first sink made does it, once per process.
void InitCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// One handle of the pool and its error text.
struct Conn {
  CURL* curl = nullptr;
  char error[CURL_ERROR_SIZE] = {};
};

// The answer's body is read (so the connection stays usable) and dropped: a receiver may
// echo the payload, which must not reach the logs through an error message.
size_t DropAnswer(char*, size_t size, size_t n, void*) { return size * n; }

}  // namespace

// Handles are made on first need, at most `size`; an idle one is taken newest first, so a
// sink that delivers one item at a time keeps using one connection.
class WebhookSink::Pool {
 public:
  Pool(const std::string& url, const WebhookOptions& o) : url_(url), options_(o) {}
  ~Pool() {
    for (auto& c : all_) curl_easy_cleanup(c->curl);
  }

  Result<Conn*> Acquire() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return !idle_.empty() || all_.size() < static_cast<size_t>(std::max(1, options_.connections)); });
    if (!idle_.empty()) {
      Conn* c = idle_.back();
      idle_.pop_back();
      return c;
    }
    auto c = std::make_unique<Conn>();
    c->curl = curl_easy_init();
    if (!c->curl) return Status::Internal("webhook " + url_ + ": curl_easy_init failed");
    Configure(c.get());
    all_.push_back(std::move(c));
    return all_.back().get();
  }

  void Release(Conn* c) {
    {
      std::lock_guard lk(mu_);
      idle_.push_back(c);
    }
    cv_.notify_one();
  }

 private:
  // What stays the same for every POST through the handle.
  void Configure(Conn* c) {
    CURL* h = c->curl;
    curl_easy_setopt(h, CURLOPT_URL, url_.c_str());
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);  // timeouts without SIGALRM: several threads
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.timeout_ms));
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.timeout_ms));
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->error);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, DropAnswer);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (!options_.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, options_.ca_file.c_str());
  }

  const std::string url_;
  const WebhookOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Conn>> all_;
  std::vector<Conn*> idle_;
};

WebhookSink::WebhookSink(std::string url, WebhookOptions options, MetricsRegistry* m)
    : url_(std::move(url)), options_(std::move(options)) {
  InitCurlOnce();
  pool_ = std::make_unique<Pool>(url_, options_);
  posted_ = m->GetCounter("portrait_webhook_posts_total", "Items POSTed to the webhook");
  failed_ = m->GetCounter("portrait_webhook_failures_total",
                          "Webhook POSTs that failed (no answer, TLS failure, or not 2xx); each is retried");
  seconds_ = m->GetHistogram("portrait_webhook_seconds", "Time of one webhook POST");
}

WebhookSink::~WebhookSink() = default;

Status WebhookSink::Deliver(std::string_view key, std::string_view payload) {
  ASSIGN_OR_RETURN(Conn * c, pool_->Acquire());
  const auto start = std::chrono::steady_clock::now();
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip for larger bodies
  if (!key.empty()) headers = curl_slist_append(headers, ("Idempotency-Key: " + std::string(key)).c_str());
  c->error[0] = '\0';
  curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(payload.size()));
  curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, payload.data());
  const CURLcode rc = curl_easy_perform(c->curl);
  long code = 0;
  curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, nullptr);
  curl_slist_free_all(headers);
  std::string error = c->error[0] ? c->error : curl_easy_strerror(rc);
  pool_->Release(c);

  seconds_->Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  posted_->Inc();
  if (rc != CURLE_OK) {
    failed_->Inc();
    if (rc == CURLE_OPERATION_TIMEDOUT) {
      return Status::Unavailable("webhook " + url_ + ": no answer within " + std::to_string(options_.timeout_ms) +
                                 " ms (" + error + ")");
    }
    return Status::Unavailable("webhook " + url_ + ": " + error);
  }
  if (code < 200 || code > 299) {
    failed_->Inc();
    return Status::Unavailable("webhook " + url_ + " answered " + std::to_string(code));
  }
  return Status::Ok();
}

}  // namespace portrait
