"""Calibration: ECE on hand-made cases, and Platt/isotonic repair an over-confident model out of sample."""

import numpy as np
import pytest

from attrib.methods.calibration import Calibrator, ece, reliability


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
