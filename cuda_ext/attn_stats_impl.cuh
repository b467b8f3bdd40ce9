// The block program of the attention-statistics kernel, written once as __host__ __device__ phases so the same
// code runs on the GPU (attn_stats.cu) and, serialized thread by thread, on the CPU (attn_stats_host.cu) where
// tests can check it without a GPU. No torch headers.
//
// One block = BQ queries of one (batch, query head) over one key range (a "split"). Per key tile of BK keys:
//   load   : the block copies K[tile] (converted to fp32) and the tile's segment ids into shared memory;
//   compute: each thread owns one query (q row in registers, pre-scaled by scale*log2 e) and folds the tile's
//            keys into its running statistics.
// Running statistics (base-2 logits y, reference R):  L = sum 2^(y-R),  A = sum 2^(y-R) (y-R),
// S_g = sum over keys of segment g of 2^(y-R). R is rebased lazily: only when a logit exceeds R by more than
// REBASE (then every term is multiplied by 2^(R-R')), which keeps the per-key cost at O(1) instead of O(G).
// At the end: mass_g = S_g / L and entropy = ln L - ln2 * A / L (exact for any reference R).
// Split partials (R, L, A, S) are merged with the same rescaling rule.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include <type_traits>
#include <utility>

#include "attn_stats.h"

#define AS_HD __host__ __device__ __forceinline__

namespace attn_stats {

constexpr int BK = 32;                       // keys per shared-memory tile
constexpr float LOG2E = 1.4426950408889634f;
constexpr float LN2 = 0.6931471805599453f;
constexpr float REBASE = 8.0f;               // log2 units: terms stay <= 2^8 before a rebase
constexpr int MIN_KEYS_PER_SPLIT = 128;     // never split finer than this (4 tiles)
constexpr int TARGET_BLOCKS_PER_SM = 4;      // split until about this many blocks per SM are launched
constexpr int TRIANGLE_SPLITS = 8;           // causal over all queries: split keys at least this often

#ifndef ATTN_STATS_HEAVY_FIRST
#define ATTN_STATS_HEAVY_FIRST 1
#endif

template <typename T>
AS_HD float to_f32(T x);
template <>
AS_HD float to_f32<float>(float x) { return x; }
template <>
AS_HD float to_f32<__half>(__half x) { return __half2float(x); }
template <>
AS_HD float to_f32<__nv_bfloat16>(__nv_bfloat16 x) { return __bfloat162float(x); }

AS_HD float neg_inf() { return -INFINITY; }

// Which (batch, head, query tile, split) a block works on, and its key range.
struct Block {
  int b, h, hk, qtile, split, nthreads;
  int k_begin, k_end;
};

AS_HD int ceil_div(int a, int b) { return (a + b - 1) / b; }

AS_HD int keys_per_split(const AttnStatsArgs& a) {
  return ceil_div(ceil_div(a.T, a.num_splits), BK) * BK;
}

AS_HD Block make_block(const AttnStatsArgs& a, int bx, int by, int bz, int nthreads) {
  Block blk;
  blk.split = bx % a.num_splits;
  blk.qtile = bx / a.num_splits;
#if ATTN_STATS_HEAVY_FIRST
  // Causal: the last query tile scans the most keys; hand it out first so the short tiles fill the tail.
  if (a.causal) blk.qtile = ceil_div(a.Q, nthreads) - 1 - blk.qtile;
#endif
  blk.h = by;
  blk.b = bz;
  blk.hk = by / (a.Hq / a.Hkv);
  blk.nthreads = nthreads;
  int kps = keys_per_split(a);
  blk.k_begin = blk.split * kps;
  int e = blk.k_begin + kps;
  blk.k_end = e < a.T ? e : a.T;
  if (blk.k_begin > blk.k_end) blk.k_begin = blk.k_end;
  return blk;
}

// Shared memory layout (4-byte words): K tile [BK][D] | segment ids [BK] | positions [BQ] | S [G][BQ].
struct Smem {
  float* k;
  int* seg;
  int* pos;
  float* s;
};

AS_HD Smem carve(float* base, int D, int nthreads) {
  Smem m;
  m.k = base;
  m.seg = reinterpret_cast<int*>(base + BK * D);
  m.pos = m.seg + BK;
  m.s = reinterpret_cast<float*>(m.pos + nthreads);
  return m;
}

AS_HD size_t smem_words(int D, int G, int nthreads) {
  return (size_t)BK * D + BK + nthreads + (size_t)G * nthreads;
}

template <int D>
struct ThreadState {
  float q[D];
  int qi, pos;
  bool valid;
  float R, L, A, run;
  int cur_g;
};

// Phase 1: read this thread's query row (scaled into log2 units), publish its position, zero its S column.
template <int D, typename T>
AS_HD void setup(const AttnStatsArgs& a, const Block& blk, int tid, Smem sm, ThreadState<D>& st) {
  st.qi = blk.qtile * blk.nthreads + tid;
  st.valid = st.qi < a.Q;
  st.pos = st.valid ? (a.qpos ? (int)a.qpos[st.qi] : st.qi) : -1;
  sm.pos[tid] = st.pos;
  const float c = a.scale * LOG2E;
  const T* qp = static_cast<const T*>(a.q) + blk.b * a.q_sb + blk.h * a.q_sh + (int64_t)(st.valid ? st.pos : 0) * a.q_st;
#pragma unroll
  for (int d = 0; d < D; ++d) st.q[d] = st.valid ? to_f32<T>(qp[d]) * c : 0.f;
  for (int g = 0; g < a.G; ++g) sm.s[g * blk.nthreads + tid] = 0.f;
  st.R = neg_inf();
  st.L = 0.f;
  st.A = 0.f;
  st.run = 0.f;
  st.cur_g = -1;
}

// After a barrier: the end of the key range this block must scan (causal: up to its largest query position).
AS_HD int block_key_end(const AttnStatsArgs& a, const Block& blk, Smem sm) {
  if (!a.causal) return blk.k_end;
  int mx = -1;
  for (int t = 0; t < blk.nthreads; ++t) mx = sm.pos[t] > mx ? sm.pos[t] : mx;
  int e = mx + 1;
  return e < blk.k_end ? e : blk.k_end;
}

// Phase 2 (per tile): the block copies K[kt : kt+BK] as fp32 and the tile's segment ids into shared memory.
template <int D, typename T>
AS_HD void load_tile(const AttnStatsArgs& a, const Block& blk, int tid, Smem sm, int kt, int k_end) {
  const T* kbase = static_cast<const T*>(a.k) + blk.b * a.k_sb + blk.hk * a.k_sh;
  for (int idx = tid; idx < BK * D; idx += blk.nthreads) {
    const int j = idx / D;
    const int d = idx - j * D;
    const int key = kt + j;
    sm.k[idx] = key < k_end ? to_f32<T>(kbase[(int64_t)key * a.k_st + d]) : 0.f;
  }
  for (int j = tid; j < BK; j += blk.nthreads) {
    const int key = kt + j;
    sm.seg[j] = key < k_end ? a.seg[blk.b * a.seg_sb + key] : 0;
  }
}

template <int D>
AS_HD float dot(const float (&q)[D], const float* krow) {
  float acc0 = 0.f, acc1 = 0.f, acc2 = 0.f, acc3 = 0.f;
#pragma unroll
  for (int d = 0; d < D; d += 4) {
    const float4 kv = *reinterpret_cast<const float4*>(krow + d);
    acc0 = fmaf(q[d], kv.x, acc0);
    acc1 = fmaf(q[d + 1], kv.y, acc1);
    acc2 = fmaf(q[d + 2], kv.z, acc2);
    acc3 = fmaf(q[d + 3], kv.w, acc3);
  }
  return (acc0 + acc1) + (acc2 + acc3);
}

// Multiply every running term by f = 2^(R - R_new): S column, the open run, L and A.
template <int D>
AS_HD void rebase(const AttnStatsArgs& a, const Block& blk, int tid, Smem sm, ThreadState<D>& st, float r_new) {
  if (st.L > 0.f) {
    const float f = exp2f(st.R - r_new);
    for (int g = 0; g < a.G; ++g) sm.s[g * blk.nthreads + tid] *= f;
    st.run *= f;
    st.A = f * (st.A + (st.R - r_new) * st.L);
    st.L *= f;
  }
  st.R = r_new;
}

// Phase 3 (per tile): fold this tile's keys into the thread's running statistics.
template <int D>
AS_HD void compute_tile(const AttnStatsArgs& a, const Block& blk, int tid, Smem sm, int kt, int k_end,
                        ThreadState<D>& st) {
  if (!st.valid) return;
  int jmax = k_end - kt < BK ? k_end - kt : BK;
  if (a.causal && st.pos - kt + 1 < jmax) jmax = st.pos - kt + 1;
  for (int j = 0; j < jmax; ++j) {
    const float y = dot<D>(st.q, sm.k + j * D);
    if (y > st.R + REBASE) rebase<D>(a, blk, tid, sm, st, y);
    const float dy = y - st.R;
    const float p = exp2f(dy);
    st.L += p;
    st.A = fmaf(p, dy, st.A);
    const int g = sm.seg[j];
    if (g != st.cur_g) {
      if (st.cur_g >= 0) sm.s[st.cur_g * blk.nthreads + tid] += st.run;
      st.cur_g = ((unsigned)g < (unsigned)a.G) ? g : -1;  // out-of-range ids count in L but in no segment
      st.run = 0.f;
    }
    st.run += p;
  }
}

AS_HD int64_t row_index(const AttnStatsArgs& a, int b, int h, int qi) {
  return ((int64_t)b * a.Hq + h) * a.Q + qi;
}

AS_HD void write_final(const AttnStatsArgs& a, int64_t row, float L, float A, const float* s, int s_stride) {
  float* m = a.mass + row * a.G;
  if (L > 0.f) {
    const float inv = 1.f / L;
    for (int g = 0; g < a.G; ++g) m[g] = s[g * s_stride] * inv;
    const float h = logf(L) - LN2 * A * inv;
    a.entropy[row] = h > 0.f ? h : 0.f;
  } else {
    for (int g = 0; g < a.G; ++g) m[g] = 0.f;
    a.entropy[row] = 0.f;
  }
}

// Phase 4: close the open run, then write the final row (one split) or this split's partial (R, L, A, S).
template <int D>
AS_HD void finish(const AttnStatsArgs& a, const Block& blk, int tid, Smem sm, ThreadState<D>& st) {
  if (!st.valid) return;
  if (st.cur_g >= 0) sm.s[st.cur_g * blk.nthreads + tid] += st.run;
  const int64_t row = row_index(a, blk.b, blk.h, st.qi);
  if (a.num_splits == 1) {
    write_final(a, row, st.L, st.A, sm.s + tid, blk.nthreads);
    return;
  }
  float* w = static_cast<float*>(a.workspace) + (row * a.num_splits + blk.split) * (3 + a.G);
  w[0] = st.L > 0.f ? st.R : 0.f;
  w[1] = st.L;
  w[2] = st.A;
  for (int g = 0; g < a.G; ++g) w[3 + g] = sm.s[g * blk.nthreads + tid];
}

// Merge the split partials of one output row (one thread per row). The mass row doubles as the accumulator.
AS_HD void merge_row(const AttnStatsArgs& a, int64_t row) {
  const float* w = static_cast<const float*>(a.workspace) + row * a.num_splits * (3 + a.G);
  const int stride = 3 + a.G;
  float r = neg_inf();
  for (int s = 0; s < a.num_splits; ++s)
    if (w[s * stride + 1] > 0.f && w[s * stride] > r) r = w[s * stride];
  float* m = a.mass + row * a.G;
  for (int g = 0; g < a.G; ++g) m[g] = 0.f;
  float L = 0.f, A = 0.f;
  for (int s = 0; s < a.num_splits; ++s) {
    const float* p = w + s * stride;
    if (!(p[1] > 0.f)) continue;
    const float f = exp2f(p[0] - r);
    L += f * p[1];
    A += f * (p[2] + (p[0] - r) * p[1]);
    for (int g = 0; g < a.G; ++g) m[g] += f * p[3 + g];
  }
  write_final(a, row, L, A, m, 1);
}

// Head dims with a compiled instantiation (q row lives in registers, so D is a template parameter).
template <class Fn>
int with_dim(int D, Fn&& fn) {
  switch (D) {
    case 32: return fn(std::integral_constant<int, 32>{});
    case 64: return fn(std::integral_constant<int, 64>{});
    case 80: return fn(std::integral_constant<int, 80>{});
    case 96: return fn(std::integral_constant<int, 96>{});
    case 128: return fn(std::integral_constant<int, 128>{});
    case 256: return fn(std::integral_constant<int, 256>{});
    default: return ATTN_STATS_UNSUPPORTED_DIM;
  }
}

template <class Fn>
int with_dtype(int dtype, Fn&& fn) {
  switch (dtype) {
    case ATTN_STATS_F32: return fn(float{});
    case ATTN_STATS_F16: return fn(__half{});
    case ATTN_STATS_BF16: return fn(__nv_bfloat16{});
    default: return ATTN_STATS_BAD_ARGS;
  }
}

inline int check_args(const AttnStatsArgs& a) {
  if (a.B < 1 || a.Hq < 1 || a.Hkv < 1 || a.T < 1 || a.Q < 1 || a.G < 1 || a.D < 1) return ATTN_STATS_BAD_ARGS;
  if (a.Hq % a.Hkv != 0) return ATTN_STATS_BAD_ARGS;
  if (!a.q || !a.k || !a.seg || !a.mass || !a.entropy) return ATTN_STATS_BAD_ARGS;
  if (!a.qpos && a.Q != a.T) return ATTN_STATS_BAD_ARGS;
  return ATTN_STATS_OK;
}

// Pick queries per block and the number of key splits. Measured on an H100 (bench/attn_stats/sweep.cu, the best
// of every block size x split count at T = 1k..32k, all queries and 16 answer queries): 128 threads per block is
// fastest even for a handful of queries (the whole block loads each key tile); few queries need splits until
// ~4 blocks per SM are launched; causal runs over all queries need >= 8 splits to even out the triangle
// (1.4x faster at 8k tokens than one block per query tile).
inline int plan(AttnStatsArgs& a, int num_sms, int max_smem) {
  int st = check_args(a);
  if (st != ATTN_STATS_OK) return st;
  if (a.block_q == 0) {
    const int cands[3] = {128, 64, 32};  // smaller only when the per-query segment accumulators do not fit
    for (int i = 0; i < 3; ++i) {
      if (smem_words(a.D, a.G, cands[i]) * 4 <= (size_t)max_smem) {
        a.block_q = cands[i];
        break;
      }
    }
    if (a.block_q == 0) return ATTN_STATS_TOO_MANY_SEGMENTS;
  } else if (smem_words(a.D, a.G, a.block_q) * 4 > (size_t)max_smem) {
    return ATTN_STATS_TOO_MANY_SEGMENTS;
  }
  if (a.num_splits == 0) {
    const int64_t base = (int64_t)ceil_div(a.Q, a.block_q) * a.Hq * a.B;
    const int64_t target = (int64_t)TARGET_BLOCKS_PER_SM * (num_sms > 0 ? num_sms : 1);
    int64_t want = (target + base - 1) / base;
    if (a.causal && a.Q > a.block_q && want < TRIANGLE_SPLITS) want = TRIANGLE_SPLITS;
    const int most = ceil_div(a.T, MIN_KEYS_PER_SPLIT);
    a.num_splits = (int)(want < most ? want : most);
    if (a.num_splits < 1) a.num_splits = 1;
  }
  if (a.num_splits < 1) return ATTN_STATS_BAD_ARGS;
  return ATTN_STATS_OK;
}

inline size_t workspace_bytes(const AttnStatsArgs& a) {
  if (a.num_splits <= 1) return 0;
  return (size_t)a.B * a.Hq * a.Q * a.num_splits * (3 + a.G) * sizeof(float);
}

}  // namespace attn_stats
