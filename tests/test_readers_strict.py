"""Bad input the readers once took silently or misreported: each is refused by its field, in one line, or read as
it should be (file names that are not UTF-8, attrib's JSON with its keys in another order, real Who&When logs)."""

from __future__ import annotations

import copy
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from typer.testing import CliRunner

from attrib.cli import app
from attrib.errors import EXIT_BAD_INPUT, InputError
from attrib.readers import detect, load_trace, read_path, read_paths

runner = CliRunner()
FIXTURES = Path(__file__).parent / "fixtures" / "strict"


def _write(path: Path, obj: Any) -> Path:
    path.write_text(json.dumps(obj))
    return path


def _error(path: Path) -> InputError:
    with pytest.raises(InputError) as e:
        read_path(path)
    assert "\n" not in str(e.value)
    return e.value


# --------------------------------------------------------------------------- 1: file names that are not UTF-8


def _odd_name(folder: Path, raw: bytes) -> Path:
    """``folder`` / a file name with bytes that are not UTF-8 (skips where the file system refuses one)."""
    p = folder / os.fsdecode(raw)
    try:
        p.write_bytes(b"")
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system takes no file names that are not UTF-8")
    return p


def test_ids_from_file_names_that_are_not_utf8_are_text(tmp_path: Path, bundled: Path) -> None:
    demo = (bundled / "demo_whowhen.json").read_bytes()
    e9, e8 = _odd_name(tmp_path, b"good\xe9.json"), _odd_name(tmp_path, b"good\xe8.json")
    e9.write_bytes(demo)
    e8.write_bytes(demo)
    t9, t8 = read_path(e9)[0], read_path(e8)[0]
    assert t9.id == "whowhen-algorithm-good\\xe9" and t8.id == "whowhen-algorithm-good\\xe8"  # apart, as the names
    assert msgspec.json.decode(msgspec.json.encode(t9), type=type(t9)) == t9  # encodes: the store and JSON take it
    t9.check()  # with the type pass, which encodes the trace
    chat = _odd_name(tmp_path, b"log\xff.jsonl")
    chat.write_bytes((bundled / "chat_autogen.jsonl").read_bytes())
    assert read_path(chat)[0].id == "chat-log\\xff"
    spans = _odd_name(tmp_path, b"spans\xfe.json")  # a flat span list names no trace: the file's stem does
    spans.write_text(json.dumps([{"span_id": "1", "name": "agent", "attributes": {"agent.name": "a"}}]))
    assert read_path(spans)[0].id == "spans\\xfe"


def test_analyze_reads_a_file_whose_name_is_not_utf8(tmp_path: Path, bundled: Path) -> None:
    p = _odd_name(tmp_path, b"good\xe9.json")
    p.write_bytes((bundled / "demo_whowhen.json").read_bytes())
    r = runner.invoke(app, ["analyze", str(p), "--json"])
    assert r.exit_code == 0, r.output
    assert "whowhen-algorithm-good\\\\xe9" in r.output  # the id, JSON-escaped


def test_an_activation_path_that_is_not_utf8_is_one_error(tmp_path: Path) -> None:
    folder = tmp_path / os.fsdecode(b"acts\xe9")
    try:
        folder.mkdir()
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system takes no file names that are not UTF-8")
    p = _write(folder / "run.json", [{"role": "assistant", "name": "bot", "content": "hi",
                                      "activation": {"path": "step_0.safetensors"}}])
    e = _error(p)
    assert e.field == "[0].activation.path" and "not UTF-8" in e.message


# --------------------------------------------------------------------------- 2: attrib's JSON, keys in any order


def _reordered(bundled: Path, label: bool = True, id: str | None = None) -> dict[str, Any]:
    """The demo run as attrib's JSON, ``steps`` (and the label, whose keys look like Who&When's) before
    ``source_format``: the same document to the schema."""
    doc = json.loads(load_trace(bundled / "demo_whowhen.json").to_json())
    if not label:
        doc["label"] = None
    if id is not None:
        doc["id"] = id
    first = {k: doc[k] for k in ("id", "steps", "label")}
    return {**first, **{k: v for k, v in doc.items() if k not in first}}


@pytest.mark.parametrize("label", [True, False])
def test_attrib_json_with_source_format_after_the_steps_is_detected(tmp_path: Path, bundled: Path,
                                                                    label: bool) -> None:
    doc = _reordered(bundled, label)
    assert list(doc).index("source_format") > list(doc).index("steps")
    p = _write(tmp_path / "reordered.json", doc)
    t = read_path(p)[0]
    assert t.id == doc["id"] and t.source_format == "whowhen" and len(t.steps) == len(doc["steps"])
    assert (t.label is not None) == label
    assert read_paths([p])[0] == t  # the ingest path (read_sources) reads it alike


def test_attrib_json_whose_id_is_longer_than_the_sniffed_head_is_detected(tmp_path: Path, bundled: Path) -> None:
    doc = json.loads(load_trace(bundled / "demo_whowhen.json").to_json())
    doc["id"] = "run-" + "z" * 10_000  # source_format comes after it, past the first 4 KB
    p = _write(tmp_path / "long_id.json", doc)
    assert read_path(p)[0].id == doc["id"]
    p2 = _write(tmp_path / "list.json", [_reordered(bundled, id="a"), _reordered(bundled, id="b")])
    assert [t.id for t in read_path(p2)] == ["a", "b"]


def test_format_by_keys_names_the_format_of_a_document(tmp_path: Path, bundled: Path) -> None:
    from attrib.readers import format_by_keys

    assert format_by_keys(json.dumps(_reordered(bundled)).encode()) == "attrib"
    assert format_by_keys(json.dumps([_reordered(bundled)]).encode()) == "attrib"
    data = (bundled / "demo_whowhen.json").read_bytes()
    assert format_by_keys(data) == "whowhen"
    assert format_by_keys((bundled / "otlp_agents.json").read_bytes()) == "otlp"
    assert format_by_keys(b'{"history": [], "messages": []}') == "chat"
    assert format_by_keys(b'{"a": 1}\n{"b": 2}\n') is None and format_by_keys(b"{broken") is None


# --------------------------------------------------------------------------- 3: Who&When types


def _demo(bundled: Path) -> dict[str, Any]:
    return json.loads((bundled / "demo_whowhen.json").read_text())


def _set(doc: dict[str, Any], where: str, value: Any) -> None:
    """``doc[where] = value``, ``where`` as ``history[2].content``."""
    if where.startswith("history["):
        i, key = where[len("history["):].split("].")
        doc["history"][int(i)][key] = value
    else:
        doc[where] = value


@pytest.mark.parametrize(("field", "value", "message"), [
    ("history[2].content", 12345, "expected a string, got an integer"),
    ("history[2].content", [1, 2], "expected a string, got a list"),
    ("history[2].content", 10**30, "expected a string, got"),
    ("history[2].content", {"text": "x"}, "expected a string, got an object"),
    ("history[2].name", 3, "expected a string, got an integer"),
    ("history[2].name", "", "empty"),
    ("history[2].role", 9, "expected a string, got an integer"),
    ("history[2].role", "", "empty"),
    ("question", 5, "expected a string, got an integer"),
    ("question_ID", [1], "expected a string or an integer, got a list"),
    ("question_ID", 1.5, "expected a string or an integer, got a number"),
    ("question_ID", True, "expected a string or an integer, got a boolean"),
    ("system_prompt", [1, 2], "expected an object (agent -> prompt), got a list"),
    ("ground_truth", 6.8, "expected a string or an integer, got a number"),
    ("ground_truth", ["6.8"], "expected a string or an integer, got a list"),
    ("level", {"n": 1}, "expected a string or an integer, got an object"),
    ("mistake_reason", ["x"], "expected a string, got a list"),
])
def test_whowhen_refuses_a_wrong_type_by_its_field(tmp_path: Path, bundled: Path, field: str, value: Any,
                                                   message: str) -> None:
    doc = _demo(bundled)
    _set(doc, field, value)
    e = _error(_write(tmp_path / "run.json", doc))
    assert e.field == field and message in e.message, str(e)


def test_whowhen_system_prompt_values_are_strings(tmp_path: Path, bundled: Path) -> None:
    doc = _demo(bundled)
    doc["system_prompt"] = {"Recipe_Expert": ["a", "b"]}
    e = _error(_write(tmp_path / "run.json", doc))
    assert e.field == "system_prompt.Recipe_Expert" and "expected a string, got a list" in e.message


def test_whowhen_takes_what_real_logs_write(tmp_path: Path, bundled: Path) -> None:
    doc = _demo(bundled)
    doc.update(question_ID=1234, level=2, ground_truth=42, mistake_step=1)  # integers: read as their digits
    doc["history"][2].pop("name")  # Hand-Crafted logs name the agent in role alone
    doc["history"][3]["content"] = None
    t = read_path(_write(tmp_path / "run.json", doc))[0]
    assert (t.metadata["question_id"], t.metadata["level"], t.ground_truth) == ("1234", "2", "42")
    assert t.steps[2].agent == doc["history"][2]["role"] and t.steps[3].content == ""
    assert t.label is not None and t.label.mistake_step == 1


def test_every_real_who_and_when_log_reads_as_before(whowhen_dir: Path) -> None:
    want = json.loads((FIXTURES / "whowhen_hashes.json").read_text())["hashes"]
    files = sorted([*whowhen_dir.glob("Algorithm-Generated/*.json"), *whowhen_dir.glob("Hand-Crafted/*.json")])
    assert len(files) == len(want) == 184
    got = {f"{p.parent.name}/{p.name}": read_path(p)[0].content_hash() for p in files}
    assert got == want


# --------------------------------------------------------------------------- 4: OTLP values


def _otlp(bundled: Path) -> dict[str, Any]:
    return json.loads((bundled / "otlp_agents.json").read_text())


def _span(doc: dict[str, Any], i: int) -> dict[str, Any]:
    return doc["resourceSpans"][0]["scopeSpans"][0]["spans"][i]


SPAN2 = "resourceSpans[0].scopeSpans[0].spans[2]"


def _attr(span: dict[str, Any], value: dict[str, Any]) -> str:
    """Give the span's first attribute ``value``; its field path."""
    span["attributes"][0]["value"] = value
    return "attributes[0].value"


@pytest.mark.parametrize(("change", "field", "message"), [
    (lambda s: _attr(s, {"intValue": "abc"}), "attributes[0].value.intValue", "expected an integer"),
    (lambda s: _attr(s, {"doubleValue": "lots"}), "attributes[0].value.doubleValue", "expected a number"),
    (lambda s: _attr(s, {"arrayValue": {"values": [{"intValue": "1"}, {"intValue": "x"}]}}),
     "attributes[0].value.arrayValue.values[1].intValue", "expected an integer"),
    (lambda s: _attr(s, {"kvlistValue": {"values": [{"key": "k", "value": {"intValue": "y"}}]}}),
     "attributes[0].value.kvlistValue.values[0].value.intValue", "expected an integer"),
    (lambda s: s.update(events=[{"name": "e", "attributes": [{"key": "n", "value": {"intValue": "z"}}]}]),
     "events[0].attributes[0].value.intValue", "expected an integer"),
    (lambda s: s.update(links=5), "links", "expected array"),
    (lambda s: s.update(links=[{"traceId": 7}]), "links[0].traceId", "expected str"),
    (lambda s: s.update(startTimeUnixNano="-5"), "startTimeUnixNano", "negative"),
    (lambda s: s.update(startTimeUnixNano=-5), "startTimeUnixNano", "negative"),
    (lambda s: s.update(startTimeUnixNano="9" * 40), "startTimeUnixNano", "after the year 3000"),
    (lambda s: s.update(endTimeUnixNano=str(33_000_000_000 * 10**9)), "endTimeUnixNano", "after the year 3000"),
    (lambda s: s.update(status={"code": "ERRORISH"}), "status.code", "is not a status code"),
    (lambda s: s.update(status={"code": 7}), "status.code", "is not a status code"),
    (lambda s: s.pop("traceId"), "traceId", "missing"),
    (lambda s: s.update(traceId=""), "traceId", "missing"),
    (lambda s: s.update(traceId="f" * 32), "traceId", "is not the trace of its parent span a000000000000001"),
])
def test_otlp_refuses_a_wrong_value_by_its_field(tmp_path: Path, bundled: Path, change: Any, field: str,
                                                 message: str) -> None:
    doc = _otlp(bundled)
    change(_span(doc, 2))
    e = _error(_write(tmp_path / "spans.json", doc))
    assert e.field is not None and e.field.endswith(f"{SPAN2}.{field}") and message in e.message, str(e)


def test_otlp_values_that_are_fine_still_read(tmp_path: Path, bundled: Path) -> None:
    doc = _otlp(bundled)
    base = read_path(_write(tmp_path / "base.json", doc))[0]
    s = _span(doc, 2)
    start = int(s["startTimeUnixNano"])
    s["endTimeUnixNano"] = str(start - 10**9)  # an end before the start: kept as written (it orders nothing)
    s["status"] = {"code": "STATUS_CODE_OK"}
    s["links"] = [{"traceId": "e" * 32, "spanId": "e" * 16, "attributes": [{"key": "k", "value": {"intValue": 3}}]}]
    s["attributes"].append({"key": "ratio", "value": {"doubleValue": "NaN"}})
    t = read_path(_write(tmp_path / "ok.json", doc))[0]
    step = next(x for x in t.steps if x.metadata["span_id"] == s["spanId"])
    assert step.end_time is not None and step.start_time is not None and step.end_time < step.start_time
    assert [x.agent for x in t.steps] == [x.agent for x in base.steps]
    _span(doc, 0)["status"] = {"code": "error", "message": "boom"}  # the enum's name in another case: ERROR still
    t = read_path(_write(tmp_path / "err.json", doc))[0]
    assert t.steps[0].metadata["span_id"] == _span(doc, 0)["spanId"] and t.steps[0].metadata.get("error") == "boom"


def test_two_traces_in_one_file_are_no_mismatch(tmp_path: Path, bundled: Path) -> None:
    doc = _otlp(bundled)
    other = copy.deepcopy(doc["resourceSpans"][0])
    for scope in other["scopeSpans"]:
        for s in scope["spans"]:
            s["traceId"] = "e" * 32
    doc["resourceSpans"].append(other)  # the same span ids in another trace: a copy of the run, apart
    assert len(read_path(_write(tmp_path / "two.json", doc))) == 2


def test_flat_span_times_out_of_range_are_refused(tmp_path: Path) -> None:
    spans = [{"span_id": "1", "name": "agent", "start_time": -5, "attributes": {"agent.name": "a"}}]
    e = _error(_write(tmp_path / "flat.json", spans))
    assert e.field == "spans[0].start_time" and "before 1970" in e.message
    spans[0]["start_time"] = 1e40
    assert "after the year 3000" in _error(_write(tmp_path / "flat.json", spans)).message


def test_chat_and_flat_span_times_share_one_range_check(tmp_path: Path) -> None:
    """One 1970..3000 check (readers._common.checked_time) for chat messages and flat spans: same bounds, same words."""
    from attrib.readers._common import MAX_NANOS, checked_time

    p = tmp_path / "t.json"
    assert checked_time("2024-01-01T00:00:00Z", p, "f") == 1704067200.0
    assert checked_time("soon", p, "f") is None and checked_time(None, p, "f") is None
    assert checked_time(MAX_NANOS, p, "f") == MAX_NANOS / 1e9
    with pytest.raises(InputError) as e:
        checked_time("1969-12-31T00:00:00Z", p, "x.t")
    assert (e.value.field, e.value.message) == ("x.t", "'1969-12-31T00:00:00Z' is not a time: before 1970")
    chat = [{"role": "assistant", "name": "a", "content": "hi", "timestamp": 1e40}]
    flat = [{"span_id": "1", "name": "agent", "start_time": 1e40, "attributes": {"agent.name": "a"}}]
    msgs = [_error(_write(tmp_path / n, doc)).message for n, doc in (("c.json", chat), ("f.json", flat))]
    assert msgs[0] == msgs[1] == "1e+40 is not a time: after the year 3000"


# --------------------------------------------------------------------------- 5: messages that said the wrong thing


def test_dev_null_is_not_a_regular_file(tmp_path: Path) -> None:
    if not Path("/dev/null").exists():
        pytest.skip("no /dev/null")
    e = _error(Path("/dev/null"))
    assert "not a regular file" in e.message and "device" in e.message
    r = runner.invoke(app, ["analyze", "/dev/null"])
    assert r.exit_code == EXIT_BAD_INPUT and "not a regular file" in r.output and "Traceback" not in r.output


@pytest.mark.timeout(60)
def test_a_named_pipe_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes here")
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)

    def writer() -> None:  # a reader that opens the pipe gets an empty stream, not a wait forever
        end = time.monotonic() + 5
        while time.monotonic() < end:
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
                return
            except OSError:
                time.sleep(0.01)

    threading.Thread(target=writer, daemon=True).start()
    e = _error(fifo)
    assert "not a regular file" in e.message and "named pipe" in e.message


@pytest.mark.parametrize(("line", "kind"), [("[1, 2]", "a list"), ("5", "a number"), ('"hi"', "a string")])
def test_a_json_lines_line_that_is_no_object_is_named(tmp_path: Path, line: str, kind: str) -> None:
    p = tmp_path / "log.jsonl"
    p.write_text('{"role": "user", "name": "u", "content": "hi"}\n' + line + "\n"
                 '{"role": "assistant", "name": "b", "content": "yo"}\n')
    e = _error(p)
    assert e.field == "line 2" and e.message == f"expected a message object, got {kind}"
    p.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n' + line + "\n")
    e = _error(p)
    assert e.field == "line 2" and "expected a trace object" in e.message


def test_a_chat_log_with_an_otlp_line_further_down_is_read_as_chat(tmp_path: Path) -> None:
    p = tmp_path / "log.jsonl"
    p.write_text('{"role": "user", "name": "u", "content": "hi"}\n{"resourceSpans": []}\n'
                 '{"role": "assistant", "name": "b", "content": "yo"}\n')
    e = _error(p)
    assert e.field == "line 2.content" and "resourceSpans" not in str(e)
    p.write_text('{"resourceSpans": []}\n{"resourceSpans": []}\n')  # OTLP JSON Lines is still OTLP
    assert detect(p.read_bytes(), p).name == "otlp"


def test_whowhen_label_with_one_half_says_the_other_is_missing(tmp_path: Path, bundled: Path) -> None:
    doc = _demo(bundled)
    doc.pop("mistake_step")
    e = _error(_write(tmp_path / "run.json", doc))
    assert (e.field, e.message.split(":")[0]) == ("mistake_step", "missing")
    doc = _demo(bundled)
    doc.pop("mistake_agent")
    e = _error(_write(tmp_path / "run.json", doc))
    assert (e.field, e.message.split(":")[0]) == ("mistake_agent", "missing")
