"""``localize(model, probes) -> HeadLocalization``: scan every head for attention drift, rank, check causally.

Steps: greedy responses for all probes (compliance per family), then for the (non-conflict, conflict) pairs
where the plain run complied and the conflict run did not ("flipped"; all pairs when fewer than
``min_pairs`` flipped), attention patterns over prompt + response -> drift statistics per head
(:mod:`attrib.heads.drift`), combined into S(l, h). Focal heads are the top ``top_k``; the patching check
(:mod:`attrib.heads.patching`) compares them with random head sets of the same size.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from attrib.errors import InputError, NotFoundError, UsageError, is_real, is_whole_number, whole_number
from attrib.heads import drift
from attrib.heads.patching import PatchingResult
from attrib.heads.types import Head as Head  # re-exported: it was defined here
from attrib.heads.weights import check_focal_heads

#: Where drift is read (see :func:`localize`).
POSITIONS = ("answer", "suffix", "response")
#: The per-head statistics of a result, each ``[n_layers, n_heads]``.
MATRICES = ("scores", "magnitude", "direction", "js", "sink_clean", "sink_conflict")
Progress = Callable[[str, int, int], None]


@dataclass
class HeadLocalization:
    """Result of :func:`localize`: per-head scores, focal heads and layers, base compliance, the causal check."""

    model: str
    n_layers: int
    n_heads: int
    top_k: float
    scores: np.ndarray
    magnitude: np.ndarray
    direction: np.ndarray
    js: np.ndarray
    sink_clean: np.ndarray
    sink_conflict: np.ndarray
    focal_heads: list[Head]
    focal_layers: list[int]
    family_compliance: dict[str, dict[str, Any]]
    n_pairs: int
    pair_selection: str
    patching: PatchingResult | None = None
    timings: dict[str, float | str] = field(default_factory=dict)  # seconds, counts, and the positions read
    #: how the result was made: the probes (families, split, n_questions, conditions, n_probes) and the options that
    #: change it (max_new_tokens, select, positions, n_random, min_gap...); empty in files from before this field
    settings: dict[str, Any] = field(default_factory=dict)

    def ranked(self, n: int | None = None) -> list[tuple[int, int, float]]:
        """(layer, head, S) best first."""
        order = np.argsort(-self.scores, axis=None, kind="stable")
        out = [(*map(int, np.unravel_index(o, self.scores.shape)), float(self.scores.flat[o])) for o in order]
        return out[:n] if n else out  # type: ignore[return-value]

    def layer_profile(self) -> np.ndarray:
        """Number of focal heads per layer."""
        prof = np.zeros(self.n_layers, dtype=int)
        for la, _ in self.focal_heads:
            prof[la] += 1
        return prof

    def token_weights(self, model: Any, prompt_ids: Sequence[int], response_ids: Sequence[int], rule_span: tuple[int, int]) -> Any:
        """SAIL's w_t for one prompt + response with this result's focal heads (frozen model, detached). The model
        must have the shape this result was made on (``n_layers`` x ``n_heads``)."""
        from attrib.heads.weights import focal_token_weights
        from attrib.models import check_model, model_dims

        check_model(model, bridge=True)
        dims = model_dims(model)
        if dims != (self.n_layers, self.n_heads):
            raise InputError(None, "model", f"this localization was made on a model of {self.n_layers} layers x "
                                            f"{self.n_heads} heads ({self.model or 'unnamed'}); the model given has "
                                            f"{dims[0]} x {dims[1]}: localize this model first")
        return focal_token_weights(model, prompt_ids, response_ids, rule_span, self.focal_heads)

    def probe_token_weights(self, model: Any, tokenizer: Any, probe: Any, response: str) -> Any:
        """w_t for a probe (its rule span located by rendering) and a response string."""
        r = probe.render(tokenizer, with_prefix=False)
        resp = tokenizer(response, add_special_tokens=False)["input_ids"]
        return self.token_weights(model, r.input_ids, resp, r.spans["rule"])

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in MATRICES:
            d[k] = np.round(getattr(self, k), 6).tolist()
        d["focal_heads"] = [list(h) for h in self.focal_heads]
        d["patching"] = self.patching.to_dict() if self.patching else None
        return d

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.write_text(self.to_json())
        return p

    @staticmethod
    def load(path: str | Path) -> HeadLocalization:
        """Read a result written by :meth:`save` (e.g. to feed SAIL without re-scanning).

        A missing file is a :class:`NotFoundError` ("no such file"); a file that is not such a result (not JSON, a
        missing key, matrices whose shape is not ``n_layers`` x ``n_heads``, a head or layer outside the model) an
        :class:`InputError` naming the file and the field. Files from before ``settings`` and ``n_met_gap`` load too.
        """
        import dataclasses

        p = Path(path)
        if not p.exists():
            raise NotFoundError(f"{p}: no such file (write one with `attrib heads --save FILE`)")
        if p.is_dir():
            raise InputError(p, None, "is a folder: give a head-localization JSON file")
        try:
            d = json.loads(p.read_text())
        except (OSError, ValueError) as e:
            raise InputError(p, None, f"not a head-localization JSON file ({e})") from None
        if not isinstance(d, dict):
            raise InputError(p, None, "not a head-localization JSON file (expected a JSON object)")

        def required(cls: type, obj: dict[str, Any], where: str) -> None:
            for f in dataclasses.fields(cls):
                no_default = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                if no_default and f.name not in obj:
                    raise InputError(p, where + f.name, "missing key: not a head-localization result of attrib heads")

        required(HeadLocalization, d, "")
        n_layers, n_heads = (_whole(p, k, d[k]) for k in ("n_layers", "n_heads"))
        if not (is_real(d["top_k"]) and d["top_k"] > 0):
            raise InputError(p, "top_k", f"expected a number above 0 (a share of the heads or a count), got "
                                         f"{d['top_k']!r}")
        for k in MATRICES:
            d[k] = _matrix(p, k, d[k], n_layers, n_heads)
        d["focal_heads"] = _heads(p, "focal_heads", d["focal_heads"], n_layers, n_heads)
        fl = d["focal_layers"]
        if not isinstance(fl, list) or not all(is_whole_number(x, 0, n_layers - 1) for x in fl):
            raise InputError(p, "focal_layers", f"expected a list of layer indices in 0..{n_layers - 1}")
        for k in ("settings", "timings"):
            if not isinstance(d.get(k, {}), dict):
                raise InputError(p, k, "expected an object")
        if not isinstance(d["family_compliance"], dict):
            raise InputError(p, "family_compliance", "expected an object")
        try:
            if d.get("patching"):
                pr = d["patching"]
                if not isinstance(pr, dict):
                    raise InputError(p, "patching", "expected an object")
                required(PatchingResult, pr, "patching.")
                pr["heads"] = _heads(p, "patching.heads", pr["heads"], n_layers, n_heads)
                if pr.get("n_met_gap") == 0:  # older files said causal: false and gave a ratio here
                    pr["causal"], pr["ratio"] = None, None
                known = {f.name for f in dataclasses.fields(PatchingResult)}
                d["patching"] = PatchingResult(**{k: v for k, v in pr.items() if k in known})
            known = {f.name for f in dataclasses.fields(HeadLocalization)}
            return HeadLocalization(**{k: v for k, v in d.items() if k in known})
        except (TypeError, ValueError) as e:
            raise InputError(p, None, f"not a head-localization JSON file ({e})") from None

    def plot(self, path: str | Path | None = None) -> Any:
        """Layer x head heatmap of S(l, h) with focal heads outlined (matplotlib, Agg)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(4 + 0.3 * self.n_heads, 2 + 0.22 * self.n_layers))
        lim = float(np.abs(self.scores).max()) or 1.0
        im = ax.imshow(self.scores, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim)
        for la, h in self.focal_heads:
            ax.add_patch(plt.Rectangle((h - 0.5, la - 0.5), 1, 1, fill=False, edgecolor="black", lw=1.5))
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        ax.set_xticks(range(self.n_heads))
        ax.set_title(f"attention drift S(l,h), {self.model}\nfocal layers {self.focal_layers}", fontsize=9)
        fig.colorbar(im, ax=ax, label="S (z-score)")
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=120)
            plt.close(fig)
        return fig


def _whole(path: Path, key: str, value: Any) -> int:
    """A saved count (``n_layers``, ``n_heads``): a whole number >= 1, else an error naming the file and key."""
    if not is_whole_number(value, 1):
        raise InputError(path, key, f"expected a whole number >= 1, got {value!r}")
    return int(value)


def _matrix(path: Path, key: str, value: Any, n_layers: int, n_heads: int) -> np.ndarray:
    """A saved ``[n_layers, n_heads]`` statistic as floats; a ragged, non-numeric or mis-shaped one names ``key``."""
    try:
        m = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(path, key, f"expected {n_layers} rows of {n_heads} numbers (n_layers x n_heads)") from None
    if m.shape != (n_layers, n_heads):
        raise InputError(path, key, f"shape {list(m.shape)} does not match n_layers x n_heads = [{n_layers}, {n_heads}]")
    if not np.isfinite(m).all():  # a null was read as NaN, and NaN scores rank arbitrarily
        la, h = (int(i) for i in np.argwhere(~np.isfinite(m))[0])
        raise InputError(path, key, f"holds null or a non-finite value at layer {la}, head {h}: every entry must be a "
                                    "number")
    return m


def _heads(path: Path, key: str, value: Any, n_layers: int, n_heads: int) -> list[Head]:
    """Saved heads as ``(layer, head)`` tuples, each inside the model (the check the model-side code makes,
    :func:`~attrib.heads.weights.check_focal_heads`), else an error naming the file and ``key``."""
    try:
        return check_focal_heads(value, n_layers, n_heads, field=key)
    except InputError as e:
        raise InputError(path, key, e.message) from None


def _model_pair(model: Any) -> tuple[Any, Any, str]:
    """(runner, tokenizer, name): the runner is the bridge if given, else the HF model."""
    from attrib.models import load_model

    if isinstance(model, str | Path):
        hf, tok = load_model(model)
        return hf, tok, str(model)
    if isinstance(model, tuple):
        from attrib.models import check_model

        if len(model) != 2:
            raise InputError(None, "model", f"expected an (hf_model, tokenizer) pair, got a tuple of {len(model)}")
        hf, tok = model
        check_model(hf)  # it generates: a base model (no LM head) failed with "has no attribute 'generate'"
        return hf, tok, getattr(hf.config, "attrib_source", "") or hf.config._name_or_path
    if hasattr(model, "original_model"):
        hf = model.original_model
        return model, model.tokenizer, getattr(hf.config, "attrib_source", "") or hf.config._name_or_path
    raise InputError(None, "model", f"expected a model name/path, (hf_model, tokenizer) or TransformerBridge, got {type(model).__name__}")


def _dims(runner: Any) -> tuple[int, int]:
    if hasattr(runner, "cfg"):
        return int(runner.cfg.n_layers), int(runner.cfg.n_heads)
    return int(runner.config.num_hidden_layers), int(runner.config.num_attention_heads)


def localize(
    model: Any,
    probes: Sequence[Any] | None = None,
    top_k: float = 0.05,
    *,
    families: Sequence[str] | None = None,
    split: str | None = "train",
    select: str = "all",
    positions: str = "answer",
    min_pairs: int = 3,
    patch: bool = True,
    n_random: int = 10,
    min_gap: float = 0.5,
    max_new_tokens: int = 16,
    batch_size: int = 16,
    coverage: float = 0.6,
    random_state: int = 0,
    progress: Progress | None = None,
) -> HeadLocalization:
    """Localize the heads behind instruction-conflict failures.

    ``model``: a name/path (``"smollm2-135m"``), an ``(hf_model, tokenizer)`` pair or a TransformerBridge.
    ``probes``: default ``conflict_suite(families or FOCUS_FAMILIES, split=split)``; ``split`` is ``"train"`` by
    default (as ``attrib heads`` and the measured figures: the held-out wordings stay unseen, to check the focal
    heads on), ``"heldout"``, or ``"all"``/None for both. ``select``: ``"all"`` pairs or
    ``"flipped"`` (plain run complied, conflict run did not; falls back to all below ``min_pairs``).
    ``positions``: where drift is read: ``"answer"`` (default: the position that generates the first answer token,
    after the probe's answer prefix, i.e. where the compliance metric and patching act), ``"suffix"`` (the shared
    question/template suffix) or ``"response"`` (every generated token; confounded by the two runs producing
    different text). The run's settings (which probes: families, split, questions per template; and the options
    that change the result) are kept in ``settings``, so a saved result says how it was made.
    """
    from attrib.probes import FOCUS_FAMILIES, conflict_suite, pairs
    from attrib.probes.run import family_compliance, run_probes

    t0 = time.perf_counter()
    _check_options(select=select, positions=positions, coverage=coverage, patch=patch, n_random=n_random)
    if split not in (None, "all", "train", "heldout"):
        raise UsageError(None, "split", f"expected 'train', 'heldout' or 'all', got {split!r}")
    runner, tok, name = _model_pair(model)
    hf = runner.original_model if hasattr(runner, "original_model") else runner
    n_layers, n_heads = _dims(runner)
    try:  # the one option that needs the model's size
        drift.n_focal(top_k, n_layers * n_heads)
    except InputError as e:
        raise UsageError(None, "top_k", e.message) from None
    if probes is None:
        probes = conflict_suite(families or FOCUS_FAMILIES, split=None if split == "all" else split)
    probes = list(probes)
    if not probes:
        raise InputError(None, "probes", "no probes to run")
    say = progress or (lambda *_: None)
    runs = run_probes(hf, tok, probes, max_new_tokens=max_new_tokens, batch_size=batch_size,
                      progress=lambda i, n: say("responding", i, n))
    t_gen = time.perf_counter()
    comp = {k: asdict(v) for k, v in family_compliance(runs).items()}
    by_id = {r.probe.id: r for r in runs}
    all_pairs = pairs(probes)
    flipped = [(c, x) for c, x in all_pairs if by_id[c.id].complied and not by_id[x.id].complied]
    chosen, selection = (flipped, "flipped") if select == "flipped" and len(flipped) >= min_pairs else (all_pairs, "all")
    if not chosen:
        raise InputError(None, "probes", "no (non-conflict, conflict) probe pairs in the given probes")
    per_pair = []
    for i, (c, x) in enumerate(chosen):
        per_pair.append(_pair_drift(runner, tok, by_id[c.id], by_id[x.id], positions))
        say("drift", i + 1, len(chosen))
    scores = drift.combine(per_pair)
    t_drift = time.perf_counter()
    focal = drift.top_heads(scores.score, top_k)
    layers = drift.focal_layers(focal, scores.score, coverage=coverage)
    result = HeadLocalization(
        model=name, n_layers=n_layers, n_heads=n_heads, top_k=float(top_k), scores=scores.score,
        magnitude=scores.magnitude, direction=scores.direction, js=scores.js, sink_clean=scores.sink_clean,
        sink_conflict=scores.sink_conflict, focal_heads=focal, focal_layers=layers, family_compliance=comp,
        n_pairs=scores.n_pairs, pair_selection=selection,
        settings={**probe_settings(probes), "max_new_tokens": max_new_tokens, "batch_size": batch_size,
                  "select": select, "min_pairs": min_pairs, "positions": positions, "coverage": coverage,
                  "patch": patch, "n_random": n_random if patch else None, "min_gap": min_gap if patch else None,
                  "random_state": random_state},
    )
    if patch:
        from attrib.heads.patching import patching_check

        result.patching = patching_check(
            runner, tok, all_pairs, focal, n_layers=n_layers, n_heads=n_heads, n_random=n_random,
            min_gap=min_gap, random_state=random_state, known_ld={r.probe.id: r.logit_diff for r in runs},
            progress=lambda i, n: say("patching", i, n),
        )
    t_end = time.perf_counter()
    result.timings = {
        "generate_s": round(t_gen - t0, 2), "drift_s": round(t_drift - t_gen, 2),
        "patching_s": round(t_end - t_drift, 2), "total_s": round(t_end - t0, 2),
        "n_probes": len(probes), "n_heads_scanned": n_layers * n_heads, "positions": positions,
    }
    return result


def probe_settings(probes: Sequence[Any]) -> dict[str, Any]:
    """What a probe list is, for the record: families and conditions (in order), the split (``"train"``,
    ``"heldout"`` or ``"all"`` when both are there), the most questions any template has, and the count."""
    splits = {p.split for p in probes}
    questions: dict[str, set[str]] = {}
    for p in probes:
        questions.setdefault(p.template, set()).add(p.question)
    return {
        "families": list(dict.fromkeys(p.family for p in probes)),
        "split": splits.pop() if len(splits) == 1 else "all",
        "n_questions": max((len(q) for q in questions.values()), default=0),
        "conditions": list(dict.fromkeys(p.condition for p in probes)),
        "n_probes": len(probes),
    }


def _check_options(*, select: str, positions: str, coverage: float, patch: bool, n_random: int) -> None:
    """The options checked before the model loads (UsageError naming each; ``top_k`` needs the model's size, so it
    is checked once the model is there): ``positions`` and ``n_random`` were refused only after minutes of
    generation and drift, and an unknown ``select`` silently meant "all"."""
    if select not in ("all", "flipped"):
        raise UsageError(None, "select", f"expected 'all' or 'flipped', got {select!r}")
    if positions not in POSITIONS:
        raise UsageError(None, "positions", f"unknown positions {positions!r} ({', '.join(POSITIONS)})")
    if not (is_real(coverage) and 0 < coverage <= 1):
        raise UsageError(None, "coverage", f"expected a share of the focal heads in (0, 1], got {coverage!r}")
    if patch:
        whole_number("n_random", n_random, 5)  # the causal check's minimum (attrib.heads.patching)


def _pair_drift(runner: Any, tok: Any, clean_run: Any, conflict_run: Any, positions: str = "answer") -> dict[str, np.ndarray]:
    """Drift statistics of one pair from full attention patterns at the chosen answer positions."""
    from attrib.heads.weights import attention_patterns

    prefix = positions != "response"
    rc = clean_run.probe.render(tok, with_prefix=prefix)
    rx = conflict_run.probe.render(tok, with_prefix=prefix)
    ic, ix = drift.shared_key_index(rc.spans, rc.n_tokens, rx.spans, rx.n_tokens)
    if positions == "response":
        pc = attention_patterns(runner, rc.input_ids + clean_run.response_ids)
        px = attention_patterns(runner, rx.input_ids + conflict_run.response_ids)
        qc = qx = None
    else:
        pc, px = attention_patterns(runner, rc.input_ids), attention_patterns(runner, rx.input_ids)
        if positions == "answer":
            qc, qx = [rc.n_tokens - 1], [rx.n_tokens - 1]
        else:
            suf = min(rc.n_tokens - rc.spans["question"][0], rx.n_tokens - rx.spans["question"][0])
            qc, qx = list(range(rc.n_tokens - suf, rc.n_tokens)), list(range(rx.n_tokens - suf, rx.n_tokens))
    sc = drift.run_stats(pc, rc.spans, rc.n_tokens, shared_idx=ic, query_positions=qc)
    sx = drift.run_stats(px, rx.spans, rx.n_tokens, shared_idx=ix, query_positions=qx)
    return drift.pair_drift(sc, sx)
