// The channel figures in Redis (channels.lua).
#include <algorithm>
#include <charconv>
#include <map>

#include "features/channels/channel_store.h"
#include "store/redis/redis_backend.h"

namespace portrait {

extern const char* const kChannelsLua;  // generated from channels.lua

namespace {

double ToDouble(const std::string& s) {
  double d = 0;
  std::from_chars(s.data(), s.data() + s.size(), d);
  return d;
}

// Channel figures: every key of a product shares the hash tag {product} (channels.lua).
std::string ChannelPrefix(std::string_view product) { return RedisTagged("ch:", product, ":"); }

constexpr char kSep = '\x1f';

std::string HourField(TimestampMs hour, std::string_view channel) {
  std::string f = std::to_string(hour);
  f.push_back(kSep);
  f.append(channel);
  return f;
}

int64_t ToInt(const std::string& s) {
  int64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

class RedisChannels : public ChannelStore {
 public:
  explicit RedisChannels(RedisBackend* redis) : redis_(redis) {}

  Status Observe(std::span<const Sighting> sightings) override {
    // One call per product, in order of the sightings' products.
    std::map<std::string_view, RedisCommand> calls;
    for (const Sighting& s : sightings) {
      auto [it, fresh] = calls.try_emplace(s.product);
      RedisCommand& c = it->second;
      if (fresh) {
        std::string b = ChannelPrefix(s.product);
        c = RedisFunctionCall("portrait_seen", {b + "id", b + "rt", b + "chs"});
        c.args.push_back(b);
        c.args.push_back("0");
      }
      c.args.push_back(s.uid);
      c.args.push_back(s.device);
      c.args.push_back(std::to_string(s.ts));
      c.args.push_back(s.channel);
    }
    std::vector<RedisCommand> cmds;
    for (auto& [product, c] : calls) {
      size_t header = 3 + 3 + 2;  // FCALL name numkeys, 3 keys, B n
      c.args[header - 1] = std::to_string((c.args.size() - header) / 4);
      cmds.push_back(std::move(c));
    }
    return redis_->Run(cmds);
  }

  Result<ChannelFigures> Read(std::string_view product, TimestampMs from, TimestampMs to) override {
    ChannelFigures f;
    const std::string b = ChannelPrefix(product);
    std::vector<RedisReply> replies;
    RETURN_IF_ERROR(redis_->Run({RedisCommand{{"SMEMBERS", b + "chs"}, b + "chs"}}, &replies));
    std::vector<std::string> channels;
    for (const auto& e : replies[0].elements) channels.push_back(e.str);
    std::sort(channels.begin(), channels.end());
    std::vector<std::pair<TimestampMs, const std::string*>> fields;
    for (TimestampMs h = FloorTo(from + kHourMs - 1, kHourMs); h < to; h += kHourMs) {  // hours starting in range
      for (const auto& ch : channels) fields.emplace_back(h, &ch);
    }
    RedisCommand rt{{"HMGET", b + "rt"}, b + "rt"}, cal{{"HMGET", b + "cal"}, b + "cal"}, days{{"HMGET", b + "days"}, b + "days"};
    for (const auto& [h, ch] : fields) {
      rt.args.push_back(HourField(h, *ch));
      cal.args.push_back(rt.args.back());
    }
    std::vector<TimestampMs> day_starts;
    for (TimestampMs d = FloorTo(from, kDayMs); d < to; d += kDayMs) {
      day_starts.push_back(d);
      days.args.push_back(std::to_string(d));
    }
    std::vector<RedisCommand> cmds;
    if (!fields.empty()) {
      cmds.push_back(std::move(rt));
      cmds.push_back(std::move(cal));
    }
    if (!day_starts.empty()) cmds.push_back(std::move(days));
    RETURN_IF_ERROR(redis_->Run(cmds, &replies));
    size_t next = 0;
    if (!fields.empty()) {
      for (int which = 0; which < 2; ++which, ++next) {
        const auto& values = replies[next].elements;
        for (size_t i = 0; i < fields.size() && i < values.size(); ++i) {
          if (values[i].type != RedisReply::Type::kString) continue;
          int64_t n = ToInt(values[i].str);
          if (n != 0) (which == 0 ? f.realtime : f.calibrated).push_back({fields[i].first, *fields[i].second, n});
        }
      }
    }
    if (!day_starts.empty()) {
      const auto& values = replies[next].elements;
      for (size_t i = 0; i < day_starts.size() && i < values.size(); ++i) {
        if (values[i].type == RedisReply::Type::kString) f.days.push_back({day_starts[i], values[i].str});
      }
    }
    return f;
  }

  Result<std::vector<std::optional<Identity>>> Lookup(std::string_view product,
                                                     std::span<const std::string> keys) override {
    std::vector<std::optional<Identity>> out(keys.size());
    if (keys.empty()) return out;
    const std::string b = ChannelPrefix(product);
    constexpr size_t kChunk = 1000;
    for (size_t at = 0; at < keys.size(); at += kChunk * 16) {
      std::vector<RedisCommand> cmds;
      for (size_t i = at; i < std::min(keys.size(), at + kChunk * 16); i += kChunk) {
        RedisCommand c{{"HMGET", b + "id"}, b + "id"};
        for (size_t j = i; j < std::min(keys.size(), i + kChunk); ++j) c.args.push_back(keys[j]);
        cmds.push_back(std::move(c));
      }
      std::vector<RedisReply> replies;
      RETURN_IF_ERROR(redis_->Run(cmds, &replies));
      size_t i = at;
      for (const auto& r : replies) {
        for (const auto& v : r.elements) {
          if (v.type == RedisReply::Type::kString) {
            size_t x = v.str.find(kSep);
            size_t y = x == std::string::npos ? x : v.str.find(kSep, x + 1);
            if (y == std::string::npos) return Status::Corruption("channel registry record of " + keys[i] + " is unreadable");
            out[i] = Identity{static_cast<TimestampMs>(ToDouble(v.str.substr(0, x))), v.str.substr(x + 1, y - x - 1),
                              v.str.substr(y + 1)};
          }
          ++i;
        }
      }
    }
    return out;
  }

  Status WriteCalibration(std::string_view product, TimestampMs day, std::span<const ChannelCount> counts,
                          std::string_view summary) override {
    const std::string b = ChannelPrefix(product);
    RedisCommand c = RedisFunctionCall("portrait_calibrate", {b + "cal", b + "days", b + "chs"});
    c.args.push_back(b);
    c.args.push_back(std::to_string(day));
    c.args.push_back(std::string(summary));
    size_t n_at = c.args.size();
    c.args.push_back("0");
    size_t n = 0;
    for (const auto& cc : counts) {
      if (cc.count == 0) continue;
      c.args.push_back(std::to_string(cc.hour));
      c.args.push_back(cc.channel);
      c.args.push_back(std::to_string(cc.count));
      ++n;
    }
    c.args[n_at] = std::to_string(n);
    return redis_->Run({c});
  }

 private:
  RedisBackend* redis_;
};

}  // namespace

Result<std::unique_ptr<ChannelStore>> OpenRedisChannels(RedisBackend* redis) {
  RETURN_IF_ERROR(redis->AddFunctionLibrary(kChannelsLua));
  return std::unique_ptr<ChannelStore>(new RedisChannels(redis));
}

}  // namespace portrait
