"""Frozen-prefix caching: with LoRA only on layers ≥ k, layers 0..k-1 compute the same thing at every step.

The reference pass records the residual stream entering layer ``k`` once; training then feeds it as ``inputs_embeds``
to a decoder whose layer list temporarily starts at ``k``. This is exact (those layers have no trainable parameters)
and is where most of SAIL's speed-up over all-layer LoRA comes from on CPU. It relies on the HF decoder layout
``<CausalLM>.model.layers`` (Llama, Mistral, Qwen2, SmolLM2, ...); :func:`decoder_of` returns None otherwise and the
caller falls back to full forwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from attrib.errors import UsageError, whole_number


class PrefixCacheError(UsageError, ValueError):
    """A frozen-prefix call that cannot be exact: a model without an HF decoder layout, a layer index out of range,
    or trainable parameters below the start layer. A :class:`UsageError` naming the argument (``model``, ``layer``),
    and a ``ValueError``, which these checks raised before."""


def decoder_of(model: Any) -> Any | None:
    """The inner decoder (the module holding ``.layers`` and ``.embed_tokens``) of an HF or peft-wrapped causal LM."""
    m = model
    for _ in range(4):
        if hasattr(m, "layers") and hasattr(m, "embed_tokens"):
            return m
        if hasattr(m, "get_base_model"):
            m = m.get_base_model()
        elif hasattr(m, "model"):
            m = m.model
        else:
            return None
    return None


def _decoder_and_layer(model: Any, layer: object) -> tuple[Any, int]:
    """The decoder of ``model`` and ``layer`` checked as an index of its layer list: an out-of-range layer would
    otherwise hook nothing (IndexError) or, in :func:`start_at_layer`, silently run no layers at all."""
    dec = decoder_of(model)
    if dec is None:
        raise PrefixCacheError(None, "model", f"{type(model).__name__} has no .model.layers decoder; frozen-prefix "
                               "caching needs an HF decoder layout (Llama, Mistral, Qwen2, SmolLM2, ...)")
    n = len(dec.layers)
    return dec, whole_number("layer", layer, 0, n - 1, error=PrefixCacheError)


@contextlib.contextmanager
def capture_layer_input(model: Any, layer: int) -> Iterator[list[Any]]:
    """Record the hidden states entering decoder layer ``layer`` on each forward (appended to the yielded list)."""
    dec, layer = _decoder_and_layer(model, layer)
    seen: list[Any] = []

    def hook(mod: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        h = args[0] if args else kwargs["hidden_states"]
        seen.append(h.detach())

    handle = dec.layers[layer].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield seen
    finally:
        handle.remove()


@contextlib.contextmanager
def start_at_layer(model: Any, layer: int) -> Iterator[None]:
    """Run only decoder layers ``layer..`` (feed their input as ``inputs_embeds``); restores the full stack after."""
    import torch

    dec, layer = _decoder_and_layer(model, layer)
    if layer == 0:
        yield
        return
    below = [p for p in dec.layers[:layer].parameters() if p.requires_grad]
    if below:
        raise PrefixCacheError(None, "layer", f"layers below {layer} have trainable parameters (e.g. LoRA); skipping "
                               "them would not be exact: start at the lowest trainable layer")
    full = dec.layers
    dec.layers = torch.nn.ModuleList(list(full)[layer:])
    try:
        yield
    finally:
        dec.layers = full
