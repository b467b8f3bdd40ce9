"""Attention read-out on a frozen model: full patterns for drift, and SAIL's per-token weights.

``focal_token_weights`` gives, for a prompt + response, w_t = mean over the focal heads of the attention that
the position generating response token t pays to the system-rule span (attention renormalized without the
sink token), computed with the frozen model under ``torch.no_grad`` and returned detached.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from attrib.errors import InputError

Head = tuple[int, int]


def _is_bridge(model: Any) -> bool:
    return hasattr(model, "original_model") and hasattr(model, "run_with_cache")


def attention_patterns(model: Any, input_ids: Sequence[int], layers: Sequence[int] | None = None) -> np.ndarray:
    """Attention patterns ``[L, H, T, T]`` (float32) of one sequence, for ``layers`` (default: all).

    On a TransformerBridge this reads ``blocks.{l}.attn.hook_pattern``; on an HF model the eager attention
    weights (``output_attentions=True``).
    """
    import torch

    ids = torch.tensor([list(input_ids)])
    with torch.no_grad():
        if _is_bridge(model):
            n_layers = model.cfg.n_layers
            want = list(range(n_layers)) if layers is None else list(layers)
            names = {f"blocks.{la}.attn.hook_pattern" for la in want}
            _, cache = model.run_with_cache(ids, names_filter=lambda n: n in names)
            pats = [cache[f"blocks.{la}.attn.hook_pattern"][0] for la in want]
        else:
            out = model(input_ids=ids, output_attentions=True)
            if not out.attentions or out.attentions[0] is None:
                raise InputError(None, "model", "this model returns no attention weights; load it with attn_implementation='eager'")
            want = list(range(len(out.attentions))) if layers is None else list(layers)
            pats = [out.attentions[la][0] for la in want]
    return torch.stack(pats).float().cpu().numpy()


def focal_token_weights(
    model: Any,
    prompt_ids: Sequence[int],
    response_ids: Sequence[int],
    rule_span: tuple[int, int],
    focal_heads: Sequence[Head],
    *,
    sink: int = 0,
) -> Any:
    """w_t in [0, 1] for each response token: focal heads' attention onto the rule span (detached torch tensor).

    The frozen model reads ``prompt + response``; the query for token t is position ``len(prompt) + t - 1``.
    """
    import torch

    if not focal_heads:
        raise InputError(None, "focal_heads", "no focal heads given")
    if not response_ids:
        raise InputError(None, "response", "empty response: no tokens to weight")
    a, b = rule_span
    if not 0 <= a < b <= len(prompt_ids):
        raise InputError(None, "rule_span", f"rule span {rule_span} is not inside the prompt of {len(prompt_ids)} tokens")
    layers = sorted({la for la, _ in focal_heads})
    ids = list(prompt_ids) + list(response_ids)
    pats = attention_patterns(model, ids, layers)  # [L', H, T, T]
    q = np.arange(len(prompt_ids) - 1, len(ids) - 1)
    row_of = {la: i for i, la in enumerate(layers)}
    ws = []
    for la, h in focal_heads:
        rows = pats[row_of[la], h][q]  # [R, T]
        # the non-sink mass summed directly (not 1 - sink: in float32 that rounds to ~1e-7 for sink-parked heads)
        rest = np.maximum(rows.sum(-1) - rows[:, sink], 1e-12)
        ws.append(np.clip(rows[:, a:b].sum(-1) / rest, 0.0, 1.0))
    return torch.tensor(np.mean(ws, axis=0), dtype=torch.float32).detach()
