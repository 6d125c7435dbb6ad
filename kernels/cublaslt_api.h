// The cuBLASLt entry points, loaded at run time with dlopen("libcublasLt.so.13").
//
// Why not link it: libcublasLt carries about 94 KB of static TLS, which stops civetweb (the
// metrics server) from creating its threads when the library is NEEDED by the process, and a
// linked library would also stop the binary from starting on hosts without CUDA
// (docs/ARCHITECTURE.md, "Toolchain facts"). The table is typed from cublasLt.h, so a signature
// change breaks the build, not the run. Loaded once; thread-safe.
#pragma once

#include <cublasLt.h>

#include <string>

namespace an1::kernels {

struct CublasLtApi {
  decltype(&cublasLtCreate) Create;
  decltype(&cublasLtDestroy) Destroy;
  decltype(&cublasLtGetStatusString) GetStatusString;
  decltype(&cublasLtGetVersion) GetVersion;
  decltype(&cublasLtMatmulDescCreate) MatmulDescCreate;
  decltype(&cublasLtMatmulDescDestroy) MatmulDescDestroy;
  decltype(&cublasLtMatmulDescSetAttribute) MatmulDescSetAttribute;
  decltype(&cublasLtMatrixLayoutCreate) MatrixLayoutCreate;
  decltype(&cublasLtMatrixLayoutDestroy) MatrixLayoutDestroy;
  decltype(&cublasLtMatrixLayoutSetAttribute) MatrixLayoutSetAttribute;
  decltype(&cublasLtMatmulPreferenceCreate) MatmulPreferenceCreate;
  decltype(&cublasLtMatmulPreferenceDestroy) MatmulPreferenceDestroy;
  decltype(&cublasLtMatmulPreferenceSetAttribute) MatmulPreferenceSetAttribute;
  decltype(&cublasLtMatmulAlgoGetHeuristic) MatmulAlgoGetHeuristic;
  decltype(&cublasLtMatmul) Matmul;
};

// Returns the loaded table, or nullptr with the reason in *error (library or symbol missing).
const CublasLtApi* LoadCublasLt(std::string* error);

}  // namespace an1::kernels
