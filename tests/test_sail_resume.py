"""Resuming a SAIL run: a checkpoint is reused only for the same pairs' *content*, and a resume is said aloud."""

from __future__ import annotations

import logging

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from _sail_common import real_model, tiny_pairs  # noqa: E402

from attrib.surgery.pairs import PreferencePair  # noqa: E402
from attrib.surgery.train import ADAPTER_DIR, TrainResult, config_dict, train_sail  # noqa: E402

pytestmark = pytest.mark.slow
LAYERS = [28]  # the top layers only: frozen-prefix caching keeps the step cheap


def _swapped(pair: PreferencePair) -> PreferencePair:
    """The same pair under the same id with chosen and rejected swapped (a fixed labelling bug)."""
    fields = {f: getattr(pair, f) for f in pair.__struct_fields__}
    return PreferencePair(**{**fields, "chosen": pair.rejected, "rejected": pair.chosen})


def _train(pairs, out, steps=1, **kw):
    model, tok = real_model()
    return train_sail(model, tok, pairs, LAYERS, steps=steps, lr=5e-3, batch_size=1, out_dir=out, progress=False,
                      **kw)


def test_changed_pairs_under_the_same_ids_train_afresh(tmp_path, caplog):
    """The run and data keys hashed only the pair ids: the same ids with chosen and rejected swapped resumed the old
    checkpoint (0 steps trained, the old losses and adapter returned) and reused the old reference rows."""
    pair = tiny_pairs(1)[0]
    first = _train([pair], tmp_path)
    assert first.resumed_from == 0 and first.resumed is None
    first_rows = torch.load(tmp_path / "reference.pt", weights_only=False)["key"]
    with caplog.at_level(logging.WARNING, logger="attrib.surgery.train"):
        second = _train([_swapped(pair)], tmp_path)
    assert second.resumed_from == 0 and second.resumed is None
    # a fresh reference pass, not the cached rows of the old pairs
    assert torch.load(tmp_path / "reference.pt", weights_only=False)["key"] != first_rows
    assert second.config["pairs"] != first.config["pairs"]
    assert "starting afresh" in caplog.text and str(tmp_path) in caplog.text


def test_a_resume_is_logged_and_reported(tmp_path, caplog):
    """A resumed run said nothing: its stderr showed "0 SAIL steps" and the old losses, as if it had trained."""
    pairs = tiny_pairs(1)
    _train(pairs, tmp_path)
    with caplog.at_level(logging.WARNING, logger="attrib.surgery.train"):
        again = _train(pairs, tmp_path)
    assert again.resumed_from == 1
    assert again.resumed == f"resumed from step 1 in {tmp_path}"
    assert f"resumed from step 1 in {tmp_path}" in caplog.text
    assert config_dict(again)["resumed"] == again.resumed


@pytest.mark.parametrize("step", [0, 3])
def test_resumed_is_said_from_the_step_and_folder(tmp_path, step):
    """``resumed`` is derived from ``resumed_from`` and the run's folder (no second field to keep in step), and the
    JSON summary still carries it."""
    from attrib.surgery.lora import ParamShare

    r = TrainResult(model=None, adapter_dir=tmp_path / ADAPTER_DIR, layers=LAYERS, steps=3, losses=[],
                    reward_accuracies=[], step_seconds=[], reference_seconds=0.0, share=ParamShare(1, 2),
                    resumed_from=step)
    want = f"resumed from step 3 in {tmp_path}" if step else None
    assert r.resumed == want and config_dict(r)["resumed"] == want
    with pytest.raises(TypeError):
        TrainResult(model=None, adapter_dir=tmp_path, layers=LAYERS, steps=3, losses=[], reward_accuracies=[],
                    step_seconds=[], reference_seconds=0.0, share=ParamShare(1, 2), resumed="x")
