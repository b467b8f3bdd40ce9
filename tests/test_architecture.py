"""The walls of ../shared/DESIGN.md, read from the source: which part may import which (module level or inside a
function alike). Logs flow one way (readers -> trace -> store -> methods -> Attribution -> renderers -> faces); a
method never opens the store or a reader, never renders; the library never imports its faces."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from attrib.paths import REPO_ROOT

#: part (a module path prefix) -> parts it must never import
FORBIDDEN = {
    "attrib.methods": ("attrib.render", "attrib.render_otlp", "attrib.store", "attrib.readers", "attrib.engine",
                       "attrib.evaluate", "attrib.cli", "apps"),
    "attrib.readers": ("attrib.methods", "attrib.store", "attrib.render", "attrib.engine", "attrib.evaluate",
                       "attrib.cli", "apps"),
    "attrib.store": ("attrib.methods", "attrib.render", "attrib.engine", "attrib.evaluate", "attrib.cli", "apps"),
    "attrib.features": ("attrib.store", "attrib.readers", "attrib.render", "attrib.evaluate", "attrib.cli", "apps"),
    "attrib.llm": ("attrib.methods", "attrib.store", "attrib.readers", "attrib.cli", "apps"),
    "attrib.activations": ("attrib.heads", "attrib.methods", "attrib.store", "attrib.engine", "attrib.render",
                           "attrib.evaluate", "attrib.cli", "apps"),
    "attrib.engine": ("attrib.render", "attrib.readers", "attrib.evaluate", "attrib.cli", "apps"),
    "attrib.render": ("attrib.store", "attrib.readers", "attrib.engine", "attrib.evaluate", "attrib.cli", "apps"),
    "apps": ("attrib.cli",),
}


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, with each imported name too (``from attrib import render`` -> attrib.render)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def _modules() -> list[tuple[str, Path]]:
    files = [*REPO_ROOT.glob("attrib/**/*.py"), *REPO_ROOT.glob("apps/*.py")]
    return [(".".join(p.relative_to(REPO_ROOT).with_suffix("").parts), p) for p in sorted(files)]


def _within(name: str, part: str) -> bool:
    return name == part or name.startswith(part + ".")


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_each_part_imports_only_what_its_wall_allows(part: str) -> None:
    assert any(_within(mod, part) for mod, _ in _modules()), f"no module of {part} found: nothing would be checked"
    found = [(mod, imp) for mod, p in _modules() if _within(mod, part) for imp in _imports(p)
             if any(_within(imp, bad) for bad in FORBIDDEN[part])]
    assert not found, f"{part} crosses its wall: {found}"


def test_the_library_never_imports_its_faces() -> None:
    """attrib.cli and apps/ call the library; nothing in the library calls them back (``python -m attrib`` is the
    one entry point that starts the CLI)."""
    found = [(mod, imp) for mod, p in _modules()
             if _within(mod, "attrib") and not _within(mod, "attrib.cli") and mod != "attrib.__main__"
             for imp in _imports(p) if _within(imp, "attrib.cli") or _within(imp, "apps")]
    assert not found, found


def test_the_trace_model_imports_no_other_part_at_module_level() -> None:
    """attrib.trace is the root every part imports; at import time it needs only the errors (its renderers are
    imported inside Attribution's methods, which is how an Attribution renders itself)."""
    tree = ast.parse((REPO_ROOT / "attrib" / "trace.py").read_text(encoding="utf-8"))
    top = {n.module for n in tree.body if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("attrib")}
    top |= {a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names if a.name.startswith("attrib")}
    assert top <= {"attrib.errors"}, top


def test_one_llm_client() -> None:
    """Every HTTP call to a model goes through attrib/llm.py (retries, timeouts, parsing in one place): no other
    part of the library or the app imports an HTTP client library."""
    clients = ("httpx", "openai", "requests", "aiohttp")
    found = [(mod, imp) for mod, p in _modules() if mod != "attrib.llm" for imp in _imports(p)
             if any(_within(imp, c) for c in clients)]
    assert not found, found
