"""``attrib traces list`` in a narrow terminal: the agents stay readable (they were cut to "a…" at 80 columns), the
columns left out are named, tools are listed apart from the agents."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from attrib.cli import app

runner = CliRunner()

RUNS = {
    # the refund run of tests/fixtures, unlabelled: a tool among the agents
    "lg_refund.json": {k: v for k, v in json.loads((Path(__file__).parent / "fixtures" / "lg_refund.json").read_text())
                       .items() if not k.startswith("mistake_")},
    "plain.json": {"id": "a1b2c3d4e5f60718293a4b5c6d7e8f90", "task": "Book a table for 6 people in Berlin.",
                   "messages": [{"name": n, "content": f"{n} did its part"}
                                for n in ("booking-bot", "planner", "extractor", "searcher", "booker")]},
}


@pytest.fixture
def store(tmp_path: Path) -> Path:
    for name, obj in RUNS.items():
        (tmp_path / name).write_text(json.dumps(obj))
    path = tmp_path / "s.duckdb"
    r = runner.invoke(app, ["ingest", *(str(tmp_path / n) for n in RUNS), "--store", str(path), "-q"])
    assert r.exit_code == 0, r.output
    return path


def _in_terminal(monkeypatch: pytest.MonkeyPatch, width: int) -> io.StringIO:
    """``traces list`` printing to a terminal ``width`` columns wide."""
    import attrib.cli._common as common
    import attrib.cli.traces as traces

    out = io.StringIO()
    term = Console(file=out, force_terminal=True, width=width, color_system=None)
    monkeypatch.setattr(traces, "console", term)
    monkeypatch.setattr(common, "console", term)
    return out


@pytest.mark.parametrize("width", [80, 100])
def test_agents_stay_readable_in_a_narrow_terminal(store: Path, monkeypatch: pytest.MonkeyPatch, width: int) -> None:
    out = _in_terminal(monkeypatch, width)
    r = runner.invoke(app, ["traces", "list", "--store", str(store)])
    assert r.exit_code == 0, r.output
    text = out.getvalue()
    lines = text.splitlines()
    assert max(map(len, lines)) <= width
    words = {w.strip(",") for line in lines for w in line.replace("│", " ").split()}
    for agent in ("booking-bot", "planner", "extractor", "searcher", "booker", "supervisor", "order_lookup",
                  "calculator", "reviewer", "get_order"):
        assert agent in words, (agent, text)  # whole, not "b…"
    assert "a1b2c3d4e5f60718293a4b5c6d7e8f90" in text  # ids whole: they are copied into commands
    left = "task and source" if width < 100 else "task"
    assert f"({left} left out at this width: 120 columns show" in text, text
    assert ("source" in lines[2]) == (width >= 100)


def test_every_column_in_a_wide_terminal_and_when_piped(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    piped = runner.invoke(app, ["traces", "list", "--store", str(store)], env={"COLUMNS": "80"}).output
    assert "Book a table for 6 people in Berlin." in piped and "left out" not in piped
    out = _in_terminal(monkeypatch, 160)
    assert runner.invoke(app, ["traces", "list", "--store", str(store)]).exit_code == 0
    text = out.getvalue()
    assert "task" in text and "source" in text and "left out" not in text and "Book a table" in text


def test_tools_are_listed_apart_and_match_agent(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = _in_terminal(monkeypatch, 160)
    assert runner.invoke(app, ["traces", "list", "--store", str(store), "--agent", "get_order"]).exit_code == 0
    text = out.getvalue()
    assert "tools: get_order" in text and "1 of 1" in text
    assert "order_lookup, get_order" not in text  # not among the agents
    rows = [json.loads(x) for x in runner.invoke(app, ["traces", "list", "--store", str(store), "--json"])
            .output.splitlines()]
    assert {r["trace_id"]: r["tools"] for r in rows} == {"a1b2c3d4e5f60718293a4b5c6d7e8f90": [],
                                                          "chat-lg_refund": ["get_order"]}


def test_show_from_the_store_reads_the_steps_around_a_label_in_one_query(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The label check of `traces show` read the steps it needed one query each (up to ~27, each joining the
    activations); it reads the window around the labelled step at once, and a tool step's far parent alone."""
    from attrib.store import Store

    msgs = [{"name": "planner", "content": "plan", "tool_calls": [{"name": "run_tool", "args": {}, "id": "c0"}]}]
    msgs += [{"name": "Computer_terminal", "content": f"out {i}"} for i in range(1, 60)]
    msgs[40] = {"type": "tool", "name": "run_tool", "tool_call_id": "c0", "content": "late answer"}
    path = tmp_path / "long.json"
    path.write_text(json.dumps({"task": "t", "mistake_agent": "reviewer", "mistake_step": 40,
                                "messages": msgs + [{"name": "reviewer", "content": "ok"}]}))
    store = tmp_path / "s.duckdb"
    assert runner.invoke(app, ["ingest", str(path), "--store", str(store), "-q"]).exit_code == 0
    calls: list[tuple[int, int | None]] = []
    real = Store.get_steps

    def counted(self: Store, trace_id: str, start: int = 0, stop: int | None = None) -> tuple:
        calls.append((start, stop))
        return real(self, trace_id, start, stop)

    monkeypatch.setattr(Store, "get_steps", counted)
    r = runner.invoke(app, ["traces", "show", "chat-long", "--store", str(store), "--steps", "0-1"],
                      env={"COLUMNS": "250"})
    assert r.exit_code == 0, r.output
    assert "warning: step 40 was written by run_tool, a tool answering planner, not by reviewer" in r.output
    assert calls == [(0, 2), (20, 44)]  # the steps shown, then the label's window (its parent, step 0, was shown)


def test_show_picks_one_trace_of_a_file_of_several(tmp_path: Path) -> None:
    """An OTLP export holds every trace the collector saw: `traces show FILE` said only "expected one trace, found 2".
    It now lists the ids and `--trace ID` picks one; a wrong id names the ids there are."""
    from attrib.paths import REPO_ROOT

    text = (REPO_ROOT / "traces" / "otlp_agents.json").read_text()
    first = json.loads(text)
    other = json.loads(text.replace("5b8efff798038103d269b633813fc60c", "0123456789abcdef0123456789abcdef"))
    f = tmp_path / "export.json"
    f.write_text(json.dumps({"resourceSpans": first["resourceSpans"] + other["resourceSpans"]}))
    r = runner.invoke(app, ["traces", "show", str(f)])
    assert r.exit_code == 3 and "holds 2 traces (5b8efff798038103d269b633813fc60c, 0123456789abcdef0123456789abcdef)" \
        in r.output and "--trace ID" in r.output, r.output
    r = runner.invoke(app, ["traces", "show", str(f), "--trace", "0123456789abcdef0123456789abcdef"])
    assert r.exit_code == 0 and r.output.startswith("0123456789abcdef0123456789abcdef"), r.output
    r = runner.invoke(app, ["traces", "show", str(f), "--trace", "0123456789abcdef0123456789abcdef", "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["id"] == "0123456789abcdef0123456789abcdef"
    r = runner.invoke(app, ["traces", "show", str(f), "--trace", "0123456"])  # a unique start of an id
    assert r.exit_code == 0 and r.output.startswith("0123456789abcdef0123456789abcdef"), r.output
    r = runner.invoke(app, ["traces", "show", str(f), "--trace", "nope"])
    assert r.exit_code == 2 and "--trace: no trace 'nope' in the file" in r.output, r.output


def test_show_says_a_run_is_partial_and_what_a_span_recovered_from(tmp_path: Path) -> None:
    """A partial OTLP run (a remote parent) and an exception a span recovered from were in the trace's metadata but
    nowhere in `traces show`; a verdict on a partial run warns that the cause may be in the missing spans."""
    from attrib.methods import analyze
    from attrib.readers import load_trace
    from attrib.render import attribution_markdown

    conv = Path(__file__).parent / "fixtures" / "otlp_conv"
    r = runner.invoke(app, ["traces", "show", str(conv / "remote_parent.json")])
    assert r.exit_code == 0 and "partial: 1 parent span(s) not in the file (00f067aa0ba902b7), 1 of them remote" \
        in r.output and "[error]" in r.output and "[error: error]" not in r.output, r.output
    trace = load_trace(conv / "remote_parent.json")
    verdict = analyze(trace)
    assert verdict.evidence["partial_trace"] == {"missing_parents": 1, "remote_parents": 1}
    assert "Partial run: 1 parent span is not in the file (1 of them remote" in attribution_markdown(verdict, trace)
    doc = json.loads((conv / "genai_run.json").read_text())
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                if span["name"].startswith("execute_tool"):
                    span["events"] = [{"name": "exception", "timeUnixNano": span["startTimeUnixNano"], "attributes": [
                        {"key": "exception.type", "value": {"stringValue": "ConnectionResetError"}},
                        {"key": "exception.message", "value": {"stringValue": "peer reset, retried"}}]}]
                    break
    f = tmp_path / "retried.json"
    f.write_text(json.dumps(doc))
    traces = json.loads(runner.invoke(app, ["analyze", str(f), "--json"]).output)
    tid = traces[0]["trace_id"]
    r = runner.invoke(app, ["traces", "show", str(f), "--trace", tid], env={"COLUMNS": "250"})
    assert r.exit_code == 0 and "[recovered: ConnectionResetError: peer reset, retried]" in r.output, r.output


def test_list_shows_a_task_with_brackets_as_written(tmp_path: Path) -> None:
    """rich read the task cell as markup: "see [docs](x) :red[now]" lost its bracketed words."""
    task = "Check [docs](javascript:alert(1)) and :red[now] for [bold]x[/bold]."
    (tmp_path / "b.json").write_text(json.dumps({"id": "brackets", "task": task, "messages": [
        {"name": "a", "content": "done"}]}))
    path = tmp_path / "s.duckdb"
    assert runner.invoke(app, ["ingest", str(tmp_path / "b.json"), "--store", str(path), "-q"]).exit_code == 0
    out = runner.invoke(app, ["traces", "list", "--store", str(path)], env={"COLUMNS": "250"}).output
    assert task in out, out


def test_stored_verdicts_are_listed_and_shown(tmp_path: Path) -> None:
    """`analyze --all --store` saved verdicts that no command printed (only the app or a Parquet export showed them):
    `traces list --method` gives each run's, `traces show` every stored one."""
    from attrib.paths import traces_dir

    store = tmp_path / "s.duckdb"
    demo = traces_dir() / "demo_whowhen.json"
    assert runner.invoke(app, ["ingest", str(demo), str(traces_dir() / "chat_langgraph.json"), "--store", str(store),
                               "-q"]).exit_code == 0
    r = runner.invoke(app, ["analyze", "whowhen-algorithm-demo_whowhen", "--store", str(store), "--save"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["traces", "list", "--store", str(store), "--method", "learned"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    demo_row = next(line for line in r.output.splitlines() if "demo_whowhen" in line)
    other_row = next(line for line in r.output.splitlines() if "chat_langgraph" in line)
    assert "step 1 by" in demo_row and "verdict (learned)" in r.output and "confidence 54%" in r.output
    assert "│ -" in other_row  # no stored verdict
    rows = [json.loads(x) for x in runner.invoke(app, ["traces", "list", "--store", str(store), "--method", "learned",
                                                       "--json"]).output.splitlines()]
    got = {x["trace_id"]: x["verdict"] for x in rows}
    assert got["chat-chat_langgraph"] is None
    assert (got["whowhen-algorithm-demo_whowhen"]["step"], got["whowhen-algorithm-demo_whowhen"]["agent"]) == (
        1, "UnitConversion_Expert")
    for extra in ([], ["--steps", "0-2"]):  # a whole trace, and a window of it, read differently from the store
        r = runner.invoke(app, ["traces", "show", "whowhen-algorithm-demo_whowhen", "--store", str(store), *extra],
                          env={"COLUMNS": "200"})
        assert "stored verdict (learned): step 1 by UnitConversion_Expert, confidence 54%" in r.output, r.output
    # a Who&When run the shipped ranker was fitted on: its stored verdict says so beside the annotation
    from attrib.paths import who_and_when_dir

    ww = who_and_when_dir() / "Hand-Crafted" / "1.json"
    assert runner.invoke(app, ["ingest", str(ww), "--store", str(store), "-q"]).exit_code == 0
    assert runner.invoke(app, ["analyze", "whowhen-hand-1", "--store", str(store), "--save"]).exit_code == 0
    r = runner.invoke(app, ["traces", "show", "whowhen-hand-1", "--store", str(store)], env={"COLUMNS": "300"})
    assert "in sample (the ranker was fitted on this run)" in " ".join(r.output.split()), r.output


def test_show_of_a_missing_file_with_trace_says_the_file_is_missing(tmp_path: Path) -> None:
    """`traces show export.json --trace ID` for a file that is not there explained --trace (exit 2) instead of
    saying the file is missing (exit 3), as it does without --trace (walkthrough w6 #8)."""
    missing = tmp_path / "export.json"
    r = runner.invoke(app, ["traces", "show", str(missing), "--trace", "5b8efff7", "--store", str(tmp_path / "s.duckdb")])
    assert r.exit_code == 3 and f"{missing}: no such file" in r.output, r.output


def test_show_reads_a_run_piped_in_on_standard_input() -> None:
    """`cat run.json | attrib traces show - --json` looked for a stored trace '-' (exit 4), though `analyze -` and
    `ingest -` read standard input (walkthrough w8 #7)."""
    from attrib.paths import traces_dir

    data = (traces_dir() / "demo_whowhen.json").read_text()
    r = runner.invoke(app, ["traces", "show", "-", "--json"], input=data)
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["steps"][1]["agent"] == "UnitConversion_Expert"
    r = runner.invoke(app, ["traces", "show", "-"], input=data, env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "UnitConversion_Expert" in r.output
