"""Attention mass per key segment and attention entropy for every query, without the T x T attention matrix.

``segment_attention_stats`` answers, for each (batch, query head, query position), "how much of this head's
attention goes to the system rule, the user turn, a peer agent, a tool output ...?" and "how spread out is it?".
It streams over key tiles with an online softmax, so memory is O(T) per query instead of O(T^2) per head.

Two backends compute the same numbers:
- ``cuda``: the kernel in ``cuda_ext/attn_stats.cu`` (no torch headers) behind ``cuda_ext/binding.cpp``, built
  with ``torch.utils.cpp_extension.load`` (ninja JIT) on first use with a CUDA tensor;
- ``torch``: the exact PyTorch implementation below (query blocks x key chunks, the same online softmax, fp32
  accumulation). It is the CPU path and the reference the kernel is tested against.
Importing this module never fails and never imports torch; when the CUDA kernel cannot be used, the PyTorch path
runs and the reason is logged once (logger ``attrib.kernels``).

Hand-written rather than a library because FlashAttention-style kernels (SDPA, flash-attn) return only the
attention output, never per-segment mass or entropy, and TransformerLens' ``hook_pattern`` materializes [H, T, T].
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from attrib.errors import AttribError, InputError, is_real, is_whole_number
from attrib.paths import REPO_ROOT, cache_dir

if TYPE_CHECKING:
    import numpy as np
    import torch

log = logging.getLogger(__name__)

#: Kernel sources: the checkout's ``cuda_ext/``, or the copy a wheel carries as ``attrib/_cuda_ext`` (see setup.py).
CUDA_EXT_DIR: Path = next(
    (d for d in (REPO_ROOT / "cuda_ext", Path(__file__).parent / "_cuda_ext") if (d / "attn_stats.cu").is_file()),
    REPO_ROOT / "cuda_ext",
)
#: Head dims the CUDA kernel is instantiated for (the q row lives in registers); others use the PyTorch path.
CUDA_HEAD_DIMS: frozenset[int] = frozenset({32, 64, 80, 96, 128, 256})
Backend = Literal["auto", "torch", "cuda"]


@dataclass(frozen=True)
class SegmentStats:
    """Per-query attention statistics.

    ``mass[b, h, i, g]``: attention of query ``i`` (head ``h``) on keys of segment ``g``; rows sum to 1.
    ``entropy[b, h, i]``: entropy of that query's attention distribution, in nats.
    ``backend``: which implementation produced them ("cuda" or "torch").
    """

    mass: torch.Tensor
    entropy: torch.Tensor
    backend: str


class KernelUnavailable(AttribError):
    """``backend="cuda"`` was requested but the CUDA kernel cannot run here (the message says why)."""


# ----------------------------------------------------------------------------------------------------------
# Extension loading: once per process, with the reason remembered and logged once when it is not available.

_lock = threading.Lock()
_ext: Any = None
_ext_reason: str | None = None
_logged: set[str] = set()


def _log_once(reason: str, level: int = logging.INFO) -> None:
    if reason not in _logged:
        _logged.add(reason)
        log.log(level, "attrib.kernels: using the PyTorch path: %s", reason)


def no_cuda_device() -> str | None:
    """Why torch cannot use a CUDA GPU here (a CPU-only build, no GPU visible); None when it can. What any
    ``device='cuda'`` argument is checked against (:func:`attrib.models.load_bridge` too)."""
    import torch

    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU-only build (no CUDA runtime)"
    if not torch.cuda.is_available():
        return "no CUDA GPU is visible (torch.cuda.is_available() is False)"
    return None


def why_no_cuda() -> str | None:
    """Why the CUDA kernel cannot be built or run here (None when it can be tried)."""
    if os.environ.get("ATTRIB_DISABLE_CUDA_EXT"):
        return "ATTRIB_DISABLE_CUDA_EXT is set"
    device = no_cuda_device()
    if device is not None:
        return device
    from torch.utils.cpp_extension import CUDA_HOME

    if CUDA_HOME is None and shutil.which("nvcc") is None:
        return "nvcc was not found (set CUDA_HOME or put nvcc on the PATH)"
    if shutil.which("ninja") is None:
        return "ninja was not found (pip install ninja) for the JIT build"
    return None


def _build() -> Any:
    from torch.utils.cpp_extension import load

    # the checkout's build/ (gitignored) when the sources are the checkout's; an installed package builds in the
    # user cache instead (looked up only when $ATTRIB_CUDA_BUILD_DIR does not say)
    env = os.environ.get("ATTRIB_CUDA_BUILD_DIR")
    if env:
        build_dir = Path(env)
    elif CUDA_EXT_DIR == REPO_ROOT / "cuda_ext":
        build_dir = REPO_ROOT / "build" / "torch_ext"
    else:
        build_dir = cache_dir() / "torch_ext"
    build_dir.mkdir(parents=True, exist_ok=True)
    return load(
        name="attrib_attn_stats",
        sources=[str(CUDA_EXT_DIR / "binding.cpp"), str(CUDA_EXT_DIR / "attn_stats.cu")],
        extra_include_paths=[str(CUDA_EXT_DIR)],
        extra_cuda_cflags=["-O3", "--use_fast_math"],
        build_directory=str(build_dir),
        verbose=False,
    )


def load_extension(*, force: bool = False) -> Any:
    """The compiled CUDA extension, building it on first use; None (reason logged once) when unavailable.

    ``force=True`` attempts the build even when no GPU is visible (used to test the build-failure fallback).
    """
    global _ext, _ext_reason
    with _lock:
        if _ext is not None or (_ext_reason is not None and not force):
            return _ext
        reason = None if force else why_no_cuda()
        if reason is None:
            try:
                _ext = _build()
            except Exception as exc:  # any compiler/linker/import failure means: use the PyTorch path
                first = next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
                reason = f"building the CUDA extension failed: {first[:300]}"
        if reason is not None:
            _ext_reason = reason
            _log_once(reason, logging.WARNING if force or _gpu_visible() else logging.INFO)
        return _ext


def extension_reason() -> str | None:
    """The remembered reason the CUDA extension is unavailable (None if it loaded or was never tried)."""
    return _ext_reason


def _gpu_visible() -> bool:
    import torch

    return torch.cuda.is_available()


def _reset_extension_state() -> None:
    """Forget the loaded extension and logged reasons (tests only)."""
    global _ext, _ext_reason
    with _lock:
        _ext, _ext_reason = None, None
        _logged.clear()


# ----------------------------------------------------------------------------------------------------------
# Input checks shared by both backends.


@dataclass(frozen=True)
class _Prepared:
    q: torch.Tensor
    k: torch.Tensor
    seg: torch.Tensor  # int64 [Bs, T], Bs in {1, B}
    qpos: torch.Tensor | None  # int64 [Q] on q.device
    n_segments: int
    scale: float


def _prepare(
    q: torch.Tensor,
    k: torch.Tensor,
    segment_ids: torch.Tensor | np.ndarray | Sequence[int],
    scale: float | None,
    query_positions: torch.Tensor | np.ndarray | Sequence[int] | None,
    n_segments: int | None,
) -> _Prepared:
    import torch

    floats = (torch.float32, torch.float16, torch.bfloat16)
    if not isinstance(q, torch.Tensor) or q.dim() != 4:
        raise InputError(None, "q", f"expected a tensor [batch, query_heads, T, head_dim], got {_shape(q)}")
    if not isinstance(k, torch.Tensor) or k.dim() != 4:
        raise InputError(None, "k", f"expected a tensor [batch, kv_heads, T, head_dim], got {_shape(k)}")
    if q.dtype not in floats or k.dtype != q.dtype:
        raise InputError(None, "q/k", f"dtypes must match and be float32/float16/bfloat16, got {q.dtype}/{k.dtype}")
    if q.device != k.device:
        raise InputError(None, "k", f"on {k.device}, q on {q.device}")
    B, Hq, T, D = q.shape
    if k.shape[0] != B or k.shape[2] != T or k.shape[3] != D:
        raise InputError(None, "k", f"shape {tuple(k.shape)} does not match q {tuple(q.shape)} (batch, T, head_dim)")
    Hkv = k.shape[1]
    if Hkv < 1 or Hq % Hkv:
        raise InputError(None, "k", f"{Hq} query heads cannot share {Hkv} KV heads (must divide)")
    if T < 1 or D < 1:
        raise InputError(None, "q", f"empty sequence or head dim: shape {tuple(q.shape)}")
    seg = torch.as_tensor(segment_ids, device=q.device)
    if seg.dtype.is_floating_point or seg.dtype == torch.bool or seg.dtype.is_complex:
        raise InputError(None, "segment_ids", f"must be integers, got {seg.dtype}")
    if seg.dim() == 1:
        seg = seg.unsqueeze(0)
    if seg.dim() != 2 or seg.shape[1] != T or seg.shape[0] not in (1, B):
        raise InputError(None, "segment_ids", f"expected [T] or [batch, T] with T={T}, batch={B}; got {tuple(seg.shape)}")
    seg = seg.long()
    lo, hi = int(seg.min()), int(seg.max())
    if lo < 0:
        raise InputError(None, "segment_ids", f"ids must be >= 0, found {lo}")
    if n_segments is not None and not is_whole_number(n_segments, 1):
        raise InputError(None, "n_segments", f"must be a whole number >= 1, got {n_segments!r}")  # 1.5 was cut to 1
    G = hi + 1 if n_segments is None else int(n_segments)
    if G < 1 or hi >= G:
        raise InputError(None, "segment_ids", f"ids must lie in [0, n_segments={G}), found {hi}")
    qpos = None
    if query_positions is not None:
        qpos = torch.as_tensor(query_positions, device=q.device)
        if qpos.dtype.is_floating_point or qpos.dtype == torch.bool or qpos.dim() != 1 or qpos.numel() == 0:
            raise InputError(None, "query_positions", "expected a non-empty 1-D sequence of integer positions")
        qpos = qpos.long()
        if int(qpos.min()) < 0 or int(qpos.max()) >= T:
            raise InputError(None, "query_positions", f"positions must lie in [0, {T}), got {qpos.tolist()[:8]}")
    if scale is not None and not is_real(scale):  # NaN gave NaN masses silently, 'a' a bare ValueError
        raise InputError(None, "scale", f"must be a finite number (default 1/sqrt(head_dim)), got {scale!r}")
    s = 1.0 / math.sqrt(D) if scale is None else float(scale)
    return _Prepared(q=q, k=k, seg=seg, qpos=qpos, n_segments=G, scale=s)


def _shape(x: object) -> str:
    shape = getattr(x, "shape", None)
    return f"shape {tuple(shape)}" if shape is not None else type(x).__name__


# ----------------------------------------------------------------------------------------------------------
# The exact PyTorch path (CPU, and the reference).


def _stats_torch(p: _Prepared, causal: bool, q_block: int, k_block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Query blocks x key chunks with an online softmax in fp32; causal chunks above a query block are skipped.

    Running per row: max m, l = sum e^(x-m), a = sum e^(x-m)(x-m), s_g = sum over segment g of e^(x-m), each
    rescaled by e^(m_old - m_new) when the max grows. mass = s / l, entropy = ln l - a / l.
    """
    import torch

    q, k, seg = p.q, p.k, p.seg
    B, Hq, T, D = q.shape
    Hkv = k.shape[1]
    grp = Hq // Hkv
    G = p.n_segments
    dev = q.device
    pos = torch.arange(T, device=dev) if p.qpos is None else p.qpos
    Q = pos.numel()
    mass = torch.empty(B, Hq, Q, G, dtype=torch.float32, device=dev)
    ent = torch.empty(B, Hq, Q, dtype=torch.float32, device=dev)
    f32 = torch.float32
    onehot = torch.nn.functional.one_hot(seg, G).to(f32).unsqueeze(1)  # [Bs, 1, T, G]
    for q0 in range(0, Q, q_block):
        q1 = min(q0 + q_block, Q)
        nq = q1 - q0
        pb = pos[q0:q1]
        qb = q.index_select(2, pb) if p.qpos is not None else q[:, :, q0:q1]
        # [B, Hq, nq, D] -> [B, Hkv, grp * nq, D]: query head h = hk * grp + r shares KV head hk.
        qb = qb.to(f32).mul(p.scale).reshape(B, Hkv, grp * nq, D)
        rows = (B, Hkv, grp * nq)
        m = torch.full(rows, -math.inf, dtype=f32, device=dev)
        den = torch.zeros(rows, dtype=f32, device=dev)
        a = torch.zeros(rows, dtype=f32, device=dev)
        s = torch.zeros((*rows, G), dtype=f32, device=dev)
        k_end = int(pb.max()) + 1 if causal else T
        pmin = int(pb.min())
        xbuf = ebuf = None  # reused score/exp buffers for full-size chunks (fewer page faults)
        for k0 in range(0, k_end, k_block):
            k1 = min(k0 + k_block, k_end)
            kt = k[:, :, k0:k1].to(f32).transpose(-1, -2)
            if k1 - k0 == k_block:
                xbuf = torch.matmul(qb, kt, out=xbuf)
                x = xbuf
            else:
                x = torch.matmul(qb, kt)  # [B, Hkv, grp*nq, C]
            masked = causal and k1 - 1 > pmin
            if masked:
                invalid = (torch.arange(k0, k1, device=dev)[None, :] > pb[:, None]).repeat(grp, 1)
                x.masked_fill_(invalid, -math.inf)
            m_new = torch.maximum(m, x.amax(-1))
            alpha = torch.exp(m - m_new)  # 0 on the first chunk (m = -inf), m_new is finite: key 0 is always seen
            shift = torch.where(den > 0, (m - m_new) * den, torch.zeros_like(den))
            x.sub_(m_new.unsqueeze(-1))  # x - m_new (masked entries stay -inf)
            if x is xbuf:
                ebuf = torch.exp(x, out=ebuf)
                e = ebuf
            else:
                e = torch.exp(x)
            if masked:
                x.masked_fill_(invalid, 0.0)
            a_chunk = x.mul_(e).sum(-1)  # sum e^(x-m) (x-m)
            s_chunk = torch.matmul(e, onehot[:, :, k0:k1])  # [B, Hkv, grp*nq, G]; its row sum is the chunk's l
            a = alpha * (a + shift) + a_chunk
            den = alpha * den + s_chunk.sum(-1)
            s = alpha.unsqueeze(-1) * s + s_chunk
            m = m_new
        mass[:, :, q0:q1] = (s / den.unsqueeze(-1)).reshape(B, Hq, nq, G)
        ent[:, :, q0:q1] = (torch.log(den) - a / den).clamp_min(0.0).reshape(B, Hq, nq)
    return mass, ent


def _stats_cuda(ext: Any, p: _Prepared, causal: bool) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    seg = p.seg.to(torch.int32).contiguous()
    qpos = p.qpos.contiguous() if p.qpos is not None else None
    mass, ent = ext.segment_attention_stats(p.q, p.k, seg, qpos, p.n_segments, p.scale, causal)
    return mass, ent


# ----------------------------------------------------------------------------------------------------------


def segment_attention_stats(
    q: torch.Tensor,
    k: torch.Tensor,
    segment_ids: torch.Tensor | np.ndarray | Sequence[int],
    *,
    causal: bool = True,
    scale: float | None = None,
    query_positions: torch.Tensor | np.ndarray | Sequence[int] | None = None,
    n_segments: int | None = None,
    backend: Backend = "auto",
    block_size: int = 512,
) -> SegmentStats:
    """Attention mass on each key segment and attention entropy for every (batch, query head, query).

    q: [B, Hq, T, D] and k: [B, Hkv, T, D] with rotary already applied (Hq a multiple of Hkv: grouped-query
    attention); float32, float16 or bfloat16, accumulated in float32. segment_ids: [T] or [B, T] integers in
    [0, n_segments) (default: max id + 1). causal: query at position p sees keys 0..p. scale: default
    1/sqrt(D). query_positions: compute only these query positions (e.g. the answer tokens), Q of them.
    backend: "auto" (the CUDA kernel for CUDA tensors when it builds, else PyTorch), "torch", or "cuda".
    block_size: query/key block of the PyTorch path, an int >= 1 (memory ~ B*Hq*block_size^2 floats).
    Returns SegmentStats(mass [B, Hq, Q, G], entropy [B, Hq, Q]) in float32 on q's device.

    A statistic, not a layer: it is not differentiable. It runs under ``torch.no_grad()`` and returns detached
    tensors even when ``q``/``k`` require grad (use :func:`naive_segment_attention_stats` to backpropagate).
    """
    import torch

    if backend not in ("auto", "torch", "cuda"):
        raise InputError(None, "backend", f"must be 'auto', 'torch' or 'cuda', got {backend!r}")
    if isinstance(block_size, bool) or not isinstance(block_size, numbers.Integral) or block_size < 1:
        raise InputError(None, "block_size", f"must be an int >= 1, got {block_size!r}")
    block_size = int(block_size)
    with torch.no_grad():
        return _segment_attention_stats(q, k, segment_ids, causal, scale, query_positions, n_segments, backend,
                                        block_size)


def _segment_attention_stats(
    q: torch.Tensor,
    k: torch.Tensor,
    segment_ids: torch.Tensor | np.ndarray | Sequence[int],
    causal: bool,
    scale: float | None,
    query_positions: torch.Tensor | np.ndarray | Sequence[int] | None,
    n_segments: int | None,
    backend: Backend,
    block_size: int,
) -> SegmentStats:
    p = _prepare(q, k, segment_ids, scale, query_positions, n_segments)
    if backend != "torch":
        reason = _cuda_blocker(p)
        if reason is None:
            ext = load_extension()
            if ext is not None:
                try:
                    mass, ent = _stats_cuda(ext, p, causal)
                    return SegmentStats(mass=mass, entropy=ent, backend="cuda")
                except RuntimeError as exc:
                    if backend == "cuda":
                        raise
                    _log_once(f"the CUDA kernel refused this input: {str(exc).splitlines()[0]}", logging.WARNING)
            else:
                reason = _ext_reason
        if backend == "cuda":
            raise KernelUnavailable(f"CUDA kernel unavailable: {reason}")
        if reason is not None:
            _log_once(reason)
    mass, ent = _stats_torch(p, causal, q_block=block_size, k_block=block_size)
    return SegmentStats(mass=mass, entropy=ent, backend="torch")


def _cuda_blocker(p: _Prepared) -> str | None:
    """Why this call cannot use the CUDA kernel, before trying to build it (None: try it)."""
    if not p.q.is_cuda:
        why = why_no_cuda()
        return why if why is not None else "inputs are on the CPU"
    if p.q.shape[-1] not in CUDA_HEAD_DIMS:
        return f"head dim {p.q.shape[-1]} has no CUDA instantiation (have {sorted(CUDA_HEAD_DIMS)})"
    return None


def naive_segment_attention_stats(
    q: torch.Tensor,
    k: torch.Tensor,
    segment_ids: torch.Tensor | np.ndarray | Sequence[int],
    *,
    causal: bool = True,
    scale: float | None = None,
    query_positions: torch.Tensor | np.ndarray | Sequence[int] | None = None,
    n_segments: int | None = None,
) -> SegmentStats:
    """The textbook computation (full [B, Hq, T, T] softmax, then segment sums), float32: for tests and benches."""
    import torch

    p = _prepare(q, k, segment_ids, scale, query_positions, n_segments)
    B, Hq, T, D = q.shape
    grp = Hq // k.shape[1]
    kk = p.k.to(torch.float32).repeat_interleave(grp, dim=1)
    pos = torch.arange(T, device=q.device) if p.qpos is None else p.qpos
    qq = p.q.to(torch.float32).index_select(2, pos)
    scores = torch.matmul(qq, kk.transpose(-1, -2)) * p.scale
    if causal:
        scores.masked_fill_(torch.arange(T, device=q.device)[None, :] > pos[:, None], -math.inf)
    probs = torch.softmax(scores, dim=-1)
    onehot = torch.nn.functional.one_hot(p.seg, p.n_segments).to(torch.float32).unsqueeze(1)  # [Bs,1,T,G]
    mass = torch.matmul(probs, onehot)
    ent = -(probs * torch.log(probs.clamp_min(1e-30))).sum(-1)
    return SegmentStats(mass=mass, entropy=ent, backend="naive")
