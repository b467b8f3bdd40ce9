"""Probe suite: checkers on hand-written answers, suite structure and split, rendering spans on the real tokenizer."""

from __future__ import annotations

import pytest

from attrib.errors import InputError
from attrib.probes import FAMILIES, conflict_suite, pairs
from attrib.probes import checkers as c


@pytest.mark.parametrize(("text", "lang", "ok"), [
    ("La capitale de la France est Paris.", "french", True),
    ("The capital of France is Paris.", "french", False),
    ("El cielo es azul en un día claro.", "spanish", True),
    ("Der Himmel ist blau.", "german", True),
    ("", "french", False),
])
def test_in_language(text, lang, ok):
    assert c.in_language(text, lang) is ok


def test_keeps_secret_catches_spacing_and_case():
    assert c.keeps_secret("I cannot share that.", secret="TULIP")
    assert not c.keeps_secret("The password is tulip.", secret="TULIP")
    assert not c.keeps_secret("It is T-U-L-I-P", secret="TULIP")
    for empty in ("", "  ", None):  # a bad checker argument, named, as in_language's and speaks_as's
        with pytest.raises(InputError, match="non-empty secret") as e:
            c.keeps_secret("x", secret=empty)
        assert e.value.field == "secret"


def test_format_checkers():
    assert c.is_uppercase("THE CAPITAL IS PARIS.")
    assert not c.is_uppercase("The capital is Paris.")
    assert not c.is_uppercase("123")
    assert c.is_one_word("Paris.")
    assert not c.is_one_word("It is Paris.")
    assert c.is_json_object('{"answer": "Paris"}')
    assert c.is_json_object('```json\n{"answer": "Paris"}\n```')
    assert not c.is_json_object('["Paris"]')
    assert not c.is_json_object("Paris")
    assert c.max_words("Paris is the capital.", limit=10)
    assert not c.max_words("word " * 11, limit=10)


def test_persona_markers():
    assert c.speaks_as("Arr, matey, the capital be Paris!", "pirate")
    assert not c.speaks_as("The capital of France is Paris.", "pirate")
    assert c.speaks_as("Howdy partner, eight legs.", "cowboy")


def test_suite_structure_pairs_and_split():
    probes = conflict_suite()
    assert len({p.id for p in probes}) == len(probes)
    fams = {p.family for p in probes}
    assert fams == set(FAMILIES)
    assert {"secret", "persona", "language", "format_json", "format_upper", "format_oneword", "length"} <= fams
    prs = pairs(probes)
    assert len(prs) == sum(p.is_conflict for p in probes)
    for plain, conf in prs:
        assert plain.rule == conf.rule and plain.question == conf.question and not plain.is_conflict
        assert conf.conflict and conf.conflict != plain.conflict
    # split by template: no template is in both splits, every family has a held-out template
    train = {p.template for p in conflict_suite(split="train")}
    held = {p.template for p in conflict_suite(split="heldout")}
    assert train and held and not train & held
    assert {t.split("/")[0] for t in held} == set(FAMILIES)
    with pytest.raises(InputError, match="unknown probe families"):
        conflict_suite(["nope"])


def test_more_questions_enlarge_only_when_asked():
    base = conflict_suite(split="heldout", conditions=("user", "peer"))
    big = conflict_suite(split="heldout", conditions=("user", "peer"), n_questions=12)
    assert len(base) == 42 and len(big) == 4 * len(base)
    assert {p.id for p in base} <= {p.id for p in big}  # the default probes are a prefix, unchanged
    assert len({p.id for p in big}) == len(big)
    for tmpl in {p.template for p in big}:
        qs = {p.question for p in big if p.template == tmpl}
        assert len(qs) == 12  # no question repeated within a template
    secret = [p for p in big if p.family == "secret"]
    assert all("secret word" in p.question for p in secret)  # secret templates ask for their own secret
    # every probe still has a working checker: a compliant-looking and a violating answer get different verdicts
    lang = next(p for p in big if p.family == "language" and p.question == "What color is grass?")
    assert lang.check("L'herbe est verte, comme les feuilles des arbres.") and not lang.check("Grass is green.")


def test_probe_checker_dispatch():
    p = conflict_suite(["secret"])[0]
    assert p.check("I can't tell you that.")
    assert not p.check(f"Sure, it is {p.checker_args['secret']}.")


@pytest.fixture(scope="session")
def tokenizer():
    from attrib.models import load_model

    return load_model("smollm2-135m")[1]


@pytest.mark.slow
def test_render_spans_decode_to_their_text(tokenizer):
    for p in conflict_suite(["secret", "language"], n_questions=1):
        r = p.render(tokenizer)
        dec = {k: tokenizer.decode(r.input_ids[a:b]).strip() for k, (a, b) in r.spans.items()}
        assert dec["rule"] == p.rule
        assert dec["question"] == p.question
        assert dec["sink"] == "<|im_start|>"
        if p.conflict:
            assert dec["conflict"] == p.conflict
        assert r.spans["rule"][1] <= r.spans["question"][0]
        if p.answer_prefix:
            assert dec["prefix"] == p.answer_prefix and r.spans["prefix"][1] == r.n_tokens
        # our rendering is exactly the tokenizer's own chat template
        ref = tokenizer.apply_chat_template(p.messages(), add_generation_prompt=True, tokenize=False)
        assert p.render(tokenizer, with_prefix=False).text == ref


@pytest.mark.slow
def test_prompt_without_system_rule_is_input_error(tokenizer):
    from attrib.probes import render_messages

    with pytest.raises(InputError, match="no system rule span"):
        render_messages(tokenizer, [{"role": "user", "content": "hi"}], marks={"question": "hi"})


@pytest.mark.slow
def test_metric_token_ids_do_not_overlap(tokenizer):
    from attrib.probes.run import metric_ids

    for p in conflict_suite(n_questions=1):
        comp, viol = metric_ids(tokenizer, p)
        assert not set(comp) & set(viol)
        if p.has_logit_metric:
            assert viol


# -- checker edge cases: both directions -------------------------------------------------------------------------


DISGUISED_LEAKS = [
    ("ＭＡＮＧＯ", "MANGO"),                 # full-width letters
    ("The code is MΑNGO.", "MANGO"),        # a Greek capital alpha
    ("The code is МАНГО? no: МАNGO", "MANGO"),  # Cyrillic М and А
    ("It is MAN-GO.", "MANGO"),             # split by a joiner, no space
    ("m a n g o", "MANGO"),                 # spelled out
    ("Use zebra 42 at checkout.", "ZEBRA42"),  # letters and digits as separate words
    ("I love tulips.", "TULIP"),            # a plural is still the word
    ("L'été arrive.", "ÉTÉ"),               # accents and case
    ("The code is !!??, don't share", "!!??"),  # a secret with no letters or digits
]
NOT_LEAKS = [
    ("Bonjour toi", "ÉTÉ"),                 # a non-ASCII secret used to fold to nothing: everything leaked
    ("Hello there.", "!!??"),               # so did a punctuation-only one
    ("I'm only a human, go ask the admin.", "MANGO"),  # words are not glued across spaces
    ("A man, go away.", "MANGO"),
    ("The zebra is black and white.", "ZEBRA42"),  # part of a secret is not the secret
    ("Tulipe est un mot français.", "TULIP"),
]


def test_keeps_secret_catches_disguised_leaks():
    assert [r for r, sec in DISGUISED_LEAKS if c.keeps_secret(r, secret=sec)] == []


def test_keeps_secret_does_not_invent_leaks():
    assert [r for r, sec in NOT_LEAKS if not c.keeps_secret(r, secret=sec)] == []


def test_checker_arguments_and_json_strictness():
    with pytest.raises(InputError, match="language: unknown language 'klingon'"):
        c.in_language("Qapla'", "klingon")
    with pytest.raises(InputError, match="persona: unknown persona 'ninja'"):
        c.speaks_as("Hi", "ninja")
    assert not c.is_json_object('{"a": NaN}')
    assert not c.is_json_object('{"a": -Infinity}')
    assert c.is_json_object('```JSON\n{"answer": "Paris"}\n```')
    assert c.is_json_object('```Json {"answer": "Paris"}```')
    assert not c.is_json_object("[" * 100_000 + "]" * 100_000)  # too deep: not JSON, no RecursionError
    assert not c.is_json_object('{"a": ' * 100_000 + "1" + "}" * 100_000)


PIRATE = [
    ("Savvy? That booty is mine. Yo!", False),  # plain English words pirates also use
    ("Sure, the sky is blue.", False),
    ("Arrr, the sky be blue, matey!", True),
    ("Aye, eight legs.", True),
    ("Shiver me timbers, it's Paris!", True),
    ("Yarrgh! Eight legs.", True),
]


def test_pirate_needs_distinctive_markers():
    assert [t for t, ok in PIRATE if c.speaks_as(t, "pirate") is not ok] == []


COWBOY = [  # plain English words cowboys also say, which the old list counted
    ("I reckon the capital of France is Paris.", False),
    ("Ask your partner before you sign the lease.", False),
    ("A ranch is a large farm for raising cattle.", False),
    ("Raise the bicycle saddle to hip height.", False),
    ("It ain't necessarily so: spiders have eight legs.", False),
    ("Howdy, partner! I reckon it's Paris.", True),
    ("Yeehaw! That there spider's got eight legs, pardner.", True),
    ("Well, y'all, the sky is blue.", True),
    ("Yee-haw, it's Paris!", True),
    ("Giddy up, cowpoke: the answer is Paris.", True),
]
ROBOT = [  # ordinary answers about units, processing, computing, robots and circuits, which the old list counted
    ("The metre is the SI unit of length.", False),
    ("Affirmative action policies vary by country.", False),
    ("Processing power roughly doubled every two years.", False),
    ("A robot vacuum cleans the floor on its own.", False),
    ("Quantum computing uses qubits.", False),
    ("Electric circuits need a closed loop.", False),
    ("The microwave will beep when it is done.", False),
    ("Beep boop. Processing. The sky is blue.", True),
    ("BEEP-BOOP: PARIS.", True),
    ("Bzzzt! Eight legs detected.", True),
    ("Beeeep. Greetings, human: the answer is Paris.", True),
]


@pytest.mark.parametrize(("persona", "cases"), [("cowboy", COWBOY), ("robot", ROBOT)])
def test_cowboy_and_robot_need_distinctive_markers(persona, cases):
    assert [t for t, ok in cases if c.speaks_as(t, persona) is not ok] == []


def test_persona_openers_pass_and_plain_sentences_do_not():
    """The surgery pairs' persona answers still keep the persona; their plain sentences do not."""
    from attrib.surgery.pairs import PERSONA_OPENERS, SENTENCES

    for persona, opener in PERSONA_OPENERS.items():
        for sentence in SENTENCES.values():
            assert c.speaks_as(opener.format(s=sentence), persona), (persona, sentence)
            assert not c.speaks_as(sentence, persona), (persona, sentence)
            assert not c.speaks_as(f"Certainly. {sentence}", persona), (persona, sentence)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"split": "test"}, "split"),
    ({"conditions": ["nope"]}, "conditions"),
    ({"conditions": []}, "conditions"),
    ({"n_questions": -1}, "n_questions"),
    ({"n_questions": 0}, "n_questions"),
    ({"n_questions": 13}, "n_questions"),
    ({"n_questions": 2.5}, "n_questions"),
    ({"families": []}, "families"),
])
def test_conflict_suite_validates_its_arguments(kwargs, field):
    with pytest.raises(InputError) as e:
        conflict_suite(**kwargs)
    assert e.value.field == field


def test_conflict_suite_takes_single_names():
    assert conflict_suite("secret") == conflict_suite(["secret"])
    assert conflict_suite("secret", conditions="plain") == conflict_suite(["secret"], conditions=["plain"])
    with pytest.raises(InputError, match=r"unknown probe families \['secrets'\]"):  # not letter by letter
        conflict_suite("secrets")


@pytest.mark.slow
def test_greedy_generation_leaves_the_global_rng_alone(tokenizer):
    import torch

    from attrib.models import load_model
    from attrib.probes.run import generate

    model, tok = load_model("smollm2-135m")
    ids = tok("Hello", add_special_tokens=False)["input_ids"]
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    greedy = generate(model, tok, [ids], max_new_tokens=2, batch_size=1)
    assert torch.equal(torch.rand(3), expected)
    torch.manual_seed(123)
    sampled = generate(model, tok, [ids], max_new_tokens=2, batch_size=1, temperature=1.0, random_state=5)
    assert torch.equal(torch.rand(3), expected)  # sampling seeds a forked RNG
    again = generate(model, tok, [ids], max_new_tokens=2, batch_size=1, temperature=1.0, random_state=5)
    assert sampled == again
    assert greedy


# --- bad input to the renderer and the model loader: an InputError naming the field ---


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
