// The channel routes (channels.cc declares them in the route table).
#pragma once

#include "core/config.h"
#include "core/http.h"
#include "core/metrics.h"
#include "features/channels/channel_store.h"
#include "features/channels/channels_config.h"

namespace portrait {

// GET /v1/channels/new-users
HttpResponse GetNewUsers(const ChannelsConfig& config, ChannelStore* channels, const HttpRequest& req);
// POST /v1/channels:calibrate?date=D
HttpResponse PostCalibrate(const Config& config, ChannelStore* channels, MetricsRegistry* metrics,
                           const HttpRequest& req);

}  // namespace portrait
