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
    c0 = time.process_time()
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n_seeds", nargs="?", type=int, default=5, help="fold seeds to average over (default 5)")
    n_seeds = ap.parse_args().n_seeds
    runs = {s: evaluate(with_gt=(s == "with_gt"), n_seeds=n_seeds, progress=lambda m: print(m, flush=True))
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
        "seeds": main_run["seeds"],
        "wall_s": time.perf_counter() - t0,
        "cpu_s": time.process_time() - c0,
        "cpu_s_one_seed_one_setting": "see `attrib eval who-and-when` (one setting, one fold seed)",
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
                  f"top-3 {pm(row.get('step_top3'))} top-5 {pm(row.get('step_top5'))} "
                  f"agent {row['agent_accuracy']:5.1f} ECE {e}")
    print(f"wrote {path} in {out['wall_s']:.1f} s wall, {out['cpu_s']:.1f} s CPU")
    print(markdown_tables(runs))


def markdown_tables(runs: dict) -> str:
    """The README's per-subset tables (both settings side by side), mean ± SD over fold seeds."""
    def cell(r: dict, key: str) -> str:
        v, sd = r.get(key), r.get(f"{key}_sd")
        if v is None:
            return "-"
        return f"{v:.1f} ± {sd:.1f}" if sd and r.get("n_seeds", 1) > 1 else f"{v:.1f}"

    def ece(r: dict) -> str:
        return "-" if r.get("ece") is None else f"{100 * r['ece']:.1f}"

    out = []
    for subset in ("algorithm", "hand"):
        out.append(f"\n{subset}\n")
        out.append("| method | protocol | step % (with GT) | agent % (with GT) | ECE % | step % (without GT) | "
                   "agent % (without GT) | ECE % | step ±1 / ±3 % (with GT) | top-3 / top-5 % (with GT) |")
        out.append("|---|---|---|---|---|---|---|---|---|---|")
        w = [r for r in runs["with_gt"]["rows"] if r["subset"] == subset]
        wo = {(r["method"], r["protocol"]): r for r in runs["without_gt"]["rows"] if r["subset"] == subset}
        for r in w:
            r2 = wo[(r["method"], r["protocol"])]
            pm = "-" if r["step_accuracy_pm1"] is None else f"{r['step_accuracy_pm1']:.1f} / {r['step_accuracy_pm3']:.1f}"
            top = "-" if r.get("step_top3") is None else f"{r['step_top3']:.1f} / {r['step_top5']:.1f}"
            out.append(f"| {r['method']} | {r['protocol']} | {cell(r, 'step_accuracy')} | {cell(r, 'agent_accuracy')} | "
                       f"{ece(r)} | {cell(r2, 'step_accuracy')} | {cell(r2, 'agent_accuracy')} | {ece(r2)} | {pm} | {top} |")
        for setting, run in runs.items():
            d = run["subsets"].get(subset, {})
            if "step_accuracy_ci" in d and "step_gain_vs_floor" in d:
                g, ga = d["step_gain_vs_floor"], d["agent_gain_vs_floor"]
                out.append(f"\n{setting}: 95 % intervals over logs: step {ci(d['step_accuracy_ci'])}, agent "
                           f"{ci(d['agent_accuracy_ci'])}; against the floor on the same logs: step {g['mean']:+.1f} "
                           f"({g['ci_low']:+.1f} to {g['ci_high']:+.1f}), agent {ga['mean']:+.1f} "
                           f"({ga['ci_low']:+.1f} to {ga['ci_high']:+.1f})")
    return "\n".join(out)


def ci(v: list[float]) -> str:
    return f"{v[0]:.1f}-{v[1]:.1f}"


if __name__ == "__main__":
    main()
