// Launch-shape sweep for the attention-statistics kernel (GPU only): times every (block_q, num_splits) pair
// with CUDA events on SmolLM2-shaped inputs and prints one JSON line per configuration, so the planner's
// defaults in cuda_ext/attn_stats_impl.cuh can be checked against the alternatives on a real card.
//
//   nvcc -O3 -arch=sm_90 --use_fast_math -Icuda_ext bench/attn_stats/sweep.cu cuda_ext/attn_stats.cu -o sweep
//   ./sweep 8192 [queries]      (queries = 0: every position, else that many answer positions at the end)
// Figures from an H100 run are in bench/results/attn_stats_sweep.jsonl.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "attn_stats.h"

#define CHECK(x)                                                                              \
  do {                                                                                        \
    cudaError_t e_ = (x);                                                                     \
    if (e_ != cudaSuccess) {                                                                  \
      std::fprintf(stderr, "%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e_));         \
      std::exit(1);                                                                           \
    }                                                                                         \
  } while (0)

static float time_config(AttnStatsArgs a, int block_q, int splits, int reps, int* planned_bq, int* planned_s) {
  a.block_q = block_q;
  a.num_splits = splits;
  int dev = 0, sms = 0, smem = 0;
  CHECK(cudaGetDevice(&dev));
  CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  CHECK(cudaDeviceGetAttribute(&smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  if (attn_stats_plan(&a, sms, smem) != ATTN_STATS_OK) return -1.f;
  *planned_bq = a.block_q;
  *planned_s = a.num_splits;
  void* ws = nullptr;
  const size_t wsb = attn_stats_workspace_bytes(&a);
  if (wsb) CHECK(cudaMalloc(&ws, wsb));
  a.workspace = ws;
  if (attn_stats_launch(&a, nullptr) != ATTN_STATS_OK) return -2.f;  // warm-up
  CHECK(cudaDeviceSynchronize());
  cudaEvent_t t0, t1;
  CHECK(cudaEventCreate(&t0));
  CHECK(cudaEventCreate(&t1));
  CHECK(cudaEventRecord(t0));
  for (int r = 0; r < reps; ++r) attn_stats_launch(&a, nullptr);
  CHECK(cudaEventRecord(t1));
  CHECK(cudaEventSynchronize(t1));
  float ms = 0.f;
  CHECK(cudaEventElapsedTime(&ms, t0, t1));
  if (ws) CHECK(cudaFree(ws));
  return ms / reps;
}

int main(int argc, char** argv) {
  const int T = argc > 1 ? std::atoi(argv[1]) : 8192;
  const int nq = argc > 2 ? std::atoi(argv[2]) : 0;
  const int B = 1, Hq = 9, Hkv = 3, D = 64, G = 5;
  const int Q = nq > 0 ? nq : T;
  std::vector<float> hq((size_t)B * Hq * T * D), hk((size_t)B * Hkv * T * D);
  unsigned s = 12345u;
  for (auto* v : {&hq, &hk})
    for (auto& x : *v) x = ((s = s * 1664525u + 1013904223u) >> 8) * (1.f / 16777216.f) * 2.f - 1.f;
  std::vector<int> hseg(T);
  for (int t = 0; t < T; ++t) hseg[t] = t == 0 ? 0 : t < T / 8 ? 1 : t < T / 4 ? 2 : t < 3 * T / 4 ? 3 : 4;
  std::vector<long long> hpos(Q);
  for (int i = 0; i < Q; ++i) hpos[i] = nq > 0 ? T - Q + i : i;

  float *q, *k, *mass, *ent;
  int* seg;
  long long* pos;
  CHECK(cudaMalloc(&q, hq.size() * 4));
  CHECK(cudaMalloc(&k, hk.size() * 4));
  CHECK(cudaMalloc(&seg, T * 4));
  CHECK(cudaMalloc(&pos, Q * 8));
  CHECK(cudaMalloc(&mass, (size_t)B * Hq * Q * G * 4));
  CHECK(cudaMalloc(&ent, (size_t)B * Hq * Q * 4));
  CHECK(cudaMemcpy(q, hq.data(), hq.size() * 4, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(k, hk.data(), hk.size() * 4, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(seg, hseg.data(), T * 4, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(pos, hpos.data(), Q * 8, cudaMemcpyHostToDevice));

  AttnStatsArgs a = {};
  a.dtype = ATTN_STATS_F32;
  a.B = B, a.Hq = Hq, a.Hkv = Hkv, a.T = T, a.D = D, a.Q = Q, a.G = G;
  a.q = q, a.q_sb = (int64_t)Hq * T * D, a.q_sh = (int64_t)T * D, a.q_st = D;
  a.k = k, a.k_sb = (int64_t)Hkv * T * D, a.k_sh = (int64_t)T * D, a.k_st = D;
  a.seg = seg, a.seg_sb = 0;
  a.qpos = nq > 0 ? reinterpret_cast<const int64_t*>(pos) : nullptr;
  a.scale = 0.125f;
  a.causal = 1;
  a.mass = mass, a.entropy = ent;

  const int reps = T >= 16384 ? 5 : 20;
  for (int bq : {0, 32, 64, 128}) {
    for (int sp : {0, 1, 2, 4, 8, 16, 32, 64, 128}) {
      int pbq = 0, ps = 0;
      const float ms = time_config(a, bq, sp, reps, &pbq, &ps);
      std::printf("{\"T\": %d, \"Q\": %d, \"block_q\": %d, \"num_splits\": %d, \"planned\": %s, \"ms\": %.4f}\n", T,
                  Q, pbq, ps, (bq == 0 && sp == 0) ? "true" : "false", ms);
    }
  }
  return 0;
}
