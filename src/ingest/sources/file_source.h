// FileSource: tails a file of NDJSON events or CSV rows (with a column mapping) and
// ingests complete lines in batches.
//
// Position: after each durable batch it saves (inode, byte offset) to
// DATA/sources/NAME.pos, so a restart resumes where it left off; a crash between the
// ingest and the save re-reads at most one batch, whose events are then dropped as
// repeats by the collector. Rotation: when the path names a new file, the old one (still
// open, or found again by inode in the same directory after a restart) is read to its end
// first, then the new file from its start. A file truncated in place starts over.
#pragma once

#include "ingest/source.h"

namespace portrait {

// Splits one CSV line into cells (RFC 4180 quoting: "a,b" and "" for a quote; a quoted
// cell cannot span lines).
std::vector<std::string> SplitCsv(std::string_view row, char delim);

// Turns one CSV row into an event's JSON per the source's columns (typed by the event
// type's declared props), or explains why it cannot.
Result<std::string> CsvRowToJson(std::string_view row, const SourceConfig& source, const Config& config);

// Turns lines (NDJSON events, or CSV rows per the source's mapping) into a body for
// Collector::Ingest, padded; a CSV row that cannot be mapped goes in as a JSON string, so
// the collector rejects and keeps it, and `unreadable` gets (line index, why).
std::string LinesToBody(const std::vector<std::string_view>& lines, const SourceConfig& source, const Config& config,
                        std::vector<std::pair<size_t, std::string>>* unreadable);

Result<std::unique_ptr<PullSource>> MakeFileSource(const SourceConfig& source, const Config& config, Collector* collector,
                                               const std::string& data_dir, MetricsRegistry* metrics);

}  // namespace portrait
