"""Calibration: ECE on hand-made cases, and Platt/isotonic repair an over-confident model out of sample."""

import numpy as np
import pytest

from attrib.methods.calibration import Calibrator, ece, ece_if_calibrated, reliability


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
