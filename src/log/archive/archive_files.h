// Reading the archive (archiver.h's layout) for the offline batch and channel calibration.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace portrait {

// The archive's part files of dates [first_date, last_date] (first_date empty = all), by
// partition, each partition's in path order. Files being written (.tmp) are left out.
Result<std::map<int, std::vector<std::string>>> ListArchive(const std::string& dir, const std::string& first_date,
                                                            const std::string& last_date);

// Writes `data` gzipped (level 1..9) to `path` through a temporary file, fsynced, then
// renamed over it: readers see the old file or the new one, never a part.
Status WriteGzipFile(const std::string& path, std::string_view data, int level);

// The whole decompressed content of a gzip file.
Status ReadGzip(const std::string& path, std::string* out);

}  // namespace portrait
