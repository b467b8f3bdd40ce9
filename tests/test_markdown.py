"""The Markdown report shows a run's text as written: no bold, links, headings, HTML or extra table cells from it."""

from __future__ import annotations

import html
import re

import pytest
from markdown_it import MarkdownIt

from attrib.markdown import md_code, md_escape, md_inline, md_quote
from attrib.methods import analyze
from attrib.render import attribution_markdown, verdict_notes
from attrib.trace import Step, Trace

NASTY = ("**Bold**_Expert", "[click](javascript:alert(1))", "# not a heading", "| a | b |", "<script>x</script>",
         "`code` and ``more``", "~~gone~~", "www.example.com", "@team", "$x^2$", "1. not a list", "&amp;",
         "![img](http://x/y.png)", "_emph_ *emph*", "back\\slash")
GFM = MarkdownIt("commonmark").enable(["table", "strikethrough", "linkify"])


def _drawn(md: str) -> str:
    return GFM.render(md)


def _text_of(html_text: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", html_text))


@pytest.mark.parametrize("text", NASTY)
def test_each_escaper_draws_the_text_as_written(text: str) -> None:
    for escaped in (md_escape(text), md_inline(text)):
        drawn = _drawn(escaped)
        assert _text_of(drawn).strip() == text.strip(), (escaped, drawn)
        assert not re.search(r"<(a|strong|em|h\d|script|img|del|ol|ul|table|code)\b", drawn), drawn
    drawn = _drawn(md_code(text))
    assert drawn.count("<code>") == 1 and _text_of(drawn).strip() == " ".join(text.split()).strip()


def test_a_quote_keeps_every_line_of_the_step_inside_it() -> None:
    drawn = _drawn(md_quote("first line\n\n# second\n- third"))
    assert drawn.count("<blockquote>") == 1 and "<h1>" not in drawn and "<ul>" not in drawn
    inside = drawn.split("<blockquote>")[1].split("</blockquote>")[0]
    assert all(w in inside for w in ("first line", "# second", "- third"))


def test_a_report_on_a_run_of_nasty_text_draws_only_its_own_structure() -> None:
    """Before, the report escaped HTML and ``|`` only: an agent ``**Bold**_Expert`` was drawn bold, a step's
    ``[click](javascript:…)`` as a link and a line ``# …`` in the quoted step as a heading of the report."""
    agents = ("**Bold**_Expert", "[click](javascript:alert(1))", "Planner")
    steps = [Step(index=0, agent="Planner", content="Plan the trip. " + " ".join(NASTY))]
    steps += [Step(index=i, agent=agents[i % 3], content="\n".join(NASTY[i:] + NASTY[:i])) for i in range(1, 7)]
    t = Trace(id="run `x` *1*", source_format="attrib", steps=tuple(steps))
    a = analyze(t, top_k=7)
    drawn = _drawn(attribution_markdown(a, t))
    assert drawn.count("<h2>") == 1 and "<h1>" not in drawn
    assert not re.search(r"<(a|em|script|img|del|ol|ul)\b", drawn), drawn
    assert drawn.count("<table>") == 2 and drawn.count("<blockquote>") >= 1
    assert all(row.count("<td>") in (2, 4) for row in re.findall(r"<tr>(.*?)</tr>", drawn, re.S) if "<td>" in row)
    bold = re.findall(r"<strong>(.*?)</strong>", drawn)
    warnings = tuple(note[:20] for note, level in verdict_notes(a, 7) if level == "warning")  # the report's own
    assert bold and all(b.startswith(("Decisive step", "Step set", "Flow", "Signals", "Why", "First", "Shapley",
                                      *warnings)) for b in bold), bold
    shown = _text_of(drawn)
    for agent in agents:
        assert agent in shown
    assert "run `x` *1*" in shown  # the id, in a code span the backticks cannot end
