"""Types shared by the head modules (no imports of theirs, so any of them can import it without a cycle)."""

from __future__ import annotations

#: An attention head: (layer, head index within the layer), both from 0.
Head = tuple[int, int]

__all__ = ["Head"]
