"""Pick SAIL's learning rate and step count on the validation split (never on the held-out templates).

The validation split is the last question (``q2``) of every *train* template: its pairs are kept out of training
(``run.training_pairs``) and its instruction-conflict prompts (user and peer conditions) are scored here. For each lr
in ``--lrs``, one SAIL run on the focal layers (seed 0) is scored after each step count in ``--steps`` (the run is
resumed from its checkpoint, so 16 steps continue the 8-step run). The choice: highest validation compliance among
settings whose neutral-text perplexity rises ≤ 5 %; ties go to fewer steps, then the lower lr. Written to
``bench/results/sail_tune.json``, which ``run.py`` reads for its defaults.

    .venv/bin/python bench/sail/tune.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import ROOT, TUNE_FILE, VAL_QUESTION, choose_layers, log, training_pairs, validation_probes  # noqa: E402


def pick(rows: list[dict], max_ppl_pct: float = 5.0) -> dict:
    """Pure selection rule: best validation compliance within the perplexity bound; ties -> fewer steps, lower lr."""
    ok = [r for r in rows if r["perplexity_change_pct"] <= max_ppl_pct] or rows
    return max(ok, key=lambda r: (r["val_compliance"], -r["steps"], -r["lr"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--layers", default="auto")
    ap.add_argument("--lrs", default="1e-3,2e-3,4e-3")
    ap.add_argument("--steps", default="8,16")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--per-family", type=int, default=5)
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--max-response-tokens", type=int, default=24)
    ap.add_argument("--eval-tokens", type=int, default=16)
    ap.add_argument("--conditions", default="user,peer")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(TUNE_FILE))
    args = ap.parse_args()

    import torch

    from attrib.models import load_model
    from attrib.surgery.evaluate import compliance, perplexity
    from attrib.surgery.train import train_sail
    from attrib.surgery.weights import heads_for_layers

    torch.set_num_threads(args.threads)
    t_all = time.perf_counter()
    model, tok = load_model(args.model)
    subset, _ = training_pairs(args.model, model, tok, args.max_response_tokens, args.per_family)
    choice = choose_layers(args.model, args.layers, model, tok, subset)
    focal = choice["layers"]
    heads = [tuple(h) for h in choice["heads"]] or heads_for_layers(model, focal)
    probes = validation_probes(tuple(args.conditions.split(",")))
    log(f"focal layers {focal}; {len(subset)} training pairs; {len(probes)} validation probes")

    def score(m) -> dict:
        rep = compliance(m, tok, probes, max_new_tokens=args.eval_tokens, batch_size=42)
        return {"val_compliance": rep.overall.rate, "val_families": {f: r.rate for f, r in rep.families.items()},
                "perplexity": perplexity(m, tok)}

    base = score(model)
    log(f"base: validation compliance {base['val_compliance']:.3f}, ppl {base['perplexity']:.2f}")
    rows = []
    step_list = sorted(int(x) for x in args.steps.split(","))
    with tempfile.TemporaryDirectory(prefix="sail_tune_") as tmp:
        for lr in (float(x) for x in args.lrs.split(",")):
            out_dir = Path(tmp) / f"lr{lr:g}"
            for steps in step_list:
                t = time.perf_counter()
                res = train_sail(model, tok, subset, focal, steps=steps, lr=lr, beta=args.beta, alpha=args.alpha,
                                 batch_size=args.batch_size, random_state=0, out_dir=out_dir, resume=True,
                                 focal_heads=heads, max_response_tokens=args.max_response_tokens,
                                 reference_cache=Path(tmp) / "ref", progress=False)
                row = {"lr": lr, "steps": steps, "train_seconds": time.perf_counter() - t,
                       "resumed_from": res.resumed_from, **score(res.model)}
                row["perplexity_change_pct"] = 100 * (row["perplexity"] / base["perplexity"] - 1)
                rows.append(row)
                log(f"lr {lr:g} steps {steps}: validation {row['val_compliance']:.3f} "
                    f"ppl {row['perplexity_change_pct']:+.1f} % ({row['train_seconds']:.0f} s)")
                del res
    best = pick(rows)
    result = {
        "benchmark": "sail_tune", "model": args.model, "config": vars(args),
        "validation": f"question {VAL_QUESTION} of every train template, conditions {args.conditions}",
        "rule": "max validation compliance with perplexity change <= 5 %; ties: fewer steps, lower lr",
        "focal_layers": focal, "layer_source": choice["source"], "n_validation_probes": len(probes),
        "base": base, "grid": rows, "chosen": {"lr": best["lr"], "steps": best["steps"]},
        "total_seconds": time.perf_counter() - t_all,
    }
    Path(args.out).write_text(json.dumps(result, indent=1))
    log(f"chosen lr {best['lr']:g}, steps {best['steps']} -> {Path(args.out).relative_to(ROOT)}")


if __name__ == "__main__":
    main()
