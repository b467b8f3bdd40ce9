"""Text from a trace inside Markdown, shown as written: the one escaper of the Markdown report and the inspector.

A run's text (agent names, step excerpts, span and file names, trace ids) is written by someone else. In a
Markdown report it must not turn into bold, links, images, HTML, headings or table cells. CommonMark lets a backslash
escape any ASCII punctuation, and every renderer drops that backslash when drawing. So the escape is a backslash,
and a library that escapes HTML (``html.escape``) would show ``&lt;`` on GitHub's raw view and break code spans.
No well-kept library escapes Markdown for display (markdown-it and mistune parse, they do not escape), hence
this module. The inspector adds Streamlit's own replacements on top (``apps/inspector_data.py``).
"""

from __future__ import annotations

import re

from attrib.display import visible

#: Characters Markdown reads wherever they stand: emphasis and strikethrough (``*`` ``~``), code, links and images
#: (`` ` `` ``[`` ``]``), HTML, autolinks and entities (``<`` ``>`` ``&``), mentions (``@``), math (``$``), table
#: cells (``|``) and the escape itself; runs of ``_``, except between two letters or digits, where they never make
#: emphasis (``Verification_Expert`` is left as written); and ``www.``, which starts a GFM link drawn from the raw
#: text, escapes and all. ``also`` adds characters a renderer reads beyond these (the inspector: Streamlit's ``:``).
_ANYWHERE = r"([\\`*~\[\]<>&$|@{also}])|(_+)|(?<![A-Za-z0-9])([Ww]{{3}})(\.)"
#: What starts a block at the start of a line: a heading, a list item, a setext underline (``#`` ``+`` ``-`` ``=``;
#: ``>``, ``*``, fences and tables are escaped anywhere), and an ordered list's ``1.`` / ``1)``.
_LINE_START = re.compile(r"([#+\-=])|(\d+)([.)])")
LINE_BREAK = "  \n"  # two spaces and a newline: a hard line break inside one paragraph or cell-free block


def escape_line(line: str, also: str = "") -> str:
    """One line of someone else's text, escaped so Markdown shows it as written (leading blanks dropped: four
    would start a code block, and HTML drops them anyway), its control characters as visible escapes
    (:func:`attrib.display.visible`). ``also``: more characters to escape wherever they stand."""

    def one(m: re.Match[str]) -> str:
        if m.group(1):
            return "\\" + m.group(1)
        if m.group(3):
            return m.group(3) + "\\."
        before = m.string[m.start() - 1] if m.start() > 0 else " "
        after = m.string[m.end()] if m.end() < len(m.string) else " "
        run = m.group(2)
        return run if before.isalnum() and after.isalnum() else "\\_" * len(run)

    out = re.sub(_ANYWHERE.format(also=re.escape(also)), one, visible(line).lstrip(" \t"))
    if (m := _LINE_START.match(out)) is not None:
        out = ("\\" + m.group(1) if m.group(1) else m.group(2) + "\\" + m.group(3)) + out[m.end():]
    return out


def lines_of(text: object) -> list[str]:
    """``text``'s lines, whatever the line ends (``\\r\\n``, ``\\r``, ``\\n``)."""
    return re.split(r"\r\n|\r|\n", str(text))


def md_escape(text: object) -> str:
    """``text`` escaped for Markdown, its line breaks kept as hard line breaks."""
    return LINE_BREAK.join(escape_line(line) for line in lines_of(text))


def md_inline(text: object) -> str:
    """``text`` escaped for one line of Markdown (a table cell, a heading, a list item): line breaks and runs of
    blanks become one space, since a line break would end the row or the item."""
    return escape_line(" ".join(visible(text).split()))


def md_code(text: object) -> str:
    """``text`` as an inline code span (`` `text` ``) that shows it as written: a backtick in it (a trace id, a file
    name) would end a plain span early, so the span's fence is one backtick longer than the longest run inside, with a
    space inside each end where the text starts or ends with a backtick. Line breaks become spaces, control
    characters visible escapes."""
    t = " ".join(visible(text).splitlines())
    fence = "`" * (max((len(r) for r in re.findall(r"`+", t)), default=0) + 1)
    pad = " " if t[:1] == "`" or t[-1:] == "`" or (t[:1] == " " and t[-1:] == " " and t.strip()) else ""
    return f"{fence}{pad}{t}{pad}{fence}"


def md_quote(text: object) -> str:
    """``text`` as a Markdown block quote, every line of it inside (a blank line would otherwise end the quote and
    show the rest as the report's own text)."""
    return "\n".join(f"> {escape_line(line)}".rstrip() for line in lines_of(text))
