// Small durable files kept by lines (the erasure list, the quarantine journal).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace portrait {

// Creates the file (and its folder) when missing.
Status CreateFileIfMissing(const std::string& path);
// Appends `data` and syncs it to the disk before returning.
Status AppendSynced(const std::string& path, std::string_view data);
// Appends the bytes of the file from `offset` to its end to `out`.
Status ReadFileFrom(const std::string& path, uint64_t offset, std::string* out);

}  // namespace portrait
