"""Lazy re-exports for package ``__init__`` modules: the name is imported from its module on first access,
so ``import attrib`` (and the CLI's start-up) never pays for torch, transformers or dask."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, names: Mapping[str, str]) -> tuple[Callable[[str], Any], list[str]]:
    """A module-level ``__getattr__`` resolving ``names`` (exported name -> defining module) and ``__all__``."""

    def __getattr__(name: str) -> Any:
        if name in names:
            return getattr(importlib.import_module(names[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__, sorted(names)
