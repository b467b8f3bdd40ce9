"""`attrib fit` and `attrib eval traces` on a folder with several bad files: each is named on its own line, then the
command exits 3 without fitting or writing (they named only the first, so the next one turned up only after fixing
it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attrib.cli import app
from attrib.errors import AttribError, InputError
from attrib.evaluate.labelled import read_labelled

runner = CliRunner()


def _run(i: int) -> dict:
    """A labelled chat run (Who&When-style fields) of five steps."""
    q = f"What is {i} times 3?"
    msgs = [{"role": "user", "name": "user", "content": q},
            {"role": "assistant", "name": "planner", "content": f"Plan: solver computes, checker verifies. Task: {q}"},
            {"role": "assistant", "name": "solver", "content": f"The answer is {3 * i + 1}."},
            {"role": "assistant", "name": "checker", "content": f"Verified: {3 * i + 1}."},
            {"role": "assistant", "name": "planner", "content": f"Final answer: {3 * i + 1}"}]
    return {"task": q, "ground_truth": str(3 * i), "messages": msgs, "mistake_step": 2, "mistake_agent": "solver",
            "metadata": {"question_id": f"q{i}"}}


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """Three good runs, one whose label is past its history, one cut off mid-JSON."""
    d = tmp_path / "runs"
    d.mkdir()
    for i in range(3):
        (d / f"good{i}.json").write_text(json.dumps(_run(i)))
    (d / "ms_big.json").write_text(json.dumps({**_run(7), "mistake_step": 99}))
    (d / "trunc.json").write_text(json.dumps(_run(8))[:150])
    return d


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize("cmd", [["fit", "{d}", "--out", "{out}", "--no-pool"], ["eval", "traces", "{d}", "--no-pool"]])
def test_every_bad_file_is_named_and_nothing_is_done(mixed: Path, tmp_path: Path, cmd: list[str]) -> None:
    out = tmp_path / "ranker.json"
    r = runner.invoke(app, [a.format(d=mixed, out=out) for a in cmd])
    assert r.exit_code == 3, r.output
    lines = _error_lines(r.output)
    assert len(lines) == 2, r.output  # was one: the first bad file only
    assert any(str(mixed / "ms_big.json") in x and "mistake_step" in x and "99" in x for x in lines), r.output
    assert any(str(mixed / "trunc.json") in x for x in lines), r.output
    assert "2 of 5 trace file(s) could not be read" in r.output and "Traceback" not in r.output
    assert not out.exists()  # never fitted on the three good runs alone


def test_read_labelled_collects_every_bad_file_when_asked(mixed: Path) -> None:
    errors: list[AttribError] = []
    traces, skipped = read_labelled([str(mixed)], errors=errors)
    assert len(traces) == 3 and skipped == 0
    assert sorted(Path(e.path).name for e in errors if isinstance(e, InputError) and e.path) == ["ms_big.json",
                                                                                                 "trunc.json"]
    with pytest.raises(InputError):  # without a list: the first bad file raises, as before
        read_labelled([str(mixed)])
