#include "kernels/attention/common/tensor_map.h"

#include <cudaTypedefs.h>

#include <mutex>
#include <string>

namespace an1::kernels::attention {
namespace {

PFN_cuTensorMapEncodeTiled_v12000 EncodeFunction() {
  static std::once_flag once;
  static PFN_cuTensorMapEncodeTiled_v12000 encode = nullptr;
  std::call_once(once, [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault,
                                         &found) == cudaSuccess &&
        found == cudaDriverEntryPointSuccess) {
      encode = reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(fn);
    }
  });
  return encode;
}

CUtensorMapL2promotion Promotion(int bytes) {
  switch (bytes) {
    case 0:
      return CU_TENSOR_MAP_L2_PROMOTION_NONE;
    case 64:
      return CU_TENSOR_MAP_L2_PROMOTION_L2_64B;
    case 128:
      return CU_TENSOR_MAP_L2_PROMOTION_L2_128B;
    default:
      return CU_TENSOR_MAP_L2_PROMOTION_L2_256B;
  }
}

}  // namespace

KernelStatus EncodeTiles3d(const char* kernel, CUtensorMap* map, ElementType dtype,
                           const void* base, const int64_t (&dims)[3],
                           const int64_t (&stride_bytes)[2], const uint32_t (&box)[3],
                           int l2_promotion_bytes) {
  PFN_cuTensorMapEncodeTiled_v12000 encode = EncodeFunction();
  if (encode == nullptr) {
    return KernelStatus::Error(
        KernelStatus::Kind::kInternal,
        std::string("attention ") + kernel + ": the driver has no cuTensorMapEncodeTiled");
  }
  const cuuint64_t global_dims[3] = {static_cast<cuuint64_t>(dims[0]),
                                     static_cast<cuuint64_t>(dims[1]),
                                     static_cast<cuuint64_t>(dims[2])};
  const cuuint64_t strides[2] = {static_cast<cuuint64_t>(stride_bytes[0]),
                                 static_cast<cuuint64_t>(stride_bytes[1])};
  const cuuint32_t box_dims[3] = {box[0], box[1], box[2]};
  const cuuint32_t element_strides[3] = {1, 1, 1};
  const CUresult r =
      encode(map,
             dtype == ElementType::kBF16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
                                         : CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
             3, const_cast<void*>(base), global_dims, strides, box_dims, element_strides,
             CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
             Promotion(l2_promotion_bytes), CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS) {
    return KernelStatus::Error(KernelStatus::Kind::kInternal,
                               std::string("attention ") + kernel +
                                   ": cuTensorMapEncodeTiled failed (CUresult " +
                                   std::to_string(static_cast<int>(r)) + ")");
  }
  return KernelStatus::Ok();
}

KernelStatus EncodeRowTiles(const char* kernel, CUtensorMap* map, ElementType dtype,
                            const void* base, int64_t head_dim, int64_t rows, int64_t matrices,
                            uint32_t box_rows, int l2_promotion_bytes) {
  return EncodeTiles3d(kernel, map, dtype, base, {head_dim, rows, matrices},
                       {head_dim * 2, rows * head_dim * 2}, {kTmaBoxColumns, box_rows, 1},
                       l2_promotion_bytes);
}

}  // namespace an1::kernels::attention
