// CUDA kernel + extern "C" launcher for per-query segment attention mass and entropy (see attn_stats.h).
// Compiles without torch headers: `nvcc -c -arch=sm_90 cuda_ext/attn_stats.cu`.
// The block program itself lives in attn_stats_impl.cuh, shared with the CPU emulator used by the tests.
#include <cuda_runtime.h>

#include "attn_stats.h"
#include "attn_stats_impl.cuh"

namespace attn_stats {

template <int D, typename T>
__global__ void __launch_bounds__(128) stats_kernel(const AttnStatsArgs a) {
  extern __shared__ float4 smem4[];
  const Block blk = make_block(a, blockIdx.x, blockIdx.y, blockIdx.z, blockDim.x);
  const Smem sm = carve(reinterpret_cast<float*>(smem4), D, blk.nthreads);
  const int tid = threadIdx.x;
  ThreadState<D> st;
  setup<D, T>(a, blk, tid, sm, st);
  __syncthreads();
  const int k_end = block_key_end(a, blk, sm);
  for (int kt = blk.k_begin; kt < k_end; kt += BK) {
    load_tile<D, T>(a, blk, tid, sm, kt, k_end);
    __syncthreads();
    compute_tile<D>(a, blk, tid, sm, kt, k_end, st);
    __syncthreads();
  }
  finish<D>(a, blk, tid, sm, st);
}

__global__ void merge_kernel(const AttnStatsArgs a, int64_t rows) {
  const int64_t row = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (row < rows) merge_row(a, row);
}

static const char* g_last_error = "no CUDA error";

static int cuda_fail(cudaError_t e) {
  g_last_error = cudaGetErrorString(e);
  return ATTN_STATS_CUDA_ERROR;
}

static int device_limits(int* num_sms, int* max_smem) {
  int dev = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(num_sms, cudaDevAttrMultiProcessorCount, dev);
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(max_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
  return e == cudaSuccess ? ATTN_STATS_OK : cuda_fail(e);
}

}  // namespace attn_stats

using namespace attn_stats;

extern "C" int attn_stats_plan(AttnStatsArgs* args, int num_sms, int max_smem) {
  return plan(*args, num_sms, max_smem);
}

extern "C" size_t attn_stats_workspace_bytes(const AttnStatsArgs* args) { return workspace_bytes(*args); }

extern "C" size_t attn_stats_smem_bytes(const AttnStatsArgs* args) {
  return smem_words(args->D, args->G, args->block_q) * sizeof(float);
}

extern "C" const char* attn_stats_last_cuda_error(void) { return g_last_error; }

extern "C" int attn_stats_launch(AttnStatsArgs* args, void* stream_ptr) {
  int num_sms = 0, max_smem = 0;
  int st = device_limits(&num_sms, &max_smem);
  if (st != ATTN_STATS_OK) return st;
  st = plan(*args, num_sms, max_smem);
  if (st != ATTN_STATS_OK) return st;
  if (args->num_splits > 1 && !args->workspace) return ATTN_STATS_WORKSPACE;
  if (args->block_q > 128) return ATTN_STATS_BAD_ARGS;  // __launch_bounds__(128)
  const AttnStatsArgs a = *args;
  cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
  const size_t smem = smem_words(a.D, a.G, a.block_q) * sizeof(float);
  const int qtiles = ceil_div(a.Q, a.block_q);
  const dim3 grid((unsigned)(qtiles * a.num_splits), (unsigned)a.Hq, (unsigned)a.B);
  st = with_dim(a.D, [&](auto dim) {
    constexpr int D = decltype(dim)::value;
    return with_dtype(a.dtype, [&](auto tag) {
      using T = decltype(tag);
      auto kernel = stats_kernel<D, T>;
      if (smem > 48 * 1024) {
        cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e != cudaSuccess) return cuda_fail(e);
      }
      kernel<<<grid, a.block_q, smem, stream>>>(a);
      cudaError_t e = cudaGetLastError();
      return e == cudaSuccess ? (int)ATTN_STATS_OK : cuda_fail(e);
    });
  });
  if (st != ATTN_STATS_OK || a.num_splits == 1) return st;
  const int64_t rows = (int64_t)a.B * a.Hq * a.Q;
  const int threads = 128;
  merge_kernel<<<(unsigned)((rows + threads - 1) / threads), threads, 0, stream>>>(a, rows);
  cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? (int)ATTN_STATS_OK : cuda_fail(e);
}
