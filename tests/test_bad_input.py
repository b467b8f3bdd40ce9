"""Every bad-input class: one line naming file and field, exit code 3, and an unchanged store.

Plus a property test: whatever bytes or JSON a reader is handed, it returns traces or raises InputError.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from attrib.cli import app
from attrib.errors import EXIT_BAD_INPUT, InputError
from attrib.readers import READERS, read_path
from attrib.store import open_store

runner = CliRunner()


def _demo(bundled: Path) -> dict:
    return json.loads((bundled / "demo_whowhen.json").read_text())


def _otlp_own_parent(bundled: Path) -> bytes:
    doc = json.loads((bundled / "otlp_agents.json").read_text())
    span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][3]
    span["parentSpanId"] = span["spanId"]  # a parent that is merely absent starts a partial trace: no error
    return json.dumps(doc).encode()


def _native_missing_parent(bundled: Path) -> bytes:
    from attrib.readers import load_trace

    doc = json.loads(load_trace(bundled / "demo_whowhen.json").to_json())
    doc["steps"][2]["parents"] = [7]
    return json.dumps(doc).encode()


def _activation_case(tmp_path: Path) -> bytes:
    from attrib.activations import ModelConfig, save_step

    cfg = ModelConfig(n_layers=4, n_heads=4, d_model=32)
    save_step(tmp_path / "acts_0.safetensors", {"blocks.1.attn.hook_pattern": np.zeros((4, 3, 3), np.float32)}, cfg)
    save_step(tmp_path / "acts_1.safetensors", {"blocks.1.attn.hook_pattern": np.zeros((3, 3, 3), np.float32)}, cfg)
    msgs = [{"role": "user", "name": "u", "content": "hi", "activation": {"path": "acts_0.safetensors"}},
            {"role": "assistant", "name": "bot", "content": "yo", "activation": {"path": "acts_1.safetensors"}}]
    return json.dumps(msgs).encode()


def _statistics_case(tmp_path: Path, with_config: bool) -> bytes:
    """A recorded step whose blocks.4 :segment_mass has 7 heads and 3 queries where the other layers have 9 and 8."""
    from attrib.activations import ModelConfig, save_step

    arrays = {}
    for la in range(6):
        arrays[f"blocks.{la}.attn.hook_pattern:segment_mass"] = np.full((9, 8, 5), 0.2, np.float16)
        arrays[f"blocks.{la}.attn.hook_pattern:entropy"] = np.ones((9, 8), np.float16)
    arrays["blocks.4.attn.hook_pattern:segment_mass"] = np.zeros((7, 3, 5), np.float16)
    save_step(tmp_path / "stats_1.safetensors", arrays, ModelConfig(n_layers=6, n_heads=9, d_model=576)
              if with_config else None)
    msgs = [{"role": "assistant", "name": "bot", "content": "yo", "activation": {"path": "stats_1.safetensors"}}]
    return json.dumps(msgs).encode()


# name -> (file name, bytes maker, substrings the error line must contain, extra CLI args)
CASES: dict[str, tuple[str, Callable[[Path, Path], bytes], tuple[str, ...], tuple[str, ...]]] = {
    "malformed_json": ("bad.json", lambda b, t: b'{"question": "q", "history": [{"name": "a", "content": "x"},, ]}',
                       ("line 1 col", "malformed JSON"), ()),
    "truncated": ("cut.json", lambda b, t: (b / "demo_whowhen.json").read_bytes()[:1500],
                  ("truncated",), ()),
    "utf16": ("wide.json", lambda b, t: (b / "demo_whowhen.json").read_text().encode("utf-16"),
              ("encoding", "UTF-16"), ()),
    "latin1": ("latin.jsonl", lambda b, t: '{"role": "user", "name": "u", "content": "caf\u00e9 cr\u00e8me"}\n'
               '{"role": "assistant", "name": "b", "content": "ok"}\n'.encode("latin-1"),
               ("line 1 col", "not valid UTF-8"), ()),
    "missing_history": ("nohist.json", lambda b, t: json.dumps({k: v for k, v in _demo(b).items() if k != "history"}).encode(),
                        ("history", "missing"), ()),
    "missing_content": ("nocontent.json", lambda b, t: json.dumps({"messages": [{"role": "user", "content": "a"},
                                                                               {"role": "assistant", "name": "x"}]}).encode(),
                        ("messages[1].content", "missing"), ()),
    "empty_history": ("empty.json", lambda b, t: json.dumps({**_demo(b), "history": []}).encode(),
                      ("history", "empty"), ()),
    "unknown_format": ("what.json", lambda b, t: b'{"foo": 1, "bar": [1, 2, 3]}', ("unknown format",), ()),
    "otlp_own_parent": ("loop.json", lambda b, t: _otlp_own_parent(b), ("parentSpanId", "is its own parent"), ()),
    "native_missing_parent": ("orphan.attrib.json", lambda b, t: _native_missing_parent(b),
                              ("steps[2].parents", "missing parent"), ()),
    "activation_shapes": ("with_acts.json", lambda b, t: _activation_case(t),
                          ("acts_1.safetensors", "blocks.1.attn.hook_pattern", "expected [4, pos, pos]"), ()),
    "statistics_layers_disagree": ("stats_nocfg.json", lambda b, t: _statistics_case(t, with_config=False),
                                   ("stats_1.safetensors", "blocks.4.attn.hook_pattern:segment_mass",
                                    "shape [7, 3, 5] disagrees with the other 5 layers' [9, 8, 5]"), ()),
    "statistics_axes": ("stats_cfg.json", lambda b, t: _statistics_case(t, with_config=True),
                        ("stats_1.safetensors", "blocks.4.attn.hook_pattern:segment_mass",
                         "expected [9, query, segment]"), ()),
    "too_big": ("big.json", lambda b, t: (b / "demo_whowhen.json").read_bytes(), ("over the 1000 bytes limit",),
                ("--max-bytes", "1000")),
}


@pytest.fixture
def seeded_store(tmp_path: Path, bundled: Path) -> Path:
    """A store that already holds the OTLP fixture, so 'unchanged' is checked against real content."""
    p = tmp_path / "seeded.duckdb"
    r = runner.invoke(app, ["ingest", str(bundled / "otlp_agents.json"), "--store", str(p), "-q"])
    assert r.exit_code == 0, r.output
    return p


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gives_one_line_exit_3_and_leaves_the_store_unchanged(
        case: str, tmp_path: Path, bundled: Path, seeded_store: Path) -> None:
    name, make, needles, extra = CASES[case]
    path = tmp_path / name
    path.write_bytes(make(bundled, tmp_path))
    with open_store(seeded_store) as st:
        before = st.snapshot()
    r = runner.invoke(app, ["ingest", str(path), "--store", str(seeded_store), "-q", *extra])
    assert r.exit_code == EXIT_BAD_INPUT, r.output
    lines = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, r.output
    assert str(path) in lines[0]
    for n in needles:
        assert n in lines[0], lines[0]
    with open_store(seeded_store) as st:
        assert st.snapshot() == before


def test_good_files_go_in_when_one_fails(tmp_path: Path, bundled: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"history": [')
    store = tmp_path / "s.duckdb"
    r = runner.invoke(app, ["ingest", str(bundled / "demo_whowhen.json"), str(bad), str(bundled / "chat_autogen.jsonl"),
                            "--store", str(store)])
    assert r.exit_code == EXIT_BAD_INPUT
    assert "1 of 3 file(s) failed" in r.output and str(bad) in r.output
    with open_store(store) as st:
        assert st.count_traces() == 2


def test_missing_path_is_reported(tmp_path: Path) -> None:
    r = runner.invoke(app, ["ingest", str(tmp_path / "nope.json"), "--store", str(tmp_path / "s.duckdb"), "-q"])
    assert r.exit_code == EXIT_BAD_INPUT and "no such file" in r.output
    assert not (tmp_path / "s.duckdb").exists()  # a typo leaves no empty store behind


def test_unwritable_outputs_fail_before_the_analysis(tmp_path: Path, bundled: Path) -> None:
    r = runner.invoke(app, ["analyze", str(bundled / "demo_whowhen.json"), "--otlp", str(tmp_path)])
    assert r.exit_code == 1 and "is a folder" in r.output and "decisive mistake" not in r.output  # no report first


def test_unwritable_outputs_are_one_line_errors(tmp_path: Path, bundled: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    demo = str(bundled / "demo_whowhen.json")
    for flag in ("--otlp", "--plot"):
        r = runner.invoke(app, ["analyze", demo, flag, str(blocker / ("x.png" if flag == "--plot" else "x.out"))])
        assert r.exit_code == 1 and "Traceback" not in r.output, r.output
        assert r.output.strip().splitlines()[-1].startswith("error:") and str(blocker) in r.output
        assert "a file is in the way" in r.output  # not the OS's bare "File exists"
    r = runner.invoke(app, ["analyze", demo, "--plot", str(tmp_path / "new" / "dir" / "p.png"), "--json"])
    assert r.exit_code == 0 and (tmp_path / "new" / "dir" / "p.png").stat().st_size > 0


@pytest.mark.parametrize("args", [
    ["analyze", "x.json", "--method", "nope"],
    ["analyze", "x.json", "--format", "xml"],
    ["ingest", "x.json", "--format", "xml"],
    ["eval", "who-and-when", "--subset", "handcrafted", "--out", "-"],
    ["traces", "list", "--limit", "-1"],
    ["traces", "list", "--offset", "-5"],
    ["traces", "list", "--outcome", "maybe"],
])
def test_a_bad_flag_value_is_a_usage_error_naming_the_choices(args: list[str]) -> None:
    r = runner.invoke(app, args)
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output  # 2: bad flags, before any file is touched
    assert args[-2] in r.output or "Invalid value" in r.output


def test_model_config_flag_checks_npz_without_metadata(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", **{"blocks.0.hook_resid_post": np.zeros((2, 16), np.float32)})
    (tmp_path / "t.json").write_text(json.dumps([{"role": "user", "content": "x", "activation": {"path": "a.npz"}}]))
    (tmp_path / "cfg.json").write_text(json.dumps({"n_layers": 2, "n_heads": 2, "d_model": 32}))
    store = str(tmp_path / "s.duckdb")
    r = runner.invoke(app, ["ingest", str(tmp_path / "t.json"), "--store", store, "-q",
                            "--model-config", str(tmp_path / "cfg.json")])
    assert r.exit_code == EXIT_BAD_INPUT and "blocks.0.hook_resid_post" in r.output and "[pos, 32]" in r.output
    r = runner.invoke(app, ["ingest", str(tmp_path / "t.json"), "--store", store, "-q"])
    assert r.exit_code == 0, r.output  # without a config only existence and readability are checked


def test_usage_errors_are_the_one_way_to_exit_2() -> None:
    """InputError used to turn into a usage error (exit 2) when its field looked like a flag ("--out"); a bad
    argument is a UsageError now, named in the library's spelling and shown by the CLI as its flag."""
    from attrib.errors import EXIT_USAGE, UsageError

    assert InputError(None, "--out", "x").exit_code == EXIT_BAD_INPUT
    e = UsageError(None, "max_new_tokens", "must be positive")
    assert e.exit_code == EXIT_USAGE and str(e) == "max_new_tokens: must be positive"
    assert e.as_flag() == "--max-new-tokens: must be positive"
    assert UsageError(None, "pairs/suite", "give one").as_flag() == "--pairs/--suite: give one"
    assert UsageError(None, None, "bare").as_flag() == "bare"


def test_an_input_folder_with_no_trace_files_is_named(tmp_path: Path) -> None:
    """It said "paths: no trace files in DIR": the reader's argument name, not what the user typed."""
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not a trace")
    glob = str(tmp_path / "nothing" / "*.json")
    for args in (["analyze", str(empty)], ["analyze", glob], ["eval", "traces", str(empty), glob],
                 ["fit", str(empty), "--out", str(tmp_path / "r.json")]):
        r = runner.invoke(app, args)
        assert r.exit_code == EXIT_BAD_INPUT and "Traceback" not in r.output, (args, r.output)
        assert r.output.startswith(f"error: {str(empty) if str(empty) in args else glob}") and "paths:" not in r.output
        assert "no trace files here" in r.output and ".jsonl" in r.output and len(r.output.splitlines()) == 1


def test_traces_show_a_folder_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder was looked up as a trace id: "attrib.duckdb: no store here" (exit 4), not naming the folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    r = runner.invoke(app, ["traces", "show", "runs"])
    assert r.exit_code == EXIT_BAD_INPUT and r.output.strip() == "error: runs: is a folder; give one trace file or a trace id"


def test_analyze_save_checks_the_store_before_the_analysis(tmp_path: Path, bundled: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A store that is a folder or another kind of file was found only after the (maybe paid) analysis."""
    import attrib.methods

    def no_analysis(*_a: object, **_k: object) -> None:
        raise AssertionError("analysed before the store was checked")

    monkeypatch.setattr(attrib.methods, "analyze", no_analysis)
    other = tmp_path / "notes.json"
    other.write_text("{}")
    for store in (tmp_path, other):
        r = runner.invoke(app, ["analyze", str(bundled / "demo_whowhen.json"), "--save", "--store", str(store)])
        assert r.exit_code == EXIT_BAD_INPUT and str(store) in r.output and "Traceback" not in r.output, r.output


# ---------------------------------------------------------------- property: readers only raise InputError

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(
        st.sampled_from(["history", "messages", "role", "name", "content", "tool_calls", "tool_call_id", "function",
                         "resourceSpans", "scopeSpans", "spans", "spanId", "parentSpanId", "traceId", "attributes",
                         "key", "value", "stringValue", "intValue", "mistake_step", "mistake_agent", "question",
                         "steps", "source_format", "id", "index", "parents", "agent", "span_id", "child_spans",
                         "activation", "path", "startTimeUnixNano", "type", "source"]) | st.text(max_size=5),
        kids, max_size=5),
    max_leaves=25,
)


def _check(reader_name: str, data: bytes, path: Path) -> None:
    try:
        out = READERS[reader_name].read(data, path)
    except InputError as e:
        assert "\n" not in e.one_line() or e.one_line().count("\n") < 5
        return
    assert isinstance(out, list)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reader=st.sampled_from(sorted(READERS)), value=_json)
def test_readers_only_raise_input_error_on_any_json(reader: str, value: object) -> None:
    _check(reader, json.dumps(value).encode(), Path("prop.json"))


@settings(max_examples=150, deadline=None)
@given(reader=st.sampled_from(sorted(READERS)), data=st.binary(max_size=200))
def test_readers_only_raise_input_error_on_any_bytes(reader: str, data: bytes) -> None:
    _check(reader, data, Path("prop.json"))


@settings(max_examples=100, deadline=None)
@given(value=_json, cut=st.integers(0, 400))
def test_read_path_only_raises_input_error(tmp_path_factory: pytest.TempPathFactory, value: object, cut: int) -> None:
    p = tmp_path_factory.mktemp("prop") / "x.json"
    p.write_bytes(json.dumps({"history": [value], "messages": value, "resourceSpans": value})[: cut or None].encode())
    try:
        out = read_path(p)
    except InputError:
        return
    assert out and all(t.steps for t in out)


def test_errors_survive_pickling_as_across_a_dask_worker() -> None:
    """InputError took three arguments but pickled only its one line, so unpickling one (a Dask worker's error
    coming back, a subprocess) raised TypeError instead of the error."""
    import pickle

    from attrib.errors import InputError, UsageError

    for e in (InputError("run.json", "steps[2].agent", "expected a string"), UsageError(None, "top_k", "must be >= 1")):
        back = pickle.loads(pickle.dumps(e))
        assert type(back) is type(e) and str(back) == str(e) and back.exit_code == e.exit_code
        assert (back.path, back.field, back.message) == (e.path, e.field, e.message)


def test_a_missing_optional_extra_is_exit_1_everywhere(monkeypatch) -> None:
    """`attrib app` without streamlit exited 4 ("not found") where the other missing extras (dask, matplotlib)
    exit 1: one code, one line naming the extra to install."""
    import importlib.util

    from typer.testing import CliRunner

    from attrib.cli import app

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "streamlit" else real(name, *a))
    import socket

    with socket.socket() as sock:  # a port that is free, so the port check passes
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    r = CliRunner().invoke(app, ["app", "--port", str(port)])
    assert r.exit_code == 1 and "pip install 'attrib[app]'" in r.output and len(r.output.strip().splitlines()) == 1


def test_an_empty_trace_id_or_target_is_refused(tmp_path: Path) -> None:
    """A run stored under the id "" could never be named again, and `attrib analyze ''` read "" as the folder ".",
    analysing every file below it; `traces show ''` said "is a folder" naming nothing."""
    f = tmp_path / "empty_id.json"
    f.write_text('{"id": " ", "source_format": "attrib", "steps": [{"index": 0, "agent": "a", "content": "x"}]}')
    store = tmp_path / "s.duckdb"
    r = CliRunner().invoke(app, ["ingest", str(f), "--store", str(store)])
    assert r.exit_code == 3 and f"{f}: id: empty, a trace needs an id" in r.output, r.output
    r = CliRunner().invoke(app, ["analyze", ""])
    assert r.exit_code == 2 and "an empty TARGET" in r.output, r.output
    r = CliRunner().invoke(app, ["traces", "show", "", "--store", str(store)])
    assert r.exit_code == 2 and "an empty ID" in r.output, r.output


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_is_one_line_naming_what_could_not_be_written(tmp_path: Path) -> None:
    """`attrib analyze run.json --json > /dev/full` ended in a Python traceback, and `--otlp /dev/full` said only
    "error: No space left on device"."""
    import subprocess
    import sys

    from attrib.paths import REPO_ROOT

    demo = str(REPO_ROOT / "traces" / "demo_whowhen.json")
    cli = [sys.executable, "-m", "attrib"]
    with open("/dev/full", "w") as full:
        r = subprocess.run([*cli, "analyze", demo, "--json"], stdout=full, stderr=subprocess.PIPE, text=True)
    assert r.returncode == 1 and r.stderr.strip() == "error: could not write the output: No space left on device", \
        r.stderr
    r = subprocess.run([*cli, "analyze", demo, "--otlp", "/dev/full"], capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1] == "error: /dev/full: No space left on device", \
        r.stderr
    runs = str(REPO_ROOT / "tests" / "fixtures" / "own_system" / "runs")
    r = subprocess.run([*cli, "fit", runs, "--out", "/dev/full", "--no-pool"], capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1] == "error: /dev/full: No space left on device", \
        r.stderr


def test_a_negative_token_count_is_refused_by_name(tmp_path: Path) -> None:
    f = tmp_path / "neg.json"
    f.write_text('{"id": "t", "source_format": "attrib", "steps": [{"index": 0, "agent": "a", "content": "x"}, '
                 '{"index": 1, "agent": "a", "content": "y", "tokens_out": -5}]}')
    with pytest.raises(InputError, match=r"steps\[1\]\.tokens_out: trace t: -5 is negative") as e:
        read_path(f)
    assert e.value.field == "steps[1].tokens_out"


def test_ingest_takes_a_file_whose_name_is_not_utf8_and_names_a_device(tmp_path: Path) -> None:
    """A good run in `good\\xe9.json` was an "internal error (UnicodeEncodeError)" at ingest (its path is stored);
    `attrib ingest /dev/null` said "no such file"."""
    import os
    import shutil

    from attrib.paths import REPO_ROOT
    from attrib.store import open_store

    runs = tmp_path / "runs"
    runs.mkdir()
    shutil.copy(REPO_ROOT / "traces" / "demo_whowhen.json", os.fsdecode(bytes(runs) + b"/good\xe9.json"))
    store = tmp_path / "s.duckdb"
    r = CliRunner().invoke(app, ["ingest", str(runs), "--store", str(store)])
    assert r.exit_code == 0, r.output
    with open_store(store, read_only=True) as st:
        assert st.trace_ids() == ["whowhen-algorithm-good\\xe9"]
    if Path("/dev/null").exists():
        r = CliRunner().invoke(app, ["ingest", "/dev/null", "--store", str(tmp_path / "n.duckdb")])
        assert r.exit_code == 3 and "/dev/null: not a regular file: a device" in r.output, r.output


def test_an_unknown_label_agent_names_a_few_agents_not_two_hundred(tmp_path: Path) -> None:
    """The error listed every agent of the run: 200 names on the "one line"."""
    from attrib.paths import REPO_ROOT

    raw = json.loads((REPO_ROOT / "traces" / "demo_whowhen.json").read_text())
    raw["history"] = [{"role": "assistant", "name": f"Agent_{i}", "content": "ok"} for i in range(200)]
    raw["mistake_agent"], raw["mistake_step"] = "Ghost", "3"
    f = tmp_path / "many.json"
    f.write_text(json.dumps(raw))
    with pytest.raises(InputError) as e:
        read_path(f)
    assert "is not an agent of this run (Agent_0, Agent_1," in str(e.value) and "and 192 more)" in str(e.value)
    assert len(str(e.value)) < 250, str(e.value)


@pytest.mark.parametrize(("step", "ok"), [(2.0, True), (2.7, False)])
def test_a_fractional_step_index_is_refused_not_cut(tmp_path: Path, step: float, ok: bool) -> None:
    """A label's mistake_step of 2.7 was read as step 2 (a whole float, as OTLP's doubleValue writes 2, is fine)."""
    f = tmp_path / "run.json"
    f.write_text(json.dumps({"messages": [{"name": n, "content": "x"} for n in ("a", "b", "c", "d")],
                             "mistake_agent": "c", "mistake_step": step}))
    if ok:
        assert read_path(f)[0].label.mistake_step == 2
    else:
        with pytest.raises(InputError, match="mistake_step"):
            read_path(f)
