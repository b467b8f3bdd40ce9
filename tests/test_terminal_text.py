"""A run's text never drives the terminal: ESC sequences, OSC-8 links and other control characters in a step, an agent
name or a trace id are shown as visible escapes (``\\x1b``) by every report (rich, ``--markdown``, the summary table,
``traces show`` and ``traces list``); and ``traces show --full`` shows a tool call's arguments whole."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attrib.cli import app
from attrib.display import visible

runner = CliRunner()

#: what must never reach the output: C0 controls but newline and tab, DEL, C1 controls, bidi overrides
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
#: clear the screen, red text, an OSC-8 link disguising its target, a bell, a C1 CSI, a right-to-left override, and a
#: carriage return that would overwrite the line
HOSTILE = ("The answer is 5 \x1b[2J\x1b[31mRED\x1b[0m \x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\ "
           "bell\x07 csi\x9b2J rtl\u202eexe.txt done\rOVERWRITE")
AGENT = "Math\x1b[31m_Expert"


def _run(tmp_path: Path) -> Path:
    """A Who&When-style failed run whose decisive-looking step and its author's name carry control sequences."""
    path = tmp_path / "ansi.json"
    path.write_text(json.dumps({
        "is_correct": False, "question": "What is 2+2?", "question_ID": "ansi", "ground_truth": "4",
        "history": [{"content": "Task: What is 2+2?", "role": "assistant", "name": "Planner_Expert"},
                    {"content": HOSTILE, "role": "assistant", "name": AGENT},
                    {"content": "Final answer: 5. TERMINATE", "role": "assistant", "name": "Checker_Expert"}]}))
    return path


def _clean(out: str) -> None:
    assert not RAW.search(out), repr(RAW.findall(out))
    assert "\\x1b[2J" in out or "\\\\x1b\\[2J" in out, out  # shown (Markdown escapes the backslash and bracket)


def test_visible_shows_controls_as_escapes_and_keeps_text() -> None:
    assert visible("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert visible("csi\x9b bell\x07 del\x7f nul\x00") == "csi\\x9b bell\\x07 del\\x7f nul\\x00"
    assert visible("rtl\u202eabc") == "rtl\\u202eabc"
    assert visible("line\r\nnext\rthird\ttab") == "line\nnext\nthird\ttab"  # a CR is a line end, not an overwrite
    assert visible("émoji 👩‍💻 [x] \\ ok") == "émoji 👩‍💻 [x] \\ ok"  # printable text (a ZWJ too) as written


def test_rich_report_shows_escapes(tmp_path: Path) -> None:
    r = runner.invoke(app, ["analyze", str(_run(tmp_path))], terminal_width=200)
    assert r.exit_code == 0, r.output
    _clean(r.output)
    assert "Math\\x1b[31m_Expert" in r.output  # the agent name, in the header, table, evidence and reason


def test_markdown_report_shows_escapes(tmp_path: Path) -> None:
    r = runner.invoke(app, ["analyze", str(_run(tmp_path)), "--markdown"])
    assert r.exit_code == 0, r.output
    _clean(r.output)
    assert "Math\\\\x1b\\[31m_Expert" in r.output  # the Markdown escaper's backslashes on top of the escape


def test_summary_table_shows_escapes(tmp_path: Path) -> None:
    run = _run(tmp_path)
    (tmp_path / "copy.json").write_text(run.read_text())
    r = runner.invoke(app, ["analyze", str(tmp_path)], terminal_width=200)
    assert r.exit_code == 0, r.output
    assert "2 runs" in r.output
    _clean(r.output)


def test_traces_show_and_list_show_escapes(tmp_path: Path) -> None:
    run = _run(tmp_path)
    for extra in ([], ["--full"]):
        r = runner.invoke(app, ["traces", "show", str(run), *extra], terminal_width=200)
        assert r.exit_code == 0, r.output
        _clean(r.output)
        assert "Math\\x1b[31m_Expert" in r.output
    store = tmp_path / "s.duckdb"
    assert runner.invoke(app, ["ingest", str(run), "--store", str(store), "-q"]).exit_code == 0
    r = runner.invoke(app, ["traces", "list", "--store", str(store)], terminal_width=200)
    assert r.exit_code == 0, r.output
    assert not RAW.search(r.output) and "Math\\x1b[31m_Expert" in r.output, r.output


@pytest.mark.parametrize("full", [False, True])
def test_traces_show_full_shows_call_arguments_whole(tmp_path: Path, full: bool) -> None:
    """The planted mistake is in the arguments' tail (the date): ``--full`` cut it at half the width too."""
    args = json.dumps({"origin": "CDG", "destination": "HND", "passengers": 2, "cabin": "economy",
                       "date": "2023-05-14"})
    path = tmp_path / "flights.json"
    path.write_text(json.dumps({"outcome": "failed", "messages": [
        {"role": "user", "content": "Book a flight from Paris to Tokyo on 2024-05-14."},
        {"role": "assistant", "name": "booker", "content": "",
         "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "search_flights", "arguments": args}}]},
        {"role": "tool", "tool_call_id": "c1", "name": "search_flights", "content": "no flights"}]}))
    r = runner.invoke(app, ["traces", "show", str(path), "--width", "60", *(["--full"] if full else [])],
                      terminal_width=300)
    assert r.exit_code == 0, r.output
    assert ('"date": "2023-05-14"' in r.output) == full, r.output
    if not full:
        assert "…" in r.output  # cut to half the width, as before
