"""Calibration: ECE on hand-made cases, and Platt/isotonic repair an over-confident model out of sample."""

import numpy as np
import pytest

from attrib.methods.calibration import Calibrator, ece, ece_if_calibrated, reliability, smoothed_targets


def test_ece_hand_computed():
    conf = np.array([0.95, 0.95, 0.15, 0.15])
    correct = np.array([1, 0, 0, 0])
    # bin 9: conf .95 acc .5 -> .45 * 2/4 ; bin 1: conf .15 acc 0 -> .15 * 2/4
    assert ece(conf, correct) == pytest.approx(0.45 * 0.5 + 0.15 * 0.5)
    assert ece(np.array([0.5, 0.5]), np.array([1, 0])) == pytest.approx(0.0)
    assert sum(b["count"] for b in reliability(conf, correct)) == 4


@pytest.mark.parametrize("kind", ["platt", "isotonic"])
def test_calibrator_fixes_overconfidence_out_of_sample(kind):
    rng = np.random.default_rng(0)
    true_p = rng.uniform(0.05, 0.6, size=4000)
    raw = np.clip(true_p + 0.3, 0, 0.99)  # over-confident by 30 points
    correct = (rng.random(4000) < true_p).astype(int)
    cal = Calibrator(kind).fit(raw[:2000], correct[:2000])
    before = ece(raw[2000:], correct[2000:])
    after = ece(cal.predict(raw[2000:]), correct[2000:])
    assert before > 0.25 and after < 0.05
    again = Calibrator.from_dict(cal.to_dict())
    np.testing.assert_allclose(again.predict(raw[:10]), cal.predict(raw[:10]))


def test_ece_noise_floor_matches_a_calibrated_simulation_and_shrinks_with_n():
    """A perfectly calibrated predictor still shows ECE > 0 on few samples; the floor must say how much."""
    rng = np.random.default_rng(3)
    small = rng.uniform(0.05, 0.6, size=58)
    big = rng.uniform(0.05, 0.6, size=5000)
    m_small, q_small = ece_if_calibrated(small, random_state=1)
    m_big, _ = ece_if_calibrated(big, random_state=1)
    assert 0.05 < m_small < q_small < 0.25
    assert m_big < 0.03 < m_small
    # an outcome vector drawn from the confidences lands under the 95th percentile most of the time
    under = [ece(small, rng.random(58) < small) <= q_small for _ in range(200)]
    assert 0.9 < np.mean(under) <= 1.0
    # a badly overconfident predictor lands far above it
    assert ece(np.full(58, 0.9), rng.random(58) < 0.3) > q_small


def test_platt_covariate_separates_two_populations():
    """Same raw confidence, different covariate (trace length) -> different calibrated probability."""
    rng = np.random.default_rng(0)
    raw = rng.uniform(0.2, 0.8, size=4000)
    cov = rng.integers(0, 2, size=4000).astype(float)
    truth = np.where(cov == 1, raw * 0.5, raw)  # the long-run population is half as often right
    correct = rng.random(4000) < truth
    cal = Calibrator("platt").fit(raw, correct, cov)
    assert cal.c_ < 0
    short, long_ = cal.predict(0.6, 0.0), cal.predict(0.6, 1.0)
    assert abs(short - 0.6) < 0.08 and abs(long_ - 0.3) < 0.08
    again = Calibrator.from_dict(cal.to_dict())
    assert np.isclose(again.predict(0.6, 1.0), long_)
    assert Calibrator("platt").fit(raw, correct).c_ == 0.0


def test_platt_targets_are_smoothed_as_platt_advises_for_few_samples():
    np.testing.assert_allclose(smoothed_targets(np.array([1, 1, 1, 0])), [4 / 5, 4 / 5, 4 / 5, 1 / 3])
    np.testing.assert_allclose(smoothed_targets(np.ones(12, int)), np.full(12, 13 / 14))


# the out-of-fold top-1 probabilities of a ranker refitted on 12 runs of 6 tasks, all of whose verdicts were right
FEW_RAW = np.array([0.963, 0.962, 0.95, 0.944, 0.976, 0.975, 0.451, 0.961, 0.98, 0.947, 0.939, 0.935])
FEW_COV = np.log([6, 8, 7, 9, 9, 7, 9, 7, 6, 7, 7, 6])


@pytest.mark.parametrize("kind", ["platt", "isotonic"])
def test_a_few_runs_all_right_or_all_wrong_do_not_make_confidence_near_certain(kind):
    """12 of 12 right once fitted a constant 99 % (p = 0.25 read as 99 %); 12 of 12 wrong a constant 1 %."""
    for correct in (np.ones(12, int), np.zeros(12, int)):
        cal = Calibrator(kind).fit(FEW_RAW, correct, FEW_COV if kind == "platt" else None)
        out = cal.predict(np.array([0.25, 0.5, 0.95, 0.99]), np.log(9))
        assert np.all((out > 1 / 14 - 1e-9) & (out < 13 / 14 + 1e-9)), out  # within Laplace's 1/14 .. 13/14
        assert np.allclose(Calibrator.from_dict(cal.to_dict()).predict(out * 0 + 0.99, np.log(9)), out[-1])
    if kind == "platt":  # and a probability the calibration runs never showed stays near what the ranker says
        cal = Calibrator("platt").fit(FEW_RAW, np.ones(12, int), FEW_COV)
        assert cal.predict(0.25, np.log(9)) < 0.6
        old = {k: v for k, v in cal.to_dict().items() if k != "n"}  # a file from before the bound: as it was fitted
        assert Calibrator.from_dict(old).predict(0.99, np.log(9)) > 13 / 14


def test_platt_without_calibration_data_keeps_the_rankers_probability():
    cal = Calibrator("platt").fit(np.array([]), np.array([]))
    assert (cal.a_, cal.b_, cal.c_) == (1.0, 0.0, 0.0)
    assert cal.predict(0.3) == pytest.approx(0.3)
