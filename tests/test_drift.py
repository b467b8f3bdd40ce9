"""Drift math on hand-built attention patterns whose answers are known by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest

from attrib.errors import InputError
from attrib.heads import drift as d


def _pattern(rows: list[list[float]]) -> np.ndarray:
    return np.asarray(rows, dtype=np.float64)


def test_segment_ids_marks_sink_rule_conflict_prompt_response():
    spans = {"sink": (0, 1), "rule": (1, 3), "conflict": (4, 6), "question": (6, 7)}
    ids = d.segment_ids(9, spans, n_prompt=7)
    assert ids.tolist() == [d.SINK, d.RULE, d.RULE, d.PROMPT, d.CONFLICT, d.CONFLICT, d.PROMPT, d.RESPONSE, d.RESPONSE]


def test_segment_ids_without_rule_span_is_input_error():
    with pytest.raises(InputError, match="system-rule span"):
        d.segment_ids(5, {"sink": (0, 1), "question": (2, 4)}, n_prompt=5)


def test_segment_masses_sum_keys_per_segment():
    seg = np.array([0, 1, 1, 2])
    p = _pattern([[0.1, 0.2, 0.3, 0.4]])
    m = d.segment_masses(p, seg, n_segments=3)
    assert np.allclose(m, [[0.1, 0.5, 0.4]])


def test_segment_masses_shape_mismatch_is_input_error():
    with pytest.raises(InputError, match="keys"):
        d.segment_masses(np.ones((2, 5)) / 5, np.zeros(4, dtype=int))


def test_drop_sink_renormalizes_the_rest():
    m = np.array([0.8, 0.1, 0.1, 0.0, 0.0])
    out = d.drop_sink(m)
    assert out[0] == 0.0
    assert np.allclose(out[1:], [0.5, 0.5, 0.0, 0.0])


def test_js_divergence_known_values():
    assert d.js_divergence(np.array([1.0, 0.0]), np.array([1.0, 0.0])) == pytest.approx(0.0)
    assert d.js_divergence(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(math.log(2))
    # symmetric
    p, q = np.array([0.7, 0.2, 0.1]), np.array([0.1, 0.3, 0.6])
    assert d.js_divergence(p, q) == pytest.approx(d.js_divergence(q, p))


def _two_heads_stats():
    """Head 0 moves all non-sink attention from the rule to the conflict; head 1 does not move at all.

    Both heads put half their attention on the sink in the conflict run: drift must ignore that.
    """
    s = len(d.SEGMENTS)
    clean = np.zeros((1, 2, s))
    conf = np.zeros((1, 2, s))
    clean[0, 0, d.RULE] = 1.0
    conf[0, 0, d.SINK], conf[0, 0, d.CONFLICT] = 0.5, 0.5
    clean[0, 1, d.RULE], clean[0, 1, d.PROMPT] = 0.5, 0.5
    conf[0, 1, d.SINK], conf[0, 1, d.RULE], conf[0, 1, d.PROMPT] = 0.5, 0.25, 0.25
    return d.RunStats(masses=clean), d.RunStats(masses=conf)


def test_pair_drift_known_answer_with_sink():
    clean, conf = _two_heads_stats()
    out = d.pair_drift(clean, conf)
    # head 0: (1 - 0) - (0 - 1) = 2 ; head 1: same distribution once the sink is dropped -> 0
    assert out["magnitude"][0].tolist() == pytest.approx([2.0, 0.0])
    assert out["js"][0, 0] == pytest.approx(math.log(2))
    assert out["js"][0, 1] == pytest.approx(0.0)
    assert out["direction"][0, 1] == pytest.approx(0.0)
    assert out["sink_conflict"][0].tolist() == pytest.approx([0.5, 0.5])


def test_run_stats_and_shared_direction_from_full_patterns():
    # prompt: [sink, rule, rule, question] (clean) vs [sink, rule, rule, conflict, question] (conflict)
    spans_c = {"sink": (0, 1), "rule": (1, 3), "question": (3, 4)}
    spans_x = {"sink": (0, 1), "rule": (1, 3), "conflict": (3, 4), "question": (4, 5)}
    ic, ix = d.shared_key_index(spans_c, 4, spans_x, 5)
    assert ic.tolist() == [1, 2, 3] and ix.tolist() == [1, 2, 4]
    pc = np.zeros((1, 1, 4, 4))
    pc[0, 0, 3] = [0.0, 0.5, 0.5, 0.0]  # the answer position reads the rule
    px = np.zeros((1, 1, 5, 5))
    px[0, 0, 4] = [0.0, 0.0, 0.0, 0.0, 1.0]  # the answer position reads the question only
    sc = d.run_stats(pc, spans_c, n_prompt=4, shared_idx=ic)
    sx = d.run_stats(px, spans_x, n_prompt=5, shared_idx=ix)
    out = d.pair_drift(sc, sx)
    assert out["direction"][0, 0] == pytest.approx(1.0)  # orthogonal on the shared keys
    assert out["magnitude"][0, 0] == pytest.approx(1.0)  # rule mass 1 -> 0, conflict 0 -> 0


def test_mismatched_activation_shapes_are_input_errors():
    s = len(d.SEGMENTS)
    with pytest.raises(InputError, match="shape mismatch"):
        d.pair_drift(d.RunStats(np.zeros((2, 3, s))), d.RunStats(np.zeros((2, 4, s))))
    with pytest.raises(InputError, match=r"\[layers, heads, T, T\]"):
        d.run_stats(np.zeros((2, 3, 4, 5)), {"rule": (0, 1)}, n_prompt=3)


def test_combine_ranks_the_drifting_head_first_and_focal_layers():
    rng = np.random.default_rng(0)
    per_pair = []
    for _ in range(4):
        base = {k: rng.normal(0, 0.01, size=(4, 3)) for k in ("magnitude", "direction", "js")}
        base["magnitude"][2, 1] += 1.0
        base["direction"][2, 1] += 0.5
        base["js"][2, 1] += 0.3
        base["js"][1, 0] += 0.2
        base["sink_clean"] = base["sink_conflict"] = np.zeros((4, 3))
        per_pair.append(base)
    scores = d.combine(per_pair)
    assert scores.n_pairs == 4
    heads = d.top_heads(scores.score, 2)
    assert heads[0] == (2, 1) and heads[1] == (1, 0)
    assert d.top_heads(scores.score, 0.1) == [(2, 1), (1, 0)]  # ceil(0.1 * 12) = 2
    assert d.focal_layers(heads, scores.score, coverage=0.5) == [2]
    assert d.focal_layers(heads, scores.score, coverage=1.0) == [1, 2]
    with pytest.raises(InputError):
        d.top_heads(scores.score, 0)


def test_zscore_constant_is_zero():
    assert np.all(d.zscore(np.ones((3, 3))) == 0)


def test_drop_sink_is_stable_when_almost_all_mass_is_on_the_sink():
    # float32 rows of a sink-parked head: 1 - sink rounds to ~1e-7 while the rest is ~1e-9
    m = np.array([np.float32(1.0), 1e-9, 1e-9, 0.0, 0.0])
    out = d.drop_sink(m)
    assert out.sum() == pytest.approx(1.0) and np.allclose(out[1:3], 0.5)


def test_segment_mass_seam_matches_full_patterns():
    """Per-segment masses (the kernel / recorder layout) give the same magnitude and JS as full patterns."""
    rng = np.random.default_rng(1)
    spans = {"sink": (0, 1), "rule": (1, 4), "conflict": (4, 6), "question": (6, 8)}
    pats = rng.random((2, 3, 10, 10))
    pats = np.tril(pats)
    pats /= pats.sum(-1, keepdims=True)
    seg = d.segment_ids(10, spans, n_prompt=8)
    q = [7, 8]
    full = d.run_stats(pats, spans, n_prompt=8, query_positions=q)
    seam = d.stats_from_segment_masses(d.segment_masses(pats, seg), query_positions=q)
    np.testing.assert_allclose(seam.masses, full.masses)
    with pytest.raises(InputError, match="expected"):
        d.stats_from_segment_masses(np.zeros((2, 3, 4)))
