"""What a Streamlit Markdown element shows of its source: the app escapes text from runs (``md_escape``), and tests
compare what a user reads, e.g. an error box against the CLI's line; :func:`rich_text`: what a terminal shows of a
rich report."""

from __future__ import annotations

import re

WORD_JOINER = "\u2060"  # apps/inspector_data.WORD_JOINER: shows as nothing


def shown(source: str) -> str:
    """What Markdown shows of ``source``'s plain text: backslash escapes dropped, word joiners unseen, hard line
    breaks kept as written (two blanks and a newline)."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", source).replace(WORD_JOINER, "")


def rich_text(renderable: object, width: int = 300) -> str:
    """What a terminal ``width`` columns wide shows of a rich ``renderable`` (a report, a table), as plain text."""
    from rich.console import Console

    console = Console(width=width, record=True)
    console.print(renderable)
    return console.export_text()
