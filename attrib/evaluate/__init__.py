"""Who&When evaluation: data loading, metrics, baselines, the logistic floor and the out-of-sample harness."""

from attrib.evaluate.harness import evaluate

__all__ = ["evaluate"]
