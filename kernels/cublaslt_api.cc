#include "kernels/cublaslt_api.h"

#include <dlfcn.h>

#include <mutex>

namespace an1::kernels {
namespace {

struct Loaded {
  CublasLtApi api{};
  std::string error;
  bool ok = false;
};

template <typename Fn>
bool Resolve(void* library, const char* name, Fn* fn, std::string* error) {
  *fn = reinterpret_cast<Fn>(dlsym(library, name));
  if (*fn == nullptr) *error = std::string("libcublasLt.so.13 lacks ") + name;
  return *fn != nullptr;
}

Loaded LoadOnce() {
  Loaded loaded;
  // Never unloaded: the handles and plans made from it live as long as the process.
  void* library = dlopen("libcublasLt.so.13", RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) {
    const char* why = dlerror();
    loaded.error = std::string("cannot load libcublasLt.so.13: ") + (why ? why : "unknown");
    return loaded;
  }
  CublasLtApi& a = loaded.api;
  std::string& e = loaded.error;
  loaded.ok =
      Resolve(library, "cublasLtCreate", &a.Create, &e) &&
      Resolve(library, "cublasLtDestroy", &a.Destroy, &e) &&
      Resolve(library, "cublasLtGetStatusString", &a.GetStatusString, &e) &&
      Resolve(library, "cublasLtGetVersion", &a.GetVersion, &e) &&
      Resolve(library, "cublasLtMatmulDescCreate", &a.MatmulDescCreate, &e) &&
      Resolve(library, "cublasLtMatmulDescDestroy", &a.MatmulDescDestroy, &e) &&
      Resolve(library, "cublasLtMatmulDescSetAttribute", &a.MatmulDescSetAttribute, &e) &&
      Resolve(library, "cublasLtMatrixLayoutCreate", &a.MatrixLayoutCreate, &e) &&
      Resolve(library, "cublasLtMatrixLayoutDestroy", &a.MatrixLayoutDestroy, &e) &&
      Resolve(library, "cublasLtMatrixLayoutSetAttribute", &a.MatrixLayoutSetAttribute, &e) &&
      Resolve(library, "cublasLtMatmulPreferenceCreate", &a.MatmulPreferenceCreate, &e) &&
      Resolve(library, "cublasLtMatmulPreferenceDestroy", &a.MatmulPreferenceDestroy, &e) &&
      Resolve(library, "cublasLtMatmulPreferenceSetAttribute", &a.MatmulPreferenceSetAttribute,
              &e) &&
      Resolve(library, "cublasLtMatmulAlgoGetHeuristic", &a.MatmulAlgoGetHeuristic, &e) &&
      Resolve(library, "cublasLtMatmul", &a.Matmul, &e);
  return loaded;
}

}  // namespace

const CublasLtApi* LoadCublasLt(std::string* error) {
  static const Loaded loaded = LoadOnce();
  if (!loaded.ok) {
    if (error) *error = loaded.error;
    return nullptr;
  }
  return &loaded.api;
}

}  // namespace an1::kernels
