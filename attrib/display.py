"""A run's text made safe to display: control characters as visible escapes, for every face that shows it.

A run's text (LLM output that echoes web pages, tool output, agent names) is written by someone else. Printed to a
terminal, an ESC sequence in it clears the screen, recolours what follows, draws a hyperlink under other words
(OSC 8) or a carriage return overwrites the line, so the text could print a fake verdict; in a Markdown report the
bytes travel on to whoever renders it. :func:`visible` is the one function every renderer (the rich and Markdown
reports, ``attrib traces show`` and ``list``, the summary table, :mod:`attrib.markdown` and so the inspector) passes
run text through. It lives apart from :mod:`attrib.markdown` because the terminal faces need it without Markdown.
"""

from __future__ import annotations

import re

#: C0 controls but tab and newline, DEL, C1 controls, and the bidirectional overrides and isolates (which reorder
#: what is drawn, "Trojan Source"); a carriage return is a line end (below), not drawn as an escape.
_CONTROL = re.compile("[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CR = re.compile(r"\r\n?")


def _escape(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def visible(text: object) -> str:
    """``text`` with each control character shown as its escape (ESC as ``\\x1b``), newline and tab kept, and a
    carriage return read as the line end it is in ``\\r\\n`` and old Mac files (a lone one would return to the start
    of the line and let the rest overwrite what came before)."""
    return _CONTROL.sub(_escape, _CR.sub("\n", str(text)))
