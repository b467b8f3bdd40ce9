"""Token and span attributions for one step with captum: which part of the prompt drives the answer.

The target is a scalar per prompt: for a probe, its compliance logit difference on the first answer token; for a
recorded trace step, the log-probability of the first token the agent actually produced. Two captum methods:

* ``"ablation"``: ``FeatureAblation`` over prompt spans (rule, conflict, question, rest), each span's input
  embeddings zeroed at once: one forward per span, exact, cheap;
* ``"ig"``: ``LayerIntegratedGradients`` on the token-embedding layer (baseline: the pad token), summed over the
  embedding dimension, per token and per span.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from attrib.errors import InputError, UsageError, whole_number

GROUPS: tuple[str, ...] = ("rest", "rule", "conflict", "question", "prefix")
METHODS: tuple[str, ...] = ("ablation", "ig")


def _check_args(method: object, n_steps: object) -> None:
    """Refuse a bad ``method`` or ``n_steps`` before any forward pass (UsageError naming it): ``n_steps=0`` reached
    captum, which failed with a bare AssertionError."""
    if method not in METHODS:
        raise UsageError(None, "method", f"unknown attribution method {method!r} (ablation or ig)")
    whole_number("n_steps", n_steps, 1)


@dataclass(frozen=True)
class SpanAttribution:
    """Per-span attribution (sum over the span's tokens) and per-token attribution of a scalar target."""

    method: str
    target: float
    spans: dict[str, float]
    tokens: list[float]

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "target": self.target, "spans": self.spans, "tokens": self.tokens}


def _groups(n: int, spans: Mapping[str, tuple[int, int]]) -> list[int]:
    g = [0] * n
    for gi, name in enumerate(GROUPS):
        if gi and name in spans:
            a, b = spans[name]
            for i in range(a, min(b, n)):
                g[i] = gi
    return g


def token_attributions(
    model: Any,
    input_ids: Sequence[int],
    spans: Mapping[str, tuple[int, int]],
    target: Callable[[Any], Any],
    *,
    method: str = "ablation",
    n_steps: int = 16,
    pad_id: int = 0,
) -> SpanAttribution:
    """Attribute ``target(log_probs_last[B, V]) -> [B]`` to prompt tokens and spans of ``input_ids`` (HF model).

    ``n_steps`` (IG's integration steps, also its internal batch) is a whole number >= 1; ``pad_id`` (IG's baseline
    token) a token id of the model's vocabulary; a bad one is a :class:`UsageError` naming it.
    """
    import torch
    from captum.attr import FeatureAblation, LayerIntegratedGradients

    _check_args(method, n_steps)
    if "rule" not in spans:
        raise InputError(None, "spans", "no system-rule span to attribute to")
    hf = model.get_base_model() if hasattr(model, "get_base_model") else model
    vocab = int(hf.get_input_embeddings().num_embeddings)
    whole_number("pad_id", pad_id, 0, vocab - 1)
    ids = torch.tensor([list(input_ids)])
    groups = _groups(len(input_ids), spans)
    emb_layer = hf.get_input_embeddings()

    def from_embeds(embeds: Any) -> Any:
        out = hf(inputs_embeds=embeds, logits_to_keep=1).logits[:, -1].float()
        return target(torch.log_softmax(out, -1))

    def from_ids(x: Any) -> Any:
        out = hf(input_ids=x, logits_to_keep=1).logits[:, -1].float()
        return target(torch.log_softmax(out, -1))

    with torch.no_grad():
        base_val = float(from_ids(ids)[0])
    if method == "ablation":
        embeds = emb_layer(ids).detach()
        mask = torch.tensor(groups).view(1, -1, 1).expand_as(embeds)
        with torch.no_grad():
            attr = FeatureAblation(from_embeds).attribute(embeds, baselines=0.0, feature_mask=mask)
        tok = attr[0, :, 0]
    else:  # "ig" (the method was checked above)
        lig = LayerIntegratedGradients(from_ids, emb_layer)
        base = torch.full_like(ids, pad_id)
        attr = lig.attribute(ids, baselines=base, n_steps=n_steps, internal_batch_size=n_steps)
        tok = attr[0].sum(-1).detach()
    per_span: dict[str, float] = {}
    for gi, name in enumerate(GROUPS):
        idx = [i for i, g in enumerate(groups) if g == gi]
        if idx:
            # ablation: every token of a group carries the group's value; IG: sum the tokens
            per_span[name] = float(tok[idx[0]]) if method == "ablation" else float(tok[idx].sum())
    return SpanAttribution(method=method, target=base_val, spans=per_span, tokens=[float(v) for v in tok])


def probe_attributions(model: Any, tokenizer: Any, probe: Any, *, method: str = "ablation", n_steps: int = 16) -> SpanAttribution:
    """Attribute a probe's compliance logit difference (first answer token) to its prompt spans."""
    from attrib.probes.run import logit_diff, metric_ids

    _check_args(method, n_steps)
    if not probe.has_logit_metric:
        raise InputError(None, probe.id, "this probe has no first-token metric to attribute")
    r = probe.render(tokenizer)
    comp, viol = metric_ids(tokenizer, probe)
    return token_attributions(model, r.input_ids, r.spans, lambda lp: logit_diff(lp, comp, viol), method=method,
                              n_steps=n_steps, pad_id=tokenizer.pad_token_id or 0)


def step_attributions(model: Any, tokenizer: Any, step: Any, *, method: str = "ablation", n_steps: int = 16) -> SpanAttribution:
    """Attribute a recorded step's first produced token (its log-probability) to its prompt spans.

    Needs a step written by :class:`attrib.record.Recorder` (messages and token spans in its metadata).
    """
    from attrib.probes.types import chat_text

    _check_args(method, n_steps)
    msgs = step.metadata.get("messages")
    layout = step.metadata.get("activation_layout") or {}
    if not msgs or "spans" not in layout:
        raise InputError(None, f"steps[{step.index}].metadata", "not a recorded step (no messages / span layout)")
    ids = tokenizer(chat_text(tokenizer, msgs), add_special_tokens=False)["input_ids"]
    first = tokenizer(step.content, add_special_tokens=False)["input_ids"][:1]
    if not first:
        raise InputError(None, f"steps[{step.index}].content", "empty response: nothing to attribute")
    spans = {k: tuple(v) for k, v in layout["spans"].items()}
    return token_attributions(model, ids, spans, lambda lp: lp[:, first[0]], method=method, n_steps=n_steps,
                              pad_id=tokenizer.pad_token_id or 0)
