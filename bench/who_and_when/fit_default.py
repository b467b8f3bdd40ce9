"""Regenerate the shipped models from all of Who&When: the ranker (attrib/methods/data/ranker.json) and the causal
model (attrib/methods/data/causal.json).

Fits one LearnedRanker per setting (with / without the ground-truth answer) on both subsets pooled, and the PC causal
model on the same logs, and writes JSON (no pickle). Evaluation never uses these files; it refits inside folds.

    .venv/bin/python bench/who_and_when/fit_default.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from attrib.evaluate.data import SUBSETS, load_subset  # noqa: E402
from attrib.methods import causal  # noqa: E402
from attrib.methods.learned import ARTIFACT, fit_artifact  # noqa: E402


def main() -> None:
    traces = [t for s in SUBSETS for t in load_subset(s)]
    out = fit_artifact(traces, f"Who&When all {len(traces)} logs (both subsets)")
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_bytes(orjson.dumps(out))
    print(f"wrote {ARTIFACT} ({ARTIFACT.stat().st_size / 1024:.1f} KiB)")
    model = causal.CausalStepModel().fit(traces)
    causal.ARTIFACT.write_bytes(orjson.dumps({**model.to_dict(), "trained_on": f"Who&When all {len(traces)} logs"}))
    print(f"wrote {causal.ARTIFACT} ({causal.ARTIFACT.stat().st_size / 1024:.1f} KiB)")


if __name__ == "__main__":
    main()
