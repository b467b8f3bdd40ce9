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
