"""A model argument that is not an HF causal LM (a name string, a base model without its LM head, a bare module) is
one line naming what was given, before anything is created or run; it was a raw AttributeError from deep inside."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from _sail_common import real_model, tiny_pairs  # noqa: E402

from attrib.errors import InputError, UsageError  # noqa: E402
from attrib.models import NotAModelError  # noqa: E402

pytestmark = pytest.mark.slow


def _batch():
    from attrib.surgery.loss import collate, encode_prompt_response

    _, tok = real_model()
    pair = tiny_pairs(1)[0]
    return collate([encode_prompt_response(tok, pair.messages, pair.chosen)], tok.pad_token_id)


def test_train_sail_refuses_a_base_model_or_a_name_before_making_out_dir(tmp_path):
    from attrib.surgery.train import train_sail

    model, tok = real_model()
    out = tmp_path / "out"
    for bad, says in ((model.model, "got LlamaModel (a model without an LM head"),
                      ("smollm2-135m", "got str 'smollm2-135m'; load it first: model, tok = "
                                       "attrib.models.load_model('smollm2-135m')")):
        with pytest.raises(NotAModelError) as e:
            train_sail(bad, tok, tiny_pairs(1), [28], steps=1, out_dir=out, progress=False)
        assert str(e.value).startswith("model: expected an HF causal LM (AutoModelForCausalLM), ")
        assert says in str(e.value) and isinstance(e.value, UsageError) and isinstance(e.value, TypeError)
        assert not out.exists()  # it was created before the failure


def test_response_logps_names_the_model_and_a_missing_batch_key():
    from attrib.surgery.loss import response_logps

    model, _ = real_model()
    batch = _batch()
    with pytest.raises(NotAModelError, match=r"^model: expected an HF causal LM .*got LlamaModel"):
        response_logps(model.model, batch)  # was: 'BaseModelOutputWithPast' object has no attribute 'logits'
    with pytest.raises(InputError, match=r"^batch: has no 'response_mask': an encoded batch holds input_ids, "
                                         r"attention_mask, response_mask"):
        response_logps(model, {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]})
    with pytest.raises(InputError, match=r"^batch: expected a dict of tensors"):
        response_logps(model, batch["input_ids"])


def test_focal_lora_config_refuses_what_is_not_a_causal_lm():
    from attrib.surgery.lora import focal_lora_config

    with pytest.raises(NotAModelError, match=r"^model: expected an HF causal LM .*got str 'smollm2'"):
        focal_lora_config("smollm2", [3])  # was: 'str' object has no attribute 'named_modules'
    with pytest.raises(NotAModelError, match=r"got Linear"):
        focal_lora_config(torch.nn.Linear(3, 3), [0])  # was: "the model has 0 layers (0..-1)"


def test_localize_and_the_recorder_name_a_wrong_model(tmp_path):
    from attrib.heads.localization import localize
    from attrib.record import Recorder

    model, tok = real_model()
    with pytest.raises(NotAModelError, match=r"^model: expected an HF causal LM .*got LlamaModel"):
        localize((model.model, tok), [])  # was: 'LlamaModel' object has no attribute 'generate'
    with pytest.raises(NotAModelError, match=r"^model: expected an HF causal LM \(AutoModelForCausalLM\) or a "
                                             r"TransformerBridge, got str 'smollm2-135m'; load it first"):
        Recorder("smollm2-135m", tok, out_dir=tmp_path)  # was: 'str' object has no attribute 'config'
    assert Recorder(model, tok, out_dir=tmp_path, layers=[0]).layers == [0]
