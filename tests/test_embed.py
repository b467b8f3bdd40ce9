"""Optional MiniLM step features: the real bundled model, cached on disk by content; similarities behave."""

import numpy as np
import pytest

from attrib.features import embed
from attrib.trace import Step, Trace

pytestmark = pytest.mark.skipif(not embed.available(), reason="needs the 'model' extra (MiniLM)")


@pytest.mark.slow
def test_embed_features_real_minilm_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTRIB_CACHE", str(tmp_path))
    steps = (
        Step(index=0, agent="planner", content="We need the boiling point of water at sea level in Fahrenheit."),
        Step(index=1, agent="cook", content="My favourite pasta recipe uses basil, garlic and olive oil."),
        Step(index=2, agent="planner", content="Water boils at 212 degrees Fahrenheit at sea level."),
        Step(index=3, agent="planner", content="FINAL ANSWER: 212 F"),
    )
    t = Trace(id="e", source_format="otlp", steps=steps, task="What is the boiling point of water in Fahrenheit?",
              ground_truth="212")
    F = embed.embed_features(t)
    assert F.shape == (4, len(embed.EMBED_FEATURES))
    col = {n: i for i, n in enumerate(embed.EMBED_FEATURES)}
    sim_task = F[:, col["emb_sim_task"]]
    assert sim_task[1] < min(sim_task[0], sim_task[2])  # the off-topic step is least like the task
    assert F[1, col["emb_novelty"]] > F[2, col["emb_novelty"]]  # and the most novel
    assert F[:, col["emb_sim_gt"]].any() and not embed.embed_features(t.without_ground_truth())[:, col["emb_sim_gt"]].any()
    cached = list((tmp_path / "embed").rglob("*.npy"))
    assert len(cached) >= 2
    np.testing.assert_allclose(embed.embed_features(t), F, atol=1e-6)  # second call reads the cache
