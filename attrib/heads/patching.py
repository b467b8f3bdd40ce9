"""Causal check: patch chosen heads' outputs from the non-conflict run into the conflict run.

For each (clean, conflict) pair with a first-token metric, the per-head attention outputs (``z``: the input of
the output projection, TransformerLens ``blocks.{l}.attn.hook_z``) of the chosen heads are copied from the clean
run into the conflict run at the shared question/template suffix (right-aligned; the prefix before the
conflict is identical in both runs, so its outputs already agree), and the compliance logit difference of
the first answer token is re-measured. The focal set and >= 5 random sets of the same size (disjoint from it)
are patched in one batched forward. A localization is called causal only when the focal set's recovery
beats every random set's.

Hooks run on a TransformerLens ``TransformerBridge`` when one is given (``hook_z``), else as forward
pre-hooks on the HF model's ``o_proj`` (the same tensor), which also works on peft-wrapped models.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import numpy as np

from attrib.errors import InputError
from attrib.heads.types import Head as Head  # re-exported: it was defined here
from attrib.probes.types import Probe


@dataclass(frozen=True)
class PatchingResult:
    """Recovered compliance logit-difference of the focal heads vs random head sets of the same size."""

    heads: list[Head]
    n_pairs: int
    clean_ld: float
    conflict_ld: float
    focal_ld: float
    focal_recovery: float
    focal_recovery_frac: float
    random_recoveries: list[float]
    random_median: float
    ratio: float | None  # None: no verdict, or a random median too small to divide by
    causal: bool | None  # None: no verdict (no pair met ``min_gap``)
    positions: str
    min_gap: float
    per_pair: list[dict[str, Any]] = field(default_factory=list)
    extra_recoveries: dict[str, float] = field(default_factory=dict)
    #: how many patched pairs had a clean-over-conflict gap of at least ``min_gap`` (None: a file from before this
    #: field). When 0 there is no verdict: ``causal`` and ``ratio`` are None, and the recoveries are the means over
    #: all ``n_pairs`` pairs, every one below the gap, kept only to diagnose (not a result).
    n_met_gap: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def has_verdict(self) -> bool:
        """False when no pair met ``min_gap``: recoveries of a gap that is not there say nothing causal."""
        return self.n_met_gap != 0

    def summary(self) -> str:
        """One line: the verdict and the numbers behind it, or, with no pair over the gap, "no verdict" and why
        (no recoveries: over pairs below the gap they say nothing causal)."""
        if not self.has_verdict:
            return (
                f"patching {len(self.heads)} heads: no verdict. None of the {self.n_pairs} pairs has a clean-over-"
                f"conflict gap of at least {self.min_gap:g} nat (mean gap {self.clean_ld - self.conflict_ld:+.3f}), "
                f"so there is no failure for the heads to recover (more questions or families may give some)"
            )
        ratio = f"{self.ratio:.1f}x" if self.ratio is not None else "n/a"
        verdict = "causal" if self.causal else "not causal (does not beat every random set)"
        return (
            f"patching {len(self.heads)} heads on {self.n_pairs} pairs with a gap >= {self.min_gap:g} nat: recovered "
            f"{self.focal_recovery:+.3f} (of gap {self.clean_ld - self.conflict_ld:+.3f}, "
            f"{100 * self.focal_recovery_frac:.0f}%) vs random median {self.random_median:+.3f} over "
            f"{len(self.random_recoveries)} sets = {ratio}: {verdict}"
        )


def random_head_sets(
    n_layers: int, n_heads: int, size: int, n_sets: int, *, exclude: Sequence[Head] = (), random_state: int = 0
) -> list[list[Head]]:
    """``n_sets`` random sets of ``size`` distinct heads, drawn without the ``exclude`` heads."""
    pool = [(la, h) for la in range(n_layers) for h in range(n_heads) if (la, h) not in set(exclude)]
    if size > len(pool):
        raise InputError(None, "heads", f"cannot draw {size} random heads from {len(pool)}")
    rng = np.random.default_rng(random_state)
    return [sorted(pool[i] for i in rng.choice(len(pool), size=size, replace=False)) for _ in range(n_sets)]


def _o_proj(hf: Any, layer: int) -> Any:
    base = hf.get_base_model() if hasattr(hf, "get_base_model") else hf
    return base.model.layers[layer].self_attn.o_proj


@contextmanager
def z_hooks(model: Any, fns: dict[int, Callable[[Any], Any]]) -> Iterator[None]:
    """Install ``fn(z) -> z`` on each layer's per-head output, with ``z`` shaped ``[B, T, H, d_head]``."""
    if hasattr(model, "hooks") and hasattr(model, "original_model"):  # TransformerBridge
        def tl(fn: Callable[[Any], Any]) -> Callable[..., Any]:
            def hook(z: Any, hook: Any = None) -> Any:
                return fn(z)
            return hook

        with model.hooks(fwd_hooks=[(f"blocks.{la}.attn.hook_z", tl(fn)) for la, fn in fns.items()]):
            yield
        return
    hf = model
    n_heads = hf.config.num_attention_heads
    handles = []

    def pre(fn: Callable[[Any], Any]) -> Callable[..., Any]:
        def hook(module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
            x = args[0]
            z = x.reshape(*x.shape[:-1], n_heads, x.shape[-1] // n_heads)
            z = fn(z)
            return (z.reshape(x.shape), *args[1:])
        return hook

    try:
        for la, fn in fns.items():
            handles.append(_o_proj(hf, la).register_forward_pre_hook(pre(fn)))
        yield
    finally:
        for h in handles:
            h.remove()


def _logits(model: Any, ids: Any, **kw: Any) -> Any:
    """Logits of the last position only on HF models (``logits_to_keep=1``); all positions on a bridge."""
    if hasattr(model, "original_model"):
        return model(ids, return_type="logits")
    return model(input_ids=ids, logits_to_keep=1, **kw).logits


def _cache_kw(hf: Any, cache: Any) -> dict[str, Any]:
    """transformers >= 5.2x names the KV-cache argument ``cache``; older versions ``past_key_values``."""
    import inspect

    base = hf.get_base_model() if hasattr(hf, "get_base_model") else hf
    return {"cache": cache} if "cache" in inspect.signature(base.forward).parameters else {"past_key_values": cache}


def _suffix(rc: Any, rx: Any) -> int:
    qc = rc.spans.get("question", (rc.n_tokens - 1,))[0]
    qx = rx.spans.get("question", (rx.n_tokens - 1,))[0]
    return min(rc.n_tokens - qc, rx.n_tokens - qx)


def patch_pair(
    model: Any, tokenizer: Any, clean: Probe, conflict: Probe, head_sets: Sequence[Sequence[Head]], *, positions: str = "suffix"
) -> dict[str, Any]:
    """LD of clean, conflict, and conflict with each head set patched from clean (one batched forward)."""
    import torch

    from attrib.probes.run import logit_diff, metric_ids

    rc, rx = clean.render(tokenizer), conflict.render(tokenizer)
    suf = _suffix(rc, rx) if positions == "suffix" else 1
    layers = sorted({la for s in head_sets for la, _ in s})
    comp, viol = metric_ids(tokenizer, conflict)
    saved: dict[int, Any] = {}

    def save(la: int) -> Callable[[Any], Any]:
        def fn(z: Any) -> Any:
            saved[la] = z[:, -suf:].detach().clone()
            return z
        return fn

    ids_c = torch.tensor([rc.input_ids])
    with torch.no_grad(), z_hooks(model, {la: save(la) for la in layers}):
        ld_c = float(logit_diff(torch.log_softmax(_logits(model, ids_c)[0, -1].float(), -1), comp, viol))

    b = len(head_sets) + 1  # row 0 = unpatched conflict run

    by_layer: dict[int, list[tuple[int, list[int]]]] = {}  # layer -> [(batch row, heads to patch)]
    for row, hs in enumerate(head_sets, start=1):
        for la in layers:
            heads_here = sorted({h for layer, h in hs if layer == la})
            if heads_here:
                by_layer.setdefault(la, []).append((row, heads_here))

    def put(la: int) -> Callable[[Any], Any]:
        def fn(z: Any) -> Any:
            z = z.clone()
            for row, heads_here in by_layer.get(la, ()):
                z[row, -suf:, heads_here] = saved[la][0][:, heads_here]
            return z
        return fn

    # the prefix before the suffix is the same for every row and never patched: on HF models run it once and
    # reuse its KV cache, so the batched patched runs only process the suffix
    fast = not hasattr(model, "original_model") and len(rx.input_ids) > suf
    with torch.no_grad():
        cache = _prefix_cache(model, rx.input_ids[:-suf], b) if fast else None
        with z_hooks(model, {la: put(la) for la in layers}):
            if cache is not None:
                logits = _logits(model, torch.tensor([rx.input_ids[-suf:]] * b), use_cache=True, **_cache_kw(model, cache))
            else:
                logits = _logits(model, torch.tensor([rx.input_ids] * b))
        lp = torch.log_softmax(logits[:, -1].float(), -1)
    lds = logit_diff(lp, comp, viol).tolist()
    return {"pair": conflict.pair_id, "family": conflict.family, "clean": ld_c, "conflict": lds[0], "patched": lds[1:]}


def _prefix_cache(hf: Any, prefix: list[int], batch: int) -> Any:
    """The KV cache of ``prefix``, repeated ``batch`` times."""
    import torch

    out = hf(input_ids=torch.tensor([prefix]), use_cache=True, logits_to_keep=1)
    cache = getattr(out, "cache", None) or out.past_key_values
    cache.batch_repeat_interleave(batch)
    return cache


def patching_check(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[tuple[Probe, Probe]],
    heads: Sequence[Head],
    *,
    n_layers: int,
    n_heads: int,
    n_random: int = 10,
    min_gap: float = 0.5,
    positions: str = "suffix",
    random_state: int = 0,
    known_ld: dict[str, float | None] | None = None,
    extra_sets: dict[str, Sequence[Head]] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PatchingResult:
    """Patch ``heads`` and ``n_random`` (>= 5) random same-size sets over the pairs whose clean run beats the
    conflict run by at least ``min_gap`` nats on the first-token metric; compare mean recoveries.

    ``extra_sets`` (name -> heads) are patched in the same batched pass and reported in ``extra_recoveries``;
    ``known_ld`` (probe id -> logit difference) skips pairs without a gap before any forward pass.
    When no pair meets ``min_gap``, every pair is patched (kept in ``per_pair``), ``n_met_gap`` is 0, ``causal`` and
    ``ratio`` are None (no verdict) and :meth:`PatchingResult.summary` says so without the recoveries.
    """
    if n_random < 5:
        raise InputError(None, "n_random", "the causal check needs at least 5 random head sets")
    heads = [tuple(h) for h in heads]  # type: ignore[misc]
    usable = [(c, x) for c, x in pairs if x.has_logit_metric]
    if known_ld:  # skip pairs already known to have no clean-over-conflict gap (saves the batched forwards)
        known = [(known_ld.get(c.id), known_ld.get(x.id)) for c, x in usable]
        keep = [pr for pr, (lc, lx) in zip(usable, known, strict=True) if lc is None or lx is None or lc - lx >= min_gap]
        usable = keep or usable  # none known to meet the gap: patch them all, reported below as "no verdict"
    if not usable:
        raise InputError(None, "probes", "no probe pairs with a first-token metric to patch")
    extra: dict[str, list[Head]] = {k: [cast(Head, tuple(h)) for h in v] for k, v in (extra_sets or {}).items()}
    rand_sets = random_head_sets(n_layers, n_heads, len(heads), n_random, exclude=heads, random_state=random_state)
    sets: list[Sequence[Head]] = [list(heads), *extra.values(), *rand_sets]
    rows = []
    for i, (c, x) in enumerate(usable):
        rows.append(patch_pair(model, tokenizer, c, x, sets, positions=positions))
        if progress:
            progress(i + 1, len(usable))
    met = [r for r in rows if r["clean"] - r["conflict"] >= min_gap]
    kept = met or rows  # with no pair over the gap, the numbers use all pairs (and the result carries no verdict)
    rec = np.array([[p - r["conflict"] for p in r["patched"]] for r in kept])  # [pairs, sets]
    gap = np.array([r["clean"] - r["conflict"] for r in kept])
    mean_rec = rec.mean(axis=0)
    n_x = len(extra)
    focal, rand = float(mean_rec[0]), [float(v) for v in mean_rec[1 + n_x:]]
    med = float(np.median(rand))
    ratio = focal / med if med > 1e-9 else (math.inf if focal > 0 else None)
    return PatchingResult(
        heads=list(heads),
        n_pairs=len(kept),
        clean_ld=float(np.mean([r["clean"] for r in kept])),
        conflict_ld=float(np.mean([r["conflict"] for r in kept])),
        focal_ld=float(np.mean([r["patched"][0] for r in kept])),
        focal_recovery=focal,
        focal_recovery_frac=float(rec[:, 0].sum() / gap.sum()) if gap.sum() > 0 else 0.0,
        random_recoveries=rand,
        random_median=med,
        ratio=None if not met or ratio is None or math.isinf(ratio) else float(ratio),
        causal=bool(focal > 0 and focal > max(rand)) if met else None,
        positions=positions,
        min_gap=min_gap,
        per_pair=rows,
        extra_recoveries={k: float(mean_rec[1 + i]) for i, k in enumerate(extra)},
        n_met_gap=len(met),
    )
