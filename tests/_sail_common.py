"""Shared bits of the SAIL tests: the real SmolLM2 (loaded once per process via load_model's memo) and tiny pairs."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def real_model():
    from attrib.models import load_model

    return load_model("smollm2-135m")


def tiny_pairs(n: int = 2):
    """``n`` real pairs from the suite's train templates (templated responses, no sampling)."""
    from attrib.probes import conflict_suite
    from attrib.surgery.pairs import build_pairs

    probes = [p for p in conflict_suite(["format_upper", "secret"], split="train") if p.condition == "user"]
    return build_pairs(probes, max_pairs_per_probe=1)[:n]
