// The CSV of `an1 bench` (--csv, default bench_logs/llm_bench_results.csv): the old llm_bench
// columns first (same names, same order), then ours; one row per sequence length.
#pragma once

#include <string>
#include <vector>

#include "client/cli/summary.h"

namespace an1::cli {

// The row of one sequence length; a backend that did not run (null) leaves its columns empty.
std::string CsvRow(const BenchFlags& flags, const Shape& shape, const Summary* baseline,
                   const Summary* an1);

// Appends `rows` to `path`, writing the header first to a new or empty file. Refuses (false,
// after printing why) a file with other columns, e.g. an old llm_bench CSV.
bool AppendCsv(const std::string& path, const std::vector<std::string>& rows);

}  // namespace an1::cli
