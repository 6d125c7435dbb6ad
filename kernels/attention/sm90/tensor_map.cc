// TMA tensor maps of the sm90 kernel. cuTensorMapEncodeTiled is a driver function; it is reached
// through the runtime's cudaGetDriverEntryPointByVersion, so nothing links libcuda and the binary
// still starts on hosts without a driver.
#include <cudaTypedefs.h>

#include <mutex>

#include "kernels/attention/sm90/launch.h"
#include "kernels/attention/sm90/tiles.h"

namespace an1::kernels::attention::sm90 {
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

// A (head_dim, rows, matrices) tensor of 16-bit elements, row-major contiguous, read or written
// in boxes of 64 columns x box_rows rows with the 128-byte swizzle.
CUresult Encode(PFN_cuTensorMapEncodeTiled_v12000 encode, CUtensorMap* map, ElementType dtype,
                const void* base, int64_t head_dim, int64_t rows, int64_t matrices,
                uint32_t box_rows) {
  const cuuint64_t dims[3] = {static_cast<cuuint64_t>(head_dim), static_cast<cuuint64_t>(rows),
                              static_cast<cuuint64_t>(matrices)};
  const cuuint64_t strides[2] = {static_cast<cuuint64_t>(head_dim * 2),
                                 static_cast<cuuint64_t>(rows * head_dim * 2)};
  const cuuint32_t box[3] = {Tiles::kBoxColumns, box_rows, 1};
  const cuuint32_t element_strides[3] = {1, 1, 1};
  return encode(map,
                dtype == ElementType::kBF16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
                                            : CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
                3, const_cast<void*>(base), dims, strides, box, element_strides,
                CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
}

}  // namespace

KernelStatus EncodeTensorMaps(const AttentionParams& p, KernelArgs* args) {
  PFN_cuTensorMapEncodeTiled_v12000 encode = EncodeFunction();
  if (encode == nullptr) {
    return KernelStatus::Error(KernelStatus::Kind::kInternal,
                               "attention sm90: the driver has no cuTensorMapEncodeTiled");
  }
  const int64_t bh = p.batch * p.heads, bhkv = p.batch * p.kv_heads;
  const CUresult results[] = {
      Encode(encode, &args->q_map, p.dtype, p.q, p.head_dim, p.q_len, bh, Tiles::kBlockM),
      Encode(encode, &args->k_map, p.dtype, p.k, p.head_dim, p.kv_len, bhkv, Tiles::kBlockN),
      Encode(encode, &args->v_map, p.dtype, p.v, p.head_dim, p.kv_len, bhkv, Tiles::kBlockN),
      Encode(encode, &args->o_map, p.dtype, p.o, p.head_dim, p.q_len, bh, 64)};
  for (CUresult r : results) {
    if (r != CUDA_SUCCESS) {
      return KernelStatus::Error(KernelStatus::Kind::kInternal,
                                 "attention sm90: cuTensorMapEncodeTiled failed (CUresult " +
                                     std::to_string(static_cast<int>(r)) + ")");
    }
  }
  return KernelStatus::Ok();
}

}  // namespace an1::kernels::attention::sm90
