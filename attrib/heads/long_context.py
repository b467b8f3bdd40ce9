"""Per-layer attention statistics over long contexts: segment masses and entropy without caching hook_pattern.

``layer_segment_stats(model, input_ids, segment_ids, query_positions=...)`` runs the model once and, in each
layer, hands the post-rotary queries and keys to :func:`attrib.kernels.segment_attention_stats` as soon as they
exist, keeping only the [heads, Q, segments] result. ``run_with_cache(names_filter="pattern")`` instead keeps
[heads, T, T] per layer (30 layers x 9 heads x 8192^2 fp32 = 67.5 GiB for SmolLM2 at 8k tokens).

Two engines read the same q/k:
- ``"bridge"``: a TransformerLens ``TransformerBridge`` with hooks on ``blocks.{l}.attn.hook_rot_q`` /
  ``hook_rot_k`` (TransformerLens 4.x names, shape [batch, pos, heads, d_head]). The bridge's own attention still
  forms one layer's [heads, T, T] scores transiently, so this fits contexts of a few thousand tokens on a laptop.
- ``"hf"``: the plain HF model with a registered ``transformers.AttentionInterface`` function that reads q/k
  (post-rotary, KV heads not repeated) and then calls PyTorch SDPA for the layer output, so no T x T tensor
  exists anywhere where SDPA has a fused kernel (fp32 on the CPU, bf16/fp16 on a GPU): the engine for
  16k-32k-token agent transcripts. In fp32 on a GPU, SDPA falls back to its math path and builds the
  [heads, T, T] scores itself, so :func:`layer_segment_stats` warns when they would exceed 1 GiB a layer.
The forward pass stops after the last requested layer.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import math
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

from attrib.errors import InputError, layers_or_all
from attrib.kernels import Backend, SegmentStats, segment_attention_stats
from attrib.models import is_bridge

if TYPE_CHECKING:
    import numpy as np
    import torch

Engine = Literal["auto", "bridge", "hf"]
ATTN_IMPL_NAME = "attrib_segment_stats"


class _Done(Exception):
    """Raised from a hook once the last requested layer is done: skips the rest of the forward pass."""


def layer_segment_stats(
    model: Any,
    input_ids: Sequence[int] | torch.Tensor,
    segment_ids: Sequence[int] | np.ndarray | torch.Tensor,
    *,
    query_positions: Sequence[int] | np.ndarray | torch.Tensor | None = None,
    layers: Iterable[int] | None = None,
    n_segments: int | None = None,
    engine: Engine = "auto",
    backend: Backend = "auto",
) -> dict[int, SegmentStats]:
    """Segment attention masses and entropy of every query head, per layer, from one forward pass.

    ``model``: a TransformerBridge (``attrib.models.load_bridge``), an ``(hf_model, tokenizer)`` pair, an HF
    model, or a model name/path. With ``engine="bridge"`` and an HF model, the bridge wraps a copy: the model passed
    in is left as it was (pass a bridge to avoid the copy on repeated calls). ``input_ids``: [T] or [1, T] token ids. ``segment_ids``: [T] integers
    (e.g. ``attrib.heads.drift.segment_ids``). ``query_positions``: the positions to report (default all).
    ``engine``: "bridge" (TransformerLens hooks), "hf" (AttentionInterface + SDPA, O(T) memory) or "auto"
    (the bridge when given one, else hf). Returns {layer: SegmentStats(mass [1, H, Q, G], entropy [1, H, Q])}.
    """
    import torch

    runner = _runner(model, engine)
    n_layers = _n_layers(runner)
    want = layers_or_all(layers, n_layers)
    ids = _token_ids(input_ids, _vocab_size(runner))
    seg = torch.as_tensor(segment_ids)
    if seg.dim() != 1 or seg.shape[0] != ids.shape[1]:
        raise InputError(None, "segment_ids", f"expected {ids.shape[1]} ids (one per token), got shape {tuple(seg.shape)}")
    if n_segments is None:
        n_segments = int(seg.max()) + 1 if seg.numel() else 1
    out: dict[int, SegmentStats] = {}

    def collect(layer: int, q: torch.Tensor, k: torch.Tensor, scale: float) -> None:
        out[layer] = segment_attention_stats(
            q.detach(), k.detach(), seg.to(q.device), causal=True, scale=scale,
            query_positions=query_positions, n_segments=n_segments, backend=backend,
        )
        if layer == want[-1]:
            raise _Done

    with torch.inference_mode():
        if is_bridge(runner):
            _run_bridge(runner, ids, set(want), collect)
        else:
            _run_hf(runner, ids, set(want), collect)
    missing = [layer for layer in want if layer not in out]
    if missing:
        raise RuntimeError(f"the forward pass never reached the attention of layers {missing}")
    return out


def _vocab_size(runner: Any) -> int | None:
    """Rows of the token embedding (None when it cannot be found): the bound for ``input_ids``."""
    hf = runner.original_model if is_bridge(runner) else runner
    emb = getattr(hf, "get_input_embeddings", lambda: None)()
    n = getattr(emb, "num_embeddings", None)
    return int(n) if n is not None else None


def _token_ids(input_ids: Any, vocab: int | None) -> torch.Tensor:
    """``input_ids`` as a ``[1, T]`` long tensor of ids in ``[0, vocab)``. Floats are refused (``dtype=long``
    used to truncate them to other tokens), and so are ids the embedding does not have (a bare IndexError from
    inside the model before)."""
    import torch

    raw = torch.as_tensor(input_ids)
    if raw.is_floating_point() or raw.is_complex() or raw.dtype == torch.bool:
        raise InputError(None, "input_ids", f"must be integer token ids, got dtype {raw.dtype}")
    ids = raw.to(torch.long)
    if ids.dim() == 1:
        ids = ids.unsqueeze(0)
    if ids.dim() != 2 or ids.shape[0] != 1 or ids.shape[1] == 0:
        raise InputError(None, "input_ids", f"expected one non-empty token sequence, got shape {tuple(ids.shape)}")
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or (vocab is not None and hi >= vocab):
        bad = lo if lo < 0 else hi
        raise InputError(None, "input_ids", f"token id {bad} is outside the model's vocabulary (0..{vocab - 1})"
                         if vocab is not None else f"token id {bad} is negative")
    return ids


# ----------------------------------------------------------------------------------------------------------
# Engine: TransformerLens bridge hooks.


def _runner(model: Any, engine: Engine) -> Any:
    """The object to run: a bridge for engine 'bridge', an HF model for 'hf'."""
    from attrib.models import hf_of, load_bridge

    if engine not in ("auto", "bridge", "hf"):
        raise InputError(None, "engine", f"must be 'auto', 'bridge' or 'hf', got {engine!r}")
    if is_bridge(model):
        return model if engine in ("auto", "bridge") else model.original_model
    if isinstance(model, tuple | str | os.PathLike):
        hf, tok = hf_of(model)
    elif hasattr(model, "config") and callable(model):
        hf, tok = model, None
    else:
        raise InputError(None, "model", f"expected a bridge, an HF model, (hf_model, tokenizer) or a name, got {type(model).__name__}")
    if engine == "bridge":
        if tok is None:
            raise InputError(None, "model", "engine='bridge' needs a tokenizer: pass (hf_model, tokenizer) or a bridge")
        # booting a bridge rewires the HF model's attention in place: wrap a copy, never the caller's (often the
        # memoized, shared) model, as load_bridge(name) does
        return load_bridge((copy.deepcopy(hf), tok))
    return hf


def _n_layers(runner: Any) -> int:
    if is_bridge(runner):
        return int(runner.cfg.n_layers)
    return int(runner.config.num_hidden_layers)


def _check_plain_attention(hf_attn: Any, where: str) -> None:
    """Refuse attention variants the statistics do not model (they would silently give wrong masses)."""
    for attr in ("attn_logit_softcapping", "sinks", "sliding_window"):
        if getattr(hf_attn, attr, None) is not None:
            raise InputError(None, where, f"attention with {attr} is not supported by segment statistics")


def _run_bridge(bridge: Any, ids: torch.Tensor, want: set[int], collect: Callable[..., None]) -> None:
    first = f"blocks.{min(want)}.attn.hook_rot_q"
    if first not in bridge.hook_dict:
        raise InputError(None, "model", "this TransformerBridge has no hook_rot_q/hook_rot_k (not a rotary model?)")
    pending: dict[int, Any] = {}
    hooks = []
    for layer in sorted(want):
        attn = bridge.blocks[layer].attn
        hf_attn = getattr(attn, "original_component", None)
        _check_plain_attention(hf_attn, f"blocks.{layer}.attn")
        scale = float(getattr(hf_attn, "scaling", None) or 1.0 / math.sqrt(bridge.cfg.d_head))

        def on_q(x: Any, hook: Any, layer: int = layer) -> Any:
            pending[layer] = x  # [batch, pos, heads, d_head] (TransformerLens layout)
            return x

        def on_k(x: Any, hook: Any, layer: int = layer, scale: float = scale) -> Any:
            q = pending.pop(layer)
            collect(layer, q.transpose(1, 2), x.transpose(1, 2), scale)
            return x

        hooks += [(f"blocks.{layer}.attn.hook_rot_q", on_q), (f"blocks.{layer}.attn.hook_rot_k", on_k)]
    try:
        with bridge.hooks(fwd_hooks=hooks):
            bridge(ids.to(bridge.cfg.device), return_type=None)
    except _Done:
        pass


# ----------------------------------------------------------------------------------------------------------
# Engine: HF model with an AttentionInterface function (q/k to the statistics, output from SDPA).

_collector: contextvars.ContextVar[Callable[..., None] | None] = contextvars.ContextVar("attrib_collector", default=None)
_register_lock = threading.Lock()
_registered = False


def _stats_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, **kwargs: Any) -> Any:
    """An attention function for transformers: report post-rotary q/k, then compute the output with SDPA."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    collect = _collector.get()
    if collect is not None:
        scale = kwargs.get("scaling")
        scale = float(scale) if scale is not None else 1.0 / math.sqrt(query.shape[-1])
        collect(int(module.layer_idx), query, key, scale)
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


def _ensure_registered() -> None:
    global _registered
    with _register_lock:
        if not _registered:
            from transformers import AttentionInterface
            from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

            AttentionInterface.register(ATTN_IMPL_NAME, _stats_attention)
            # the layer output is SDPA's, so build SDPA's mask (None for one unpadded causal sequence)
            ALL_MASK_ATTENTION_FUNCTIONS.register(ATTN_IMPL_NAME, sdpa_mask)
            _registered = True


def fp32_gpu_score_bytes(device_type: str, dtype: Any, n_heads: int, n_tokens: int) -> int:
    """Bytes of the [heads, T, T] fp32 scores SDPA's math path builds per layer; 0 where a fused kernel runs."""
    import torch

    if device_type != "cuda" or dtype != torch.float32:
        return 0
    return 4 * n_heads * n_tokens * n_tokens


def _warn_fp32_gpu(model: Any, n_tokens: int) -> None:
    import warnings

    heads = int(getattr(model.config, "num_attention_heads", 1))
    need = fp32_gpu_score_bytes(model.device.type, model.dtype, heads, n_tokens)
    if need > 2**30:
        warnings.warn(
            f"engine='hf' in float32 on a GPU: SDPA has no fused fp32 kernel and builds [{heads}, {n_tokens}, {n_tokens}] "
            f"scores ({need / 2**30:.1f} GiB per layer); load the model in bfloat16/float16 for O(T) memory",
            RuntimeWarning, stacklevel=4,
        )


def _run_hf(model: Any, ids: torch.Tensor, want: set[int], collect: Callable[..., None]) -> None:
    _ensure_registered()
    _warn_fp32_gpu(model, int(ids.shape[1]))

    def only_wanted(layer: int, q: Any, k: Any, scale: float) -> None:
        if layer in want:
            collect(layer, q, k, scale)

    before = model.config._attn_implementation
    token = _collector.set(only_wanted)
    with _unbridged_attention(model) as attns:
        for layer in want:
            if layer >= len(attns) or not hasattr(attns[layer], "layer_idx"):
                raise InputError(None, "model", f"cannot find layer {layer}'s attention module (model.layers[i].self_attn)")
            _check_plain_attention(attns[layer], f"layer {layer} attention")
        try:
            model.set_attn_implementation(ATTN_IMPL_NAME)
            model(input_ids=ids.to(model.device), use_cache=False)
        except _Done:
            pass
        finally:
            _collector.reset(token)
            model.set_attn_implementation(before)


@contextlib.contextmanager
def _unbridged_attention(model: Any) -> Iterator[list[Any]]:
    """The HF attention modules of every layer; where a TransformerBridge has wrapped them (it does so in place,
    and reimplements attention eagerly), the original HF modules are put back for the duration."""
    base = getattr(model, "model", model)
    swapped: list[tuple[Any, Any]] = []
    attns: list[Any] = []
    try:
        for layer in getattr(base, "layers", []):
            decoder = getattr(layer, "original_component", None) or layer
            attn = getattr(decoder, "self_attn", None)
            inner = getattr(attn, "original_component", None)
            if inner is not None:
                decoder.self_attn = inner
                swapped.append((decoder, attn))
                attn = inner
            attns.append(attn)
        yield attns
    finally:
        for decoder, attn in swapped:
            decoder.self_attn = attn
