"""Frozen-prefix caching on the real SmolLM2: a bad layer or model is a UsageError naming it, never a silent no-op."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from _sail_common import real_model  # noqa: E402

from attrib.errors import EXIT_USAGE, UsageError  # noqa: E402
from attrib.surgery.prefix import PrefixCacheError, capture_layer_input, start_at_layer  # noqa: E402

pytestmark = pytest.mark.slow


def _ids(tok) -> torch.Tensor:
    return torch.tensor([tok("The capital of France is", add_special_tokens=False)["input_ids"]])


@pytest.mark.parametrize("layer", [30, -1, 2.5, True, "3"])
def test_start_at_layer_refuses_a_layer_outside_the_stack(layer):
    """Before: 30 ran *no* decoder layer and -1 ran only the last one, both silently (wrong log-probs)."""
    model, _ = real_model()
    with pytest.raises(PrefixCacheError) as e, start_at_layer(model, layer):
        pass
    assert isinstance(e.value, UsageError) and isinstance(e.value, ValueError)
    assert e.value.field == "layer" and e.value.exit_code == EXIT_USAGE
    assert "0..29" in str(e.value)
    assert len(model.model.layers) == 30  # the stack is untouched


@pytest.mark.parametrize("layer", [30, -31])
def test_capture_layer_input_refuses_a_layer_outside_the_stack(layer):
    """Before: a bare IndexError from the ModuleList."""
    model, _ = real_model()
    with pytest.raises(PrefixCacheError, match=r"^layer: must be a whole number in 0\.\.29"), \
            capture_layer_input(model, layer):
        pass


def test_a_model_without_a_decoder_is_named():
    with pytest.raises(PrefixCacheError, match=r"^model: Linear has no \.model\.layers decoder") as e, \
            start_at_layer(torch.nn.Linear(2, 2), 1):
        pass
    assert e.value.field == "model"


def test_last_layer_still_exact():
    """The upper bound is inclusive of the last layer: starting there reproduces the full forward."""
    model, tok = real_model()
    ids = _ids(tok)
    with torch.no_grad():
        with capture_layer_input(model, 29) as seen:
            full = model(input_ids=ids, use_cache=False).logits
        with start_at_layer(model, 29):
            skipped = model(inputs_embeds=seen[0], use_cache=False).logits
    assert torch.allclose(full, skipped, atol=1e-5)
