"""Lazy re-exports for package ``__init__`` modules: the name is imported from its module on first access,
so ``import attrib`` (and the CLI's start-up) never pays for torch, transformers or dask."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, names: Mapping[str, str]
) -> tuple[Callable[[str], Any], list[str], Callable[[], list[str]]]:
    """A module-level ``__getattr__`` resolving ``names`` (exported name -> defining module), ``__all__``, and a
    ``__dir__`` that lists the lazy names too (so tab completion offers them before first use)."""
    import sys

    def __getattr__(name: str) -> Any:
        if name in names:
            return getattr(importlib.import_module(names[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, sorted(names), __dir__
