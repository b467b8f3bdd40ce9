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
    assert "attrib/py.typed" in names  # PEP 561: a user's type checker reads attrib's hints
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


@pytest.mark.slow
def test_a_users_type_checker_sees_the_lazy_names_typed(tmp_path: Path) -> None:
    """``attrib.analyze`` and the other lazy re-exports reach mypy with their real types, not Any."""
    user = tmp_path / "user.py"
    user.write_text("import attrib\n\n\ndef f() -> None:\n"
                    "    bad: int = attrib.analyze(attrib.load_trace('run.json')).agent\n"
                    "    ok: str = attrib.analyze(attrib.load_trace('run.json')).agent\n")
    out = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", "--strict", "--follow-imports=silent",
                          str(user)], cwd=tmp_path, capture_output=True, text=True,
                         env={"MYPYPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 1, out.stdout + out.stderr
    assert 'user.py:5: error: Incompatible types in assignment (expression has type "str", variable has type "int")' \
        in out.stdout, out.stdout
    assert "Found 1 error" in out.stdout, out.stdout


def test_the_typed_names_are_the_lazy_ones() -> None:
    """`attrib/__init__.py` lists its re-exports twice (the lazy map, and imports for type checkers): the same."""
    import ast

    import attrib

    tree = ast.parse((REPO_ROOT / "attrib" / "__init__.py").read_text())
    typed = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.If)
             for imp in node.body if isinstance(imp, ast.ImportFrom) for a in imp.names}
    assert typed == set(attrib._LAZY)
    lazy_from = {name: mod for name, mod in attrib._LAZY.items()}
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            for imp in node.body:
                if isinstance(imp, ast.ImportFrom):
                    assert all(lazy_from[a.name] == imp.module for a in imp.names), imp.module
