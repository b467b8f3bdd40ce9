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
