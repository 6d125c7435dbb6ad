#include "client/cli/paged.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iostream>
#include <limits>
#include <numeric>

#include "client/cli/cli_common.h"
#include "client/elements.h"
#include "client/npy.h"

namespace an1::cli {
namespace {

using an1::client::PagedAttentionArgs;

bool Fail(const std::string& error) {
  std::cerr << "error: " << error << "\n";
  return false;
}

HostTensor Int32Tensor(std::vector<int64_t> shape, const std::vector<int32_t>& values) {
  HostTensor t;
  t.dtype = v1::DTYPE_INT32;
  t.shape = std::move(shape);
  t.bytes.resize(values.size() * 4);
  std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}

bool Load(const std::string& path, std::optional<v1::DType> dtype, HostTensor* tensor) {
  an1::client::NpyArray array;
  std::string error;
  const bool ok = an1::client::ReadNpy(path, &array, &error) &&
                  (dtype ? an1::client::NpyToTensor(array, *dtype, tensor, &error)
                         : an1::client::NpyToIndexTensor(array, tensor, &error));
  return ok || Fail(path + ": " + error);
}

bool LoadFiles(const PagedFlags& f, v1::DType dtype, PagedAttentionArgs* args) {
  if (!Load(f.q, dtype, &args->q) || !Load(f.k_cache, dtype, &args->k_cache) ||
      !Load(f.v_cache, dtype, &args->v_cache) ||
      !Load(f.cu_seqlens_q, std::nullopt, &args->cu_seqlens_q) ||
      !Load(f.page_table, std::nullopt, &args->page_table) ||
      !Load(f.kv_lens_file, std::nullopt, &args->kv_lens)) {
    return false;
  }
  if (f.k_new.empty() != f.v_new.empty()) return Fail("give both --k-new and --v-new, or neither");
  if (f.k_new.empty()) return true;
  return Load(f.k_new, dtype, &args->k_new.emplace()) &&
         Load(f.v_new, dtype, &args->v_new.emplace());
}

bool MakeRandom(const PagedFlags& f, v1::DType dtype, std::mt19937_64& rng,
                PagedAttentionArgs* args) {
  const std::size_t batch = f.kv_lens.size();
  if (f.q_lens.size() != batch) {
    return Fail("--q-lens has " + std::to_string(f.q_lens.size()) + " entries, --kv-lens " +
                std::to_string(batch) + "; give one of each per sequence");
  }
  const int64_t hkv = f.kv_heads ? f.kv_heads : f.heads, ps = f.page_size, d = f.head_dim;
  std::vector<int32_t> cu_seqlens{0};
  int64_t max_pages = 1, num_pages = 0;
  for (std::size_t b = 0; b < batch; ++b) {
    if (f.q_lens[b] < 0 || f.kv_lens[b] < 0 || f.q_lens[b] > f.kv_lens[b]) {
      return Fail("sequence " + std::to_string(b) + ": need 0 <= q_len <= kv_len");
    }
    cu_seqlens.push_back(static_cast<int32_t>(cu_seqlens.back() + f.q_lens[b]));
    const int64_t pages = (f.kv_lens[b] + ps - 1) / ps;
    max_pages = std::max(max_pages, pages);
    num_pages += pages;
  }
  num_pages = std::max<int64_t>(num_pages, 1);
  const int64_t total_q = cu_seqlens.back();
  // Each sequence gets its pages from a shuffled list; padding entries are 0 (never read).
  std::vector<int32_t> order(static_cast<std::size_t>(num_pages));
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<int32_t> table(batch * static_cast<std::size_t>(max_pages), 0);
  std::vector<float> k_cache(static_cast<std::size_t>(num_pages * ps * hkv * d),
                             std::numeric_limits<float>::quiet_NaN());
  std::vector<float> v_cache = k_cache;
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::size_t next = 0;
  for (std::size_t b = 0; b < batch; ++b) {
    // Slots a sequence reads hold values; the appended ones and those past kv_len stay NaN.
    const int64_t filled = f.kv_lens[b] - (f.append ? f.q_lens[b] : 0);
    for (int64_t p = 0; p * ps < f.kv_lens[b]; ++p) {
      const int32_t page = order[next++];
      table[b * static_cast<std::size_t>(max_pages) + static_cast<std::size_t>(p)] = page;
      for (int64_t s = 0; s < ps && p * ps + s < filled; ++s) {
        const auto at = static_cast<std::size_t>((page * ps + s) * hkv * d);
        for (int64_t x = 0; x < hkv * d; ++x) {
          k_cache[at + static_cast<std::size_t>(x)] = uniform(rng);
          v_cache[at + static_cast<std::size_t>(x)] = uniform(rng);
        }
      }
    }
  }
  const auto b64 = static_cast<int64_t>(batch);
  args->q = total_q > 0 ? RandomTensor({total_q, f.heads, d}, dtype, rng)
                        : HostTensor{dtype, {0, f.heads, d}, "", {}};  // the server refuses it
  args->cu_seqlens_q = Int32Tensor({b64 + 1}, cu_seqlens);
  args->page_table = Int32Tensor({b64, max_pages}, table);
  std::vector<int32_t> kv_lens(f.kv_lens.begin(), f.kv_lens.end());
  args->kv_lens = Int32Tensor({b64}, kv_lens);
  const std::vector<int64_t> cache_shape{num_pages, ps, hkv, d};
  args->k_cache = HostTensor{dtype, cache_shape, an1::client::EncodeElements(k_cache, dtype), {}};
  args->v_cache = HostTensor{dtype, cache_shape, an1::client::EncodeElements(v_cache, dtype), {}};
  if (f.append && total_q > 0) {
    args->k_new = RandomTensor({total_q, hkv, d}, dtype, rng);
    args->v_new = RandomTensor({total_q, hkv, d}, dtype, rng);
  }
  return true;
}

}  // namespace

CLI::App* AddPagedCommand(CLI::App& app, PagedFlags* f) {
  CLI::App* cmd = app.add_subcommand(
      "paged-attention", "Attention over a paged KV cache for a ragged batch of sequences");
  cmd->add_option("--page-size", f->page_size, "Slots per page: a power of two, 1..256")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  cmd->add_option("--kv-lens", f->kv_lens, "Each sequence's KV length after the step")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--q-lens", f->q_lens, "Each sequence's query rows (1: a decode step)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--n-heads", f->heads, "H (query heads)")
      ->check(PositiveNumber())
      ->capture_default_str();
  cmd->add_option("--n-kv-heads", f->kv_heads, "Hkv (default: H)")->check(PositiveNumber());
  cmd->add_option("--head-dim", f->head_dim, "D")->check(PositiveNumber())->capture_default_str();
  cmd->add_flag("--causal,!--no-causal", f->causal,
                "Causal mask, bottom-right aligned per sequence (default)");
  cmd->add_option("--scale", f->scale, "Softmax scale (default 1/sqrt(D))");
  cmd->add_option("--window-left", f->window_left, "Keys visible before a query (-1: all)")
      ->capture_default_str();
  cmd->add_option("--window-right", f->window_right, "Keys visible after a query (-1: all)")
      ->capture_default_str();
  cmd->add_option("--softcap", f->softcap, "Scores become softcap*tanh(s/softcap); 0: off")
      ->capture_default_str();
  cmd->add_flag("--append", f->append,
                "Send random k_new/v_new, written into the caches before attending (the caches "
                "then travel in shared memory: --transport shm unless cuda-ipc)");
  cmd->add_flag("--return-lse", f->return_lse,
                "Also get each (row, head)'s log-sum-exp (total_q, H) and print a summary");
  cmd->add_option("--lse-out", f->lse_path, "Write the log-sum-exp to this float32 .npy file");
  cmd->add_option("--index-transport", f->index_transport,
                  "Where cu_seqlens_q, page_table and kv_lens travel: inline or shm (a system "
                  "shared-memory region, so the request carries references only); default: as "
                  "--transport, inline with cuda-ipc")
      ->check(CLI::IsMember({"inline", "shm"}));
  cmd->add_option("--q", f->q, ".npy q (total_q, H, D)");
  cmd->add_option("--k-cache", f->k_cache, ".npy k_cache (num_pages, page_size, Hkv, D)");
  cmd->add_option("--v-cache", f->v_cache, ".npy v_cache (num_pages, page_size, Hkv, D)");
  cmd->add_option("--page-table", f->page_table, ".npy int32 page_table (B, max_pages_per_seq)");
  cmd->add_option("--kv-lens-file", f->kv_lens_file, ".npy int32 kv_lens (B)");
  cmd->add_option("--cu-seqlens-q", f->cu_seqlens_q, ".npy int32 cu_seqlens_q (B + 1)");
  cmd->add_option("--k-new", f->k_new, ".npy k_new (total_q, Hkv, D), appended");
  cmd->add_option("--v-new", f->v_new, ".npy v_new (total_q, Hkv, D), appended");
  return cmd;
}

bool MakePagedArgs(const PagedFlags& f, v1::DType dtype, std::mt19937_64& rng,
                   an1::client::PagedAttentionArgs* args) {
  const int files = !f.q.empty() + !f.k_cache.empty() + !f.v_cache.empty() + !f.page_table.empty() +
                    !f.kv_lens_file.empty() + !f.cu_seqlens_q.empty();
  if (files != 0 && files != 6) {
    return Fail(
        "give all of --q, --k-cache, --v-cache, --page-table, --kv-lens-file and "
        "--cu-seqlens-q, or none for random inputs");
  }
  if (files == 0 && (!f.k_new.empty() || !f.v_new.empty())) {
    return Fail("--k-new and --v-new go with .npy inputs; random inputs use --append");
  }
  if (!(files == 6 ? LoadFiles(f, dtype, args) : MakeRandom(f, dtype, rng, args))) return false;
  args->causal = f.causal;
  args->scale = f.scale;
  args->window_left = f.window_left;
  args->window_right = f.window_right;
  args->softcap = f.softcap;
  args->return_lse = f.return_lse || !f.lse_path.empty();
  return true;
}

}  // namespace an1::cli
