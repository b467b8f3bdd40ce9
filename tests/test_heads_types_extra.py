"""``Head`` (a (layer, head) pair) has one definition, attrib.heads.types; the modules that used to define their own
still export it, as the same object."""

from __future__ import annotations

import ast
from pathlib import Path

import attrib.heads
from attrib.heads import drift, localization, patching, types, weights


def test_head_is_defined_once_and_every_old_import_still_works() -> None:
    assert types.Head == tuple[int, int]
    assert patching.Head is types.Head and weights.Head is types.Head and localization.Head is types.Head
    from attrib.heads.localization import Head as from_localization
    from attrib.heads.patching import Head as from_patching
    from attrib.heads.weights import Head as from_weights

    assert from_patching is from_weights is from_localization is types.Head
    assert drift.top_heads.__annotations__["return"] == "list[Head]"
    folder = Path(attrib.heads.__file__).parent
    defined = [p.name for p in sorted(folder.glob("*.py"))
               for node in ast.walk(ast.parse(p.read_text()))
               if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "Head" for t in node.targets)]
    assert defined == ["types.py"]
