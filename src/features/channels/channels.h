// The channels feature: new users per (product, channel, event-time hour) in real time,
// recomputed from the archive by calibration (ARCHITECTURE.md "Channel new users").
//
// - Its stage queues each event's sighting unless the worker's first-seen filter shows it
//   changes nothing (new_users.h), and writes the batch's sightings to the registry before
//   the batch's checkpoints (a replay re-sends them, which changes nothing).
// - State (channel_store.h, beside the profiles on every backend): the registry of first
//   events per identity and the counts. Erasure keeps the registry record of an erased id,
//   so the user does not count as new again; it holds the id, the first event's time and
//   channel, and a device's owner, nothing else.
// - `portrait calibrate` / POST /v1/channels:calibrate / [channels] calibrate_at.
// Routes: GET /v1/channels/new-users, POST /v1/channels:calibrate.
#pragma once

#include <memory>

#include "features/feature.h"

namespace portrait {

std::unique_ptr<Feature> MakeChannelsFeature();

}  // namespace portrait
