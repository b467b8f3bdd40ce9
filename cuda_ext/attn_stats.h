/* Per-query attention statistics without the T x T matrix: C interface (no torch, no CUDA headers needed).
 *
 * For every (batch b, query head h, query i) it computes, over the keys the query may attend to,
 *   mass[b,h,i,g] = sum over keys j with segment[b,j] == g of softmax_j(scale * q_i . k_j)
 *   entropy[b,h,i] = - sum_j p_j ln p_j                                  (natural log)
 * tile by tile with an online softmax. Grouped-query attention: query head h reads KV head h / (Hq / Hkv).
 *
 * The launcher is extern "C" so the torch binding (binding.cpp) and a ctypes host emulator can share it.
 */
#ifndef ATTRIB_ATTN_STATS_H
#define ATTRIB_ATTN_STATS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum AttnStatsDtype { ATTN_STATS_F32 = 0, ATTN_STATS_F16 = 1, ATTN_STATS_BF16 = 2 };

enum AttnStatsStatus {
  ATTN_STATS_OK = 0,
  ATTN_STATS_BAD_ARGS = 1,          /* shapes, strides or pointers that make no sense */
  ATTN_STATS_UNSUPPORTED_DIM = 2,   /* head dim without a compiled instantiation */
  ATTN_STATS_TOO_MANY_SEGMENTS = 3, /* per-segment accumulators do not fit in shared memory */
  ATTN_STATS_WORKSPACE = 4,         /* workspace missing or too small for the requested split */
  ATTN_STATS_CUDA_ERROR = 5         /* a CUDA runtime call failed; see attn_stats_last_cuda_error() */
};

typedef struct AttnStatsArgs {
  int dtype;            /* AttnStatsDtype of q and k */
  int B, Hq, Hkv, T, D; /* batch, query heads, KV heads (Hq % Hkv == 0), sequence length, head dim */
  int Q;                /* number of queries per (b, h): T, or the length of qpos */
  int G;                /* number of segments; segment ids must lie in [0, G) */
  const void* q;        /* q[b, h, t, d] at q + b*q_sb + h*q_sh + t*q_st + d  (element strides, d contiguous) */
  int64_t q_sb, q_sh, q_st;
  const void* k;        /* k[b, h, t, d] at k + b*k_sb + h*k_sh + t*k_st + d */
  int64_t k_sb, k_sh, k_st;
  const int32_t* seg;   /* seg[b, t] at seg + b*seg_sb + t (seg_sb = 0: one segmentation for every batch row) */
  int64_t seg_sb;
  const int64_t* qpos;  /* NULL: query i is position i (Q == T); else the position of each query, in [0, T) */
  float scale;          /* softmax scale, usually 1/sqrt(D) */
  int causal;           /* nonzero: query at position p sees keys 0..p */
  float* mass;          /* out: [B, Hq, Q, G] contiguous fp32 */
  float* entropy;       /* out: [B, Hq, Q] contiguous fp32 */
  int num_splits;       /* key-range splits (flash-decoding); 0 = let attn_stats_plan choose */
  int block_q;          /* queries per block (threads); 0 = let attn_stats_plan choose */
  void* workspace;      /* fp32 scratch for split partials, attn_stats_workspace_bytes() long */
} AttnStatsArgs;

/* Fill args->num_splits and args->block_q (when 0) for a device with num_sms SMs and max_smem bytes of
 * opt-in shared memory per block. Returns an AttnStatsStatus. */
int attn_stats_plan(AttnStatsArgs* args, int num_sms, int max_smem);

/* Bytes of workspace the planned launch needs (0 when num_splits == 1). Call after attn_stats_plan. */
size_t attn_stats_workspace_bytes(const AttnStatsArgs* args);

/* Dynamic shared memory bytes one block needs for the planned launch. */
size_t attn_stats_smem_bytes(const AttnStatsArgs* args);

/* Launch on a cudaStream_t passed as void* (NULL = default stream). Plans first if needed.
 * Returns an AttnStatsStatus; nothing is launched unless it is ATTN_STATS_OK. */
int attn_stats_launch(AttnStatsArgs* args, void* stream);

/* The message of the last CUDA error seen by attn_stats_launch (static string, never NULL). */
const char* attn_stats_last_cuda_error(void);

/* Run the same block program on the CPU, block by block and thread by thread (the schedule the GPU would run,
 * serialized). For tests on machines without a GPU; defined in attn_stats_host.cu. */
int attn_stats_host_run(AttnStatsArgs* args);
int attn_stats_host_plan(AttnStatsArgs* args);                      /* plans as for an H100 */
size_t attn_stats_host_workspace_bytes(const AttnStatsArgs* args);

#ifdef __cplusplus
}
#endif

#endif /* ATTRIB_ATTN_STATS_H */
