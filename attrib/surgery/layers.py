"""Which layers should SAIL train? A gradient ranking of the decoder layers on the *training* preference pairs.

``rank_layers`` scores layer ``l`` by the squared Frobenius norm of the gradient of the preference loss with respect
to that layer's attention weights, ``s_l = Σ_{p ∈ q,k,v,o} ‖∂L/∂W_{l,p}‖²``, taken at the start of training (policy =
reference, so the loss is plain DPO's log 2 and its gradient is −β/2 ∇(log π(chosen) − log π(rejected))).
Why this quantity: it is the first-order drop of the loss under a gradient step restricted to those weights
(ΔL ≈ −η·s_l), and a rank-r LoRA with a random ``A`` and zero ``B`` starts by moving along ``∂L/∂W · Aᵀ`` whose
expected squared norm is proportional to ``s_l`` (all four projections read the 576-dim residual). So ``s_l`` says
how much a LoRA on layer ``l`` alone can lower the training loss at first — the attribution-patching idea
(Nanda 2023; captum's ``LayerGradientXActivation`` is the activation-side cousin) applied to the parameters that
SAIL will actually train. It needs one forward + backward per training pair and no generation, and, unlike
:func:`attrib.heads.localize` (which only sees families where the base model sometimes complies), every trained
family takes part.

Families are balanced: each family's scores are turned into shares (summing to 1 over layers) and the shares are
averaged over families, so a family with large gradients (e.g. long rejected answers) does not decide alone; the
unbalanced full-batch score is kept in ``detail["pooled"]``. The token weights are not used here (α = 0): they depend
on focal heads, which come after the layers. The number of layers is fixed up front, not tuned on results:
``k = max(1, round(fraction · n_layers))`` (10 % by default: 3 of SmolLM2's 30 layers).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from attrib.errors import InputError, UsageError, is_real, whole_number
from attrib.models import pad_id
from attrib.surgery.api import LayerChoice
from attrib.surgery.lora import attention_projections, num_layers
from attrib.surgery.pairs import PreferencePair

#: Share of the decoder layers SAIL trains when the layers are chosen automatically.
DEFAULT_FRACTION = 0.1


def choose_k(n_layers: int, fraction: float = DEFAULT_FRACTION) -> int:
    """The fixed rule for how many layers to train: ``max(1, round(fraction · n_layers))``."""
    if not (is_real(fraction) and 0 < fraction <= 1):
        raise UsageError(None, "fraction", f"the share of layers to train must be in (0, 1], got {fraction!r}")
    return max(1, min(n_layers, round(fraction * n_layers)))


def _resolve_k(n_layers: int, fraction: float, k: int | None) -> int:
    """``k`` if given (checked against the model), else :func:`choose_k` of ``fraction``."""
    if k is None:
        return choose_k(n_layers, fraction)
    return whole_number("k", k, 1, n_layers)  # the model's layers


def balanced_scores(per_family: Mapping[str, Sequence[float]]) -> list[float]:
    """Pure part: mean over families of each family's per-layer share of its total score."""
    if not per_family:
        raise InputError(None, "pairs", "no family scores to combine")
    n = len(next(iter(per_family.values())))
    out = [0.0] * n
    for scores in per_family.values():
        total = sum(scores) or 1.0
        for i, s in enumerate(scores):
            out[i] += s / total / len(per_family)
    return out


def top_layers(scores: Sequence[float], k: int) -> list[int]:
    """Indices of the ``k`` largest scores (ties broken by the lower index), sorted ascending."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    return sorted(order[:k])


def rank_layers(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[PreferencePair],
    *,
    fraction: float = DEFAULT_FRACTION,
    k: int | None = None,
    beta: float = 0.1,
    batch_size: int = 4,
    max_response_tokens: int = 24,
) -> LayerChoice:
    """Rank decoder layers by the gradient of the DPO loss on ``pairs`` w.r.t. their q/k/v/o weights; keep the top k.

    ``k`` defaults to :func:`choose_k` of ``fraction``. Deterministic (no sampling; the model is run in eval mode).
    ``detail`` holds the balanced scores, the pooled scores, per-family scores and the seconds taken.
    """
    import torch

    from attrib.surgery.loss import collate, response_logps, sail_loss
    from attrib.surgery.train import encode_pairs

    if not pairs:
        raise InputError(None, "pairs", "no preference pairs to rank layers on")
    n_layers = num_layers(model)
    if n_layers < 1:
        raise InputError(None, "model", "no decoder layers found")
    k = _resolve_k(n_layers, fraction, k)
    t0 = time.perf_counter()
    rows = encode_pairs(tokenizer, pairs, max_response_tokens)
    pad = pad_id(tokenizer)

    targets = {name: (layer, module.weight) for layer, name, module in attention_projections(model)
               if hasattr(module, "weight")}
    if not targets:
        raise InputError(None, "model", "no q/k/v/o attention projections found to rank")
    flags = {id(p): p.requires_grad for p in model.parameters()}
    grads_before = {id(w): w.grad for _, w in targets.values()}
    was_training = model.training
    by_family: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(pairs):
        by_family[p.family].append(i)
    per_family: dict[str, list[float]] = {}
    pooled = {name: torch.zeros_like(w) for name, (_, w) in targets.items()}
    try:
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        for _, w in targets.values():
            w.requires_grad_(True)
        for fam in sorted(by_family):
            idx = by_family[fam]
            for _, w in targets.values():
                w.grad = None
            for s in range(0, len(idx), batch_size):
                chunk = [rows[i] for i in idx[s:s + batch_size]]
                batch = collate([r["chosen"] for r in chunk] + [r["rejected"] for r in chunk], pad)
                logps = response_logps(model, batch)
                b = len(chunk)
                c, rj = slice(0, b), slice(b, 2 * b)
                zeros = torch.zeros_like(logps)
                m = batch["response_mask"]
                loss = sail_loss(logps[c], logps[rj], logps[c].detach(), logps[rj].detach(), zeros[c], zeros[rj],
                                 m[c], m[rj], beta=beta, alpha=0.0, reduction="sum")
                loss.backward()
            scores = [0.0] * n_layers
            for name, (layer, w) in targets.items():
                g = w.grad / len(idx)  # gradient of this family's mean loss
                scores[layer] += float(g.pow(2).sum())
                pooled[name] += w.grad / len(pairs)
            per_family[fam] = scores
    finally:
        for p in model.parameters():
            p.requires_grad_(flags[id(p)])
        for _, w in targets.values():
            w.grad = grads_before[id(w)]
        model.train(was_training)
    pooled_scores = [0.0] * n_layers
    for name, (layer, _) in targets.items():
        pooled_scores[layer] += float(pooled[name].pow(2).sum())
    balanced = balanced_scores(per_family)
    layers = top_layers(balanced, k)
    return LayerChoice(layers, [], "attrib.surgery.layers.rank_layers", {
        "rule": f"top {k} of {n_layers} layers (fraction {fraction}) by family-balanced squared gradient norm",
        "scores": balanced, "pooled": pooled_scores, "per_family": per_family,
        "family_top": {f: top_layers(s, k) for f, s in per_family.items()},
        "n_pairs": len(pairs), "seconds": time.perf_counter() - t0,
    })


# ----------------------------------------------------------------------------------------------------------------------
# Ranking by a short repair: which layers carry the effect of an all-layer LoRA on held-back pairs?


def repair_scores(g_start: Sequence[float], g_end: Sequence[float]) -> list[float]:
    """Pure part: ``½(g_start + g_end)`` per layer, the two-point (trapezoid) integrated gradient of the margin.

    ``g_start[l] = ⟨∇_{B_l} m |_{B=0}, B_l⟩`` and ``g_end[l] = ⟨∇_{B_l} m |_{B=B*}, B_l⟩`` summed over the layer's
    LoRA ``B`` matrices: the first-order effect of switching layer ``l``'s update on alone (from the base model) and
    off alone (from the repaired model). Their mean is the trapezoid rule of integrated gradients along the straight
    path from base to repaired model, so the scores add up to about ``m(B*) − m(0)`` (completeness).
    """
    if len(g_start) != len(g_end):
        raise InputError(None, "scores", "g_start and g_end must have one value per layer")
    return [0.5 * (a + b) for a, b in zip(g_start, g_end, strict=True)]


def prompt_key(p: PreferencePair) -> str:
    """What keeps pairs together in :func:`holdout_split`: the probe id, or for pairs without one (a user's pairs
    file) the prompt itself, its system and user messages."""
    if p.probe_id:
        return p.probe_id
    turns = [[m.get("role", ""), m.get("content", "")] for m in p.messages if m.get("role") in ("system", "user")]
    return "prompt:" + json.dumps(turns or [[m.get("role", ""), m.get("content", "")] for m in p.messages],
                                  ensure_ascii=False)


def holdout_split(pairs: Sequence[PreferencePair], share: float = 1 / 3) -> tuple[list, list]:
    """Deterministic split by prompt (a probe's pairs stay together; pairs without a probe id are grouped by their
    system + user messages): ``(fit, held_back)``, about ``share`` of the prompts held back, and at least one
    prompt on each side whenever there are two (a few prompts can all hash to one side)."""
    import hashlib

    def h(key: str) -> float:
        return int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF

    keys = sorted({prompt_key(p) for p in pairs}, key=h)  # lowest hash first
    if len(keys) < 2:
        raise InputError(None, "pairs", f"cannot hold back pairs by prompt: all {len(pairs)} pairs share one prompt "
                         "(give pairs of two or more prompts or separate validation pairs, or choose the layers "
                         "another way: a list such as 12-15, or auto)")
    held_keys = {k for k in keys if h(k) < share} or {keys[0]}
    if len(held_keys) == len(keys):
        held_keys.discard(keys[-1])
    fit = [p for p in pairs if prompt_key(p) not in held_keys]
    held = [p for p in pairs if prompt_key(p) in held_keys]
    return fit, held


def rank_layers_by_repair(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[PreferencePair],
    val_pairs: Sequence[PreferencePair] | None = None,
    *,
    fraction: float = DEFAULT_FRACTION,
    k: int | None = None,
    steps: int = 16,
    lr: float = 1e-3,
    batch_size: int = 4,
    random_state: int = 0,
    max_response_tokens: int = 24,
    max_val_per_family: int = 8,
    progress: bool = False,
) -> LayerChoice:
    """Train a short plain-DPO LoRA on *all* layers on ``pairs``, then score each layer by its share of that repair on
    ``val_pairs``: :func:`repair_scores` of the family-balanced preference margin ``m = log π(chosen) − log π(rejected)``
    (summed over response tokens); keep the top k.

    ``val_pairs`` defaults to a third of ``pairs`` held back by prompt (:func:`holdout_split`), the rest trains; at
    most ``max_val_per_family`` of them per family are used (fixed order). Costs one short training plus two
    forward + backward passes over the held-back pairs. Why not exact coalition values (each layer's update switched
    on alone / off alone)? They need 2·n_layers + 2 forward passes, about an hour on CPU for SmolLM2.
    """
    import tempfile

    import torch

    from attrib.surgery.loss import collate, response_logps
    from attrib.surgery.train import encode_pairs, train_sail, uniform_weights

    if not pairs:
        raise InputError(None, "pairs", "no preference pairs to rank layers on")
    n_layers = num_layers(model)
    k = _resolve_k(n_layers, fraction, k)
    fit, held = (list(pairs), list(val_pairs)) if val_pairs else holdout_split(pairs)
    per_fam: dict[str, list[PreferencePair]] = defaultdict(list)
    for p in held:
        if len(per_fam[p.family]) < max_val_per_family:
            per_fam[p.family].append(p)
    held = [p for fam in sorted(per_fam) for p in per_fam[fam]]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="attrib_repair_rank_") as tmp:
        res = train_sail(model, tokenizer, fit, list(range(n_layers)), uniform_weights(), steps=steps, lr=lr,
                         alpha=0.0, batch_size=batch_size, random_state=random_state, out_dir=tmp,
                         resume=False, max_response_tokens=max_response_tokens, progress=progress)
    t_train = time.perf_counter() - t0
    peft_model = res.model
    # every LoRA "B" matrix by layer (B = 0 switches a layer's update off exactly; A keeps its trained value)
    by_layer: dict[int, list[tuple[Any, Any]]] = defaultdict(list)
    for layer, _, module in attention_projections(peft_model):
        for lin in getattr(module, "lora_B", {}).values():
            by_layer[layer].append((lin.weight, lin.weight.detach().clone()))
    if set(by_layer) != set(range(n_layers)):
        raise InputError(None, "model", "the all-layer LoRA did not reach every layer's attention projections")

    rows = encode_pairs(tokenizer, held, max_response_tokens)
    pad = pad_id(tokenizer)
    n_fam = {f: len(v) for f, v in per_fam.items()}
    weight = [1.0 / (len(n_fam) * n_fam[p.family]) for p in held]  # family-balanced mean

    def margin_and_effects(on: bool) -> tuple[float, list[float]]:
        """m with every update on (or off), and ⟨∇_B m, B*⟩ per layer there."""
        with torch.no_grad():
            for items in by_layer.values():
                for w, orig in items:
                    w.copy_(orig if on else torch.zeros_like(orig))
                    w.grad = None
                    w.requires_grad_(True)
        total = 0.0
        for s in range(0, len(rows), batch_size):
            chunk = rows[s:s + batch_size]
            batch = collate([r["chosen"] for r in chunk] + [r["rejected"] for r in chunk], pad)
            lp = response_logps(peft_model, batch).sum(-1)  # already zero outside the response
            wt = torch.tensor(weight[s:s + len(chunk)], dtype=lp.dtype)
            m = (wt * (lp[:len(chunk)] - lp[len(chunk):])).sum()
            m.backward()
            total += float(m.detach())
        effects = [sum(float((w.grad * orig).sum()) for w, orig in by_layer[layer]) for layer in range(n_layers)]
        return total, effects

    peft_model.eval()
    for p in peft_model.parameters():  # only the B matrices take gradients (set in margin_and_effects)
        p.requires_grad_(False)
    m0, g_start = margin_and_effects(False)
    m1, g_end = margin_and_effects(True)
    scores = repair_scores(g_start, g_end)
    layers = top_layers(scores, k)
    return LayerChoice(layers, [], "attrib.surgery.layers.rank_layers_by_repair", {
        "rule": f"top {k} of {n_layers} layers by their integrated-gradient share (2-point trapezoid) of an all-layer "
                f"{steps}-step DPO LoRA's preference margin on {len(held)} held-back pairs",
        "scores": scores, "g_start": g_start, "g_end": g_end, "margin_base": m0, "margin_repaired": m1,
        "completeness": {"sum_of_scores": sum(scores), "margin_change": m1 - m0},
        "n_fit_pairs": len(fit), "n_held_pairs": len(held), "steps": steps, "lr": lr, "random_state": random_state,
        "train_seconds": t_train, "seconds": time.perf_counter() - t0,
    })
