"""Per-token SAIL weights: how much the frozen reference model's focal heads attend to the system rule.

For response token ``t`` the weight is the attention that the position *predicting* ``t`` (``t-1``, whose forward pass
produced the log-prob ``Δ_t`` is about) pays to the system-rule tokens, averaged over the focal heads, with the
attention sink (position 0) taken out explicitly:

    w_t = mean_h  A_h[t-1, rule] / (1 − A_h[t-1, 0])       ∈ [0, 1]

The sink typically soaks up most of the mass in small Llama models; dividing it out makes ``w_t`` the share of the
non-sink attention that goes to the rule. The batched computation itself is
:func:`attrib.heads.weights.focal_rule_weights` (one implementation, shared with ``attrib heads``); this module adds
the rule-span lookup and the eager-attention switch. When no focal heads are given, all heads of the focal layers are
used (documented fallback). Weights are computed once, without gradients.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from attrib.errors import InputError
from attrib.heads.weights import focal_rule_weights

__all__ = ["eager_attention", "focal_rule_weights", "heads_for_layers", "rule_token_span"]


def rule_token_span(tokenizer: Any, messages: Sequence[dict[str, str]], rule: str | None = None) -> tuple[int, int]:
    """Token range ``[start, end)`` of the system rule inside the rendered chat prompt.

    ``rule`` is the rule sentence; when None the whole system message content is the span. Uses the fast tokenizer's
    offset mapping on the rendered prompt text, so it works for any chat template.
    """
    system = next((m["content"] for m in messages if m.get("role") == "system"), None)
    if not system:
        raise InputError(None, "messages", "prompt has no system message, so there is no system-rule span to weight")
    target = rule if rule and rule in system else system
    text = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False) \
        if getattr(tokenizer, "chat_template", None) else \
        "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: "
    sys_at = text.find(system)
    char_start = sys_at + system.find(target)
    char_end = char_start + len(target)
    enc = tokenizer(text, add_special_tokens=not getattr(tokenizer, "chat_template", None),
                    return_offsets_mapping=True)
    toks = [i for i, (a, b) in enumerate(enc["offset_mapping"]) if b > char_start and a < char_end and b > a]
    if sys_at < 0 or not toks:
        raise InputError(None, "messages", "could not locate the system rule in the rendered prompt")
    return toks[0], toks[-1] + 1


@contextlib.contextmanager
def eager_attention(model: Any) -> Iterator[None]:
    """Temporarily switch an HF model to eager attention so that ``output_attentions=True`` returns patterns."""
    cfg = model.config
    old = getattr(cfg, "_attn_implementation", None)
    setter = getattr(model, "set_attn_implementation", None)
    try:
        if callable(setter):
            setter("eager")
        else:
            cfg._attn_implementation = "eager"
        yield
    finally:
        if old is not None:
            if callable(setter):
                setter(old)
            else:
                cfg._attn_implementation = old


def heads_for_layers(model: Any, layers: Sequence[int]) -> list[tuple[int, int]]:
    """All (layer, head) pairs of ``layers`` — the fallback when no head-level localization is available."""
    n_heads = int(model.config.num_attention_heads)
    return [(layer, h) for layer in layers for h in range(n_heads)]
