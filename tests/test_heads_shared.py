"""One definition of the model-side checks the heads code shares: what a bridge is, what a valid focal head is, and
the sink-free segment shares the inspector shows (models.is_bridge, weights.check_focal_heads, drift)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from attrib.errors import InputError
from attrib.paths import REPO_ROOT


def test_one_bridge_test_for_models_weights_and_long_context() -> None:
    """weights and long_context ask models.is_bridge (each had its own copy, long_context's testing other attrs)."""
    from attrib import models
    from attrib.heads import long_context, weights

    assert weights.is_bridge is models.is_bridge and long_context.is_bridge is models.is_bridge
    bridge = SimpleNamespace(original_model=object(), run_with_cache=lambda: None, hook_dict={})
    assert models.is_bridge(bridge) and not models.is_bridge(SimpleNamespace(config=object()))


def test_saved_focal_heads_are_checked_as_the_model_side_checks_them(tmp_path: Path) -> None:
    """HeadLocalization.load refuses bad saved heads with check_focal_heads' words, naming the file and the key."""
    from attrib.heads import HeadLocalization
    from attrib.heads.weights import check_focal_heads

    z = np.zeros((3, 2)).tolist()
    d = {"model": "m", "n_layers": 3, "n_heads": 2, "top_k": 2, "scores": z, "magnitude": z, "direction": z, "js": z,
         "sink_clean": z, "sink_conflict": z, "focal_heads": [[0, 1], [2, 0]], "focal_layers": [0, 2],
         "family_compliance": {}, "n_pairs": 1, "pair_selection": "all", "patching": None, "timings": {}}
    p = tmp_path / "loc.json"
    p.write_text(json.dumps(d))
    assert HeadLocalization.load(p).focal_heads == [(0, 1), (2, 0)]
    for bad in ([[3, 0]], [[0, 2]], [[0]], [], "x", [[0, True]]):
        p.write_text(json.dumps({**d, "focal_heads": bad}))
        with pytest.raises(InputError) as want:
            check_focal_heads(bad, 3, 2)
        with pytest.raises(InputError) as got:
            HeadLocalization.load(p)
        assert (got.value.path, got.value.field, got.value.message) == (str(p), "focal_heads", want.value.message)


def test_inspector_shares_are_drift_drop_sink_where_enough_is_off_the_sink() -> None:
    """The inspector's shares: drift.drop_sink on rows with at least min_rest off the sink (drift.off_sink_mass),
    NaN segments elsewhere, the sink entry 0 throughout."""
    pytest.importorskip("streamlit")
    from attrib.heads import drift

    sys.path.insert(0, str(REPO_ROOT / "apps"))
    from inspector_model import MIN_REST, shares

    rng = np.random.default_rng(0)
    m = rng.dirichlet(np.ones(5), size=(3, 4, 6))
    m[0, 0] = [1.0 - 1e-4, 1e-4, 0, 0, 0]  # a sink-parked row
    m[1, 2, 3] = [1.0, 0.0, 0.0, 0.0, 0.0]
    s = shares(m)
    live = drift.off_sink_mass(m) >= MIN_REST
    assert not live.all() and live.any()
    assert np.array_equal(s[live], drift.drop_sink(m)[live])
    assert np.isnan(s[~live][:, 1:]).all() and (s[..., drift.SINK] == 0).all()
    assert np.isnan(shares(m, min_rest=2.0)[..., 1:]).all()
