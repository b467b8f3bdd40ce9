"""A regular (non-editable) install carries the kernel sources, so a GPU user can JIT-build the extension."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from attrib.paths import REPO_ROOT


@pytest.mark.slow
def test_wheel_ships_cuda_sources_and_the_installed_package_finds_them(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO_ROOT), "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path / "whl")], check=True, cwd=tmp_path)
    wheel = next((tmp_path / "whl").glob("attrib-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in sorted(p.name for p in (REPO_ROOT / "cuda_ext").iterdir() if p.suffix in {".cu", ".cuh", ".h", ".cpp"}):
        assert f"attrib/_cuda_ext/{f}" in names, f
    assert "attrib/methods/data/ranker.json" in names
    assert "attrib/surgery/data/neutral_text.txt" in names  # compliance's perplexity text
    for f in sorted(p.name for p in (REPO_ROOT / "apps").glob("*.py")):  # the inspector, for `attrib app`
        assert f"attrib/_apps/{f}" in names, f
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, cwd=tmp_path)
    out = subprocess.run([sys.executable, "-c", "import attrib.kernels as k; print(k.CUDA_EXT_DIR)"],
                         check=True, cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}).stdout.strip()
    assert Path(out) == site / "attrib" / "_cuda_ext"
    # outside the checkout: `attrib app` finds the shipped inspector, the perplexity text is there
    out = subprocess.run([sys.executable, "-c", "from attrib.cli.app import APP_SCRIPT; "
                          "from attrib.surgery.evaluate import neutral_text; print(APP_SCRIPT, len(neutral_text()))"],
                         check=True, cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}).stdout.split()
    assert Path(out[0]) == site / "attrib" / "_apps" / "inspector.py" and out[0] and int(out[1]) > 1000
