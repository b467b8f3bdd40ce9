"""The Who&When harness: folds never leak a question, metrics on hand-made verdicts, the baselines match
the figures measured in FACTS.md, and the fitted methods are scored out of sample only."""

import numpy as np
import pytest

from attrib.evaluate.baselines import BASELINES
from attrib.evaluate.data import load_subset, question_id
from attrib.evaluate.harness import cross_validate, grouped_folds
from attrib.evaluate.metrics import Verdict, summarize


def test_metrics_on_hand_made_verdicts():
    v = [Verdict("a", 3, "X", 3, "X", 0.9, 0.9), Verdict("b", 5, "Y", 3, "X", 0.2, 0.4),
         Verdict("c", 4, "X", 3, "X", 0.5, 0.5), Verdict("d", 0, "Z", 9, "Z", 0.1, 0.6)]
    s = summarize(v)
    assert s["step_accuracy"] == 25.0 and s["step_accuracy_pm1"] == 50.0 and s["step_accuracy_pm3"] == 75.0
    assert s["agent_accuracy"] == 75.0
    assert 0 <= s["ece"] <= 1
    assert s["step_top3"] is None  # no verdict ranks steps


def test_top_k_hit_rates():
    v = [Verdict("a", 3, "X", 3, "X", ranking=(3, 4, 2, 1, 0)),   # hit at rank 1
         Verdict("b", 5, "Y", 2, "X", ranking=(5, 6, 2, 1, 0)),   # rank 3
         Verdict("c", 4, "X", 0, "X", ranking=(4, 3, 2, 1, 0)),   # rank 5
         Verdict("d", 0, "Z", 9, "Z", ranking=(0, 1, 2, 3, 4))]   # missed
    s = summarize(v)
    assert s["step_top3"] == 50.0 and s["step_top5"] == 75.0
    assert summarize(v + [Verdict("e", 0, "Z", 0, "Z")])["step_top5"] is None  # one verdict without a ranking


def test_folds_are_grouped_and_cover_everything():
    traces = list(load_subset("hand"))
    folds = grouped_folds(traces, 5, seed=0)
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(traces)))
    qs = [{question_id(traces[i]) for i in f} for f in folds]
    assert all(not (a & b) for i, a in enumerate(qs) for b in qs[i + 1:])


def test_baselines_match_measured_facts():
    ag, hc = load_subset("algorithm"), load_subset("hand")
    acc = lambda name, ts, key: summarize([BASELINES[name](t) for t in ts])[key]  # noqa: E731
    assert acc("always-step-1", ag, "step_accuracy") == pytest.approx(27.0, abs=0.05)
    assert acc("random", ag, "step_accuracy") == pytest.approx(12.0, abs=0.05)
    assert acc("first-websurfer-step", hc, "step_accuracy") == pytest.approx(17.2, abs=0.05)
    assert acc("always-websurfer", hc, "agent_accuracy") == pytest.approx(56.9, abs=0.05)
    assert acc("most-active-agent", ag, "agent_accuracy") == pytest.approx(54.0, abs=0.05)


def test_cross_validate_never_scores_a_training_trace():
    traces = list(load_subset("algorithm"))[:40]
    seen: list[set[str]] = []

    def fitter(train):
        ids = {t.id for t in train}
        seen.append(ids)

        def predict(t):
            assert t.id not in ids
            return Verdict(t.id, 1, t.steps[1].agent, t.label.mistake_step, t.label.mistake_agent)

        return predict

    out = cross_validate(traces, fitter, k=4, seed=0, extra=list(load_subset("hand"))[:5])
    assert len(out) == 40 and len(seen) == 4


def test_mean_summary_averages_fold_seeds():
    from attrib.evaluate.harness import mean_summary

    a = [Verdict("a", 1, "X", 1, "X", 0.9, 0.9), Verdict("b", 2, "X", 1, "Y", 0.6, 0.6)]
    b = [Verdict("a", 0, "X", 1, "X", 0.9, 0.9), Verdict("b", 2, "X", 1, "Y", 0.6, 0.6)]
    m = mean_summary([a, b])
    assert m["step_accuracy"] == 25.0 and m["step_accuracy_sd"] == 25.0
    assert m["agent_accuracy"] == 50.0 and m["agent_accuracy_sd"] == 0.0
    assert m["n"] == 2 and m["n_seeds"] == 2 and len(m["per_seed"]) == 2
    assert mean_summary([a])["step_accuracy_sd"] == 0.0 and "per_seed" not in mean_summary([a])


def test_bootstrap_interval_covers_the_mean_with_the_binomial_width():
    from attrib.evaluate.metrics import bootstrap_ci, paired_gain

    assert bootstrap_ci(np.ones(40)) == (1.0, 1.0)
    lo, hi = bootstrap_ci(np.r_[np.ones(50), np.zeros(50)])
    assert lo < 0.5 < hi and 0.15 < hi - lo < 0.25  # binomial: ±1.96 * 0.05
    same = paired_gain(np.r_[np.ones(20), np.zeros(20)], np.r_[np.ones(20), np.zeros(20)])
    assert same == {"mean": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    better = paired_gain(np.r_[np.ones(30), np.zeros(70)], np.zeros(100))  # a hits 30 logs b misses, nothing else
    assert better["mean"] == pytest.approx(30.0) and 20 < better["ci_low"] < 30 < better["ci_high"] < 40


def test_mean_summary_intervals_pair_traces_across_seeds():
    from attrib.evaluate.harness import mean_summary

    a = [Verdict(f"t{i}", 1, "X", 1 if i < 6 else 0, "X") for i in range(10)]
    b = list(reversed([Verdict(f"t{i}", 1, "X", 1 if i < 4 else 0, "X") for i in range(10)]))  # other fold order
    m = mean_summary([a, b])
    assert m["step_accuracy"] == 50.0
    lo, hi = m["step_accuracy_ci"]
    assert lo < 50.0 < hi and m["agent_accuracy_ci"] == [100.0, 100.0]
    rnd = [Verdict("a", 0, "X", 1, "X", expected_step_acc=0.1, expected_agent_acc=0.3)]
    assert "step_accuracy_ci" not in mean_summary([rnd])  # an analytic baseline has no sampling interval


def test_missing_who_and_when_names_the_variable_not_a_site_packages_path(tmp_path, monkeypatch) -> None:
    """Installed from a wheel, the message named <venv>/lib/python3.11/shared/data/... (the package's "repo root" is
    site-packages' parent), a path that means nothing (walkthrough w6 #6); a checkout still names its path."""
    import pytest

    from attrib.errors import NotFoundError
    from attrib.evaluate import data

    monkeypatch.delenv("ATTRIB_WHO_AND_WHEN", raising=False)
    monkeypatch.setattr(data, "who_and_when_dir", lambda subset=None: tmp_path / "Hand-Crafted")
    for installed in (True, False):
        monkeypatch.setattr(data, "IN_CHECKOUT", not installed)
        with pytest.raises(NotFoundError) as e:
            data.load_subset.__wrapped__("hand")
        assert "set ATTRIB_WHO_AND_WHEN to the folder holding Algorithm-Generated/ and Hand-Crafted/" in str(e.value)
        assert (str(tmp_path) in str(e.value)) is not installed


def test_the_units_map_names_every_scaled_key() -> None:
    """The eval JSON's ECE figures are fractions in rows[] and percents in subsets.*, and set_coverage a percent; the
    units map named ece alone, so a dashboard reading agent_ece or ece_sd from both was off by 100x (walkthrough
    w8 #6)."""
    from attrib.evaluate.harness import ROW_UNITS, UNITS

    def names(k: str) -> set[str]:  # "rows[].ece, agent_ece" -> {"ece", "agent_ece"}
        return {t.split(".")[-1] for t in k.replace(",", " ").split()}

    for key in ("ece", "agent_ece", "ece_null", "ece_null_q95", "agent_ece_null", "ece_sd"):
        assert any(key in names(k) and v.startswith("fraction") for k, v in ROW_UNITS.items()), key
        assert any(key in names(k) and v == "percent" for k, v in UNITS.items() if k.startswith("subsets")), key
    assert ROW_UNITS["set_coverage"] == "percent"
