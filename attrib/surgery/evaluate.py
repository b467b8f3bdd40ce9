"""Did the repair work, and what did it cost? Held-out compliance per probe family (with Wilson intervals) and
perplexity on a small hand-written neutral text.

The Wilson interval is four lines of arithmetic, written out here rather than pulling in statsmodels for it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

NEUTRAL_TEXT_FILE = "neutral_text.txt"


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes out of ``n`` (95 % by default); (0, 1) when ``n`` is 0."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Rate:
    """``k`` of ``n`` compliant, with the rate and its 95 % Wilson interval."""

    k: int
    n: int

    @property
    def rate(self) -> float:
        return self.k / self.n if self.n else 0.0

    @property
    def ci(self) -> tuple[float, float]:
        return wilson(self.k, self.n)

    def to_dict(self) -> dict[str, Any]:
        lo, hi = self.ci
        return {"k": self.k, "n": self.n, "rate": self.rate, "ci95": [lo, hi]}


@dataclass
class ComplianceReport:
    """Compliance per family and overall on a set of probes, and every response with its verdict."""

    families: dict[str, Rate]
    overall: Rate
    responses: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self, with_responses: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {"overall": self.overall.to_dict(),
                             "families": {f: r.to_dict() for f, r in sorted(self.families.items())}}
        if with_responses:
            d["responses"] = self.responses
        return d


def score_responses(probes: Sequence[Any], responses: Sequence[str]) -> ComplianceReport:
    """Pure part: check each response with its probe's programmatic checker and aggregate per family."""
    counts: dict[str, list[int]] = {}
    rows = []
    for p, text in zip(probes, responses, strict=True):
        ok = bool(p.check(text))
        c = counts.setdefault(p.family, [0, 0])
        c[0] += ok
        c[1] += 1
        rows.append({"probe": p.id, "family": p.family, "condition": p.condition, "response": text, "compliant": ok})
    fams = {f: Rate(k, n) for f, (k, n) in counts.items()}
    return ComplianceReport(fams, Rate(sum(r.k for r in fams.values()), sum(r.n for r in fams.values())), rows)


def compliance(
    model: Any,
    tokenizer: Any,
    probes: Sequence[Any],
    *,
    max_new_tokens: int = 40,
    batch_size: int = 16,
) -> ComplianceReport:
    """Greedy responses to ``probes`` checked by their programmatic checkers (no LLM judge). An empty list (a rate
    of 0 % over nothing) or an item that is not a probe is an InputError naming it."""
    from attrib.errors import InputError
    from attrib.probes.types import Probe
    from attrib.surgery.generate import check_generation, generate

    check_generation(max_new_tokens=max_new_tokens, batch_size=batch_size)
    if isinstance(probes, str | bytes) or not isinstance(probes, Sequence) or not probes:
        raise InputError(None, "probes", f"expected a non-empty list of probes (attrib.probes.conflict_suite(...) or "
                                         f"attrib.surgery.heldout_probes()), got {probes!r}")
    for i, p in enumerate(probes):
        if not isinstance(p, Probe):
            raise InputError(None, f"probes[{i}]", f"expected a probe (attrib.probes.conflict_suite(...) gives them), "
                                                   f"got {type(p).__name__} {p!r:.60}")

    responses = generate(model, tokenizer, [p.messages() for p in probes], max_new_tokens=max_new_tokens,
                         batch_size=batch_size)
    return score_responses(probes, responses)


def neutral_text() -> str:
    """The bundled hand-written neutral text (everyday prose, no rules, no conflicts)."""
    return (Path(__file__).parent / "data" / NEUTRAL_TEXT_FILE).read_text(encoding="utf-8")  # package data


def perplexity(model: Any, tokenizer: Any, text: str | None = None, *, window: int = 256) -> float:
    """Token-level perplexity of ``text`` (default: :func:`neutral_text`) in non-overlapping windows. A text of
    fewer than 2 tokens predicts nothing and is refused (it gave a "perfect" 1.0)."""
    from attrib.errors import InputError, whole_number

    whole_number("window", window)
    import torch

    text = neutral_text() if text is None else text
    if not isinstance(text, str):
        raise InputError(None, "text", f"expected a string, got {type(text).__name__}")
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"][0]
    if len(ids) < 2:
        raise InputError(None, "text", f"has {len(ids)} token{'s' * (len(ids) != 1)}: perplexity needs at least 2 "
                                       "(one to predict from, one predicted)")
    nll, count = 0.0, 0
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i in range(0, len(ids) - 1, window):
                chunk = ids[i:i + window + 1].unsqueeze(0)
                if chunk.shape[1] < 2:
                    break
                logits = model(input_ids=chunk, use_cache=False).logits[:, :-1].float()
                lp = torch.log_softmax(logits, -1).gather(-1, chunk[:, 1:].unsqueeze(-1))
                nll -= lp.sum().item()
                count += chunk.shape[1] - 1
    finally:
        model.train(was_training)
    return math.exp(nll / max(count, 1))


def summary(report: ComplianceReport) -> dict[str, Any]:
    """Compact dict form (rates and intervals only)."""
    return {"overall": asdict(report.overall) | {"rate": report.overall.rate}, **{
        f: asdict(r) | {"rate": r.rate} for f, r in report.families.items()}}
