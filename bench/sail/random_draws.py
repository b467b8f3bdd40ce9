"""Does SAIL on the chosen layers beat LoRA on *random* layers of the same budget? More random draws decide it.

The main benchmark (``run.py``) trains 3 random-layer variants; their spread is mostly which layers the draw
picked, so 3 draws cannot separate a 6-point difference. This script pools the random-layer runs of
``bench/results/sail.json`` with extra draws from ``run.py --conditions lora_random --seed-start 3 --seeds 7
--out bench/results/sail_random_draws.json`` and applies the criterion fixed before the extra draws were run:
SAIL beats random layers when its mean held-out compliance exceeds the random-layer mean by more than twice the
standard error of the difference (Welch). Writes ``bench/results/sail_vs_random.json``.

    .venv/bin/python bench/sail/random_draws.py
    .venv/bin/python bench/sail/random_draws.py --sail bench/results/sail_repair.json --out bench/results/sail_repair_vs_random.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"


def rates(runs: list[dict], min_question: int = 0) -> list[float]:
    """Held-out compliance % per run; with ``min_question`` > 0, only over probes whose question index is at least
    that (``family/tN/qK/condition`` ids; needs the per-probe verdicts ``probe_ok``)."""
    if not min_question:
        return [100 * r["compliance"]["overall"]["rate"] for r in runs]
    out = []
    for r in runs:
        if "probe_ok" not in r:
            raise SystemExit("--min-question needs per-probe verdicts (probe_ok): rerun run.py")
        ok = [v for k, v in r["probe_ok"].items() if int(k.split("/")[2][1:]) >= min_question]
        out.append(100 * sum(ok) / len(ok))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sail", default=str(RESULTS / "sail.json"),
                    help="result JSON whose sail_focal runs are compared (default: the main benchmark's)")
    ap.add_argument("--random", nargs="*", default=None,
                    help="result JSONs whose lora_random runs form the pool (default: sail.json + sail_random_draws.json)")
    ap.add_argument("--min-question", type=int, default=0,
                    help="score only probes with question index >= this (3: the questions added by --eval-questions)")
    ap.add_argument("--out", default=str(RESULTS / "sail_vs_random.json"))
    args = ap.parse_args()
    sail_run = json.loads(Path(args.sail).read_text())
    pool = args.random if args.random is not None else [RESULTS / "sail.json", RESULTS / "sail_random_draws.json"]
    rnd_runs = [r for f in pool if Path(f).is_file() for r in json.loads(Path(f).read_text())["runs"]["lora_random"]]
    base = rates([sail_run["base"]], args.min_question)[0]
    sail = rates(sail_run["runs"]["sail_focal"], args.min_question)
    rnd = rates(rnd_runs, args.min_question)
    diff = statistics.mean(sail) - statistics.mean(rnd)
    se = math.sqrt(statistics.variance(sail) / len(sail) + statistics.variance(rnd) / len(rnd))
    out = {
        "criterion": "mean(SAIL) - mean(random) > 2 * Welch standard error of the difference (fixed before the extra draws)",
        "base_compliance_pct": base,
        "n_heldout_probes": sail_run["config"].get("n_heldout_probes"),
        "min_question": args.min_question,
        "sail_focal": {"source": args.sail.split("/")[-1], "layers": sail_run["config"]["focal_layers"], "n": len(sail), "compliance_pct": sail,
                       "mean": statistics.mean(sail), "sd": statistics.stdev(sail)},
        "lora_random": {"n": len(rnd), "layers": [r["layers"] for r in rnd_runs], "compliance_pct": rnd,
                        "mean": statistics.mean(rnd), "sd": statistics.stdev(rnd)},
        "difference_points": diff,
        "se_difference": se,
        "z": diff / se if se > 0 else float("inf"),
        "random_draws_at_or_above_sail_mean": sum(x >= statistics.mean(sail) for x in rnd),
        "sail_beats_random": diff > 2 * se,
    }
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps({k: v for k, v in out.items() if k not in ("sail_focal", "lora_random")}, indent=1))
    print(f"SAIL {out['sail_focal']['mean']:.1f} ± {out['sail_focal']['sd']:.1f} % (n={len(sail)}), random "
          f"{out['lora_random']['mean']:.1f} ± {out['lora_random']['sd']:.1f} % (n={len(rnd)})")


if __name__ == "__main__":
    main()
