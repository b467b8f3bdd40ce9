"""SAIL training on the real SmolLM2: a 2-step run, adapter save/load, resume, frozen-prefix exactness, bad pairs."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from _sail_common import real_model, tiny_pairs  # noqa: E402

from attrib.errors import InputError  # noqa: E402
from attrib.surgery.pairs import PreferencePair, read_pairs, write_pairs  # noqa: E402
from attrib.surgery.train import load_adapter, train_sail  # noqa: E402

pytestmark = pytest.mark.slow
LAYERS = [27, 28]  # high layers keep the test cheap: frozen-prefix caching skips 0..26 at every step


def _logits(model, tok, pair):
    from attrib.surgery.loss import encode_prompt_response

    row = encode_prompt_response(tok, pair.messages, pair.chosen)
    with torch.no_grad():
        return model(input_ids=torch.tensor([row["input_ids"]]), use_cache=False).logits


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    model, tok = real_model()
    out = tmp_path_factory.mktemp("sail")
    res = train_sail(model, tok, tiny_pairs(2), LAYERS, steps=2, lr=5e-3, batch_size=1, random_state=3,
                     out_dir=out, progress=False)
    return model, tok, res, out


def test_two_step_run(run):
    model, _, res, out = run
    assert len(res.losses) == 2 and res.resumed_from == 0
    # step 0: the LoRA B matrices start at zero, so policy == reference and the loss is log 2
    assert res.losses[0] == pytest.approx(0.693147, abs=1e-3)
    assert res.losses[1] < res.losses[0]
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert res.share.trainable == 2 * 30720 and res.share.share < 0.02
    # the caller's model is untouched (peft injected LoRA into a copy)
    assert not any("lora" in n for n, _ in model.named_parameters())


def test_adapter_round_trip_gives_identical_logits(run):
    model, tok, res, out = run
    pair = tiny_pairs(1)[0]
    trained = _logits(res.model, tok, pair)
    loaded = _logits(load_adapter(model, out), tok, pair)
    base = _logits(model, tok, pair)
    assert torch.allclose(trained, loaded, atol=1e-5)
    assert not torch.allclose(trained, base, atol=1e-4)  # the adapter did change something


def test_peft_wrapping_hides_only_the_gradient_checkpointing_deprecation(run):
    """transformers' FutureWarning '`is_gradient_checkpointing` is deprecated' (read by peft when it wraps a model)
    was printed on every attrib sail / attrib compliance run."""
    import warnings

    model, _, _, out = run
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        load_adapter(model, out)
    texts = [str(w.message) for w in seen]
    assert not any("is_gradient_checkpointing" in t for t in texts), texts
    from attrib.surgery.train import quiet_peft_wrap

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with quiet_peft_wrap():
            warnings.warn("some other future change", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["some other future change"]  # every other warning still shows


def test_resume_continues_to_the_same_weights(run, tmp_path):
    from safetensors.torch import load_file

    model, tok, _, out = run
    first = train_sail(model, tok, tiny_pairs(2), LAYERS, steps=1, lr=5e-3, batch_size=1, random_state=3,
                       out_dir=tmp_path, progress=False, save_every=1)
    assert first.resumed_from == 0
    second = train_sail(model, tok, tiny_pairs(2), LAYERS, steps=2, lr=5e-3, batch_size=1, random_state=3,
                        out_dir=tmp_path, progress=False)
    assert second.resumed_from == 1 and len(second.losses) == 2
    a = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "adapter" / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_frozen_prefix_is_exact(run):
    from attrib.surgery.loss import collate, encode_prompt_response, response_logps
    from attrib.surgery.prefix import capture_layer_input, start_at_layer

    _, tok, res, _ = run
    pair = tiny_pairs(1)[0]
    rows = [encode_prompt_response(tok, pair.messages, pair.chosen), encode_prompt_response(tok, pair.messages, pair.rejected)]
    batch = collate(rows, tok.pad_token_id)
    with torch.no_grad():
        with capture_layer_input(res.model, LAYERS[0]) as seen:
            full = response_logps(res.model, batch)
        with start_at_layer(res.model, LAYERS[0]):
            skipped = response_logps(res.model, batch, inputs_embeds=seen[0])
    assert torch.allclose(full, skipped, atol=1e-5)
    assert full.abs().sum() > 0
    with pytest.raises(ValueError, match="trainable"), start_at_layer(res.model, LAYERS[1]):
        pass


def test_gradient_reaches_only_focal_lora(run):
    """One SAIL loss backward through the trained model: only the focal layers' LoRA parameters get gradients."""
    from attrib.surgery.loss import collate, encode_prompt_response, response_logps, sail_loss

    _, tok, res, _ = run
    pair = tiny_pairs(1)[0]
    m = res.model
    m.zero_grad(set_to_none=True)
    batch = collate([encode_prompt_response(tok, pair.messages, pair.chosen),
                     encode_prompt_response(tok, pair.messages, pair.rejected)], tok.pad_token_id)
    logps = response_logps(m, batch)
    ref = logps.detach() - 0.1
    w = torch.rand_like(logps, requires_grad=True)
    loss = sail_loss(logps[:1], logps[1:], ref[:1], ref[1:], w[:1], w[1:], batch["response_mask"][:1],
                     batch["response_mask"][1:])
    loss.backward()
    with_grad = {n for n, p in m.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert with_grad, "no gradient at all"
    assert all("lora_" in n and any(f"layers.{la}." in n for la in LAYERS) for n in with_grad)
    assert any(f"layers.{LAYERS[0]}." in n for n in with_grad) and any(f"layers.{LAYERS[1]}." in n for n in with_grad)
    assert w.grad is None
    m.zero_grad(set_to_none=True)


def test_batched_weights_match_heads_module(run):
    """The batched weights of the reference pass equal attrib.heads' per-sequence focal_token_weights."""
    heads_weights = pytest.importorskip("attrib.heads.weights")
    from attrib.surgery.loss import collate, encode_prompt_response, render_prompt_ids
    from attrib.surgery.weights import focal_rule_weights, rule_token_span

    model, tok, _, _ = run
    pair = tiny_pairs(1)[0]
    heads = [(27, 0), (27, 4), (28, 8)]
    row = encode_prompt_response(tok, pair.messages, pair.chosen)
    span = rule_token_span(tok, pair.messages, pair.rule)
    batch = collate([row], tok.pad_token_id)
    with torch.no_grad():
        att = model(input_ids=batch["input_ids"], output_attentions=True, use_cache=False).attentions
    ours = focal_rule_weights(att, batch["response_mask"], [span], heads)[0]
    n_prompt = len(render_prompt_ids(tok, pair.messages))
    theirs = heads_weights.focal_token_weights(model, row["input_ids"][:n_prompt], row["input_ids"][n_prompt:],
                                               span, heads)
    assert torch.allclose(ours[n_prompt:], theirs, atol=1e-5)
    assert ours[:n_prompt].abs().sum() == 0 and (ours[n_prompt:] > 0).all()


def test_bad_pairs(tmp_path):
    model, tok = real_model()
    good = tiny_pairs(1)[0]
    bad = PreferencePair(**{**{f: getattr(good, f) for f in good.__struct_fields__}, "rejected": "  "})
    with pytest.raises(InputError, match="rejected"):
        train_sail(model, tok, [good, bad], LAYERS, steps=1, out_dir=tmp_path, progress=False)
    with pytest.raises(InputError, match="out of range"):
        train_sail(model, tok, [good], [40], steps=1, out_dir=tmp_path, progress=False)
    path = tmp_path / "pairs.jsonl"
    write_pairs(path, [good])
    assert read_pairs(path) == [good]
    path.write_text('{"system": "Be brief.", "prompt": "Hi", "chosen": "", "rejected": "Hello there"}\n')
    with pytest.raises(InputError, match=r"pairs.jsonl: line 1: chosen: empty chosen"):
        read_pairs(path)
    path.write_text('{"prompt": "Hi", "chosen": "a", "rejected": "b"}\n')
    with pytest.raises(InputError, match="no system message"):
        read_pairs(path)
    path.write_text("not json\n")
    with pytest.raises(InputError, match="line 1"):
        read_pairs(path)
    with pytest.raises(InputError, match="does not exist"):
        read_pairs(tmp_path / "missing.jsonl")


def test_refuses_a_model_that_already_has_lora(run, tmp_path):
    _, tok, res, _ = run
    with pytest.raises(InputError, match="already carries LoRA"):
        train_sail(res.model, tok, tiny_pairs(1), LAYERS, steps=1, out_dir=tmp_path, progress=False)


def test_train_and_adapter_arguments_are_named(tmp_path):
    """steps=0 was reported for "steps, grad_accum and batch_size" as bad input (exit 3); r=0 reached peft; an out_dir
    that is a file gave FileExistsError; load_adapter on a missing folder spelled a CLI flag (``--out``), and on a file
    said "no adapter_config.json"."""
    from attrib.errors import EXIT_FAILURE, EXIT_USAGE, AttribError, NotFoundError, UsageError

    pair = tiny_pairs(1)
    for name, value in (("steps", 0), ("grad_accum", 0), ("batch_size", -1), ("r", 0), ("steps", 1.5)):
        kw = {"steps": 1} | {name: value}
        with pytest.raises(UsageError) as err:
            train_sail(None, None, pair, [0], out_dir=tmp_path, progress=False, **kw)
        assert err.value.field == name and err.value.exit_code == EXIT_USAGE
    blocker = tmp_path / "file"
    blocker.write_text("x")
    from types import SimpleNamespace

    model = SimpleNamespace(config=SimpleNamespace(num_hidden_layers=30), named_parameters=lambda: [])
    with pytest.raises(AttribError, match="a file is in the way") as err:
        train_sail(model, None, pair, LAYERS, steps=1, out_dir=blocker, progress=False)
    assert err.value.exit_code == EXIT_FAILURE
    with pytest.raises(NotFoundError, match="no such adapter folder") as err:
        load_adapter(None, tmp_path / "gone")
    assert "--" not in str(err.value)
    with pytest.raises(InputError, match="is a file, not a saved adapter folder") as err:
        load_adapter(None, blocker)
    assert err.value.path == str(blocker)


def test_attention_weights_without_attentions_is_named():
    """A custom loop calling the default weight function on an SDPA run (no attentions) got a bare ValueError."""
    from attrib.surgery.loss import collate, encode_prompt_response
    from attrib.surgery.train import attention_weights

    _, tok = real_model()
    pair = tiny_pairs(1)[0]
    batch = collate([encode_prompt_response(tok, pair.messages, pair.chosen)], tok.pad_token_id)
    with pytest.raises(InputError, match=r"^attentions: .*output_attentions=True") as err:
        attention_weights([(27, 0)])(batch, [(1, 5)], None)
    assert isinstance(err.value, ValueError)


def test_bad_alpha_fails_before_the_reference_pass(tmp_path):
    model, tok = real_model()
    with pytest.raises(InputError, match=r"^alpha: must lie in \[0, 1\]"):
        train_sail(model, tok, tiny_pairs(1), LAYERS, steps=1, alpha=2.0, out_dir=tmp_path, progress=False)
    assert not (tmp_path / "reference.pt").exists()


def test_weights_out_of_range_from_a_token_weight_fn_fail_in_the_reference_pass(tmp_path):
    """The loss checked the weights on every micro-step (a device sync each), and a token_weight_fn giving raw
    scores failed only at the first training step; they are checked once, as the reference pass makes them."""
    import torch

    model, tok = real_model()

    def raw_scores(batch, spans, attentions):
        return torch.full(batch["response_mask"].shape, 2.0)

    with pytest.raises(InputError, match=r"^token_weight_fn: must lie in \[0, 1\] on response tokens, found 2"):
        train_sail(model, tok, tiny_pairs(1), LAYERS, steps=1, token_weight_fn=raw_scores, out_dir=tmp_path,
                   progress=False)


def test_attention_weights_refuses_a_fractional_head():
    """attention_weights turned each head into ints before the weights' own check saw it: (2.7, 1) became (2, 1)."""
    import torch

    from attrib.surgery.train import attention_weights

    fn = attention_weights([(2.7, 1)])
    with pytest.raises(InputError, match=r"^heads\[0\]: .*whole numbers, got \(2.7, 1\)"):
        fn({"response_mask": torch.ones(1, 4)}, [(0, 2)], [torch.rand(1, 9, 4, 4)] * 3)


def test_focal_heads_are_checked_against_the_model_before_the_reference_pass(tmp_path):
    """A focal head past the model's layers failed inside the reference pass; a negative one read the last layer."""
    model, tok = real_model()
    for heads, says in (([(40, 0)], "layer 40 is out of range"), ([(28, -1)], "head -1 is out of range")):
        with pytest.raises(InputError, match=r"^focal_heads\[0\]: " + says):
            train_sail(model, tok, tiny_pairs(1), LAYERS, steps=1, focal_heads=heads, out_dir=tmp_path,
                       progress=False)
    assert not (tmp_path / "reference.pt").exists()


def test_a_token_weight_fn_of_the_wrong_shape_is_named(tmp_path):
    """Weights of the wrong shape reached the loss as a raw broadcasting RuntimeError."""
    import torch

    model, tok = real_model()

    def one_row(batch, spans, attentions):
        return torch.zeros(1, 3)

    with pytest.raises(InputError, match=r"^token_weight_fn: must return a \[batch, tokens\] tensor shaped like the "
                                         r"batch's response_mask \[2, \d+\], got shape \(1, 3\)"):
        train_sail(model, tok, tiny_pairs(1), LAYERS, steps=1, token_weight_fn=one_row, out_dir=tmp_path,
                   progress=False)
    with pytest.raises(InputError, match=r"^lora_alpha: LoRA alpha must be a number above 0"):
        train_sail(model, tok, tiny_pairs(1), LAYERS, steps=1, lora_alpha=0, out_dir=tmp_path, progress=False)
