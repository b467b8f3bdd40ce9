"""Bad input to the probe renderer, a checker and the model loader is an InputError naming the field (as the rest of
attrib's errors), not a bare ValueError/TypeError."""

from __future__ import annotations

import pytest

from attrib.errors import InputError


def _whitespace_dropping_tokenizer():
    """A real fast tokenizer (word level, split on whitespace) whose offsets skip the spaces between words."""
    pytest.importorskip("tokenizers")
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    t = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    t.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=t, unk_token="[UNK]")
    tok.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}assistant:"
    return tok


def test_a_mark_no_token_covers_names_the_prompt_and_the_mark() -> None:
    """It was ``ValueError: no token covers characters 35:36``, naming neither the probe nor which text."""
    from attrib.probes import render_messages

    tok = _whitespace_dropping_tokenizer()
    msgs = [{"role": "system", "content": "Never say TULIP."}, {"role": "user", "content": "Which flower? Tell me."}]
    ok = render_messages(tok, msgs, marks={"system": msgs[0]["content"], "question": "Which flower?"}, where="p1")
    assert ok.spans["question"] == (8, 11)  # system : Never say TULIP . user : [Which flower ?]
    with pytest.raises(InputError, match="no token covers characters") as e:
        render_messages(tok, msgs, marks={"system": msgs[0]["content"], "conflict": " "}, where="p1")
    assert (e.value.path, e.value.field) == ("p1", "conflict")
    with pytest.raises(InputError) as e:
        render_messages(tok, msgs, marks={"system": msgs[0]["content"]}, answer_prefix=" ", where="p1")
    assert (e.value.path, e.value.field) == ("p1", "answer_prefix")


def test_hf_of_something_that_is_no_model_is_an_input_error() -> None:
    from attrib.models import hf_of

    for bad in (42, None, {"model": "smollm2-135m"}):
        with pytest.raises(InputError, match="expected a model name") as e:
            hf_of(bad)
        assert e.value.field == "model" and type(bad).__name__ in str(e.value)
