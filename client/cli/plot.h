// The PNG of an `an1 bench` sweep (--plot): latency and TFLOP/s per backend against the sequence
// length, drawn by gnuplot.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "client/cli/summary.h"

namespace an1::cli {

// The figures of each sequence length of a sweep, by backend.
using SweepResults = std::vector<std::pair<int64_t, std::map<v1::Backend, Summary>>>;

// Writes PNG.dat and PNG.gp beside the PNG (so that a host without gnuplot can hand them to one
// that has it) and runs gnuplot. False, after printing why, when gnuplot fails or is missing.
// `png` must hold no quote, backslash or newline (it goes into a shell command and a script).
bool Plot(const std::string& png, const BenchFlags& flags, const SweepResults& results);

}  // namespace an1::cli
