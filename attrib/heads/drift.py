"""Attention drift per (layer, head): how a head's attention moves from the system rule to a conflicting span.

Pure numpy over attention statistics, so it runs on full patterns (short prompts) or on per-segment masses
from ``attrib.kernels.segment_attention_stats`` (long contexts) alike. For the answer-generating query
positions of a non-conflict run (clean, c) and its conflict twin (x), per head:

* magnitude shift  = (m_rule - m_conflict)_c - (m_rule - m_conflict)_x   (positive: attention left the rule
  for the conflicting text);
* direction change = 1 - cos(a_c, a_x), with a the mean attention row over the keys both prompts share
  (the prefix before the conflict and the right-aligned question/template suffix);
* distribution change = Jensen-Shannon divergence of the segment distributions (rule, conflict, rest of
  prompt, response so far).

Attention sinks are handled explicitly: the sink key(s) (BOS / first token) get their own segment, their mass is
reported, and every statistic above is computed on attention renormalized over the non-sink keys, so a head
that parks 90 % of its attention on the first token is compared on what it does with the rest. A head with less
than :data:`MIN_OFF_SINK` of its attention off the sink in either run of a pair has no rest worth comparing: its
three statistics are 0 for that pair.
Each statistic is averaged over pairs, z-scored over all heads and combined into S(l, h).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from attrib.activations import SEGMENTS as SEGMENTS
from attrib.errors import InputError, is_real
from attrib.heads.types import Head

#: Segment axis order used everywhere in drift: the stored format's (:data:`attrib.activations.SEGMENTS`).
SINK, RULE, CONFLICT, PROMPT, RESPONSE = range(len(SEGMENTS))

#: Off-sink share of a head's attention (summed over the non-sink segments, averaged over the answer positions)
#: below which its drift is 0 in that pair. Renormalizing so little inflates a residue into a full distribution:
#: SmolLM2's L18H8 keeps 1e-9 to 4e-7 off the sink, and its direction change was exactly 1 in all 54 train pairs
#: (the cosine of two ~1e-7 vectors falls under :func:`cosine`'s zero guard), which made it the top focal head.
#: On that scan (54 pairs x 270 heads) 109 head-pair values lie below 1e-3, all in three layer-18 heads, and
#: they cluster under 1e-5 (82); each of that scan's other 13 focal heads keeps >= 0.9 % off the sink in every pair.
MIN_OFF_SINK = 1e-3


def segment_ids(n_keys: int, spans: Mapping[str, tuple[int, int]], n_prompt: int, *, rule_key: str = "rule") -> np.ndarray:
    """Segment index of every key position: sink, rule span, conflict span, other prompt tokens, response tokens."""
    if rule_key not in spans:
        raise InputError(None, rule_key, "no system-rule span: drift needs the rule's token offsets")
    if n_prompt > n_keys:
        raise InputError(None, "n_prompt", f"prompt length {n_prompt} exceeds sequence length {n_keys}")
    ids = np.full(n_keys, PROMPT, dtype=np.int64)
    ids[n_prompt:] = RESPONSE
    for name, seg in (("conflict", CONFLICT), (rule_key, RULE), ("sink", SINK)):
        if name in spans:
            a, b = spans[name]
            ids[a:b] = seg
    return ids


def segment_masses(pattern: np.ndarray, seg_ids: np.ndarray, n_segments: int = len(SEGMENTS)) -> np.ndarray:
    """Sum attention over the keys of each segment: ``[..., Q, K] -> [..., Q, S]``."""
    pattern = np.asarray(pattern, dtype=np.float64)
    if pattern.shape[-1] != seg_ids.shape[0]:
        raise InputError(None, "pattern", f"pattern has {pattern.shape[-1]} keys but segment ids cover {seg_ids.shape[0]}")
    onehot = np.eye(n_segments, dtype=np.float64)[seg_ids]  # [K, S]
    return pattern @ onehot


def drop_sink(masses: np.ndarray, sink: int = SINK, eps: float = 1e-12) -> np.ndarray:
    """Renormalize per-segment masses over the non-sink segments (sink entry set to 0)."""
    m = np.array(masses, dtype=np.float64, copy=True)
    m[..., sink] = 0.0
    rest = m.sum(-1)  # the non-sink mass itself, not 1 - sink (which rounds badly for sink-parked heads)
    return m / np.maximum(rest, eps)[..., None]


def js_divergence(p: np.ndarray, q: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Jensen-Shannon divergence (natural log, in [0, ln 2]) along the last axis; inputs are renormalized."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    p = p / np.maximum(p.sum(-1, keepdims=True), eps)
    q = q / np.maximum(q.sum(-1, keepdims=True), eps)
    m = 0.5 * (p + q)

    def kl(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(a > 0, a * np.log(a / np.maximum(b, eps)), 0.0)
        return t.sum(-1)

    return np.clip(0.5 * kl(p, m) + 0.5 * kl(q, m), 0.0, math.log(2))


def cosine(a: np.ndarray, b: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Cosine similarity along the last axis (0 when either vector is zero)."""
    num = (a * b).sum(-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return np.where(den > eps, num / np.maximum(den, eps), 0.0)


def shared_key_index(
    spans_c: Mapping[str, tuple[int, int]], n_prompt_c: int, spans_x: Mapping[str, tuple[int, int]], n_prompt_x: int
) -> tuple[np.ndarray, np.ndarray]:
    """Key positions both prompts share, as two aligned index arrays (clean, conflict).

    The prefix up to the first differing span (the conflict, else the question) is aligned left; from the
    question to the end of the prompt it is aligned right. The sink is excluded.
    """
    def cut(spans: Mapping[str, tuple[int, int]], n: int) -> tuple[int, int]:
        q0 = spans.get("question", (n, n))[0]
        c0 = spans["conflict"][0] if "conflict" in spans else q0
        return min(c0, q0), n - q0

    pre_c, suf_c = cut(spans_c, n_prompt_c)
    pre_x, suf_x = cut(spans_x, n_prompt_x)
    pre, suf = min(pre_c, pre_x), min(suf_c, suf_x)
    first = spans_c.get("sink", (0, 1))[1]
    ic = np.r_[np.arange(first, pre), np.arange(n_prompt_c - suf, n_prompt_c)]
    ix = np.r_[np.arange(first, pre), np.arange(n_prompt_x - suf, n_prompt_x)]
    return ic.astype(np.int64), ix.astype(np.int64)


@dataclass(frozen=True)
class RunStats:
    """One run's attention statistics at its answer positions, per layer and head.

    ``masses`` [L, H, S]: mean over answer positions of per-segment attention (raw, sink included).
    ``shared`` [L, H, K_shared] or None: mean attention on the shared keys (raw), for the direction change.
    """

    masses: np.ndarray
    shared: np.ndarray | None = None


def run_stats(
    patterns: np.ndarray,
    spans: Mapping[str, tuple[int, int]],
    n_prompt: int,
    shared_idx: np.ndarray | None = None,
    query_positions: Sequence[int] | None = None,
) -> RunStats:
    """Reduce full patterns ``[L, H, T, T]`` to :class:`RunStats` at the answer-generating positions.

    Answer positions default to ``n_prompt - 1 .. T - 2``: the positions whose outputs are the response tokens.
    """
    patterns = np.asarray(patterns)
    if patterns.ndim != 4 or patterns.shape[-1] != patterns.shape[-2]:
        raise InputError(None, "patterns", f"expected [layers, heads, T, T], got shape {tuple(patterns.shape)}")
    t = patterns.shape[-1]
    qpos = np.asarray(query_positions if query_positions is not None else range(n_prompt - 1, max(t - 1, n_prompt)))
    if qpos.size == 0 or qpos.max() >= t or qpos.min() < 0:
        raise InputError(None, "query_positions", f"answer positions {qpos.tolist()} out of range for T={t}")
    rows = patterns[:, :, qpos, :].astype(np.float64)  # [L, H, Q, K]
    seg = segment_ids(t, spans, n_prompt)
    masses = segment_masses(rows, seg).mean(axis=2)
    shared = rows[..., shared_idx].mean(axis=2) if shared_idx is not None else None
    return RunStats(masses=masses, shared=shared)


def off_sink_mass(masses: np.ndarray, sink: int = SINK) -> np.ndarray:
    """The attention a head puts on the non-sink segments: ``[..., S] -> [...]`` (summed, not ``1 - sink``)."""
    return np.delete(np.asarray(masses, dtype=np.float64), sink, axis=-1).sum(-1)


def pair_drift(clean: RunStats, conflict: RunStats, *, min_off_sink: float = MIN_OFF_SINK) -> dict[str, np.ndarray]:
    """Magnitude shift, direction change and JS distribution change for one (clean, conflict) pair, each [L, H].

    A head with less than ``min_off_sink`` of its attention off the sink in either run gets 0 for all three: its
    renormalized rest is a residue, not a distribution (see :data:`MIN_OFF_SINK`)."""
    if clean.masses.shape != conflict.masses.shape:
        raise InputError(None, "masses", f"shape mismatch: clean {clean.masses.shape} vs conflict {conflict.masses.shape}")
    live = np.minimum(off_sink_mass(clean.masses), off_sink_mass(conflict.masses)) >= min_off_sink
    mc, mx = drop_sink(clean.masses), drop_sink(conflict.masses)
    magnitude = (mc[..., RULE] - mc[..., CONFLICT]) - (mx[..., RULE] - mx[..., CONFLICT])
    js = js_divergence(mc[..., 1:], mx[..., 1:])
    if clean.shared is not None and conflict.shared is not None:
        if clean.shared.shape != conflict.shared.shape:
            raise InputError(None, "shared", f"shape mismatch: {clean.shared.shape} vs {conflict.shared.shape}")
        direction = 1.0 - cosine(clean.shared, conflict.shared)
    else:  # per-segment input only: cosine over the segments both runs have (rule, rest of prompt)
        direction = 1.0 - cosine(mc[..., [RULE, PROMPT]], mx[..., [RULE, PROMPT]])
    return {
        "magnitude": np.where(live, magnitude, 0.0),
        "direction": np.where(live, direction, 0.0),
        "js": np.where(live, js, 0.0),
        "sink_clean": clean.masses[..., SINK],
        "sink_conflict": conflict.masses[..., SINK],
    }


def zscore(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Z-score over all entries (all zeros when the array is constant)."""
    x = np.asarray(x, dtype=np.float64)
    sd = x.std()
    return np.zeros_like(x) if sd < eps else (x - x.mean()) / sd


@dataclass(frozen=True)
class DriftScores:
    """Per-head drift statistics averaged over pairs, and the combined score S(l, h)."""

    magnitude: np.ndarray
    direction: np.ndarray
    js: np.ndarray
    score: np.ndarray
    sink_clean: np.ndarray
    sink_conflict: np.ndarray
    n_pairs: int


def combine(per_pair: Sequence[Mapping[str, np.ndarray]], weights: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> DriftScores:
    """Average each statistic over pairs, z-score over heads, and combine: S = weighted mean of the z-scores."""
    if not per_pair:
        raise InputError(None, "pairs", "no (clean, conflict) pairs to score")
    mean = {k: np.mean([p[k] for p in per_pair], axis=0) for k in per_pair[0]}
    w = np.asarray(weights, dtype=np.float64)
    z = np.stack([zscore(mean["magnitude"]), zscore(mean["direction"]), zscore(mean["js"])])
    score = np.tensordot(w / w.sum(), z, axes=1)
    return DriftScores(
        magnitude=mean["magnitude"], direction=mean["direction"], js=mean["js"], score=score,
        sink_clean=mean["sink_clean"], sink_conflict=mean["sink_conflict"], n_pairs=len(per_pair),
    )


def n_focal(top_k: float | int, n_total: int) -> int:
    """How many heads ``top_k`` selects out of ``n_total``: a fraction in (0, 1) rounded up, else a whole count in
    ``1..n_total``; InputError naming ``top_k`` otherwise (a count such as 2.5 was truncated to 2 before)."""
    ok = is_real(top_k)
    if ok and 0 < top_k < 1:
        n = math.ceil(top_k * n_total)
    elif ok and top_k >= 1 and float(top_k).is_integer():
        n = int(top_k)
    else:
        raise InputError(None, "top_k", f"expected a fraction in (0, 1) or a whole count of heads, got {top_k!r}")
    if not 1 <= n <= n_total:
        raise InputError(None, "top_k", f"top_k={top_k} selects {n} of {n_total} heads")
    return n


def top_heads(score: np.ndarray, top_k: float | int) -> list[Head]:
    """The highest-scoring heads: ``top_k`` < 1 is a fraction of all heads (rounded up), else a count."""
    n = n_focal(top_k, score.size)
    order = np.argsort(-score, axis=None, kind="stable")[:n]
    return [tuple(int(i) for i in np.unravel_index(o, score.shape)) for o in order]  # type: ignore[misc]


def focal_layers(heads: Sequence[Head], score: np.ndarray, coverage: float = 0.6) -> list[int]:
    """The fewest layers (most focal heads first, then summed score) holding >= ``coverage`` of the focal heads."""
    counts: dict[int, int] = {}
    for layer, _ in heads:
        counts[layer] = counts.get(layer, 0) + 1
    ranked = sorted(counts, key=lambda la: (-counts[la], -float(np.clip(score[la], 0, None).sum()), la))
    chosen, held = [], 0
    for layer in ranked:
        chosen.append(layer)
        held += counts[layer]
        if held >= coverage * len(heads):
            break
    return sorted(chosen)


def stats_from_segment_masses(mass: np.ndarray, query_positions: Sequence[int] | None = None, *,
                              path: str | Path | None = None) -> RunStats:
    """:class:`RunStats` from per-segment masses ``[L, H, Q, S]`` (or ``[B=1, ...]`` squeezed by the caller).

    This is the long-context seam: ``attrib.kernels.segment_attention_stats`` (fed ``hook_rot_q``/``hook_rot_k``
    and :func:`segment_ids`) and the recorder's ``:segment_mass`` files both give this layout without ever
    forming T x T. ``query_positions`` indexes the Q axis (default: all). Without full patterns the direction
    change falls back to the cosine over the rule / rest-of-prompt segment masses (see :func:`pair_drift`).
    ``path``: the activation file the masses were read from, named by an error.
    """
    m = np.asarray(mass, dtype=np.float64)
    if m.ndim != 4 or m.shape[-1] != len(SEGMENTS):
        raise InputError(path, "segment_mass", f"expected [layers, heads, Q, {len(SEGMENTS)}] ({', '.join(SEGMENTS)}), "
                                               f"got {tuple(m.shape)}")
    if query_positions is not None:
        m = m[:, :, list(query_positions)]
    return RunStats(masses=m.mean(axis=2))


def step_drift(clean_step: object, conflict_step: object, *, first_only: bool = True) -> dict[str, np.ndarray]:
    """Drift between two steps recorded by :class:`attrib.record.Recorder` (e.g. the same agent turn with and
    without a peer's contrary message), from their stored segment masses. ``first_only``: read the first
    answer position only (the one both runs share a meaning for).

    Both steps must hold the same layers (an InputError names both lists otherwise: row i would compare
    different layers); ``result["layers"]`` says which layer each row of the ``[L, H]`` matrices is."""
    from attrib.record import load_segment_stats

    a, b = load_segment_stats(clean_step), load_segment_stats(conflict_step)  # type: ignore[arg-type]
    la, lb = [int(x) for x in a["layers"]], [int(x) for x in b["layers"]]
    if la != lb:
        raise InputError(None, "layers", f"the two steps hold different layers: clean step {la}, conflict step "
                                         f"{lb}; record both with the same Recorder(layers=[...])")
    q = [0] if first_only else None

    def stats(step: object, st: dict[str, np.ndarray]) -> RunStats:
        ref = getattr(step, "activation", None)
        return stats_from_segment_masses(st["segment_mass"], q, path=getattr(ref, "path", None))

    return pair_drift(stats(clean_step, a), stats(conflict_step, b)) | {"layers": np.asarray(la, dtype=np.int64)}
