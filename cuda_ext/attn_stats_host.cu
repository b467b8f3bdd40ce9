// CPU emulation of the attention-statistics kernel: runs the exact block program of attn_stats_impl.cuh,
// block by block, with the threads of a block serialized phase by phase (every phase ends where the GPU kernel
// has a __syncthreads, so the serialization is a valid schedule). Lets tests check the kernel's indexing,
// tiling, lazy rebasing and split merging on machines without a GPU. Built as a shared library:
//   nvcc -O2 -shared -Xcompiler -fPIC cuda_ext/attn_stats_host.cu -o build/cuda/libattn_stats_host.so
#include <vector>

#include "attn_stats.h"
#include "attn_stats_impl.cuh"

namespace attn_stats {

// A stand-in device for planning: an H100 (132 SMs, 227 KiB opt-in shared memory per block).
constexpr int HOST_NUM_SMS = 132;
constexpr int HOST_MAX_SMEM = 227 * 1024;

template <int D, typename T>
int host_run(const AttnStatsArgs& a) {
  const int nthreads = a.block_q;
  std::vector<float4> smem4((smem_words(D, a.G, nthreads) + 3) / 4);
  std::vector<ThreadState<D>> states(nthreads);
  const int qtiles = ceil_div(a.Q, nthreads);
  for (int bz = 0; bz < a.B; ++bz)
    for (int by = 0; by < a.Hq; ++by)
      for (int bx = 0; bx < qtiles * a.num_splits; ++bx) {
        const Block blk = make_block(a, bx, by, bz, nthreads);
        const Smem sm = carve(reinterpret_cast<float*>(smem4.data()), D, nthreads);
        for (int t = 0; t < nthreads; ++t) setup<D, T>(a, blk, t, sm, states[t]);
        const int k_end = block_key_end(a, blk, sm);
        for (int kt = blk.k_begin; kt < k_end; kt += BK) {
          for (int t = 0; t < nthreads; ++t) load_tile<D, T>(a, blk, t, sm, kt, k_end);
          for (int t = 0; t < nthreads; ++t) compute_tile<D>(a, blk, t, sm, kt, k_end, states[t]);
        }
        for (int t = 0; t < nthreads; ++t) finish<D>(a, blk, t, sm, states[t]);
      }
  if (a.num_splits > 1) {
    const int64_t rows = (int64_t)a.B * a.Hq * a.Q;
    for (int64_t r = 0; r < rows; ++r) merge_row(a, r);
  }
  return ATTN_STATS_OK;
}

}  // namespace attn_stats

using namespace attn_stats;

// Plans like the GPU launcher would on an H100 (unless block_q / num_splits are set), then runs on the CPU.
// The caller provides args->workspace of attn_stats_host_workspace_bytes() bytes when num_splits > 1.
extern "C" int attn_stats_host_plan(AttnStatsArgs* args) { return plan(*args, HOST_NUM_SMS, HOST_MAX_SMEM); }

extern "C" size_t attn_stats_host_workspace_bytes(const AttnStatsArgs* args) { return workspace_bytes(*args); }

extern "C" int attn_stats_host_run(AttnStatsArgs* args) {
  int st = plan(*args, HOST_NUM_SMS, HOST_MAX_SMEM);
  if (st != ATTN_STATS_OK) return st;
  if (args->num_splits > 1 && !args->workspace) return ATTN_STATS_WORKSPACE;
  const AttnStatsArgs a = *args;
  return with_dim(a.D, [&](auto dim) {
    constexpr int D = decltype(dim)::value;
    return with_dtype(a.dtype, [&](auto tag) { return host_run<D, decltype(tag)>(a); });
  });
}
