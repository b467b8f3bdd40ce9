"""Who&When benchmark: every method, the baselines and the logistic floor, both settings, out of sample.

Writes bench/results/who_and_when.json with ``subsets.<algorithm|hand>.{step_accuracy, agent_accuracy,
ece}`` (percent) for the default method in the with-ground-truth setting, and the full table for both
settings under ``settings``. Baselines are measured in the same run.

    .venv/bin/python bench/who_and_when/run.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from attrib.evaluate import evaluate  # noqa: E402


def main() -> None:
    t0 = time.perf_counter()
    runs = {s: evaluate(with_gt=(s == "with_gt"), progress=lambda m: print(m, flush=True))
            for s in ("with_gt", "without_gt")}
    main_run = runs["with_gt"]
    out = {
        "benchmark": "who_and_when",
        "default_method": main_run["default_method"],
        "subsets": main_run["subsets"],
        "subsets_without_gt": runs["without_gt"]["subsets"],
        "settings": {s: {"rows": r["rows"], "wall_s": r["wall_s"]} for s, r in runs.items()},
        "published": main_run["published"],
        "folds": main_run["folds"],
        "seed": main_run["seed"],
        "wall_s": time.perf_counter() - t0,
    }
    path = ROOT / "bench" / "results" / "who_and_when.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    for s, r in runs.items():
        for row in r["rows"]:
            e = "-" if row["ece"] is None else f"{100 * row['ece']:.1f}"
            pm = lambda v: "  -  " if v is None else f"{v:5.1f}"  # noqa: E731
            print(f"{s:10s} {row['subset']:9s} {row['method']:20s} {row['protocol']:30s} "
                  f"step {row['step_accuracy']:5.1f} ±1 {pm(row['step_accuracy_pm1'])} ±3 {pm(row['step_accuracy_pm3'])} "
                  f"agent {row['agent_accuracy']:5.1f} ECE {e}")
    print(f"wrote {path} in {out['wall_s']:.1f} s")


if __name__ == "__main__":
    main()
