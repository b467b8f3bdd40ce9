"""Gradient layer ranking for SAIL (attrib.surgery.layers) on the real SmolLM2: valid, deterministic, data-driven."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from _sail_common import real_model  # noqa: E402

from attrib.errors import InputError  # noqa: E402
from attrib.surgery.layers import balanced_scores, choose_k, rank_layers, top_layers  # noqa: E402


def _pairs():
    """Two real pairs from each of two families (templated responses, no sampling)."""
    from attrib.probes import conflict_suite
    from attrib.surgery.pairs import build_pairs

    out = []
    for fam in ("format_upper", "secret"):
        probes = [p for p in conflict_suite([fam], split="train") if p.condition == "user"]
        out += build_pairs(probes, max_pairs_per_probe=1)[:2]
    return out


def test_pure_parts():
    assert choose_k(30) == 3 and choose_k(30, 0.5) == 15 and choose_k(4) == 1
    with pytest.raises(InputError, match="fraction"):
        choose_k(30, 0.0)
    # each family gets an equal vote: family b's big numbers do not swamp family a
    assert balanced_scores({"a": [3.0, 1.0], "b": [100.0, 300.0]}) == pytest.approx([0.5, 0.5])
    assert top_layers([0.1, 0.5, 0.5, 0.2], 2) == [1, 2]
    assert top_layers([0.3, 0.1, 0.3, 0.2], 1) == [0]  # ties go to the lower index


@pytest.mark.slow
def test_rank_layers_real_model():
    model, tok = real_model()
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    pairs = _pairs()
    a = rank_layers(model, tok, pairs, max_response_tokens=12)
    n = model.config.num_hidden_layers
    assert len(a.layers) == choose_k(n) == 3
    assert a.layers == sorted(set(a.layers)) and all(0 <= la < n for la in a.layers)
    scores = a.detail["scores"]
    assert len(scores) == n and sum(scores) == pytest.approx(1.0)
    # not a constant ranking: the chosen layers carry clearly more attribution than the average layer
    assert max(scores) > 2 * min(scores)
    assert min(scores[la] for la in a.layers) > max(s for i, s in enumerate(scores) if i not in a.layers) - 1e-12
    assert sum(scores[la] for la in a.layers) > 1.5 * len(a.layers) / n
    assert set(a.detail["per_family"]) == {"format_upper", "secret"}
    # deterministic
    b = rank_layers(model, tok, pairs, max_response_tokens=12)
    assert b.layers == a.layers and b.detail["scores"] == pytest.approx(scores, rel=1e-4)
    # the caller's model is left as it was: no gradients, same requires_grad flags
    assert all(p.grad is None for p in model.parameters())
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags


def test_bad_input():
    from attrib.surgery.api import resolve_layers

    model, tok = real_model()
    with pytest.raises(InputError, match="pairs"):
        rank_layers(model, tok, [])
    with pytest.raises(InputError, match="pairs"):
        resolve_layers(model, tok, "auto")
    with pytest.raises(InputError, match="k must be"):
        rank_layers(model, tok, _pairs()[:1], k=31)
    assert resolve_layers(model, tok, "3,7").layers == [3, 7]
