// `portrait snapshot import`: offline profiles computed elsewhere (a warehouse) into a snapshot.
#include <simdjson.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "features/offline/batch.h"
#include "core/json.h"
#include "ingest/json_body.h"
#include "features/offline/lazy_loader.h"
#include "ingest/sources/file_source.h"
#include "features/offline/offline_config.h"

namespace portrait {

namespace {

// A CSV cell as JSON: JSON text when it is JSON (arrays, objects, numbers, quoted strings,
// true/false/null), else the cell as a string.
std::string CellToJson(const std::string& cell, simdjson::dom::parser& parser) {
  if (cell.empty()) return "null";
  simdjson::dom::element el;
  if (!parser.parse(cell).get(el)) return cell;
  std::string out;
  AppendJsonString(&out, cell);
  return out;
}

class Importer {
 public:
  Importer(const Config& config, const ImportOptions& o, SnapshotWriter* writer, ImportStats* stats, TimestampMs as_of)
      : config_(config), o_(o), writer_(writer), stats_(stats), as_of_(as_of) {}

  // One row as a JSON object of columns.
  void Row(size_t line_no, std::string_view json) {
    ++stats_->rows;
    std::string problem;
    if (!Check(json, &problem)) {
      ++stats_->bad_rows;
      if (stats_->problems.size() < 20) stats_->problems.push_back("line " + std::to_string(line_no) + ": " + problem);
    }
  }
  Status status() const { return write_status_; }

 private:
  bool Check(std::string_view json, std::string* problem) {
    simdjson::dom::element doc;
    simdjson::dom::object obj;
    if (auto err = parser_.parse(json.data(), json.size()).get(doc)) {
      *problem = std::string("not JSON: ") + simdjson::error_message(err);
      return false;
    }
    if (doc.get_object().get(obj)) {
      *problem = "a row must be a JSON object";
      return false;
    }
    std::string uid;
    row_.clear();
    JsonWriter w(&row_);
    w.BeginObject();
    for (auto f : obj) {
      std::string_view col = f.key;
      if (col == o_.uid_column) {
        BodyError err;
        if (!ReadIdField(f.value, o_.uid_column, &uid, &err)) {
          *problem = err.message;
          return false;
        }
        continue;
      }
      if (f.value.is_null()) continue;  // no value for this user
      auto mapped = o_.map.find(std::string(col));
      std::string tag = mapped != o_.map.end() ? mapped->second : std::string(col);
      if (!config_.tags.FindDeclared(tag)) {
        if (o_.ignore_unknown) continue;
        *problem = "column \"" + std::string(col) + "\" is no declared tag; map it with --map " + std::string(col) +
                   "=TAG or pass --ignore-unknown";
        return false;
      }
      w.Key(tag).Raw(simdjson::minify(f.value));
    }
    w.EndObject();
    if (uid.empty()) {
      *problem = "the row has no \"" + o_.uid_column + "\" (the user id column; --uid-column names another)";
      return false;
    }
    // The values must load: checked with the loader's own conversion.
    simdjson::dom::element row;
    if (check_parser_.parse(row_).get(row)) {
      *problem = "internal: the row did not re-parse";
      return false;
    }
    actions_.clear();
    size_t unknown = 0;
    if (!OfflineRowToActions(row, config_.tags, uid, as_of_, true, &actions_, &unknown, problem)) return false;
    if (Status st = writer_->Put(uid, row_); !st.ok() && write_status_.ok()) write_status_ = st;
    return true;
  }

  const Config& config_;
  const ImportOptions& o_;
  SnapshotWriter* writer_;
  ImportStats* stats_;
  TimestampMs as_of_;
  simdjson::dom::parser parser_, check_parser_;
  std::string row_;
  std::vector<Action> actions_;
  Status write_status_;
};

}  // namespace

Result<ImportStats> ImportSnapshot(const Config& config, const std::string& date, const std::string& file,
                                   const ImportOptions& o) {
  auto start = std::chrono::steady_clock::now();
  if (!DayStartMs(date)) return Status::InvalidArgument("--date \"" + date + "\" is not a date YYYY-MM-DD");
  if (o.format != "ndjson" && o.format != "csv") {
    return Status::InvalidArgument("--format \"" + o.format + "\" is unknown; use ndjson or csv");
  }
  for (const auto& [col, tag] : o.map) {
    if (!config.tags.FindDeclared(tag)) return Status::InvalidArgument("--map " + col + "=" + tag + ": no tag \"" + tag + "\"");
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) return Status::NotFound("cannot open " + file);
  std::error_code size_error;
  const uint64_t file_bytes = o.progress ? std::filesystem::file_size(file, size_error) : 0;
  uint64_t read_bytes = 0;
  ASSIGN_OR_RETURN(auto writer, SnapshotWriter::Create(SnapshotDir(config), date, "import"));
  ImportStats stats;
  Importer importer(config, o, writer.get(), &stats, SnapshotAsOf(date));
  std::string line;
  size_t line_no = 0;
  std::vector<std::string> header;
  simdjson::dom::parser cell_parser;
  std::string json;
  while (std::getline(in, line)) {
    ++line_no;
    read_bytes += line.size() + 1;
    if (o.progress && line_no % 1024 == 0) o.progress(read_bytes, size_error ? 0 : file_bytes);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (o.format == "ndjson") {
      importer.Row(line_no, line);
      continue;
    }
    std::vector<std::string> cells = SplitCsv(line, o.delimiter);
    if (header.empty()) {
      header = std::move(cells);
      continue;
    }
    json.clear();
    JsonWriter w(&json);
    w.BeginObject();
    for (size_t i = 0; i < header.size() && i < cells.size(); ++i) {
      auto mapped = o.map.find(header[i]);
      const TagConfig* tag = config.tags.FindDeclared(mapped != o.map.end() ? mapped->second : header[i]);
      bool text = header[i] == o.uid_column ||
                  (tag && tag->type == TagType::kString && !cells[i].empty() && cells[i][0] != '"');
      if (text) w.Key(header[i]).String(cells[i]);
      else w.Key(header[i]).Raw(CellToJson(cells[i], cell_parser));
    }
    w.EndObject();
    if (cells.size() != header.size()) {
      ++stats.rows;
      ++stats.bad_rows;
      if (stats.problems.size() < 20) {
        stats.problems.push_back("line " + std::to_string(line_no) + ": " + std::to_string(cells.size()) +
                                 " cells, the header has " + std::to_string(header.size()));
      }
      continue;
    }
    importer.Row(line_no, json);
  }
  RETURN_IF_ERROR(importer.status());
  if (stats.bad_rows > o.max_bad_rows) {
    return Status::InvalidArgument(std::to_string(stats.bad_rows) + " of " + std::to_string(stats.rows) +
                                   " rows are bad (more than --max-bad-rows " + std::to_string(o.max_bad_rows) +
                                   "); nothing was imported. First: " + stats.problems.front());
  }
  ASSIGN_OR_RETURN(stats.snapshot, writer->Commit(config.section<BatchConfig>().keep));
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
}

}  // namespace portrait
