"""The outcome a log states, in every reader: common words (success, failure, ...) in any case are read as the
outcome they mean, any other value is one error naming the file and the field; a labelled run with no outcome is a
failed run whatever its format (the rule lives in the trace model)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from attrib.cli import app
from attrib.errors import EXIT_BAD_INPUT, InputError
from attrib.readers import load_trace, read_path
from attrib.trace import Label, Step, Trace, parse_outcome

runner = CliRunner()

MESSAGES = [
    {"type": "human", "content": "Compute the refund for 1 of 4 items of a 120 USD order."},
    {"type": "ai", "name": "calculator", "content": "120 / 4 = 30 USD."},
    {"type": "ai", "name": "reviewer", "content": "Checked: 30 USD."},
]


def _chat(tmp_path: Path, name: str = "run.json", **fields: Any) -> Path:
    p = tmp_path / name
    p.write_text(json.dumps({"task": "refund", "messages": MESSAGES, **fields}))
    return p


def _kv(key: str, value: Any) -> dict[str, Any]:
    kind = "boolValue" if isinstance(value, bool) else "intValue" if isinstance(value, int) else "stringValue"
    return {"key": key, "value": {kind: value}}


def _otlp(tmp_path: Path, root_attrs: dict[str, Any], name: str = "run.json") -> Path:
    """Two spans: a root workflow span carrying ``root_attrs`` and one LLM call of agent 'planner' under it."""
    spans = [
        {"traceId": "a" * 32, "spanId": "0000000000000001", "parentSpanId": "", "name": "workflow",
         "startTimeUnixNano": "1000", "endTimeUnixNano": "5000",
         "attributes": [_kv("openinference.span.kind", "CHAIN"), _kv("input.value", "Book a table"),
                        *(_kv(k, v) for k, v in root_attrs.items())]},
        {"traceId": "a" * 32, "spanId": "0000000000000002", "parentSpanId": "0000000000000001", "name": "chat planner",
         "startTimeUnixNano": "2000", "endTimeUnixNano": "3000",
         "attributes": [_kv("openinference.span.kind", "LLM"), _kv("agent.name", "planner"),
                        _kv("output.value", "Booked for 6.")]},
    ]
    p = tmp_path / name
    p.write_text(json.dumps({"resourceSpans": [{"resource": {"attributes": []},
                                                "scopeSpans": [{"scope": {"name": "t"}, "spans": spans}]}]}))
    return p


def _whowhen(tmp_path: Path, **fields: Any) -> Path:
    p = tmp_path / "1.json"
    p.write_text(json.dumps({"question": "q", "question_ID": "x", "ground_truth": "4",
                             "history": [{"role": "user", "name": "A", "content": "hi"},
                                         {"role": "assistant", "name": "B", "content": "4"}],
                             "mistake_agent": "B", "mistake_step": "1", **fields}))
    return p


@pytest.mark.parametrize(("word", "outcome"), [
    ("success", "succeeded"), ("SUCCESS", "succeeded"), (" Passed ", "succeeded"), ("ok", "succeeded"),
    ("successful", "succeeded"), ("pass", "succeeded"), ("true", "succeeded"), ("succeeded", "succeeded"),
    ("failure", "failed"), ("Failed", "failed"), ("fail", "failed"), ("ERROR", "failed"), ("errored", "failed"),
    ("false", "failed"), ("unknown", "unknown"), ("None", "unknown"), ("null", "unknown"),
])
def test_chat_outcome_words(tmp_path: Path, word: str, outcome: str) -> None:
    """'success' used to be read as unknown, without a word: a successful run lost its 'not a cause' warning."""
    assert load_trace(_chat(tmp_path, outcome=word)).outcome == outcome


@pytest.mark.parametrize("value", ["bogus", "succes", 1, 0.5, ["failed"], {"status": "ok"}])
def test_an_unknown_outcome_is_refused_naming_file_and_field(tmp_path: Path, value: Any) -> None:
    path = _chat(tmp_path, outcome=value)
    with pytest.raises(InputError) as e:
        read_path(path)
    assert e.value.field == "outcome" and e.value.path == str(path)
    assert "succeeded" in e.value.message and "success" in e.value.message and "\n" not in str(e.value)


def test_the_cli_refuses_an_unknown_outcome_with_exit_3_and_stores_nothing(tmp_path: Path) -> None:
    bad = _chat(tmp_path, "bad.json", outcome="bogus")
    r = runner.invoke(app, ["traces", "show", str(bad)])
    assert r.exit_code == EXIT_BAD_INPUT and "outcome" in r.output and "'bogus'" in r.output, r.output
    store = tmp_path / "s.duckdb"
    good = _chat(tmp_path, "good.json", outcome="Success", id="good")
    r = runner.invoke(app, ["ingest", str(good), str(bad), "--store", str(store), "-q"])
    assert r.exit_code == EXIT_BAD_INPUT and "bad.json" in r.output
    r = runner.invoke(app, ["traces", "list", "--store", str(store), "--json", "-n", "0"])
    assert [(x["trace_id"], x["outcome"]) for x in map(json.loads, r.output.splitlines())] == [("good", "succeeded")]


def test_chat_flags_and_json_lines(tmp_path: Path) -> None:
    assert load_trace(_chat(tmp_path, is_correct=True)).outcome == "succeeded"
    assert load_trace(_chat(tmp_path, success="FAILED")).outcome == "failed"
    assert load_trace(_chat(tmp_path, outcome=None, is_correct=False)).outcome == "failed"  # null: not stated
    with pytest.raises(InputError) as e:
        read_path(_chat(tmp_path, success="maybe"))
    assert e.value.field == "success"
    p = tmp_path / "runs.jsonl"  # a trace a line: the field names the line
    p.write_text("\n".join(json.dumps({"id": f"r{i}", "messages": MESSAGES, "outcome": o})
                           for i, o in enumerate(["Success", "nope"])))
    with pytest.raises(InputError) as e:
        read_path(p)
    assert e.value.field == "line 2: outcome"


def test_otlp_outcome_attribute(tmp_path: Path) -> None:
    assert load_trace(_otlp(tmp_path, {"attrib.outcome": "success"})).outcome == "succeeded"
    assert load_trace(_otlp(tmp_path, {"attrib.outcome": True})).outcome == "succeeded"
    with pytest.raises(InputError) as e:
        read_path(_otlp(tmp_path, {"attrib.outcome": "bogus"}))
    assert e.value.field is not None and e.value.field.endswith("attributes[attrib.outcome]")


def test_whowhen_outcome_and_is_correct(tmp_path: Path) -> None:
    assert load_trace(_whowhen(tmp_path, is_correct="true")).outcome == "succeeded"  # a word, not only a boolean
    assert load_trace(_whowhen(tmp_path, outcome="Success")).outcome == "succeeded"  # was ignored
    assert load_trace(_whowhen(tmp_path, is_correct=False)).outcome == "failed"
    with pytest.raises(InputError) as e:
        read_path(_whowhen(tmp_path, is_correct="yes please"))
    assert e.value.field == "is_correct"


def test_a_labelled_run_is_failed_in_every_format(tmp_path: Path) -> None:
    """A labelled chat run was 'failed', the same run as OTLP with attrib.label.* stayed 'unknown'."""
    label = {"attrib.label.mistake_agent": "planner", "attrib.label.mistake_step": 1}
    otlp = load_trace(_otlp(tmp_path, label, "otlp.json"))
    chat = load_trace(_chat(tmp_path, mistake_agent="calculator", mistake_step=1))
    ww = load_trace(_whowhen(tmp_path))
    assert (otlp.outcome, chat.outcome, ww.outcome) == ("failed", "failed", "failed")
    # an outcome the log states is kept; no label, no outcome: unknown
    assert load_trace(_otlp(tmp_path, {**label, "attrib.outcome": "succeeded"}, "ok.json")).outcome == "succeeded"
    assert load_trace(_otlp(tmp_path, {}, "plain.json")).outcome == "unknown"
    # the rule is the trace model's: a hand-built trace, attrib JSON and a label added later keep it too
    steps = (Step(index=0, agent="a", content="x"),)
    t = Trace(id="t", source_format="attrib", steps=steps, label=Label(mistake_agent="a", mistake_step=0))
    assert t.outcome == "failed" and Trace.from_json(t.to_json()).outcome == "failed"
    bare = Trace(id="t", source_format="attrib", steps=steps)
    assert bare.outcome == "unknown"
    import msgspec

    assert msgspec.structs.replace(bare, label=Label(mistake_agent="a", mistake_step=0)).outcome == "failed"


def test_labelled_otlp_run_lists_as_failed(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    path = _otlp(tmp_path, {"attrib.label.mistake_agent": "planner", "attrib.label.mistake_step": 1})
    assert runner.invoke(app, ["ingest", str(path), "--store", str(store), "-q"]).exit_code == 0
    r = runner.invoke(app, ["traces", "list", "--store", str(store), "--outcome", "failed", "--json"])
    assert [json.loads(x)["outcome"] for x in r.output.splitlines()] == ["failed"], r.output


def test_parse_outcome_absent_and_booleans() -> None:
    assert parse_outcome(None) is None
    assert (parse_outcome(True), parse_outcome(False)) == ("succeeded", "failed")
    with pytest.raises(InputError) as e:
        parse_outcome("maybe", "f.json", "status")
    assert (e.value.path, e.value.field) == ("f.json", "status")


def test_traces_list_outcome_filter_takes_the_words_the_readers_take(tmp_path: Path) -> None:
    """The readers read "success" as succeeded, so `traces list --outcome success` was refused ("expected one of
    failed, succeeded, unknown") for the very word the user's log holds; it now filters by what the word means."""
    store = tmp_path / "s.duckdb"
    runs = tmp_path / "runs"
    runs.mkdir()
    _chat(runs, "good.json", outcome="success")
    _chat(runs, "bad.json", outcome="failure")
    assert runner.invoke(app, ["ingest", str(runs), "--store", str(store), "-q"]).exit_code == 0
    for word, want in (("success", ["chat-good"]), ("FAILURE", ["chat-bad"]), ("succeeded", ["chat-good"])):
        r = runner.invoke(app, ["traces", "list", "--store", str(store), "--outcome", word, "--json"])
        assert r.exit_code == 0, r.output
        assert [json.loads(x)["trace_id"] for x in r.output.splitlines()] == want, (word, r.output)
    r = runner.invoke(app, ["traces", "list", "--store", str(store), "--outcome", "maybe"])
    assert r.exit_code == 2 and "maybe" in r.output


def test_a_chat_label_names_a_magentic_one_agent_as_its_steps_do(tmp_path: Path) -> None:
    """Steps by "Orchestrator (thought)" are read as agent Orchestrator, but a label naming "Orchestrator (thought)"
    kept the raw name, so the run was refused as naming an agent that never speaks."""
    p = tmp_path / "m1.json"
    p.write_text(json.dumps({"task": "t", "mistake_agent": "Orchestrator (thought)", "mistake_step": 1, "messages": [
        {"role": "user", "name": "human", "content": "Find the year."},
        {"role": "assistant", "name": "Orchestrator (thought)", "content": "Ask WebSurfer to search."},
        {"role": "assistant", "name": "WebSurfer", "content": "1999."}]}))
    t = load_trace(p)
    assert t.label is not None and t.label.mistake_agent == "Orchestrator" and t.steps[1].agent == "Orchestrator"
