"""The library calls behind ``attrib sail`` and ``attrib compliance``: resolve layers, build pairs, train, evaluate.

``resolve_layers("auto")`` asks :func:`attrib.heads.localize` for the focal layers and heads. When that module is not
importable (a partial install), it falls back to a small private scan over the focus families: per head, the drop in
attention (sink removed) on the system rule at the answer position from the non-conflict to the conflict prompt,
averaged over pairs; the top 5 % heads are focal and their layers the focal layers. The fallback is named in the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from attrib.surgery.lora import num_layers, parse_layers


@dataclass
class LayerChoice:
    """Which layers (and heads) to train, and where that choice came from."""

    layers: list[int]
    heads: list[tuple[int, int]] = field(default_factory=list)
    source: str = "user"
    detail: dict[str, Any] = field(default_factory=dict)


def resolve_layers(model: Any, tokenizer: Any, spec: str | Sequence[int] = "auto", *, top_k: float = 0.05) -> LayerChoice:
    """``"auto"`` localizes on the probe suite's train templates (focus families, no patching check, which
    ``attrib heads`` reports); ``"12-15"``/``"3,7"``/a list are taken as given (range-checked)."""
    if not isinstance(spec, str):
        return LayerChoice(parse_layers(",".join(str(int(x)) for x in spec), num_layers(model)))
    if spec.strip().lower() != "auto":
        return LayerChoice(parse_layers(spec, num_layers(model)))
    try:
        from attrib.heads.localization import localize
    except ImportError:
        localize = None
    if localize is not None:
        loc = localize((model, tokenizer), top_k=top_k, split="train", patch=False)
        heads = [(int(a), int(b)) for a, b in loc.focal_heads]
        return LayerChoice(sorted(int(x) for x in loc.focal_layers), heads, "attrib.heads.localize",
                           {"n_pairs": loc.n_pairs, "pair_selection": loc.pair_selection, "timings": loc.timings})
    return _fallback_localize(model, tokenizer, top_k=top_k)


def _fallback_localize(model: Any, tokenizer: Any, *, top_k: float = 0.05) -> LayerChoice:
    """Private stand-in for ``attrib.heads.localize``: rule-attention drop per head at the answer position."""
    import math

    import numpy as np
    import torch

    from attrib.probes import FOCUS_FAMILIES, conflict_suite, pairs
    from attrib.surgery.weights import eager_attention

    def rule_mass(probe: Any) -> np.ndarray:
        r = probe.render(tokenizer, with_prefix=False)
        a, b = r.spans["rule"]
        with torch.no_grad(), eager_attention(model):
            out = model(input_ids=torch.tensor([r.input_ids]), output_attentions=True, use_cache=False)
        att = torch.stack([x[0, :, -1, :] for x in out.attentions]).float()  # [L, H, K] at the answer position
        return (att[..., a:b].sum(-1) / (1 - att[..., 0]).clamp_min(1e-6)).numpy()

    drops = [rule_mass(c) - rule_mass(x) for c, x in pairs(conflict_suite(FOCUS_FAMILIES, split="train"))]
    score = np.mean(drops, axis=0)
    n = max(1, math.ceil(top_k * score.size))
    order = np.argsort(-score, axis=None)[:n]
    heads = [tuple(int(i) for i in np.unravel_index(o, score.shape)) for o in order]
    layers = sorted({h[0] for h in heads})
    return LayerChoice(layers, heads, "attrib.surgery fallback (rule-attention drop)",  # type: ignore[arg-type]
                       {"n_pairs": len(drops)})


def suite_pairs(
    model: Any,
    tokenizer: Any,
    *,
    families: Sequence[str] | None = None,
    split: str | None = None,
    sample: bool = True,
    n_samples: int = 2,
    max_new_tokens: int = 40,
    max_pairs_per_probe: int = 2,
    seed: int = 0,
) -> list[Any]:
    """Preference pairs from the conflict suite: model answers (greedy + ``n_samples`` sampled) labelled by the
    checkers, topped up with templated responses. ``sample=False`` uses templated responses only (no generation)."""
    from attrib.probes import conflict_suite
    from attrib.surgery.pairs import build_pairs, sample_responses

    probes = conflict_suite(families, split=split)
    samples = sample_responses(model, tokenizer, probes, n=n_samples, max_new_tokens=max_new_tokens, seed=seed) \
        if sample else {}
    return build_pairs(probes, samples, max_pairs_per_probe=max_pairs_per_probe, seed=seed)


def heldout_probes(families: Sequence[str] | None = None, conditions: Sequence[str] | None = None) -> list[Any]:
    """The held-out probes (unseen templates) used for compliance evaluation."""
    from attrib.probes import conflict_suite

    kw = {"conditions": tuple(conditions)} if conditions else {}
    return conflict_suite(families, split="heldout", **kw)

