"""The reader plugin interface: sniff a file's bytes, then turn them into traces."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from attrib.trace import Trace


class Reader(Protocol):
    """One input format. ``sniff`` scores how likely ``data`` is this format (0 = no, 1 = sure)."""

    name: str

    def sniff(self, data: bytes, path: Path) -> float: ...

    def read(self, data: bytes, path: Path) -> list[Trace]: ...
