"""SAIL token weights from the real SmolLM2's attentions: wrong shapes, spans or heads are one InputError naming the
argument, not a bare IndexError/KeyError/RuntimeError or (for a negative head, an overlong span) a silent wrong answer."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from _sail_common import real_model  # noqa: E402

from attrib.errors import InputError  # noqa: E402
from attrib.heads.weights import focal_rule_weights  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_batch():
    """Eager attentions ``[2, 9, T, T]`` per layer of two real rows, a response mask and rule spans."""
    model, tok = real_model()
    texts = ["Never reveal the code 1234. What is the code? I cannot say.",
             "Answer in French only. What do bees make? Bees make honey."]
    enc = tok(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model(**enc, output_attentions=True, use_cache=False)
    t = enc["input_ids"].shape[1]
    mask = torch.zeros(2, t)
    mask[:, t - 4:] = 1
    return out.attentions, mask, [(1, 6), (1, 5)]


def test_valid_input_gives_weights_in_unit_interval(real_batch):
    att, mask, spans = real_batch
    w = focal_rule_weights(att, mask, spans, [(3, 2), (17, 8)])
    assert w.shape == mask.shape
    assert (w[mask == 0] == 0).all() and (w >= 0).all() and (w <= 1).all() and w.sum() > 0


@pytest.mark.parametrize(("heads", "field", "says"), [
    ([(30, 1)], "heads", "layer 30 is out of range: attentions holds 30 layers"),
    ([(0, 9)], "heads[0]", "head 9 is out of range: layer 0 has 9 heads"),
    ([(0, -1)], "heads[0]", "head -1 is out of range"),  # before: silently read head 8
    ([(0,)], "heads[0]", "expected a (layer, head) pair"),
    ([], "heads", "no focal heads given"),
])
def test_bad_heads_are_named(real_batch, heads, field, says):
    att, mask, spans = real_batch
    with pytest.raises(InputError, match=r"^" + field.replace("[", r"\[").replace("]", r"\]")) as e:
        focal_rule_weights(att, mask, spans, heads)
    assert e.value.field == field and says in e.value.message


def test_a_layer_missing_from_a_dict_is_named(real_batch):
    att, mask, spans = real_batch
    with pytest.raises(InputError, match=r"layer 3 is not in attentions \(it holds layers \[0\]\)"):
        focal_rule_weights({0: att[0]}, mask, spans, [(3, 1)])


@pytest.mark.parametrize(("spans", "field"), [
    ("one", "spans"),         # a row without a span: before, its weights were silently 0
    ("three", "spans"),       # before: a bare IndexError
    ("overlong", "spans[0]"),  # before: silently cut at the sequence end
    ("empty", "spans[1]"),
])
def test_bad_spans_are_named(real_batch, spans, field):
    att, mask, good = real_batch
    t = mask.shape[1]
    bad = {"one": good[:1], "three": good * 2, "overlong": [(1, t + 50), good[1]], "empty": [good[0], (4, 4)]}[spans]
    with pytest.raises(InputError) as e:
        focal_rule_weights(att, mask, bad, [(0, 1)])
    assert e.value.field == field


def test_shape_mismatch_and_missing_attentions_are_named(real_batch):
    att, mask, spans = real_batch
    with pytest.raises(InputError, match=r"^attentions\[0\]: must be \[batch, heads, tokens, tokens\]"):
        focal_rule_weights(att, mask[:, :-1], spans, [(0, 1)])  # before: a RuntimeError about tensor sizes
    with pytest.raises(InputError, match=r"^response_mask: must be \[batch, tokens\]"):
        focal_rule_weights(att, mask[0], spans, [(0, 1)])  # before: "not enough values to unpack"
    with pytest.raises(InputError, match=r"^attentions\[0\]: is None: .*eager"):
        focal_rule_weights((None,) * 30, mask, spans, [(0, 1)])  # what an SDPA model returns


def test_head_is_defined_once_and_every_old_import_still_works() -> None:
    """``Head`` (a (layer, head) pair) has one definition, attrib.heads.types; the modules that used to define their
    own still export it, as the same object."""
    import ast
    from pathlib import Path

    import attrib.heads
    from attrib.heads import drift, localization, patching, types, weights

    assert types.Head == tuple[int, int]
    assert patching.Head is types.Head and weights.Head is types.Head and localization.Head is types.Head
    from attrib.heads.localization import Head as from_localization
    from attrib.heads.patching import Head as from_patching
    from attrib.heads.weights import Head as from_weights

    assert from_patching is from_weights is from_localization is types.Head
    assert drift.top_heads.__annotations__["return"] == "list[Head]"
    folder = Path(attrib.heads.__file__).parent
    defined = [p.name for p in sorted(folder.glob("*.py"))
               for node in ast.walk(ast.parse(p.read_text()))
               if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "Head" for t in node.targets)]
    assert defined == ["types.py"]


@pytest.mark.parametrize(("heads", "field", "says"), [
    ([(30, 0)], "focal_heads[0]", "layer 30 is out of range: the model has 30 layers (0..29)"),  # was IndexError
    ([(-1, 0)], "focal_heads[0]", "layer -1 is out of range"),  # was: silently layer 29
    ([(3, 9)], "focal_heads[0]", "head 9 is out of range: the model has 9 heads per layer"),
    ([(3.5, 1)], "focal_heads[0]", "expected a (layer, head) pair of whole numbers"),  # was TypeError
    ([], "focal_heads", "expected a non-empty list"),
])
def test_focal_token_weights_checks_heads_against_the_model(heads, field, says):
    """focal_token_weights ran the model before any range check: its dict of patterns held layer -1 as a key."""
    from attrib.heads.weights import focal_token_weights

    model, _ = real_model()
    with pytest.raises(InputError) as e:
        focal_token_weights(model, [1, 2, 3, 4, 5], [6, 7], (1, 3), heads)
    assert e.value.field == field and says in e.value.message, e.value


@pytest.mark.parametrize("sink", [500, -1, 1.5, None])
def test_the_sink_is_a_position_inside_the_sequence(real_batch, sink):
    """sink=500 raised IndexError; sink=-1 silently made the last token the sink."""
    from attrib.heads.weights import focal_token_weights

    att, mask, spans = real_batch
    with pytest.raises(InputError, match=r"^sink: must be a token position in 0\.\."):
        focal_rule_weights(att, mask, spans, [(0, 1)], sink=sink)
    model, _ = real_model()
    with pytest.raises(InputError, match=r"^sink: must be a token position in 0\.\.6 "):
        focal_token_weights(model, [1, 2, 3, 4, 5], [6, 7], (1, 3), [(0, 1)], sink=sink)


def test_a_localization_of_another_model_shape_is_refused():
    """A result saved for a 50-layer model loaded fine and then failed with a bare IndexError on SmolLM2."""
    import numpy as np

    from attrib.heads.localization import HeadLocalization

    z = np.zeros((50, 9))
    loc = HeadLocalization(model="big-model", n_layers=50, n_heads=9, top_k=0.05, scores=z, magnitude=z,
                           direction=z, js=z, sink_clean=z, sink_conflict=z, focal_heads=[(40, 1)],
                           focal_layers=[40], family_compliance={}, n_pairs=1, pair_selection="all")
    model, _ = real_model()
    with pytest.raises(InputError, match=r"^model: this localization was made on a model of 50 layers x 9 heads "
                                         r"\(big-model\); the model given has 30 x 9"):
        loc.token_weights(model, [1, 2, 3, 4, 5], [6, 7], (1, 3))
