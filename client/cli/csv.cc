// The bench CSV (csv.h).
#include "client/cli/csv.h"

#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>

namespace an1::cli {
namespace {

const char* const kCsvHeader =
    "baseline_latency_ms,baseline_tflops,an1_latency_ms,an1_tflops,speedup,batch_size,seq_len,"
    "n_heads,head_dim,dtype,n_kv_heads,causal,transport,concurrency,baseline_tflops_dense,"
    "an1_tflops_dense,baseline_p99_ms,an1_p99_ms,baseline_server_ms,an1_server_ms,"
    "baseline_e2e_ms,an1_e2e_ms,baseline_e2e_p99_ms,an1_e2e_p99_ms,baseline_tokens_per_s,"
    "an1_tokens_per_s,baseline_j_per_token,an1_j_per_token,baseline_requests,an1_requests,"
    "baseline_errors,an1_errors";

}  // namespace

std::string CsvRow(const BenchFlags& flags, const Shape& shape, const Summary* baseline,
                   const Summary* an1) {
  auto field = [](const Summary* s, auto get) { return s ? get(*s) : std::string(); };
  auto latency = [](const Summary& s) { return FormatNumber(s.latency_ms); };
  auto tflops = [](const Summary& s) { return FormatNumber(s.tflops, 3); };
  std::string speedup;
  if (baseline && an1 && an1->latency_ms > 0)
    speedup = FormatNumber(baseline->latency_ms / an1->latency_ms, 3);
  std::string row = field(baseline, latency) + "," + field(baseline, tflops) + "," +
                    field(an1, latency) + "," + field(an1, tflops) + "," + speedup + "," +
                    std::to_string(shape.batch) + "," + std::to_string(shape.seq_len) + "," +
                    std::to_string(shape.heads) + "," + std::to_string(shape.head_dim) + "," +
                    DTypeName(flags.dtype) + "," + std::to_string(shape.kv_heads) + "," +
                    (flags.causal ? "1" : "0") + "," + flags.transport + "," +
                    std::to_string(flags.concurrency);
  const std::vector<std::function<std::string(const Summary&)>> pairs = {
      [](const Summary& s) { return FormatNumber(s.tflops_dense, 3); },
      [](const Summary& s) { return FormatNumber(s.p99_ms); },
      [](const Summary& s) { return FormatNumber(s.server_ms); },
      [](const Summary& s) { return FormatNumber(s.e2e_ms); },
      [](const Summary& s) { return FormatNumber(s.e2e_p99_ms); },
      [](const Summary& s) { return FormatNumber(s.tokens_per_s, 1); },
      [](const Summary& s) {
        if (!s.joules_per_token) return std::string();
        char text[32];
        std::snprintf(text, sizeof(text), "%.6g", *s.joules_per_token);
        return std::string(text);
      },
      [](const Summary& s) { return std::to_string(s.requests); },
      [](const Summary& s) { return std::to_string(s.errors); }};
  for (const auto& get : pairs) row += "," + field(baseline, get) + "," + field(an1, get);
  return row;
}

bool AppendCsv(const std::string& path, const std::vector<std::string>& rows) {
  const std::filesystem::path file(path);
  std::error_code ec;
  if (file.has_parent_path()) std::filesystem::create_directories(file.parent_path(), ec);
  const bool fresh =
      !std::filesystem::exists(file, ec) || std::filesystem::file_size(file, ec) == 0;
  if (!fresh) {  // append only to a CSV with our columns (an old llm_bench file has fewer)
    std::ifstream in(path);
    std::string header;
    std::getline(in, header);
    if (header != kCsvHeader) {
      std::cerr << "error: " << path << " has other columns than an1 bench writes; give another "
                << "--csv path\n";
      return false;
    }
  }
  std::ofstream out(path, std::ios::app);
  if (fresh) out << kCsvHeader << "\n";
  for (const std::string& row : rows) out << row << "\n";
  out.close();
  if (!out) {
    std::cerr << "error: cannot write " << path << "\n";
    return false;
  }
  return true;
}

}  // namespace an1::cli
