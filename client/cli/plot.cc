// The gnuplot PNG of a sweep (plot.h).
#include "client/cli/plot.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

namespace an1::cli {

bool Plot(const std::string& png, const BenchFlags& flags, const SweepResults& results) {
  {
    std::ofstream dat(png + ".dat");
    dat << "# seq_len baseline_ms an1_ms baseline_tflops an1_tflops\n";
    for (const auto& [seq, by_backend] : results) {
      auto get = [&](v1::Backend b, bool tflops) {
        auto it = by_backend.find(b);
        if (it == by_backend.end() || it->second.requests == 0) return std::string("NaN");
        return FormatNumber(tflops ? it->second.tflops : it->second.latency_ms);
      };
      dat << seq << " " << get(v1::BACKEND_BASELINE, false) << " " << get(v1::BACKEND_AN1, false)
          << " " << get(v1::BACKEND_BASELINE, true) << " " << get(v1::BACKEND_AN1, true) << "\n";
    }
  }
  const std::string title = std::string("attention B=") + std::to_string(flags.batch) +
                            " H=" + std::to_string(flags.heads) +
                            " D=" + std::to_string(flags.head_dim) + " " + DTypeName(flags.dtype) +
                            (flags.causal ? " causal" : " dense");
  {
    std::ofstream gp(png + ".gp");
    const std::string dat = std::filesystem::path(png + ".dat").filename().string();
    gp << "set terminal pngcairo size 1400,560 font ',11'\n"
       << "set output '" << std::filesystem::path(png).filename().string() << "'\n"
       << "set datafile missing 'NaN'\nset logscale x 2\nset grid\nset key top left\n"
       << "set xlabel 'sequence length'\nset multiplot layout 1,2 title '" << title << "'\n"
       << "set ylabel 'latency (ms, median)'\nset logscale y\n"
       << "plot '" << dat << "' using 1:2 with linespoints title 'baseline', '' using 1:3 "
       << "with linespoints title 'an1'\n"
       << "unset logscale y\nset ylabel 'TFLOP/s (causal-aware)'\n"
       << "plot '" << dat << "' using 1:4 with linespoints title 'baseline', '' using 1:5 "
       << "with linespoints title 'an1'\nunset multiplot\n";
  }
  const std::string dir = std::filesystem::path(png).has_parent_path()
                              ? std::filesystem::path(png).parent_path().string()
                              : std::string(".");
  const std::string command = "cd '" + dir + "' && gnuplot '" +
                              std::filesystem::path(png + ".gp").filename().string() + "'";
  if (std::system(command.c_str()) != 0) {
    std::cerr << "error: gnuplot failed or is not installed; the plot's data and script are in "
              << png << ".dat and " << png << ".gp (run gnuplot there)\n";
    return false;
  }
  std::printf("wrote %s\n", png.c_str());
  return true;
}

}  // namespace an1::cli
