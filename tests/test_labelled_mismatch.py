"""`attrib eval traces` (``evaluate_labelled``) says in one line how many labels name an agent that did not write the
labelled step, and the first one's file and step."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from attrib.cli import app
from attrib.evaluate.labelled import evaluate_labelled, label_mismatch_note, read_labelled

runner = CliRunner()


def _run(i: int, step: int) -> dict:
    """A labelled LangGraph-style run; step 3 is the get_order tool result, step 4 calculator's."""
    return {"id": f"run-{i}", "task": f"refund task {i}", "mistake_agent": "calculator", "mistake_step": step,
            "messages": [
                {"type": "human", "content": f"Refund 1 of 4 items of a {100 + i} USD order."},
                {"type": "ai", "name": "supervisor", "content": "order_lookup, then calculator."},
                {"type": "ai", "name": "order_lookup", "content": "",
                 "tool_calls": [{"name": "get_order", "args": {"id": i}, "id": f"c{i}"}]},
                {"type": "tool", "name": "get_order", "tool_call_id": f"c{i}", "content": "[45, 25, 25, 25]"},
                {"type": "ai", "name": "calculator", "content": f"{100 + i} / 4 USD."},
                {"type": "ai", "name": "reviewer", "content": "Checked."}]}


def _folder(tmp_path: Path) -> Path:
    d = tmp_path / "runs"
    d.mkdir()
    for i, step in enumerate([4, 3, 4, 3]):  # run-1 and run-3 are off by one
        (d / f"r{i}.json").write_text(json.dumps(_run(i, step)))
    return d


def test_the_note_counts_and_names_the_first_file(tmp_path: Path) -> None:
    d = _folder(tmp_path)
    files: dict[str, str] = {}
    traces, skipped = read_labelled([str(d)], files=files)
    assert skipped == 0 and files["run-1"] == str(d / "r1.json")
    note = label_mismatch_note(traces, files)
    assert note is not None and "\n" not in note
    assert note.startswith("2 of 4 labels do not name the agent attrib blames for the labelled step; the first, "
                           f"{d / 'r1.json'} (trace run-1): step 3 was written by get_order, a tool answering "
                           "order_lookup, not by calculator; calculator's nearest step is 4"), note
    assert str(label_mismatch_note(traces)).split("; the first, ")[1].startswith("trace run-1:")  # no files: the id
    assert label_mismatch_note([t for t in traces if t.id in ("run-0", "run-2")]) is None


def test_evaluate_labelled_and_eval_traces_carry_the_note(tmp_path: Path) -> None:
    d = _folder(tmp_path)
    traces, _ = read_labelled([str(d)])
    notes = evaluate_labelled(traces, k=2, pool_who_and_when=False)["notes"]
    assert any(n.startswith("2 of 4 labels do not name the agent attrib blames for the labelled step") for n in notes), notes
    r = runner.invoke(app, ["eval", "traces", str(d), "--no-pool", "--folds", "2"], env={"COLUMNS": "400"})
    assert r.exit_code == 0, r.output
    assert "note: 2 of 4 labels do not name the agent attrib blames for the labelled step; the first, " in r.output, r.output
    assert str(d / "r1.json") in r.output.replace("\n", "")  # the CLI names the file, not only the trace id


def test_fit_warns_of_labels_whose_agent_did_not_write_the_step(tmp_path: Path) -> None:
    """`attrib fit` trained on off-by-one labels without a word; it now warns first, naming the file."""
    d = _folder(tmp_path)
    for i, step in enumerate([4, 3, 4, 3]):  # fit needs a few more runs than eval traces
        (d / f"s{i}.json").write_text(json.dumps({**_run(10 + i, step), "id": f"run-1{i}"}))
    r = runner.invoke(app, ["fit", str(d), "--no-pool", "--out", str(tmp_path / "r.json")], env={"COLUMNS": "400"})
    assert r.exit_code == 0, r.output
    assert "warning: 4 of 8 labels do not name the agent attrib blames for the labelled step; the first, " in r.output
    assert str(d / "r1.json") in r.output.replace("\n", "")
