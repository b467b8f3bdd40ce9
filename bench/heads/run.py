"""Benchmark: full drift scan of all 30 x 9 SmolLM2 heads over the conflict suite on CPU, and the patching check.

Localizes on the *train* templates of the focus families (secret, persona, language), then patches the top-5 %
heads from the non-conflict into the conflict run on every pair with a first-token metric and, separately, on the
*held-out* templates only, against >= 10 random head sets of the same size (the baseline, measured in the same
run). On the held-out pairs it also patches the top-5 % by each drift component alone (magnitude / direction /
JS), in the same batched pass.
Goal: focal recovery >= 3x the random median. Writes bench/results/heads.json.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/heads/run.py [--n-questions 3] [--n-random 10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-questions", type=int, default=3)
    ap.add_argument("--n-random", type=int, default=10)
    ap.add_argument("--top-k", type=float, default=0.05)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "heads.json"))
    ap.add_argument("--plot", default=None)
    a = ap.parse_args()

    import numpy as np
    import torch

    from attrib.heads import drift, localize
    from attrib.heads.patching import patching_check
    from attrib.models import load_model
    from attrib.probes import FOCUS_FAMILIES, conflict_suite, pairs
    from attrib.probes.run import first_token_logit_diffs

    t0 = time.perf_counter()
    model, tok = load_model("smollm2-135m")
    t_load = time.perf_counter() - t0
    train = conflict_suite(FOCUS_FAMILIES, split="train", n_questions=a.n_questions)
    held = conflict_suite(FOCUS_FAMILIES, split="heldout", n_questions=a.n_questions)

    def say(stage: str, i: int, n: int) -> None:
        if i == n or i % 10 == 0:
            print(f"  {stage} {i}/{n}  ({time.perf_counter() - t0:.0f} s)", flush=True)

    res = localize((model, tok), train, top_k=a.top_k, n_random=a.n_random, max_new_tokens=a.max_new_tokens,
                   progress=say)
    n_l, n_h = res.n_layers, res.n_heads
    print(res.patching.summary() if res.patching else "no patching", flush=True)

    t1 = time.perf_counter()
    # held-out templates: never seen by the localization; first-token metrics first, to skip pairs without a gap
    held_ld = dict(zip([q.id for q in held], first_token_logit_diffs(model, tok, held), strict=True))
    comps: dict[str, Sequence[tuple[int, int]]] = {
        name: drift.top_heads(getattr(res, name), a.top_k) for name in ("magnitude", "direction", "js")}
    held_check = patching_check(model, tok, pairs(held), res.focal_heads, n_layers=n_l, n_heads=n_h,
                                n_random=a.n_random, random_state=1, known_ld=held_ld, extra_sets=comps)
    print("held-out:", held_check.summary(), held_check.extra_recoveries, flush=True)
    t_extra = time.perf_counter() - t1

    p = res.patching
    out = {
        "benchmark": "heads",
        "model": "smollm2-135m (GGUF Q4_1, dequantized to float32)",
        "machine": {"cpu_threads": torch.get_num_threads(), "platform": platform.platform(),
                    "note": "shared 2-core machine; other jobs were running"},
        "suite": {"families": list(FOCUS_FAMILIES), "n_train_probes": len(train), "n_heldout_probes": len(held),
                  "n_questions": a.n_questions},
        "settings": res.settings,  # how the localization was made (probes, options), as a --save file records it
        "scan": {"heads": n_l * n_h, "pairs_scored": res.n_pairs, "pair_selection": res.pair_selection,
                 **res.timings, "load_s": round(t_load, 2)},
        "family_compliance_train": res.family_compliance,
        "focal_heads": [list(h) for h in res.focal_heads],
        "focal_layers": res.focal_layers,
        "top_heads": [[la, h, round(s, 3)] for la, h, s in res.ranked(15)],
        "patching_train": _brief(p),
        "patching_heldout": _brief(held_check),
        "components_alone_heldout": {k: {"heads": [list(h) for h in v], "recovery": held_check.extra_recoveries[k],
                                         "ratio_vs_random_median": (held_check.extra_recoveries[k] / held_check.random_median
                                                                    if held_check.random_median > 1e-9 else None)}
                                     for k, v in comps.items()},
        "goal": {"ratio_target": 3.0, "train_ratio": p.ratio if p else None, "heldout_ratio": held_check.ratio,
                 "met_train": bool(p and p.ratio is not None and p.ratio >= 3),
                 "met_heldout": bool(held_check.ratio is not None and held_check.ratio >= 3)},
        "extra_checks_s": round(t_extra, 2),
        "total_s": round(time.perf_counter() - t0, 2),
        "layer_profile": res.layer_profile().tolist(),
        "mean_sink_mass": float(np.mean(res.sink_clean)),
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2))
    if a.plot:
        res.plot(a.plot)
    print(json.dumps(out["goal"]), f"total {out['total_s']} s -> {a.out}")


def _brief(p: object) -> dict | None:
    if p is None:
        return None
    d = p.to_dict()  # type: ignore[attr-defined]
    d.pop("per_pair", None)
    d["heads"] = [list(h) for h in d["heads"]]
    d["summary"] = p.summary()  # type: ignore[attr-defined]
    return d


if __name__ == "__main__":
    main()
