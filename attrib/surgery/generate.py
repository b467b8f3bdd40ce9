"""Batched chat generation (left-padded) for sampling pair responses and for compliance evaluation."""

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
    seed: int = 0,
) -> list[str]:
    """Responses to chat ``prompts`` (greedy when ``temperature`` is 0), decoded without special tokens."""
    import torch

    from attrib.surgery.loss import render_prompt_ids

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos = [t for t in {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")}
           if isinstance(t, int) and t >= 0]
    out: list[str] = []
    was_training = model.training
    model.eval()
    torch.manual_seed(seed)
    try:
        for i in range(0, len(prompts), batch_size):
            rows = [render_prompt_ids(tokenizer, m) for m in prompts[i:i + batch_size]]
            width = max(len(r) for r in rows)
            ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
            mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
            kw: dict[str, Any] = {"do_sample": temperature > 0}
            if temperature > 0:
                kw.update(temperature=temperature, top_p=1.0, top_k=0)
            else:
                kw.update(temperature=None, top_p=None, top_k=None)
            with torch.no_grad():
                gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                     pad_token_id=pad, eos_token_id=eos, **kw)
            for row in gen[:, width:]:
                out.append(tokenizer.decode(row, skip_special_tokens=True).strip())
    finally:
        model.train(was_training)
    return out
