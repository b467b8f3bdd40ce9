"""Attention read-out on a frozen model: full patterns for drift, and SAIL's per-token weights.

``focal_rule_weights`` (batched, pure; also what :mod:`attrib.surgery` trains with) gives w_t = mean over the focal
heads of the attention that the position generating response token t pays to the system-rule span (attention
renormalized without the sink token); ``focal_token_weights`` runs the frozen model on one prompt + response under
``torch.no_grad`` and applies it, returned detached.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from attrib.errors import InputError, is_whole_number
from attrib.heads.types import Head as Head  # re-exported: it was defined here
from attrib.models import is_bridge


def attention_patterns(model: Any, input_ids: Sequence[int], layers: Sequence[int] | None = None) -> np.ndarray:
    """Attention patterns ``[L, H, T, T]`` (float32) of one sequence, for ``layers`` (default: all).

    On a TransformerBridge this reads ``blocks.{l}.attn.hook_pattern``; on an HF model the eager attention
    weights (``output_attentions=True``).
    """
    import torch

    ids = torch.tensor([list(input_ids)])
    with torch.no_grad():
        if is_bridge(model):
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


def focal_rule_weights(
    attentions: Any,
    response_mask: Any,
    spans: Sequence[tuple[int, int]],
    heads: Sequence[Head],
    *,
    sink: int = 0,
) -> Any:
    """The one implementation of SAIL's token weights, batched and pure: ``[B, T]`` weights in [0, 1].

    ``attentions[layer]`` is ``[B, H, T, T]`` (a tuple from ``output_attentions=True``, or a dict holding just the
    needed layers); ``response_mask`` is ``[B, T]``; ``spans`` gives each row's rule span ``[start, end)``. Token t's
    weight is read at the query position t-1 that predicts it; positions outside the response get 0.
    """
    import torch

    response_mask = torch.as_tensor(response_mask)
    B, T = _check_mask(response_mask)
    _check_spans(spans, B, T)
    _check_sink(sink, T)
    _check_heads(attentions, heads, B, T)
    rule = torch.zeros(B, T, dtype=torch.float32)
    for b, (s, e) in enumerate(spans):
        rule[b, s:e] = 1.0
    keep = torch.ones(T)
    keep[sink] = 0.0
    per_head = []
    for layer, head in heads:
        a = torch.as_tensor(attentions[layer])[:, head].float()  # [B, Tq, Tk]
        on_rule = (a * rule[:, None, :]).sum(-1)  # [B, Tq]
        # the non-sink mass summed directly (not 1 - sink: in float32 that rounds to ~1e-7 for sink-parked heads)
        non_sink = (a * keep).sum(-1).clamp_min(1e-12)
        per_head.append(on_rule / non_sink)
    w_query = torch.stack(per_head).mean(0).clamp(0.0, 1.0)  # weight of each query position
    w = torch.zeros(B, T)
    w[:, 1:] = w_query[:, :-1]  # token t is predicted at position t-1
    return w * response_mask.float()


def _check_mask(response_mask: Any) -> tuple[int, int]:
    """``(B, T)`` of a ``[batch, tokens]`` response mask; InputError otherwise."""
    if response_mask.dim() != 2:
        raise InputError(None, "response_mask", f"must be [batch, tokens], got shape {tuple(response_mask.shape)}")
    return int(response_mask.shape[0]), int(response_mask.shape[1])


def _check_spans(spans: Sequence[tuple[int, int]], batch: int, n_tokens: int) -> None:
    """One rule span ``[start, end)`` per row, inside the sequence: a missing row or an overlong span would
    otherwise give that row weights of 0 or a span silently cut at the sequence end."""
    if len(spans) != batch:
        raise InputError(None, "spans", f"expected one rule span per row ({batch}), got {len(spans)}")
    for b, span in enumerate(spans):
        ok = isinstance(span, Sequence) and len(span) == 2 and all(_is_index(x) for x in span)
        if not ok or not 0 <= span[0] < span[1] <= n_tokens:
            raise InputError(None, f"spans[{b}]", f"must be [start, end) with 0 <= start < end <= {n_tokens}, "
                                                  f"got {span!r}")


def _is_index(x: object) -> bool:
    return is_whole_number(x, minimum=-(2**62))


def _check_sink(sink: object, n_tokens: int) -> None:
    """The sink is a token position inside the sequence: -1 silently meant the last token, 500 an IndexError."""
    if not is_whole_number(sink, 0, n_tokens - 1):
        raise InputError(None, "sink", f"must be a token position in 0..{n_tokens - 1} (0: the first token), "
                                       f"got {sink!r}")


def check_focal_heads(heads: Sequence[Any], n_layers: int, n_heads: int, field: str = "focal_heads") -> list[Head]:
    """Each ``(layer, head)`` a pair of whole numbers inside the model's ``n_layers`` x ``n_heads``, checked before
    the model runs: a layer past the end raised a bare IndexError, a negative one silently read the last layer."""
    if isinstance(heads, str | bytes) or not isinstance(heads, Sequence) or not heads:
        raise InputError(None, field, f"expected a non-empty list of (layer, head) pairs, got {heads!r}")
    out: list[Head] = []
    for i, hd in enumerate(heads):
        if not (isinstance(hd, Sequence) and len(hd) == 2 and all(_is_index(x) for x in hd)):
            raise InputError(None, f"{field}[{i}]", f"expected a (layer, head) pair of whole numbers, got {hd!r}")
        layer, head = int(hd[0]), int(hd[1])
        if not 0 <= layer < n_layers:
            raise InputError(None, f"{field}[{i}]", f"layer {layer} is out of range: the model has {n_layers} "
                                                    f"layers (0..{n_layers - 1})")
        if not 0 <= head < n_heads:
            raise InputError(None, f"{field}[{i}]", f"head {head} is out of range: the model has {n_heads} heads "
                                                    f"per layer (0..{n_heads - 1})")
        out.append((layer, head))
    return out


def _check_heads(attentions: Any, heads: Sequence[Head], batch: int, n_tokens: int) -> None:
    """Every focal ``(layer, head)`` names a layer present in ``attentions`` (shaped ``[B, H, T, T]``) and a head in
    ``[0, H)``: a negative head would silently read the last one, a missing layer raise a bare Index/KeyError."""
    if not heads:
        raise InputError(None, "heads", "no focal heads given")
    for i, hd in enumerate(heads):
        if not (isinstance(hd, Sequence) and len(hd) == 2 and all(_is_index(x) for x in hd)):
            raise InputError(None, f"heads[{i}]", f"expected a (layer, head) pair of whole numbers, got {hd!r}")
        layer, head = int(hd[0]), int(hd[1])
        a = _layer_attention(attentions, layer)
        shape = tuple(a.shape)
        if len(shape) != 4 or shape[0] != batch or shape[2:] != (n_tokens, n_tokens):
            raise InputError(None, f"attentions[{layer}]", f"must be [batch, heads, tokens, tokens] = [{batch}, H, "
                                                          f"{n_tokens}, {n_tokens}] like response_mask, got {shape}")
        if not 0 <= head < shape[1]:
            raise InputError(None, f"heads[{i}]", f"head {head} is out of range: layer {layer} has {shape[1]} heads "
                                                  f"(0..{shape[1] - 1})")


def _layer_attention(attentions: Any, layer: int) -> Any:
    """``attentions[layer]`` as a tensor, or an InputError saying why it is not there."""
    import torch

    if isinstance(attentions, dict):
        a = attentions.get(layer)
        if a is None and layer not in attentions:
            raise InputError(None, "heads", f"layer {layer} is not in attentions (it holds layers "
                                            f"{sorted(attentions)})")
    else:
        n = len(attentions)
        if not 0 <= layer < n:
            raise InputError(None, "heads", f"layer {layer} is out of range: attentions holds {n} layers (0..{n - 1})")
        a = attentions[layer]
    if a is None:
        raise InputError(None, f"attentions[{layer}]", "is None: the model returned no attention weights; run it "
                                                       "with output_attentions=True under eager attention "
                                                       "(attrib.surgery.weights.eager_attention)")
    return torch.as_tensor(a)


def focal_token_weights(
    model: Any,
    prompt_ids: Sequence[int],
    response_ids: Sequence[int],
    rule_span: tuple[int, int],
    focal_heads: Sequence[Head],
    *,
    sink: int = 0,
) -> Any:
    """w_t in [0, 1] for each response token of one sequence (detached torch tensor): runs the frozen ``model`` on
    ``prompt + response`` and applies :func:`focal_rule_weights`. The heads and ``sink`` are checked against the
    model's layers, heads and the sequence before it runs."""
    import torch

    from attrib.models import check_model, model_dims

    check_model(model, bridge=True)
    focal_heads = check_focal_heads(focal_heads, *model_dims(model))
    if not response_ids:
        raise InputError(None, "response", "empty response: no tokens to weight")
    _check_sink(sink, len(prompt_ids) + len(response_ids))
    a, b = rule_span
    if not 0 <= a < b <= len(prompt_ids):
        raise InputError(None, "rule_span", f"rule span {rule_span} is not inside the prompt of {len(prompt_ids)} tokens")
    layers = sorted({la for la, _ in focal_heads})
    ids = list(prompt_ids) + list(response_ids)
    pats = attention_patterns(model, ids, layers)  # [L', H, T, T]
    att = {la: torch.from_numpy(pats[i][None]) for i, la in enumerate(layers)}
    mask = torch.tensor([[0] * len(prompt_ids) + [1] * len(response_ids)])
    w = focal_rule_weights(att, mask, [rule_span], focal_heads, sink=sink)
    return w[0, len(prompt_ids):].detach()
