// Element types of the tensors the kernels read and write.
#pragma once

namespace an1::kernels {

enum class ElementType { kF16, kBF16, kF32 };

// "fp16", "bf16", "fp32".
inline const char* ElementTypeName(ElementType type) {
  switch (type) {
    case ElementType::kF16:
      return "fp16";
    case ElementType::kBF16:
      return "bf16";
    case ElementType::kF32:
      return "fp32";
  }
  return "unknown";
}

}  // namespace an1::kernels
