"""Chat-message front end to :func:`attrib.probes.run.generate` for sampling pair responses and for compliance
evaluation: renders the messages, generates (stopping at EOS or ``<|im_end|>``), decodes the text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[dict[str, str]]],
    *,
    max_new_tokens: int = 40,
    batch_size: int = 16,
    temperature: float = 0.0,
    random_state: int = 0,
) -> list[str]:
    """Responses to chat ``prompts`` (greedy when ``temperature`` is 0), decoded without special tokens."""
    check_generation(max_new_tokens=max_new_tokens, batch_size=batch_size, temperature=temperature)
    from attrib.probes.run import generate as generate_ids
    from attrib.probes.run import stop_token_ids
    from attrib.surgery.loss import render_prompt_ids

    rows = generate_ids(model, tokenizer, [render_prompt_ids(tokenizer, m) for m in prompts],
                        max_new_tokens=max_new_tokens, batch_size=batch_size, temperature=temperature,
                        random_state=random_state, stop_ids=stop_token_ids(tokenizer))
    return [tokenizer.decode(r, skip_special_tokens=True).strip() for r in rows]


def check_generation(*, max_new_tokens: int, batch_size: int, temperature: float = 0.0) -> None:
    """UsageError (naming the argument) for a token budget or batch size below 1 or a negative temperature."""
    from attrib.errors import UsageError, is_real, whole_number

    whole_number("max_new_tokens", max_new_tokens)
    whole_number("batch_size", batch_size)
    if not (is_real(temperature) and temperature >= 0):
        raise UsageError(None, "temperature", f"must be a number >= 0 (0 is greedy), got {temperature!r}")
