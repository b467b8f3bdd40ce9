"""Regenerate the shipped ranker (attrib/methods/data/ranker.json) from all of Who&When.

Fits one LearnedRanker per setting (with / without the ground-truth answer) on both subsets pooled,
and writes JSON coefficients (no pickle). Evaluation never uses this file; it refits inside folds.

    .venv/bin/python bench/who_and_when/fit_default.py
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from attrib.evaluate.data import SUBSETS, load_subset, question_id  # noqa: E402
from attrib.methods.learned import ARTIFACT, LearnedRanker  # noqa: E402


def main() -> None:
    traces = [t for s in SUBSETS for t in load_subset(s)]
    settings = {}
    for name, ts in (("with_gt", traces), ("without_gt", [t.without_ground_truth() for t in traces])):
        settings[name] = LearnedRanker().fit(ts, [question_id(t) for t in ts]).to_dict()
    digest = hashlib.sha256(b"".join(t.content_hash().encode() for t in traces)).hexdigest()[:16]
    out = {"version": 1, "trained_on": f"Who&When all {len(traces)} logs (both subsets)", "data_hash": digest,
           "settings": settings}
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_bytes(orjson.dumps(out))
    print(f"wrote {ARTIFACT} ({ARTIFACT.stat().st_size / 1024:.1f} KiB)")


if __name__ == "__main__":
    main()
