"""The library calls behind ``attrib sail`` and ``attrib compliance``: resolve layers, build pairs, held-out probes.

``resolve_layers("auto")`` asks :func:`attrib.heads.localize` for the focal layers and heads (the SAIL token weights
then use those heads).
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
    from attrib.heads.localization import localize

    loc = localize((model, tokenizer), top_k=top_k, split="train", patch=False)
    heads = [(int(a), int(b)) for a, b in loc.focal_heads]
    return LayerChoice(sorted(int(x) for x in loc.focal_layers), heads, "attrib.heads.localize",
                       {"n_pairs": loc.n_pairs, "pair_selection": loc.pair_selection, "timings": loc.timings})


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

