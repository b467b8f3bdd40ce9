"""Step features for the offline failure model: lexical/structural (:mod:`.steps`), text primitives
(:mod:`.text`) and optional sentence embeddings (:mod:`.embed`, MiniLM, cached on disk)."""

from attrib.features.steps import FEATURES, step_features

__all__ = ["FEATURES", "step_features"]
