"""Focal LoRA config: exact target module names, range checks, trainable share."""

from __future__ import annotations

import pytest

pytest.importorskip("peft")

from _sail_common import real_model  # noqa: E402

from attrib.errors import InputError  # noqa: E402
from attrib.surgery.lora import focal_lora_config, parse_layers, trainable_share  # noqa: E402

pytestmark = pytest.mark.slow


def test_config_targets_exact_module_names():
    model, _ = real_model()
    cfg = focal_lora_config(model, [17, 3])
    expected = {f"model.layers.{la}.self_attn.{p}" for la in (3, 17) for p in ("q_proj", "k_proj", "v_proj", "o_proj")}
    assert set(cfg.target_modules) == expected
    assert (cfg.r, cfg.lora_alpha, cfg.lora_dropout) == (8, 16, 0.0)


def test_peft_wraps_only_those_modules_and_share():
    import copy

    from peft import get_peft_model

    model, _ = real_model()
    peft_model = get_peft_model(copy.deepcopy(model), focal_lora_config(model, [12, 13, 14, 15]))
    wrapped = {n.removeprefix("base_model.model.").removesuffix(".lora_A")
               for n, _ in peft_model.named_modules() if n.endswith(".lora_A")}
    assert wrapped == {f"model.layers.{la}.self_attn.{p}" for la in range(12, 16)
                       for p in ("q_proj", "k_proj", "v_proj", "o_proj")}
    share = trainable_share(peft_model)
    # per layer: r * (in + out) for q (576->576), k and v (576->192), o (576->576)
    assert share.trainable == 4 * 8 * ((576 + 576) * 2 + (576 + 192) * 2)
    assert share.share < 0.02
    assert all(("lora_" in n) == p.requires_grad for n, p in peft_model.named_parameters())


@pytest.mark.parametrize("layers", [[30], [-1], [0, 31], []])
def test_layers_out_of_range(layers):
    model, _ = real_model()
    with pytest.raises(InputError, match="layers"):
        focal_lora_config(model, layers)


def test_parse_layers():
    assert parse_layers("12-15") == [12, 13, 14, 15]
    assert parse_layers("3,7, 9,7") == [3, 7, 9]
    assert parse_layers("1-2,5", 30) == [1, 2, 5]
    for bad in ("12-", "a", "15-12", ""):
        with pytest.raises(InputError, match="^layers: "):
            parse_layers(bad)
    with pytest.raises(InputError, match="out of range"):
        parse_layers("28-31", 30)


def test_resolve_explicit_layers():
    from attrib.surgery.api import resolve_layers

    model, tok = real_model()
    assert resolve_layers(model, tok, "12-15").layers == [12, 13, 14, 15]
    assert resolve_layers(model, tok, [7, 3]).layers == [3, 7]
    with pytest.raises(InputError, match="out of range"):
        resolve_layers(model, tok, "29-30")


@pytest.mark.parametrize(("kw", "field"), [({"r": 0}, "r"), ({"r": 2.5}, "r"), ({"dropout": 2.0}, "dropout"),
                                           ({"dropout": 1.0}, "dropout"), ({"dropout": -0.1}, "dropout"),
                                           ({"alpha": 0}, "alpha"), ({"alpha": float("nan")}, "alpha")])
def test_lora_rank_alpha_and_dropout_are_checked(kw, field):
    """focal_lora_config(r=0, dropout=2.0) was accepted and handed to peft."""
    from attrib.errors import UsageError

    model, _ = real_model()
    with pytest.raises(UsageError) as err:
        focal_lora_config(model, [3], **kw)
    assert err.value.field == field
