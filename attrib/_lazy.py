"""Lazy re-exports for package ``__init__`` modules: the name is imported from its module on first access,
so ``import attrib`` (and the CLI's start-up) never pays for torch, transformers or dask."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

#: The package's own plumbing in its namespace: this helper and the ``from __future__ import annotations`` flag.
_PLUMBING = frozenset({"lazy_exports", "annotations"})


def lazy_exports(
    package: str, names: Mapping[str, str]
) -> tuple[Callable[[str], Any], list[str], Callable[[], list[str]]]:
    """A module-level ``__getattr__`` resolving ``names`` (exported name -> defining module), ``__all__``, and a
    ``__dir__`` that lists the lazy names too (so tab completion offers them before first use).

    ``__dir__`` leaves out the package's own plumbing (this helper and ``from __future__`` feature flags), so a
    user's tab completion and ``dir(package)`` show the API and the submodules, not ``annotations``."""

    def __getattr__(name: str) -> Any:
        """Import a lazily exported name from its module on first use (see ``__all__`` for the names)."""
        if name in names:
            return getattr(importlib.import_module(names[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        """The package's names, the lazy ones included before first use."""
        return sorted((set(vars(sys.modules[package])) - _PLUMBING) | set(names))

    return __getattr__, sorted(names), __dir__
