"""Gradient layer ranking for SAIL (attrib.surgery.layers) on the real SmolLM2: valid, deterministic, data-driven."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from _sail_common import real_model  # noqa: E402

from attrib.errors import InputError  # noqa: E402
from attrib.surgery.layers import (  # noqa: E402
    balanced_scores,
    choose_k,
    holdout_split,
    rank_layers,
    rank_layers_by_repair,
    repair_scores,
    top_layers,
)


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
    with pytest.raises(InputError, match="k: must be a whole number in 1..30"):
        rank_layers(model, tok, _pairs()[:1], k=31)
    assert resolve_layers(model, tok, "3,7").layers == [3, 7]


def test_repair_scores_trapezoid_is_exact_on_quadratics():
    # m(b) = 2 b0 - b2 + b0 b1, repaired point b* = (1, 2, 3): per-layer <grad, b*> at 0 and at b*
    b = (1.0, 2.0, 3.0)
    g0 = [2.0 * b[0], 0.0 * b[1], -1.0 * b[2]]
    g1 = [(2.0 + b[1]) * b[0], b[0] * b[1], -1.0 * b[2]]
    got = repair_scores(g0, g1)
    # linear parts go to their layer; the b0*b1 interaction (= 2) is split evenly (Aumann-Shapley)
    assert got == pytest.approx([3.0, 1.0, -3.0])
    m = lambda x: 2 * x[0] - x[2] + x[0] * x[1]  # noqa: E731
    assert sum(got) == pytest.approx(m(b) - m((0.0, 0.0, 0.0)))  # completeness
    with pytest.raises(InputError, match="one value per layer"):
        repair_scores([1.0], [1.0, 2.0])


def test_holdout_split_keeps_prompts_together():
    from attrib.probes import conflict_suite
    from attrib.surgery.pairs import build_pairs

    probes = [p for p in conflict_suite(["secret", "language"], split="train") if p.condition == "user"]
    pairs = build_pairs(probes, max_pairs_per_probe=2)
    fit, held = holdout_split(pairs)
    assert fit and held and len(fit) + len(held) == len(pairs)
    assert not {p.probe_id for p in fit} & {p.probe_id for p in held}
    assert 0.15 < len(held) / len(pairs) < 0.55
    assert holdout_split(pairs) == (fit, held)  # deterministic
    with pytest.raises(InputError, match="share one prompt"):
        holdout_split(pairs[:1])


def test_holdout_split_of_a_user_pairs_file_groups_by_prompt(tmp_path):
    """A pairs file has no probe_id: every pair hashed alike ("") and --layers repair (the default) always failed
    with 'too few prompts'. Such pairs are held back by their system + user messages."""
    import orjson

    from attrib.surgery.pairs import read_pairs

    lines = []
    for q in range(6):
        for r in range(2):  # two pairs per prompt: they must stay on the same side
            lines.append({"system": "Answer in uppercase letters only.", "prompt": f"Question number {q}?",
                          "chosen": f"ANSWER {q} {r}.", "rejected": f"answer {q} {r}."})
    path = tmp_path / "my.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(x) for x in lines))
    pairs = read_pairs(path)
    assert all(p.probe_id == "" for p in pairs)
    fit, held = holdout_split(pairs)
    assert fit and held and len(fit) + len(held) == len(pairs) == 12
    prompt = lambda p: p.messages[-1]["content"]  # noqa: E731
    assert not {prompt(p) for p in fit} & {prompt(p) for p in held}
    assert holdout_split(pairs) == (fit, held)  # deterministic
    with pytest.raises(InputError, match="share one prompt"):  # one prompt cannot be split
        holdout_split([p for p in pairs if prompt(p) == "Question number 0?"])
    # a few prompts can all hash to one side: one is still held back, one still fitted
    for n in range(2, 6):
        few = [p for p in pairs if prompt(p) in {f"Question number {q}?" for q in range(n)}]
        fit, held = holdout_split(few)
        assert fit and held and not {prompt(p) for p in fit} & {prompt(p) for p in held}


@pytest.mark.slow
def test_rank_layers_by_repair_real_model():
    model, tok = real_model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    pairs = _pairs()
    ch = rank_layers_by_repair(model, tok, pairs, pairs, k=2, steps=2, lr=2e-3, max_response_tokens=12)
    n = model.config.num_hidden_layers
    d = ch.detail
    assert len(ch.layers) == 2 and all(0 <= la < n for la in ch.layers)
    assert len(d["g_start"]) == len(d["g_end"]) == n
    # two steps on these very pairs widen their preference margin; the layer scores account for that change
    change = d["margin_repaired"] - d["margin_base"]
    assert change > 0
    assert d["completeness"]["sum_of_scores"] == pytest.approx(change, rel=0.5)
    assert max(d["scores"]) > 1.5 * abs(sorted(d["scores"])[n // 2])  # not flat: some layers carry more
    assert min(d["scores"][la] for la in ch.layers) >= max(s for i, s in enumerate(d["scores"]) if i not in ch.layers)
    # the caller's model is untouched: no LoRA injected, same weights
    assert not any("lora_" in name for name, _ in model.named_parameters())
    assert all(torch.equal(p, before[name]) for name, p in model.named_parameters())


def test_fraction_and_k_are_usage_errors():
    """A bad fraction or k is a bad argument value (exit 2, named), not bad input (exit 3); k=2.5 was truncated to 2
    and k="x" gave a bare ValueError."""
    from attrib.errors import EXIT_USAGE, UsageError
    from attrib.surgery.layers import _resolve_k

    for bad in (0.0, 1.5, "0.1", None):
        with pytest.raises(UsageError) as err:
            choose_k(30, bad)
        assert err.value.field == "fraction" and err.value.exit_code == EXIT_USAGE
    for bad in (0, 31, 2.5, "x", True):
        with pytest.raises(UsageError) as err:
            _resolve_k(30, 0.1, bad)
        assert err.value.field == "k" and err.value.exit_code == EXIT_USAGE
    assert _resolve_k(30, 0.1, None) == 3 and _resolve_k(30, 0.1, 5) == 5


def test_one_prompt_holdout_error_spells_no_cli_flag():
    """The library's message said "--layers 12-15 / auto" (a CLI spelling)."""
    with pytest.raises(InputError, match="share one prompt") as err:
        holdout_split(_pairs()[:1])
    assert "--" not in str(err.value) and "12-15" in str(err.value)



def test_resolve_layers_passes_random_state_to_the_repair_ranking(monkeypatch):
    """`attrib sail --layers repair --seed 3` ranked layers with seed 0: resolve_layers took no random_state. (The
    ranking itself is a minute of LoRA on CPU, tested above; here a stand-in records what it is handed.)"""
    import attrib.surgery.layers as layers_mod
    from attrib.surgery.api import LayerChoice, resolve_layers

    got = {}

    def ranking(model, tok, pairs, val_pairs=None, **kw):
        got.update(kw)
        return LayerChoice([1], [], "stand-in", {})

    monkeypatch.setattr(layers_mod, "rank_layers_by_repair", ranking)
    assert resolve_layers(None, None, "repair", pairs=["a pair"], random_state=3).layers == [1]
    assert got["random_state"] == 3
