"""The logistic-regression floor of the issue: ~30 cheap per-step features, one independent logistic
regression per step (scikit-learn), arg-max per trace. Fitted only on training folds."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from attrib.evaluate.metrics import Verdict, ranking_of
from attrib.features.steps import INDEX
from attrib.trace import Trace

#: position, relative position, first turn of an agent, agent-name tokens, content length, keywords, gt present
FLOOR_FEATURES = (
    "bias_pos0", "pos1", "pos2", "pos_rel", "log_pos", "is_last", "first_turn_of_agent", "agent_turn_idx_log",
    "name_verif", "name_valid", "name_check", "name_surfer", "name_orchestr", "name_assistant", "name_plan",
    "name_coder", "name_debug", "is_tool", "log_len", "kw_error", "kw_hedge", "kw_unable", "kw_verify",
    "kw_conclude", "kw_plan", "kw_search", "kw_terminate", "kw_code", "kw_url", "kw_estimate", "kw_request",
    "gt_in_step",
)
_COLS = np.array([INDEX[f] for f in FLOOR_FEATURES])


class LogisticFloor:
    """Per-step logistic regression; predicts the arg-max step and that step's agent."""

    def __init__(self, C: float = 1.0, random_state: int = 0) -> None:
        self.C = C
        self.random_state = random_state

    def fit(self, traces: Sequence[Trace]) -> LogisticFloor:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        from attrib.methods.ranker import featurize

        steps = [(t, t.label.mistake_step) for t in traces if t.label is not None]  # unlabelled runs teach nothing
        X = np.vstack([featurize(t)[:, _COLS] for t, _ in steps])
        y = np.concatenate([np.arange(t.n_steps) == m for t, m in steps]).astype(int)
        self.model_ = make_pipeline(
            StandardScaler(), LogisticRegression(C=self.C, max_iter=2000, random_state=self.random_state)
        ).fit(X, y)
        return self

    def predict(self, trace: Trace) -> Verdict:
        from attrib.methods.ranker import featurize

        p = self.model_.predict_proba(featurize(trace)[:, _COLS])[:, 1]
        k = int(np.argmax(p))
        assert trace.label is not None
        return Verdict(trace.id, k, trace.steps[k].agent, trace.label.mistake_step, trace.label.mistake_agent,
                       confidence=float(p[k] / p.sum()),
                       ranking=ranking_of(p))
