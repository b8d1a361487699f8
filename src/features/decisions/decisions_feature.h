// The decisions feature: [[decisions.rules]] evaluated per event in event time
// (decisions.h), the `decisions` topic and its outbox, the webhook delivery (delivery/topic_feed.h),
// the live feed, and rule reload (POST /v1/admin/reload, SIGHUP).
//
// - Its stage keeps the batch's events a rule reads, and before the batch's profile write
//   reads the users' rule states, decides (profile tests see the batch's pending Actions),
//   appends new decisions to the topic and writes the states; after the write it counts.
// - State (decision_store.h, beside the profiles on every backend): rule state per user and
//   recent decisions per user, both erased with the user. The `decisions` topic keeps the
//   decisions already sent until its retention, like every log topic.
// Routes: GET /v1/decisions/{uid}, GET /v1/decisions/stream.
#pragma once

#include <memory>

#include "features/feature.h"

namespace portrait {

std::unique_ptr<Feature> MakeDecisionsFeature();

}  // namespace portrait
