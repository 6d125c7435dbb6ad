#include "client/cli/lse.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <limits>
#include <vector>

#include "client/elements.h"
#include "client/npy.h"

namespace an1::cli {

int ReportLse(const std::optional<HostTensor>& lse, const std::string& path) {
  if (!lse) {
    std::cerr << "error: the server returned no log-sum-exp (a server older than return_lse?)\n";
    return kExitError;
  }
  const std::vector<float> values = an1::client::DecodeElements(lse->bytes, lse->dtype);
  float low = std::numeric_limits<float>::infinity(), high = -low;
  std::size_t finite = 0, minus_inf = 0;
  for (float x : values) {
    if (std::isfinite(x)) {
      ++finite;
      low = std::min(low, x);
      high = std::max(high, x);
    } else if (x == -std::numeric_limits<float>::infinity()) {
      ++minus_inf;
    }
  }
  std::printf("lse: %s %s: ", DTypeName(lse->dtype), ShapeString(lse->shape).c_str());
  if (finite > 0) {
    std::printf("min %.6g max %.6g over %zu finite rows", low, high, finite);
  } else {
    std::printf("no finite rows");
  }
  std::printf(", %zu rows -inf (see no key)\n", minus_inf);
  if (path.empty()) return 0;
  std::string error;
  if (!an1::client::WriteNpy(path, an1::client::TensorToNpy(*lse), &error)) {
    std::cerr << "error: " << error << "\n";
    return kExitError;
  }
  std::printf("wrote %s\n", path.c_str());
  return 0;
}

}  // namespace an1::cli
