"""A head that parks (almost) all its attention on the sink has no drift (walkthrough w6 #1).

SmolLM2's L18H8 keeps 1e-9 to 4e-7 of its answer-position attention off the first token. Its direction change came
out as exactly 1.000 in every pair (the cosine of two ~1e-7 vectors falls under ``cosine``'s zero guard, which
returns 0), and z-scoring made it the top focal head. These tests build such a head by hand.
"""

from __future__ import annotations

import numpy as np
import pytest

from attrib.heads import drift as d

S = len(d.SEGMENTS)


def _parked_and_live(residue: float = 1e-7) -> tuple[d.RunStats, d.RunStats]:
    """Head 0 is sink-parked in both runs: what little it has off the sink moves from key 0 to key 1 and from the
    rule to the conflict. Head 1 is live: half its attention off the sink, moving the same way but only part way."""
    masses_c, masses_x = np.zeros((1, 2, S)), np.zeros((1, 2, S))
    shared_c, shared_x = np.zeros((1, 2, 3)), np.zeros((1, 2, 3))
    masses_c[0, 0, [d.SINK, d.RULE]] = 1 - residue, residue
    masses_x[0, 0, [d.SINK, d.CONFLICT]] = 1 - residue, residue
    shared_c[0, 0, 0] = shared_x[0, 0, 1] = residue
    masses_c[0, 1, [d.SINK, d.RULE, d.PROMPT]] = 0.5, 0.3, 0.2
    masses_x[0, 1, [d.SINK, d.RULE, d.CONFLICT, d.PROMPT]] = 0.5, 0.2, 0.1, 0.2
    shared_c[0, 1] = [0.3, 0.1, 0.1]
    shared_x[0, 1] = [0.2, 0.2, 0.1]
    return d.RunStats(masses_c, shared_c), d.RunStats(masses_x, shared_x)


def test_a_sink_parked_head_has_no_drift():
    out = d.pair_drift(*_parked_and_live())
    for stat in ("magnitude", "direction", "js"):
        assert out[stat][0, 0] == 0.0, stat  # was direction 1.0, JS ln 2, magnitude 2: the renormalized residue
    assert out["sink_clean"][0, 0] == pytest.approx(1.0)  # the sink mass itself is still reported


def test_a_live_head_keeps_its_drift():
    out = d.pair_drift(*_parked_and_live())
    assert out["magnitude"][0, 1] == pytest.approx((0.6 - 0.0) - (0.4 - 0.2))
    assert 0 < out["direction"][0, 1] < 1 and 0 < out["js"][0, 1] < np.log(2)


@pytest.mark.parametrize(("residue", "parked"), [(1e-9, True), (5e-4, True), (2e-3, False), (0.05, False)])
def test_the_threshold_is_the_off_sink_share(residue, parked):
    """Below MIN_OFF_SINK (0.1 % of the head's attention) in either run, the head's statistics are 0; above, kept."""
    assert d.MIN_OFF_SINK == 1e-3
    out = d.pair_drift(*_parked_and_live(residue))
    assert bool(out["direction"][0, 0] == 0.0) is parked
    assert bool(out["js"][0, 0] == 0.0) is parked


def test_parked_in_one_run_is_enough():
    """The renormalized comparison needs both runs' off-sink attention: a head parked in either has no drift."""
    clean, conf = _parked_and_live()
    live_clean = d.RunStats(clean.masses[:, 1:2], clean.shared[:, 1:2])  # type: ignore[index]
    parked_conf = d.RunStats(conf.masses[:, 0:1], conf.shared[:, 0:1])  # type: ignore[index]
    out = d.pair_drift(live_clean, parked_conf)
    assert out["direction"][0, 0] == out["js"][0, 0] == out["magnitude"][0, 0] == 0.0


def test_the_segment_fallback_is_covered_too():
    """Without shared keys (recorded steps, the kernel's segment masses) direction falls back to segment masses."""
    clean, conf = _parked_and_live()
    out = d.pair_drift(d.RunStats(clean.masses), d.RunStats(conf.masses))
    assert out["direction"][0, 0] == 0.0 and out["direction"][0, 1] > 0


def test_a_sink_parked_head_is_not_focal():
    """Among heads with ordinary noise, a parked head must not outrank the one that really moves."""
    rng = np.random.default_rng(0)
    n_layers, n_heads = 4, 3
    per_pair = []
    for _ in range(6):
        mc = rng.dirichlet(np.ones(S), size=(n_layers, n_heads))
        mx = np.clip(mc + rng.normal(0, 0.01, mc.shape), 1e-4, None)
        mx /= mx.sum(-1, keepdims=True)
        sc = rng.random((n_layers, n_heads, 8))
        sx = sc + rng.normal(0, 0.02, sc.shape)
        # (3, 2) really moves: rule -> conflict
        mc[3, 2] = [0.3, 0.5, 0.0, 0.2, 0.0]
        mx[3, 2] = [0.3, 0.1, 0.4, 0.2, 0.0]
        # (1, 0) is parked on the sink; its residue sits on different keys in the two runs
        mc[1, 0] = mx[1, 0] = [1 - 2e-7, 1e-7, 0.0, 1e-7, 0.0]
        sc[1, 0], sx[1, 0] = 0.0, 0.0
        sc[1, 0, 0], sx[1, 0, 5] = 1e-7, 1e-7
        per_pair.append(d.pair_drift(d.RunStats(mc, sc), d.RunStats(mx, sx)))
    scores = d.combine(per_pair)
    assert scores.direction[1, 0] == 0.0
    top = d.top_heads(scores.score, 2)
    assert top[0] == (3, 2) and (1, 0) not in top
