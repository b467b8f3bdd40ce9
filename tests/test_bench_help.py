"""The benches' --help says where results go: by default the committed files in bench/results/, which a run
overwrites (the default is kept: that is how the results are refreshed)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("script", "default"), [
    ("bench/attn_stats/run.py", "bench/results/attn_stats.json"),
    ("bench/sail/run.py", "bench/results/sail.json"),
])
def test_bench_help_shows_the_default_output_and_that_a_run_overwrites_it(script: str, default: str) -> None:
    out = subprocess.run([sys.executable, str(ROOT / script), "--help"], capture_output=True, text=True, timeout=120,
                         cwd=ROOT, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}, check=True)
    text = " ".join(out.stdout.split())
    option = text[text.index("--out OUT "):]  # the option's own help, not only the description
    assert f"default: {default}, the committed results: a run overwrites them" in option, option
    module = ast.get_docstring(ast.parse((ROOT / script).read_text())) or ""
    assert default in " ".join(module.split()) and "overwrites" in module
