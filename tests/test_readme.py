"""The README's library examples run as written (each in a fresh process, from a folder that has the repo's traces/
and tests/ beside it, so relative paths resolve and a default store lands in that folder, not in the checkout).

Examples that need SmolLM2 (heads, SAIL), an agent framework (LangGraph) or a store of runs (the Dask batch) are left
to the tests of their features; the rest run here, so an example that drifts from the API fails CI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from attrib.paths import REPO_ROOT

BLOCKS = re.findall(r"```python\n(.*?)```", (REPO_ROOT / "README.md").read_text(encoding="utf-8"), re.S)
#: a block is skipped when it mentions one of these (what it needs is tested elsewhere)
NEEDS_ELSEWHERE = ("load_model(", "langchain", "analyze_many(", "suite_pairs(")


def _runnable() -> list[tuple[int, str]]:
    return [(i, b) for i, b in enumerate(BLOCKS) if not any(n in b for n in NEEDS_ELSEWHERE)]


def test_the_readme_has_library_examples_to_run() -> None:
    assert len(BLOCKS) >= 8 and len(_runnable()) >= 4  # the regex still finds them; most are run below


@pytest.mark.parametrize(("index", "code"), _runnable(), ids=[f"block{i}" for i, _ in _runnable()])
def test_a_readme_example_runs(index: int, code: str, tmp_path: Path) -> None:
    for name in ("traces", "tests"):
        (tmp_path / name).symlink_to(REPO_ROOT / name)
    if "import torch" in code:
        pytest.importorskip("torch")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ATTRIB_STORE": str(tmp_path / "attrib.duckdb")}
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, f"README python block {index} failed:\n{code}\n{r.stderr[-2000:]}"
