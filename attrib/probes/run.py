"""Run probes through a model: greedy responses, compliance per family, and the first-answer-token metric.

The compliance logit difference of a probe is ``logsumexp(logp[compliant]) - logsumexp(logp[violating])`` on the
first token after the prompt (and the probe's ``answer_prefix``); when a probe lists no compliant tokens it is
``log(1 - P(violating)) - log P(violating)``. Positive means the model leans towards obeying the rule.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from attrib.models import pad_id
from attrib.probes.types import Probe


def first_token_ids(tokenizer: Any, strings: Sequence[str]) -> list[int]:
    """The first token id of each string (deduplicated, order kept)."""
    out: list[int] = []
    for s in strings:
        ids = tokenizer(s, add_special_tokens=False)["input_ids"]
        if ids and ids[0] not in out:
            out.append(int(ids[0]))
    return out


def metric_ids(tokenizer: Any, probe: Probe) -> tuple[list[int], list[int]]:
    """(compliant ids, violating ids) for a probe's first-token metric; compliant ids never overlap violating."""
    viol = first_token_ids(tokenizer, probe.violating_tokens)
    comp = [i for i in first_token_ids(tokenizer, probe.compliant_tokens) if i not in viol]
    return comp, viol


def logit_diff(log_probs: Any, compliant: Sequence[int], violating: Sequence[int]) -> Any:
    """Compliance logit difference from log-probabilities over the vocabulary (``[..., V]``, torch)."""
    import torch

    lv = torch.logsumexp(log_probs[..., list(violating)], dim=-1)
    if compliant:
        return torch.logsumexp(log_probs[..., list(compliant)], dim=-1) - lv
    p = lv.exp().clamp(1e-12, 1 - 1e-7)
    return torch.log1p(-p) - lv


def _left_pad(batch: list[list[int]], pad_id: int) -> tuple[Any, Any]:
    import torch

    n = max(len(b) for b in batch)
    ids = torch.full((len(batch), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), n), dtype=torch.long)
    for i, b in enumerate(batch):
        ids[i, n - len(b):] = torch.tensor(b)
        mask[i, n - len(b):] = 1
    return ids, mask


def stop_token_ids(tokenizer: Any) -> list[int]:
    """Token ids that end a chat turn: the tokenizer's EOS and ``<|im_end|>`` where the vocabulary has it."""
    ids = {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")}
    return sorted(t for t in ids if isinstance(t, int) and t >= 0)


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[list[int]],
    *,
    max_new_tokens: int = 32,
    batch_size: int = 16,
    first_scores: list[Any] | None = None,
    temperature: float = 0.0,
    random_state: int = 0,
    stop_ids: Sequence[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[list[int]]:
    """Continuations (token ids, cut at the first stop token) for tokenized prompts, batched with left padding.

    Greedy when ``temperature`` is 0, else sampled (seeded by ``random_state``). ``stop_ids`` defaults to the
    tokenizer's EOS. With ``first_scores`` (a list), the log-softmax over the vocabulary at the first generated
    position of every prompt is appended to it (saves a second forward pass for first-token metrics).
    ``progress(done, total)``, in prompts, is called as generation goes (see :func:`_progress_criteria`).
    """
    import torch

    stops = list(stop_ids) if stop_ids is not None else [tokenizer.eos_token_id]
    pad = pad_id(tokenizer)
    sampling: dict[str, Any] = (
        {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0} if temperature > 0
        else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    )
    was_training = model.training
    model.eval()
    # greedy decoding draws nothing: only sampling seeds, inside a forked RNG, so the caller's global RNG state is
    # left as it was (HF generate takes no torch.Generator)
    rng: Any = contextlib.nullcontext()
    if temperature > 0:
        device = getattr(model, "device", None)
        rng = torch.random.fork_rng(devices=[device] if getattr(device, "type", "cpu") == "cuda" else [])
    out: list[list[int]] = []
    with rng:
        if temperature > 0:
            torch.manual_seed(random_state)
        try:
            for i in range(0, len(prompts), batch_size):
                chunk = [list(p) for p in prompts[i : i + batch_size]]
                ids, mask = _left_pad(chunk, pad)
                extra: dict[str, Any] = {}
                if progress is not None:
                    extra["stopping_criteria"] = _progress_criteria(progress, i, len(chunk), len(prompts),
                                                                    ids.shape[1], max_new_tokens)
                with torch.no_grad():
                    gen = model.generate(
                        input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, pad_token_id=pad,
                        eos_token_id=stops if len(stops) > 1 else stops[0], return_dict_in_generate=True,
                        output_logits=first_scores is not None, **sampling, **extra,
                    )
                if progress is not None:
                    progress(i + len(chunk), len(prompts))
                if first_scores is not None:
                    first_scores.extend(torch.log_softmax(gen.logits[0].float(), -1))
                for row in gen.sequences[:, ids.shape[1]:].tolist():
                    cut = next((k for k, t in enumerate(row) if t in stops), len(row))
                    out.append([t for t in row[:cut] if t != pad])
        finally:
            model.train(was_training)
    return out


def _progress_criteria(progress: Callable[[int, int], None], start: int, size: int, total: int, prompt_len: int,
                       max_new_tokens: int) -> Any:
    """A stopping criterion that never stops and reports progress while a batch generates.

    A batch of ``size`` prompts is one ``model.generate`` call, minutes on a CPU for the probe suite; counting only
    finished batches left a one-batch run at 0 until the end. So each generated token counts for
    ``size / max_new_tokens`` prompts (rounded down, at most ``size - 1`` until the batch returns, when the caller
    reports it whole): an estimate inside a batch, exact at every batch's end, never going back.
    """
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class Report(StoppingCriteria):
        last = start

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            steps = int(input_ids.shape[1]) - prompt_len
            done = start + min(size - 1, size * steps // max(max_new_tokens, 1))
            if done > self.last:
                self.last = done
                progress(done, total)
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([Report()])


@dataclass(frozen=True)
class ProbeRun:
    """One probe's greedy response, its compliance verdict and (where defined) its first-token metric."""

    probe: Probe
    prompt_ids: list[int]
    response_ids: list[int]
    response: str
    complied: bool
    logit_diff: float | None = None


def run_probes(
    model: Any,
    tokenizer: Any,
    probes: Sequence[Probe],
    *,
    max_new_tokens: int = 32,
    batch_size: int = 16,
    metric: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> list[ProbeRun]:
    """Generate a greedy response for every probe (without the answer prefix), check it, and score the metric.

    ``progress(done, total)`` (probes) is called as the responses are generated, from ``(0, total)`` to
    ``(total, total)``, which comes once the metric's extra pass (probes with an answer prefix) is done too.
    """
    rendered = [p.render(tokenizer, with_prefix=False) for p in probes]
    first: list[Any] = []
    n = len(probes)

    def generating(i: int, _: int) -> None:  # the whole count only once the metric's pass is done too
        if progress is not None:
            progress(min(i, n - 1), n)

    if progress is not None:
        progress(0, n)
    gens = generate(model, tokenizer, [r.input_ids for r in rendered], max_new_tokens=max_new_tokens,
                    batch_size=batch_size, first_scores=first if metric else None,
                    progress=generating if progress is not None else None)
    lds: list[float | None] = [None] * len(probes)
    if metric:
        prefixed = [i for i, p in enumerate(probes) if p.has_logit_metric and p.answer_prefix]
        extra = first_token_logit_diffs(model, tokenizer, [probes[i] for i in prefixed], batch_size=batch_size)
        for i, v in zip(prefixed, extra, strict=True):
            lds[i] = v
        for i, p in enumerate(probes):
            if p.has_logit_metric and not p.answer_prefix:
                comp, viol = metric_ids(tokenizer, p)
                lds[i] = float(logit_diff(first[i], comp, viol))
    runs = []
    for p, r, g, ld in zip(probes, rendered, gens, lds, strict=True):
        text = tokenizer.decode(g, skip_special_tokens=True)
        runs.append(ProbeRun(p, r.input_ids, g, text, p.check(text), ld))
    if progress is not None:
        progress(n, n)
    return runs


def first_token_logit_diffs(
    model: Any, tokenizer: Any, probes: Sequence[Probe], *, batch_size: int = 16
) -> list[float | None]:
    """The compliance logit difference of each probe (None where the probe has no metric)."""
    import torch

    out: list[float | None] = [None] * len(probes)
    todo = [i for i, p in enumerate(probes) if p.has_logit_metric]
    pad = pad_id(tokenizer)
    for s in range(0, len(todo), batch_size):
        idx = todo[s : s + batch_size]
        ids, mask = _left_pad([probes[i].render(tokenizer).input_ids for i in idx], pad)
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask).logits[:, -1].float()
        lp = torch.log_softmax(logits, -1)
        for row, i in enumerate(idx):
            comp, viol = metric_ids(tokenizer, probes[i])
            out[i] = float(logit_diff(lp[row], comp, viol))
    return out


@dataclass(frozen=True)
class FamilyCompliance:
    """Compliance rates of one family: plain prompts vs conflict prompts, and how many pairs flipped."""

    family: str
    plain: float
    conflict: float
    n_plain: int
    n_conflict: int
    flipped: int
    n_pairs: int


def family_compliance(runs: Sequence[ProbeRun]) -> dict[str, FamilyCompliance]:
    """Per family: the fraction of non-conflict and conflict probes that complied, and flipped pairs."""
    by_id = {r.probe.id: r for r in runs}
    fams: dict[str, list[ProbeRun]] = {}
    for r in runs:
        fams.setdefault(r.probe.family, []).append(r)
    out = {}
    for fam, rs in fams.items():
        plain = [r.complied for r in rs if not r.probe.is_conflict]
        conf = [r.complied for r in rs if r.probe.is_conflict]
        flipped = n_pairs = 0
        for r in rs:
            if r.probe.is_conflict:
                twin = _twin(r.probe, by_id)
                if twin is not None:
                    n_pairs += 1
                    flipped += int(twin.complied and not r.complied)
        out[fam] = FamilyCompliance(
            fam, float(np.mean(plain)) if plain else float("nan"), float(np.mean(conf)) if conf else float("nan"),
            len(plain), len(conf), flipped, n_pairs,
        )
    return out


def _twin(probe: Probe, by_id: dict[str, ProbeRun]) -> ProbeRun | None:
    from attrib.probes.types import CONFLICT_OF

    twin_id = probe.id.rsplit("/", 1)[0] + "/" + CONFLICT_OF[probe.condition]
    return by_id.get(twin_id)
