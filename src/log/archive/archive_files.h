// Reading the archive (archiver.h's layout) for the offline batch, channel calibration and
// the erasure rewrite, and the file helpers the archiver and its compaction write with.
//
// Part names: part-<partition>-<first offset>.ndjson.gz, written by one flush, and
// part-<partition>-<lo>-<hi>.ndjson.gz, written by compaction (compaction.h): it holds the
// events of every part file of that partition in the same hour directory whose offsets are
// within [lo, hi] (part files, and older merged files), which it replaces. Listing skips a
// file that such a merged file covers, so a reader counts each event once whether the
// inputs of a merge are still there or not.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace portrait {

// A part file's name: its partition and the first offsets it covers (lo == hi for a flush's).
struct PartName {
  int partition = 0;
  int64_t lo = 0, hi = 0;
  bool merged = false;  // part-P-LO-HI: written by compaction
};
std::optional<PartName> ParsePartName(std::string_view file_name);
std::string PartFileName(int partition, int64_t lo, int64_t hi);  // lo == hi: a flush's name

// Of the part files in one hour directory (file names), those a reader reads: every file
// but the ones a merged file (another, whose range holds theirs) covers, and `covered`
// (when given) the others. Names that are not part names are kept.
std::vector<std::string> VisibleParts(const std::vector<std::string>& names, std::vector<std::string>* covered = nullptr);

// The archive's part files of dates [first_date, last_date] (first_date empty = all), by
// partition, each partition's in path order. Files being written (.tmp) are left out, and
// so are part files a merged file covers (see above).
Result<std::map<int, std::vector<std::string>>> ListArchive(const std::string& dir, const std::string& first_date,
                                                            const std::string& last_date);

// Writes `data` gzipped (level 1..9) to `path` through a temporary file, fsynced, then
// renamed over it: readers see the old file or the new one, never a part.
Status WriteGzipFile(const std::string& path, std::string_view data, int level);

// The whole decompressed content of a gzip file.
Status ReadGzip(const std::string& path, std::string* out);

// fsync of a directory, so that the creations, renames and removals in it are durable.
Status SyncDir(const std::string& dir);

}  // namespace portrait
