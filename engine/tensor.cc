#include "engine/tensor.h"

namespace an1 {

std::string ShapeToString(const std::vector<int64_t>& shape) {
  constexpr std::size_t kShown = 10;  // messages stay short whatever a client sends
  std::string out = "(";
  for (std::size_t i = 0; i < shape.size() && i < kShown; ++i) {
    if (i) out += ", ";
    out += std::to_string(shape[i]);
  }
  if (shape.size() > kShown) out += ", ... " + std::to_string(shape.size()) + " dimensions";
  return out + ")";
}

}  // namespace an1
