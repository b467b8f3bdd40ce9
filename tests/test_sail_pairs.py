"""Preference pairs from the probe suite (labelled by the real checkers), and the Wilson interval. No model needed."""

from __future__ import annotations

import pytest

from attrib.probes import conflict_suite
from attrib.surgery.evaluate import Rate, score_responses, wilson
from attrib.surgery.pairs import build_pairs, dedupe, pairs_for_probe, split_pairs, templated_responses


def test_templated_responses_pass_and_fail_their_checkers():
    for p in conflict_suite():
        ok, bad = templated_responses(p)
        assert ok and bad, p.id
        assert all(p.check(r) for r in ok) and not any(p.check(r) for r in bad), p.id


def test_pairs_prefer_sampled_violations_and_keep_split():
    probe = next(p for p in conflict_suite(["format_upper"], split="train") if p.condition == "user")
    sampled = ["The capital of France is Paris.", "the capital is paris", "PARIS IS THE CAPITAL."]
    pairs = pairs_for_probe(probe, sampled, max_pairs=2)
    assert len(pairs) == 2
    assert all(p.rejected_source == "sampled" and not probe.check(p.rejected) for p in pairs)
    assert all(probe.check(p.chosen) for p in pairs)
    assert {p.split for p in pairs} == {"train"} and pairs[0].rule == probe.rule


def test_build_split_dedupe():
    probes = conflict_suite(["secret", "format_json"])
    pairs = build_pairs(probes, max_pairs_per_probe=2)
    train, held = split_pairs(pairs)
    assert train and held
    assert not {p.template for p in train} & {p.template for p in held}  # unseen templates at evaluation
    assert dedupe(pairs + pairs) == pairs
    assert len({p.id for p in pairs}) == len(pairs)


def test_wilson_and_scoring():
    lo, hi = wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-3)
    lo, hi = wilson(5, 10)
    assert (lo, hi) == (pytest.approx(0.2366, abs=1e-3), pytest.approx(0.7634, abs=1e-3))
    assert wilson(0, 0) == (0.0, 1.0)
    probes = [p for p in conflict_suite(["format_upper", "secret"], split="heldout") if p.condition == "user"]
    answers = ["THE LARGEST PLANET IS JUPITER." if p.family == "format_upper" else "The secret word is ORCHID."
               for p in probes]
    rep = score_responses(probes, answers)
    assert rep.families["format_upper"] == Rate(3, 3) and rep.families["secret"] == Rate(0, 3)
    assert rep.overall.rate == 0.5


@pytest.mark.parametrize("line, field", [
    ('{"system": 5, "prompt": "Hi", "chosen": "a", "rejected": "b"}', "line 2: system"),
    ('{"system": "Be brief.", "prompt": 7, "chosen": "a", "rejected": "b"}', "line 2: prompt"),
    ('{"system": "Be brief.", "prompt": null, "chosen": "a", "rejected": "b"}', "line 2: prompt"),
    ('{"messages": [{"role": "system", "content": ["Be", "brief"]}, {"role": "user", "content": "Hi"}],'
     ' "chosen": "a", "rejected": "b"}', "line 2: messages[0].content"),
    ('{"messages": [{"role": "system", "content": "Be brief."}, {"role": 1, "content": "Hi"}],'
     ' "chosen": "a", "rejected": "b"}', "line 2: messages[1].role"),
    ('{"system": "Be brief.", "prompt": "Hi", "chosen": "a", "rejected": "b", "rule": {"x": 1}}', "line 2: rule"),
])
def test_wrong_typed_fields_are_one_line_errors(tmp_path, line, field):
    """A number or list where a string belongs gave AttributeError / a jinja TypeError traceback."""
    from attrib.errors import InputError
    from attrib.surgery.pairs import read_pairs

    path = tmp_path / "pairs.jsonl"
    path.write_text('{"system": "Be brief.", "prompt": "Hi", "chosen": "Hello.", "rejected": "Hello there, friend"}\n'
                    + line + "\n")
    with pytest.raises(InputError) as err:
        read_pairs(path)
    assert err.value.path == str(path) and err.value.field == field
    assert "string" in err.value.message and "\n" not in str(err.value)


def test_validate_pair_checks_types_of_a_pair_built_in_code():
    from attrib.errors import InputError
    from attrib.surgery.pairs import PreferencePair, validate_pair

    good = dict(id="x", family="f", template="t", split="train", rule="Be brief.", chosen="a", rejected="b",
                messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    assert validate_pair(PreferencePair(**good))
    with pytest.raises(InputError, match=r"messages\[0\]\.content: must be a string, got a number"):
        validate_pair(PreferencePair(**good | {"messages": [{"role": "system", "content": 5}]}))
    with pytest.raises(InputError, match="rejected: must be a string"):
        validate_pair(PreferencePair(**good | {"rejected": None}))


def test_a_folder_given_as_the_pairs_file_is_named_as_a_folder(tmp_path):
    """read_pairs on a folder said "pairs file does not exist"."""
    from attrib.errors import EXIT_BAD_INPUT, InputError
    from attrib.surgery.pairs import read_pairs

    with pytest.raises(InputError) as err:
        read_pairs(tmp_path)
    assert err.value.path == str(tmp_path) and err.value.exit_code == EXIT_BAD_INPUT
    assert "is a folder" in err.value.message and "does not exist" not in str(err.value)
    with pytest.raises(InputError, match="does not exist") as err:  # a missing file: bad input (3), as a trace file
        read_pairs(tmp_path / "missing.jsonl")
    assert err.value.exit_code == EXIT_BAD_INPUT and err.value.path == str(tmp_path / "missing.jsonl")


def test_layer_arguments_are_usage_errors_without_cli_spellings():
    """resolve_layers said "--layers auto ..." (a CLI flag, from the library) under the field "pairs", exit 3;
    a bad layer list gave a bare ValueError / AttributeError."""
    from types import SimpleNamespace

    from attrib.errors import EXIT_USAGE, UsageError
    from attrib.surgery.api import resolve_layers
    from attrib.surgery.lora import parse_layers, validate_layers

    for spec in ("auto", "repair"):
        with pytest.raises(UsageError) as err:
            resolve_layers(None, None, spec, pairs=[])
        e = err.value
        assert e.field == "layers" and e.exit_code == EXIT_USAGE and "pairs" in e.message
        assert "--" not in str(e) and e.as_flag().startswith("--layers: ")
    model = SimpleNamespace(config=SimpleNamespace(num_hidden_layers=4))
    for spec in ([1.5], ["3"], None, 7, []):
        with pytest.raises(UsageError) as err:
            resolve_layers(model, None, spec)
        assert err.value.field == "layers" and "--" not in str(err.value)
    assert resolve_layers(model, None, [3, 1]).layers == [1, 3]
    with pytest.raises(UsageError, match="^layers: expected text"):
        parse_layers(12)
    for layers in (["a"], [9], [], None):
        with pytest.raises(UsageError) as err:
            validate_layers(model, layers)
        assert err.value.field == "layers" and err.value.exit_code == EXIT_USAGE
    assert validate_layers(model, (3, 0, 3)) == [0, 3]


def test_generation_arguments_are_usage_errors():
    """batch_size=0 or window=0 failed deep inside with range()'s bare "arg 3 must not be zero" ValueError."""
    from attrib.errors import EXIT_USAGE, UsageError
    from attrib.surgery.evaluate import compliance, perplexity
    from attrib.surgery.generate import generate
    from attrib.surgery.pairs import sample_responses

    for call, field in ((lambda: generate(None, None, [], batch_size=0), "batch_size"),
                        (lambda: generate(None, None, [], max_new_tokens=0), "max_new_tokens"),
                        (lambda: generate(None, None, [], temperature=-1.0), "temperature"),
                        (lambda: sample_responses(None, None, [], max_new_tokens=2.5), "max_new_tokens"),
                        (lambda: compliance(None, None, [], batch_size=0), "batch_size"),
                        (lambda: perplexity(None, None, "text", window=0), "window")):
        with pytest.raises(UsageError) as err:
            call()
        assert err.value.field == field and err.value.exit_code == EXIT_USAGE and "--" not in str(err.value)


def test_compliance_refuses_no_probes_and_what_is_not_a_probe():
    """compliance([]) reported a rate of 0.0 over n=0; a plain string was "'str' object has no attribute 'messages'"."""
    from attrib.errors import InputError
    from attrib.probes import conflict_suite
    from attrib.surgery.evaluate import compliance

    with pytest.raises(InputError, match=r"^probes: expected a non-empty list of probes"):
        compliance(None, None, [])
    probe = conflict_suite(["secret"])[0]
    with pytest.raises(InputError, match=r"^probes\[1\]: expected a probe .*got str 'What is 2\+2\?'"):
        compliance(None, None, [probe, "What is 2+2?"])


@pytest.mark.slow
@pytest.mark.parametrize("text", ["", "Hello"])
def test_perplexity_refuses_a_text_of_fewer_than_two_tokens(text):
    """perplexity("") and perplexity("Hello") were 1.0, a "perfect" score with no token predicted."""
    from _sail_common import real_model

    from attrib.errors import InputError
    from attrib.surgery.evaluate import perplexity

    model, tok = real_model()
    n = len(tok(text, add_special_tokens=False)["input_ids"])
    with pytest.raises(InputError, match=rf"^text: has {n} tokens?: perplexity needs at least 2"):
        perplexity(model, tok, text)
    assert perplexity(model, tok, "Hello there, my friend.") > 1.0


def test_the_custom_loop_names_are_re_exported_from_attrib_surgery():
    """The README's custom loop needs rule_token_span and eager_attention for the weights, and rank_layers_by_repair
    (the default layer choice) and heldout_probes: none was in attrib.surgery, only in its submodules."""
    import subprocess
    import sys

    names = ["rule_token_span", "eager_attention", "heldout_probes", "rank_layers_by_repair", "heads_for_layers"]
    code = ("import sys, attrib.surgery as s; "
            f"names = {names!r}; "
            "missing = [n for n in names if n not in s.__all__ or n not in dir(s)]; "
            "print(missing, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["[]", "False"]  # listed lazily: importing attrib.surgery still loads no torch
    import attrib.surgery as surgery
    from attrib.surgery import api, layers, weights

    assert surgery.rule_token_span is weights.rule_token_span and surgery.eager_attention is weights.eager_attention
    assert surgery.heldout_probes is api.heldout_probes
    assert surgery.rank_layers_by_repair is layers.rank_layers_by_repair
