// `an1 paged-attention`: attention over a paged KV cache for a ragged batch (PagedAttention RPC).
// Inputs are random (lengths from --kv-lens and --q-lens, a shuffled page table, cache slots past
// each sequence's KV length filled with NaN, which must never be read) or read from .npy files.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "client/client.h"

namespace an1::cli {

struct PagedFlags {
  int64_t page_size = 16;
  std::vector<int64_t> kv_lens = {1000, 37, 4096};
  std::vector<int64_t> q_lens = {1, 1, 512};
  int64_t heads = 8, kv_heads = 0, head_dim = 64;  // kv_heads 0: heads
  bool causal = true;
  std::optional<float> scale;
  int window_left = -1, window_right = -1;
  float softcap = 0;
  bool append = false;  // random k_new/v_new, written into the caches (needs shared memory)
  bool return_lse = false;
  std::string lse_path;
  // Where cu_seqlens_q, page_table and kv_lens travel: "" (with --transport: inline for
  // cuda-ipc, whose GPU memory the server cannot check on the host), "inline" or "shm".
  std::string index_transport;
  // .npy inputs: data in the request's dtype, index tensors int32.
  std::string q, k_cache, v_cache, page_table, kv_lens_file, cu_seqlens_q, k_new, v_new;
};

// Adds the subcommand's own options (the caller adds --dtype, --backend, --out, --seed and the
// transport options).
CLI::App* AddPagedCommand(CLI::App& app, PagedFlags* flags);

// The request's tensors, random or from the files. Returns false after printing "error: ...".
bool MakePagedArgs(const PagedFlags& flags, v1::DType dtype, std::mt19937_64& rng,
                   an1::client::PagedAttentionArgs* args);

}  // namespace an1::cli
