"""localize() on the real SmolLM2: a bad option is a UsageError naming it *before* the scan (it was refused only
after generation and drift, minutes on the full suite, or silently replaced)."""

from __future__ import annotations

import pytest

from attrib.errors import EXIT_USAGE, InputError, UsageError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pair():
    from attrib.models import load_model

    return load_model("smollm2-135m")


@pytest.fixture(scope="module")
def probes():
    from attrib.probes import conflict_suite

    return conflict_suite(["secret"], split="heldout", n_questions=1)[:2]


@pytest.mark.parametrize(("option", "value", "says"), [
    ("top_k", 500, "selects 500 of 270 heads"),
    ("top_k", 2.5, "a whole count of heads, got 2.5"),  # before: silently 2 heads
    ("top_k", 0, "got 0"),
    ("top_k", True, "got True"),
    ("positions", "generated", "unknown positions 'generated'"),
    ("select", "flip", "expected 'all' or 'flipped', got 'flip'"),  # before: silently "all"
    ("coverage", 1.5, "in (0, 1], got 1.5"),
    ("n_random", 3, "got 3"),
])
def test_bad_options_fail_before_the_scan(pair, probes, option, value, says):
    from attrib.heads import localize

    stages: list[str] = []
    with pytest.raises(UsageError) as e:
        localize(pair, probes, **{option: value}, max_new_tokens=2, progress=lambda s, i, n: stages.append(s))
    assert e.value.field == option and says in e.value.message and e.value.exit_code == EXIT_USAGE
    assert stages == []  # nothing was generated


def test_top_heads_refuses_a_fractional_count():
    import numpy as np

    from attrib.heads import drift

    score = np.arange(12, dtype=float).reshape(3, 4)
    assert drift.top_heads(score, 2.0) == drift.top_heads(score, 2)  # a float that is a whole number is a count
    with pytest.raises(InputError, match=r"^top_k: expected a fraction in \(0, 1\) or a whole count"):
        drift.top_heads(score, 2.5)


@pytest.mark.parametrize(("option", "value"), [("select", "flip"), ("positions", "generated"), ("coverage", 1.5),
                                               ("n_random", 3)])
def test_options_that_need_no_model_fail_before_it_loads(tmp_path, option, value):
    """localize("some/model", select="flip") loaded the model (or failed to) before saying the option was wrong."""
    from attrib.heads import localize

    with pytest.raises(UsageError) as e:
        localize(str(tmp_path / "no-such-model"), [], **{option: value})
    assert e.value.field == option


@pytest.mark.parametrize(("option", "value"), [("split", "both")])
def test_a_bad_split_fails_before_the_model_loads(tmp_path, option, value):
    """localize(split=...) was passed to conflict_suite only after the model loaded (an InputError, exit 3)."""
    from attrib.heads import localize

    with pytest.raises(UsageError) as e:
        localize(str(tmp_path / "no-such-model"), [], **{option: value})
    assert e.value.field == option and "'both'" in e.value.message


def test_the_cli_and_the_library_default_to_the_train_split():
    """`attrib heads` scanned --split all (144 probes, no wording left unseen) while the README's figures and the
    library example use the train templates; the library's localize() defaulted to both splits too."""
    import inspect

    from attrib.cli.heads import heads_command
    from attrib.heads import localize

    cli = inspect.signature(heads_command).parameters
    lib = inspect.signature(localize).parameters
    assert lib["split"].default == cli["split"].default.default == "train"
    assert lib["max_new_tokens"].default == cli["max_new_tokens"].default.default == 16  # was 24 in the library


def test_responding_progress_advances_within_the_phase(pair, probes):
    """The "responding" bar sat at 0/N for the whole response phase (the longest): run_probes took no callback."""
    from attrib.probes.run import run_probes

    model, tok = pair
    seen: list[tuple[int, int]] = []
    runs = run_probes(model, tok, probes, max_new_tokens=4, batch_size=2, progress=lambda i, n: seen.append((i, n)))
    assert len(runs) == 2
    # one batch of 2: it counts half a probe per generated token, so 1/2 shows before the batch returns
    assert seen[0] == (0, 2) and seen[-1] == (2, 2) and (1, 2) in seen, seen
    assert [i for i, _ in seen] == sorted(i for i, _ in seen)  # never goes back


def test_localize_reports_responding_and_records_its_settings(pair, probes, tmp_path):
    """localize() passed the response phase one (0, N) call; and a saved result did not say which probes made it."""
    from attrib.heads import HeadLocalization, localize

    stages: list[tuple[str, int, int]] = []
    res = localize(pair, probes, top_k=3, patch=False, max_new_tokens=2, batch_size=1,
                   progress=lambda s, i, n: stages.append((s, i, n)))
    responding = [(i, n) for s, i, n in stages if s == "responding"]
    assert responding[0] == (0, 2) and (1, 2) in responding and responding[-1] == (2, 2), responding
    st = res.settings
    assert (st["families"], st["split"], st["n_questions"], st["n_probes"]) == (["secret"], "heldout", 1, 2)
    assert st["max_new_tokens"] == 2 and st["patch"] is False and st["positions"] == "answer"
    back = HeadLocalization.load(res.save(tmp_path / "loc.json"))
    assert back.settings == st


def test_sink_parked_heads_of_smollm2_have_no_drift(pair):
    """SmolLM2 parks heads on the first token (L18H8 keeps < 1e-6 off it at the answer position): their direction change
    came out as exactly 1.000 in every pair (the cosine of two ~1e-7 vectors hit its zero guard) and made L18H8 the
    top focal head of `attrib heads` (walkthrough w6 #1). Now a head under MIN_OFF_SINK in either run has no drift."""
    import numpy as np

    from attrib.heads.localization import _pair_drift
    from attrib.probes import conflict_suite, pairs
    from attrib.probes.run import ProbeRun

    model, tok = pair
    clean, conflict = pairs(conflict_suite(["secret"], split="train", n_questions=1))[0]
    runs = [ProbeRun(probe=p, prompt_ids=[], response_ids=[], response="", complied=True) for p in (clean, conflict)]
    out = _pair_drift(model, tok, *runs)  # the answer position reads the probes' prompts only
    off = 1 - np.maximum(out["sink_clean"], out["sink_conflict"])
    parked = off < 1e-6  # far under MIN_OFF_SINK, so float rounding in 1 - sink cannot move a head across it
    assert parked[18, 8], f"L18H8 keeps {off[18, 8]:.2g} off the sink"
    for stat in ("magnitude", "direction", "js"):
        assert np.all(out[stat][parked] == 0.0), stat
    assert np.all(out["direction"] < 1.0)  # no head is "fully turned" by a zero-norm cosine
    assert np.any(out["direction"][~parked] > 0)  # the live heads keep theirs
