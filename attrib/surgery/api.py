"""The library calls behind ``attrib sail`` and ``attrib compliance``: resolve layers, build pairs, held-out probes.

Layer specs (default ``"repair"``, the one that beat random layers on the larger held-out set of ``bench/sail``):
``"auto"`` ranks layers by the gradient of the preference loss on the training pairs
(:func:`attrib.surgery.layers.rank_layers`; the token weights then use every head of those layers);
``"heads"`` asks :func:`attrib.heads.localize` for focal layers and heads (it only sees families where the base model
sometimes complies); ``"repair"`` trains a short all-layer LoRA and keeps the layers that carry its effect on held-back
pairs (:func:`attrib.surgery.layers.rank_layers_by_repair`); ``"12-15"``/``"3,7"``/a list are taken as given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from attrib.surgery.lora import num_layers, parse_layers, validate_layers


@dataclass
class LayerChoice:
    """Which layers (and heads) to train, and where that choice came from."""

    layers: list[int]
    heads: list[tuple[int, int]] = field(default_factory=list)
    source: str = "user"
    detail: dict[str, Any] = field(default_factory=dict)


#: The named layer specs (anything else is parsed as a layer list like ``12-15`` or ``3,7,9``).
LAYER_SPECS = ("auto", "heads", "repair")


def resolve_layers(
    model: Any,
    tokenizer: Any,
    spec: str | Sequence[int] = "repair",
    *,
    pairs: Sequence[Any] | None = None,
    val_pairs: Sequence[Any] | None = None,
    top_k: float = 0.05,
    fraction: float = 0.1,
    random_state: int = 0,
) -> LayerChoice:
    """``"auto"``: the top ``fraction`` of layers by gradient attribution on the training ``pairs`` (required);
    ``"heads"``: :func:`attrib.heads.localize` on the probe suite's train templates (focus families, no patching
    check, which ``attrib heads`` reports); ``"repair"``: the top ``fraction`` by their share of a short all-layer
    repair on ``val_pairs`` (default: a third of ``pairs`` held back by prompt); ``"12-15"``/``"3,7"``/a list are
    taken as given (range-checked). ``random_state`` seeds the short repair's batches."""
    if not isinstance(spec, str):
        return LayerChoice(validate_layers(model, spec))
    name = spec.strip().lower()
    if name in ("auto", "repair") and not pairs:
        from attrib.errors import UsageError

        how = "ranks layers by gradient on" if name == "auto" else "trains a short repair on"
        raise UsageError(None, "layers", f"{name!r} {how} the training pairs, and no pairs were given; give pairs, "
                         "or name the layers (e.g. 12-15)")
    if name == "auto":
        from attrib.surgery.layers import rank_layers

        assert pairs  # checked above
        return rank_layers(model, tokenizer, pairs, fraction=fraction)
    if name == "repair":
        from attrib.surgery.layers import rank_layers_by_repair

        assert pairs  # checked above
        return rank_layers_by_repair(model, tokenizer, pairs, val_pairs, fraction=fraction, random_state=random_state)
    if name != "heads":
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
    random_state: int = 0,
) -> list[Any]:
    """Preference pairs from the conflict suite: model answers (greedy + ``n_samples`` sampled) labelled by the
    checkers, topped up with templated responses. ``sample=False`` uses templated responses only (no generation)."""
    from attrib.probes import conflict_suite
    from attrib.surgery.pairs import build_pairs, sample_responses

    probes = conflict_suite(families, split=split)
    samples = sample_responses(model, tokenizer, probes, n=n_samples, max_new_tokens=max_new_tokens,
                               random_state=random_state) if sample else {}
    return build_pairs(probes, samples, max_pairs_per_probe=max_pairs_per_probe, random_state=random_state)


def heldout_probes(families: Sequence[str] | None = None, conditions: Sequence[str] | None = None) -> list[Any]:
    """The held-out probes (unseen templates) used for compliance evaluation."""
    from attrib.probes import conflict_suite

    if conditions:
        return conflict_suite(families, split="heldout", conditions=tuple(conditions))
    return conflict_suite(families, split="heldout")

