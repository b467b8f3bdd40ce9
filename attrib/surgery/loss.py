"""SAIL's token-weighted DPO loss and the per-token log-probs it is computed from.

``sail_loss`` is a pure function over per-token log-probs ``[B, T]``, token weights and response masks, so it drops into
any training loop (plain PyTorch, TRL, Lightning). It is hand-written rather than taken from TRL because TRL's
``DPOTrainer`` sums log-probs per sequence before the loss sees them; SAIL needs the per-token terms:

    L = -log σ( Σ_t β(1 + α·w_t^w)·Δ_t^w − Σ_t β(1 − α·w_t^l)·Δ_t^l ),   Δ_t = log π(y_t|·) − log π_ref(y_t|·)

The weights are detached inside the loss: they describe where the frozen reference model attends, not something to
optimise. With ``alpha=0`` (or all weights 0) the loss is exactly standard DPO, which is the ablation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from attrib.errors import InputError, is_real

if TYPE_CHECKING:  # torch is imported lazily so that `import attrib` stays light
    import torch


class LossInputError(InputError, ValueError):
    """A loss argument of the wrong type or shape: an :class:`InputError` naming it (and a ``ValueError``, which
    these checks raised before)."""


def _check_tensors(**tensors: Any) -> dict[str, tuple[int, ...]]:
    import torch

    for name, v in tensors.items():
        if not isinstance(v, torch.Tensor):
            raise LossInputError(None, name, f"must be a torch.Tensor, got {type(v).__name__}")
    return {k: tuple(v.shape) for k, v in tensors.items()}


def _check_shapes(**tensors: torch.Tensor) -> None:
    shapes = _check_tensors(**tensors)
    groups = [("policy_chosen_logps", "ref_chosen_logps", "chosen_weights", "chosen_mask"),
              ("policy_rejected_logps", "ref_rejected_logps", "rejected_weights", "rejected_mask")]
    for group in groups:
        first = shapes[group[0]]
        if len(first) != 2:
            raise LossInputError(None, group[0], f"must be [batch, tokens], got {first}")
        for name in group[1:]:
            if shapes[name] != first:
                raise LossInputError(None, name, f"has shape {shapes[name]}, expected {first} like {group[0]}")
    if shapes[groups[0][0]][0] != shapes[groups[1][0]][0]:
        raise LossInputError(None, "policy_rejected_logps", "chosen and rejected batches differ in size "
                             f"({shapes[groups[0][0]][0]} vs {shapes[groups[1][0]][0]})")


def _number(value: object) -> object:
    """A 0-d tensor or array (a scheduled β) as its Python number; anything else as given."""
    if getattr(value, "ndim", None) == 0 and callable(getattr(value, "item", None)):
        return value.item()  # type: ignore[attr-defined]
    return value


def check_beta(beta: object) -> None:
    """``beta`` > 0 (a number or a 0-d tensor): β = 0 flattens the preference to log 2, β < 0 inverts it."""
    b = _number(beta)
    if not (is_real(b) and b > 0):  # type: ignore[operator]
        raise LossInputError(None, "beta", f"must be a number above 0, got {beta!r}")


def check_loss_params(beta: object, alpha: object) -> None:
    """``beta`` > 0 and ``alpha`` in [0, 1] (numbers or 0-d tensors): a β ≤ 0 flattens or inverts the preference,
    and with α > 1 a rejected token of weight w > 1/α gets a negative factor β(1 − α·w), so the loss pushes that
    token *up*, silently."""
    check_beta(beta)
    a = _number(alpha)
    if not (is_real(a) and 0 <= a <= 1):  # type: ignore[operator]
        raise LossInputError(None, "alpha", f"must lie in [0, 1] (0 is plain DPO), got {alpha!r}")


def check_mask(name: str, mask: torch.Tensor) -> None:
    """A response mask holds only 0 and 1, with at least one response token per row: a row of zeros gave a constant
    loss of log 2 with no gradient, and a mask of 2s or 0.5s silently rescaled β."""
    import torch

    with torch.no_grad():
        m = mask.detach()
        if not bool(((m == 0) | (m == 1)).all()):
            odd = m[(m != 0) & (m != 1)][0].item()
            raise LossInputError(None, name, f"must hold only 0 and 1 (1 on response tokens), found {odd:g}")
        empty = (m != 0).sum(-1) == 0
        if bool(empty.any()):
            row = int(empty.nonzero()[0][0])
            raise LossInputError(None, name, f"row {row} has no response token: every row needs at least one")


def check_weights(name: str, weights: torch.Tensor, mask: torch.Tensor) -> None:
    """Weights on response tokens must lie in [0, 1]: with α·w > 1 the rejected side's factor β(1 − α·w) turns
    negative and the loss then *rewards* the rejected answer, silently (raw attention counts or unnormalized
    scores would do that)."""
    import torch

    with torch.no_grad():
        w = weights.detach().float()[mask.detach() != 0]
        if w.numel() == 0:
            return
        bad = ~torch.isfinite(w) | (w < 0) | (w > 1 + 1e-6)
        if bool(bad.any()):
            first = w[bad][0].item()
            raise LossInputError(None, name, f"must lie in [0, 1] on response tokens, found {first:g} (normalise "
                                 "them, e.g. attention shares as attrib.surgery.focal_rule_weights returns)")


def weighted_margin(
    policy_logps: torch.Tensor,
    ref_logps: torch.Tensor,
    weights: torch.Tensor,
    mask: torch.Tensor,
    *,
    beta: float,
    alpha: float,
    sign: float,
) -> torch.Tensor:
    """Σ_t β(1 + sign·α·w_t)·Δ_t over the response tokens of each row -> ``[B]`` (weights detached)."""
    delta = policy_logps - ref_logps.detach()
    scale = beta * (1.0 + sign * alpha * weights.detach().to(delta.dtype))
    return (scale * delta * mask.to(delta.dtype)).sum(dim=-1)


def sail_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    chosen_weights: torch.Tensor,
    rejected_weights: torch.Tensor,
    chosen_mask: torch.Tensor,
    rejected_mask: torch.Tensor,
    beta: float = 0.1,
    alpha: float = 0.5,
    reduction: str = "mean",
    check: bool = True,
) -> torch.Tensor:
    """Token-weighted DPO loss of SAIL.

    All tensors are ``[B, T]`` per-token values aligned on response tokens (``*_mask`` is 1 on response tokens, 0 on
    prompt and padding); chosen and rejected may have different ``T``. Weights are expected in ``[0, 1]`` and are
    detached; ``beta`` > 0 and ``alpha`` in ``[0, 1]`` are required (numbers or 0-d tensors; so every per-token
    factor stays >= 0); weights outside ``[0, 1]`` (or not finite) on response tokens are refused, and so are masks
    that are not 0/1 or a row with no response token. ``reduction``: "mean"
    (scalar), "sum" or "none" (``[B]``). ``check=False`` skips those checks, for a training loop that checked its
    parameters and weights once (each weight check is a device sync, on every micro-step).
    """
    import torch.nn.functional as F

    if check:
        _check_shapes(
            policy_chosen_logps=policy_chosen_logps, ref_chosen_logps=ref_chosen_logps,
            chosen_weights=chosen_weights, chosen_mask=chosen_mask,
            policy_rejected_logps=policy_rejected_logps, ref_rejected_logps=ref_rejected_logps,
            rejected_weights=rejected_weights, rejected_mask=rejected_mask,
        )
        check_loss_params(beta, alpha)
        check_mask("chosen_mask", chosen_mask)
        check_mask("rejected_mask", rejected_mask)
        check_weights("chosen_weights", chosen_weights, chosen_mask)
        check_weights("rejected_weights", rejected_weights, rejected_mask)
    chosen = weighted_margin(policy_chosen_logps, ref_chosen_logps, chosen_weights, chosen_mask,
                             beta=beta, alpha=alpha, sign=+1.0)
    rejected = weighted_margin(policy_rejected_logps, ref_rejected_logps, rejected_weights, rejected_mask,
                               beta=beta, alpha=alpha, sign=-1.0)
    losses = -F.logsigmoid(chosen - rejected)
    return _reduce(losses, reduction)


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float = 0.1,
    reduction: str = "mean",
) -> torch.Tensor:
    """Standard DPO (Rafailov et al.) over *sequence* log-probs ``[B]``: −log σ(β[(π_w−ref_w) − (π_l−ref_l)]).

    All four must be ``[B]`` tensors of the same size (sum per-token log-probs over the response first; per-token
    ``[B, T]`` input is refused rather than averaged over tokens). ``beta`` > 0, a number or a 0-d tensor.
    """
    import torch.nn.functional as F

    check_beta(beta)  # beta=-1 inverted the preference, beta=0 gave log 2, silently

    shapes = _check_tensors(policy_chosen_logps=policy_chosen_logps, policy_rejected_logps=policy_rejected_logps,
                            ref_chosen_logps=ref_chosen_logps, ref_rejected_logps=ref_rejected_logps)
    first = shapes["policy_chosen_logps"]
    if len(first) != 1:
        raise LossInputError(None, "policy_chosen_logps", f"must be sequence log-probs [batch], got shape {first} "
                             "(sum per-token log-probs over the response first, or use sail_loss)")
    for name, shape in shapes.items():
        if shape != first:
            raise LossInputError(None, name, f"has shape {shape}, expected {first} like policy_chosen_logps")

    logits = (policy_chosen_logps - ref_chosen_logps.detach()) - (policy_rejected_logps - ref_rejected_logps.detach())
    return _reduce(-F.logsigmoid(beta * logits), reduction)


def _reduce(losses: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    if reduction == "none":
        return losses
    raise LossInputError(None, "reduction", f"must be 'mean', 'sum' or 'none', got {reduction!r}")


# ----------------------------------------------------------------------------------------------------------------------
# Per-token log-probs from a causal LM


def token_logps(logits: torch.Tensor, input_ids: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """Log-prob of each actual token given its prefix, zeroed outside the response: ``[B, T]`` aligned with input_ids.

    Position ``t`` holds log p(input_ids[t] | input_ids[:t]) (taken from ``logits[t-1]``); position 0 is 0.
    """
    import torch

    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    picked = logp.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    out = torch.zeros(input_ids.shape, dtype=picked.dtype, device=picked.device)
    out[:, 1:] = picked
    return out * response_mask.to(out.dtype)


#: The keys of an encoded batch (:func:`collate` gives them).
BATCH_KEYS = ("input_ids", "attention_mask", "response_mask")


def check_batch(batch: object) -> None:
    """An encoded batch is a mapping holding :data:`BATCH_KEYS`; a missing one is named (it was a bare KeyError)."""
    from collections.abc import Mapping

    if not isinstance(batch, Mapping):
        raise LossInputError(None, "batch", f"expected a dict of tensors ({', '.join(BATCH_KEYS)}), got "
                                            f"{type(batch).__name__}")
    missing = [k for k in BATCH_KEYS if k not in batch]
    if missing:
        raise LossInputError(None, "batch", f"has no {', '.join(map(repr, missing))}: an encoded batch holds "
                                            f"{', '.join(BATCH_KEYS)} (encode_prompt_response, then collate)")


def response_logps(
    model: Any,
    batch: dict[str, torch.Tensor],
    inputs_embeds: torch.Tensor | None = None,
    *,
    return_output: bool = False,
    **model_kwargs: Any,
) -> Any:
    """Run ``model`` on an encoded batch (``input_ids``, ``attention_mask``, ``response_mask``) -> ``[B, T]`` log-probs.

    Only positions from the earliest response token on go through the LM head (``logits_to_keep``), which saves the
    49k-vocabulary projection of the prompt. ``inputs_embeds`` replaces the token embeddings (frozen-prefix caching).
    ``return_output`` also returns the model output (e.g. its attentions when ``output_attentions=True`` is passed).
    """
    import torch

    from attrib.models import check_model

    check_model(model)
    check_batch(batch)
    ids, resp = batch["input_ids"], batch["response_mask"]
    first = int(resp.float().argmax(dim=1).min().item()) if resp.any() else ids.shape[1] - 1
    start = max(first - 1, 0)
    keep = ids.shape[1] - start
    kw: dict[str, Any] = {"inputs_embeds": inputs_embeds} if inputs_embeds is not None else {"input_ids": ids}
    out = model(attention_mask=batch["attention_mask"], use_cache=False, logits_to_keep=keep, **kw, **model_kwargs)
    logits = out.logits  # positions start .. T-1
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    picked = logp.gather(-1, ids[:, start + 1:].unsqueeze(-1)).squeeze(-1)
    full = torch.zeros(ids.shape, dtype=picked.dtype, device=picked.device)
    full[:, start + 1:] = picked
    full = full * resp.to(full.dtype)
    return (full, out) if return_output else full


def encode_prompt_response(
    tokenizer: Any,
    messages: Sequence[dict[str, str]],
    response: str,
    *,
    max_response_tokens: int | None = None,
) -> dict[str, list[int]]:
    """Tokenize a chat prompt (rendered with the tokenizer's chat template) followed by ``response`` and end-of-turn.

    Returns ``input_ids``, ``attention_mask`` and ``response_mask`` (1 on the response tokens and the end-of-turn token,
    which the model must learn to emit) as plain lists; :func:`collate` pads them into tensors.
    """
    prompt_ids = render_prompt_ids(tokenizer, messages)
    resp_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    if max_response_tokens is not None:
        resp_ids = resp_ids[:max_response_tokens]
    eot = _end_of_turn_id(tokenizer)
    if eot is not None:
        resp_ids = [*resp_ids, eot]
    ids = [*prompt_ids, *resp_ids]
    return {
        "input_ids": ids,
        "attention_mask": [1] * len(ids),
        "response_mask": [0] * len(prompt_ids) + [1] * len(resp_ids),
    }


def render_prompt_ids(tokenizer: Any, messages: Sequence[dict[str, str]]) -> list[int]:
    """The prompt's token ids with the assistant turn opened (chat template when the tokenizer has one)."""
    if getattr(tokenizer, "chat_template", None):
        ids = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return list(ids)
    text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: "
    return list(tokenizer(text, add_special_tokens=True)["input_ids"])


def _end_of_turn_id(tokenizer: Any) -> int | None:
    for tok in ("<|im_end|>", "<|eot_id|>"):
        tid = tokenizer.convert_tokens_to_ids(tok)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid >= 0:
            return tid
    return tokenizer.eos_token_id


def collate(rows: Sequence[dict[str, list[int]]], pad_id: int, extra: Sequence[str] = ()) -> dict[str, torch.Tensor]:
    """Right-pad encoded rows into ``[B, T]`` tensors; ``extra`` names float per-token fields (e.g. token weights)."""
    import torch

    width = max(len(r["input_ids"]) for r in rows)
    out: dict[str, torch.Tensor] = {}
    for key, fill in (("input_ids", pad_id), ("attention_mask", 0), ("response_mask", 0)):
        out[key] = torch.tensor([list(r[key]) + [fill] * (width - len(r[key])) for r in rows], dtype=torch.long)
    for key in extra:
        out[key] = torch.tensor([list(r[key]) + [0.0] * (width - len(r[key])) for r in rows], dtype=torch.float32)
    return out
