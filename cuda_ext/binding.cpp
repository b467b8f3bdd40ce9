// Torch binding for the attention-statistics kernel: checks tensors, allocates outputs and the split workspace,
// and calls the extern "C" launcher of attn_stats.cu on the current stream. Built by attrib/kernels.py with
// torch.utils.cpp_extension.load (ninja JIT) on first use.
// Only c10/cuda headers (no ATen/cuda/CUDAContext.h, which needs the cuBLAS/cuSPARSE headers too).
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#include <torch/extension.h>

#include <string>
#include <vector>

#include "attn_stats.h"

namespace {

const char* status_text(int st) {
  switch (st) {
    case ATTN_STATS_OK: return "ok";
    case ATTN_STATS_BAD_ARGS: return "bad arguments";
    case ATTN_STATS_UNSUPPORTED_DIM: return "head dim has no compiled instantiation";
    case ATTN_STATS_TOO_MANY_SEGMENTS: return "too many segments for shared memory";
    case ATTN_STATS_WORKSPACE: return "missing workspace";
    case ATTN_STATS_CUDA_ERROR: return attn_stats_last_cuda_error();
    default: return "unknown status";
  }
}

int dtype_code(const torch::Tensor& t) {
  switch (t.scalar_type()) {
    case torch::kFloat: return ATTN_STATS_F32;
    case torch::kHalf: return ATTN_STATS_F16;
    case torch::kBFloat16: return ATTN_STATS_BF16;
    default: TORCH_CHECK(false, "attn_stats: q/k must be float32, float16 or bfloat16, got ", t.scalar_type());
  }
  return -1;
}

}  // namespace

// q [B, Hq, T, D], k [B, Hkv, T, D] (same dtype), seg int32 [1 or B, T], qpos int64 [Q] or None.
// Returns (mass [B, Hq, Q, G] fp32, entropy [B, Hq, Q] fp32).
std::vector<torch::Tensor> segment_attention_stats(torch::Tensor q, torch::Tensor k, torch::Tensor seg,
                                                   c10::optional<torch::Tensor> qpos, int64_t n_segments,
                                                   double scale, bool causal) {
  TORCH_CHECK(q.is_cuda() && k.is_cuda() && seg.is_cuda(), "attn_stats: q, k and segment ids must be CUDA tensors");
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4, "attn_stats: q and k must be 4-D [B, H, T, D]");
  TORCH_CHECK(q.scalar_type() == k.scalar_type(), "attn_stats: q and k dtypes differ");
  TORCH_CHECK(seg.scalar_type() == torch::kInt && seg.dim() == 2, "attn_stats: segment ids must be int32 [Bs, T]");
  const c10::cuda::CUDAGuard guard(q.device());
  if (q.stride(3) != 1) q = q.contiguous();
  if (k.stride(3) != 1) k = k.contiguous();
  seg = seg.contiguous();
  const int64_t B = q.size(0), Hq = q.size(1), T = q.size(2), D = q.size(3);
  TORCH_CHECK(k.size(0) == B && k.size(2) == T && k.size(3) == D, "attn_stats: k shape does not match q");
  TORCH_CHECK(seg.size(1) == T && (seg.size(0) == 1 || seg.size(0) == B), "attn_stats: segment ids shape");

  AttnStatsArgs a{};
  a.dtype = dtype_code(q);
  a.B = (int)B;
  a.Hq = (int)Hq;
  a.Hkv = (int)k.size(1);
  a.T = (int)T;
  a.D = (int)D;
  a.G = (int)n_segments;
  a.q = q.data_ptr();
  a.q_sb = q.stride(0);
  a.q_sh = q.stride(1);
  a.q_st = q.stride(2);
  a.k = k.data_ptr();
  a.k_sb = k.stride(0);
  a.k_sh = k.stride(1);
  a.k_st = k.stride(2);
  a.seg = seg.data_ptr<int32_t>();
  a.seg_sb = seg.size(0) == 1 ? 0 : T;
  torch::Tensor pos;
  if (qpos.has_value()) {
    pos = qpos->to(q.device(), torch::kLong).contiguous();
    TORCH_CHECK(pos.dim() == 1 && pos.numel() > 0, "attn_stats: query positions must be a non-empty 1-D tensor");
    a.qpos = pos.data_ptr<int64_t>();
    a.Q = (int)pos.numel();
  } else {
    a.qpos = nullptr;
    a.Q = (int)T;
  }
  a.scale = (float)scale;
  a.causal = causal ? 1 : 0;

  auto f32 = q.options().dtype(torch::kFloat);
  torch::Tensor mass = torch::empty({B, Hq, (int64_t)a.Q, n_segments}, f32);
  torch::Tensor entropy = torch::empty({B, Hq, (int64_t)a.Q}, f32);
  a.mass = mass.data_ptr<float>();
  a.entropy = entropy.data_ptr<float>();

  int num_sms = 0, max_smem = 0;
  const int dev = q.get_device();
  TORCH_CHECK(cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, dev) == cudaSuccess &&
                  cudaDeviceGetAttribute(&max_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) == cudaSuccess,
              "attn_stats: cannot query device ", dev);
  int st = attn_stats_plan(&a, num_sms, max_smem);
  TORCH_CHECK(st == ATTN_STATS_OK, "attn_stats: ", status_text(st));
  torch::Tensor workspace;
  const size_t ws = attn_stats_workspace_bytes(&a);
  if (ws > 0) {
    workspace = torch::empty({(int64_t)((ws + 3) / 4)}, f32);
    a.workspace = workspace.data_ptr<float>();
  }
  st = attn_stats_launch(&a, c10::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(st == ATTN_STATS_OK, "attn_stats: ", status_text(st));
  return {mass, entropy};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("segment_attention_stats", &segment_attention_stats,
        "Per-query attention mass on key segments and attention entropy (online softmax, no T x T matrix)",
        pybind11::arg("q"), pybind11::arg("k"), pybind11::arg("seg"), pybind11::arg("qpos"),
        pybind11::arg("n_segments"), pybind11::arg("scale"), pybind11::arg("causal"));
}
