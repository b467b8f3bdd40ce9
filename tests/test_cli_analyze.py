"""``attrib analyze`` end to end through the real CLI (Typer runner), and its exit codes."""

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from attrib.cli import app
from attrib.paths import traces_dir, who_and_when_dir

runner = CliRunner()


def _demo() -> str:
    p = traces_dir() / "demo_whowhen.json"
    return str(p if p.exists() else who_and_when_dir("algorithm") / "4.json")


def test_analyze_json_verdict():
    r = runner.invoke(app, ["analyze", _demo(), "--json", "--top-k", "3"])
    assert r.exit_code == 0, r.output
    d = orjson.loads(r.output)
    assert d["method"] == "learned" and 0 <= d["confidence"] <= 1
    assert d["agents"] and all(a["ci_low"] <= a["score"] <= a["ci_high"] for a in d["agents"])
    assert len(d["evidence"]["top_k"]) == 3 and d["reason"]


def test_analyze_markdown_and_rich():
    r = runner.invoke(app, ["analyze", str(who_and_when_dir("hand") / "1.json"), "--markdown"])
    assert r.exit_code == 0 and "Decisive step" in r.output and "| agent | blame |" in r.output
    r = runner.invoke(app, ["analyze", _demo(), "--method", "flow-graph"])
    assert r.exit_code == 0 and "decisive mistake" in r.output


def test_bad_input_exit_codes(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"history": "nope", "question": "q"}')
    r = runner.invoke(app, ["analyze", str(bad)])
    assert r.exit_code == 3 and "history" in r.output
    r = runner.invoke(app, ["analyze", "no-such-trace-id", "--store", str(tmp_path / "none.duckdb")])
    assert r.exit_code == 4
    r = runner.invoke(app, ["analyze", _demo(), "--method", "nope"])
    assert r.exit_code == 2 and "expected one of learned" in r.output  # a bad flag: a usage error listing methods


def test_analyze_a_folder_or_glob_reports_every_run_and_a_summary(tmp_path):
    import shutil

    for name in ("demo_whowhen.json", "chat_langgraph.json"):
        shutil.copy(traces_dir() / name, tmp_path / name)
    r = runner.invoke(app, ["analyze", str(tmp_path), "--json"])
    assert r.exit_code == 0, r.output
    verdicts = {d["trace_id"]: (d["step"], d["agent"]) for d in orjson.loads(r.output)}
    assert verdicts == {"whowhen-algorithm-demo_whowhen": (1, "UnitConversion_Expert"),
                        "chat-chat_langgraph": (3, "researcher")}
    r = runner.invoke(app, ["analyze", str(tmp_path / "*.json")], terminal_width=200)
    assert r.exit_code == 0, r.output
    assert "2 runs" in r.output and "chat-chat_langgraph" in r.output and "UnitConversion_Expert" in r.output
    r = runner.invoke(app, ["analyze", str(tmp_path / "empty"), "--json"])
    assert r.exit_code != 0
    # --save records each run with the file it came from, not the folder
    from attrib.store import open_store

    store = tmp_path / "s.duckdb"
    r = runner.invoke(app, ["analyze", str(tmp_path), "--save", "--store", str(store), "--json"])
    assert r.exit_code == 0, r.output
    with open_store(store, read_only=True) as st:
        rows = {row["trace_id"]: row["source_path"] for row in st.list_traces()}
        assert len(st.get_attributions("chat-chat_langgraph")) == 1
    assert rows == {"whowhen-algorithm-demo_whowhen": str(tmp_path / "demo_whowhen.json"),
                    "chat-chat_langgraph": str(tmp_path / "chat_langgraph.json")}


def test_a_bad_file_in_a_folder_does_not_stop_the_others(tmp_path):
    import shutil

    shutil.copy(traces_dir() / "demo_whowhen.json", tmp_path / "demo_whowhen.json")
    (tmp_path / "broken.json").write_text('{"history": [')
    (tmp_path / "empty.json").write_text('{"question": "q", "history": []}')
    r = runner.invoke(app, ["analyze", str(tmp_path), "--json"])
    assert r.exit_code == 3  # bad input, after the runs that could be read were reported
    assert '"trace_id": "whowhen-algorithm-demo_whowhen"' in r.output
    assert "broken.json: line 1" in r.output and "empty.json: history: empty" in r.output
    assert "2 of 3 run(s) or file(s) failed" in r.output
    (tmp_path / "demo_whowhen.json").unlink()
    r = runner.invoke(app, ["analyze", str(tmp_path)])
    assert r.exit_code == 3 and "none of its 2 trace files could be read" in r.output


def test_reading_a_folder_as_one_file_is_a_clear_error(tmp_path):
    import pytest

    from attrib.errors import InputError
    from attrib.readers import read_path

    with pytest.raises(InputError, match="is a folder"):
        read_path(tmp_path)


def test_a_run_recorded_as_successful_is_flagged_not_blamed_silently(tmp_path):
    import json

    from attrib.methods import SUCCEEDED_NOTE, analyze
    from attrib.readers import load_trace

    run = json.loads((traces_dir() / "chat_langgraph.json").read_text())
    run["outcome"] = "succeeded"
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(run))
    a = analyze(load_trace(path))
    assert a.reason.startswith(SUCCEEDED_NOTE) and a.evidence["run_outcome"] == "succeeded"
    assert "run_outcome" not in analyze(load_trace(traces_dir() / "chat_langgraph.json")).evidence
    r = runner.invoke(app, ["analyze", str(path)])
    assert r.exit_code == 0 and "recorded as successful" in r.output


def test_analyze_reads_standard_input():
    data = (traces_dir() / "chat_langgraph.json").read_bytes()
    r = runner.invoke(app, ["analyze", "-", "--json"], input=data)
    assert r.exit_code == 0, r.output
    d = orjson.loads(r.output)
    assert d["trace_id"].startswith("chat-stdin-") and (d["step"], d["agent"]) == (3, "researcher")
    r = runner.invoke(app, ["analyze", "-"], input=b'{"messages": [{"role": "user", "content": "hi"}')
    assert r.exit_code == 3 and "stdin: line 1 col" in r.output  # the syntax error, not "unknown format"
    r = runner.invoke(app, ["analyze", "-"], input=b"")
    assert r.exit_code == 3 and "stdin: empty file" in r.output


def test_set_level_sets_the_coverage_of_the_step_set():
    demo = str(traces_dir() / "demo_whowhen.json")
    sets = {}
    for level in ("0.5", "0.95"):
        r = runner.invoke(app, ["analyze", demo, "--set-level", level, "--json"])
        assert r.exit_code == 0, r.output
        ss = orjson.loads(r.output)["evidence"]["step_set"]
        assert ss["level"] == float(level)
        sets[level] = ss["steps"]
    assert set(sets["0.5"]) < set(sets["0.95"])  # a higher level, a longer set
    r = runner.invoke(app, ["analyze", demo, "--set-level", "1.5"])
    assert r.exit_code == 2 and "--set-level" in r.output
    r = runner.invoke(app, ["analyze", demo, "-m", "flow-graph", "--set-level", "0.8"])
    assert r.exit_code == 0 and "applies to the learned method" in r.output


def test_the_readme_quickstart_shows_what_make_demo_prints():
    """The README's `make demo` excerpt is the real output, not a stale copy (the ranker is refitted now and then)."""
    import re

    from attrib.paths import REPO_ROOT

    block = (REPO_ROOT / "README.md").read_text().split("<!-- section:quickstart -->")[1].split("```")[1]
    r = runner.invoke(app, ["analyze", str(traces_dir() / "demo_whowhen.json")], terminal_width=80)
    assert r.exit_code == 0, r.output
    # rich wraps differently at other widths; the analysis time varies from run to run
    squash = lambda text: re.sub(r"\s+", " ", re.sub(r"\d+ ms", "N ms", text))  # noqa: E731
    for line in block.splitlines()[1:]:
        words = line.strip("│╭╮╰╯─ ").strip()
        if words and words != "..." and not set(words) <= set("─━┃╇┩┡"):
            assert squash(words) in squash(r.output), words


def test_usage_errors_are_one_line_from_the_console_script():
    import subprocess
    import sys

    run = [sys.executable, "-c", "from attrib.cli import main; main()"]
    for args, needle in ((["heads", "--bogus"], "No such option: --bogus"),
                         (["analyze", "x", "--top-k", "0"], "'--top-k'")):
        r = subprocess.run([*run, *args], capture_output=True, text=True)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and needle in lines[0] and "--help" in lines[0], r.stderr
    r = subprocess.run([*run, "traces"], capture_output=True, text=True)  # a group with no command: its help
    assert r.returncode == 2 and "delete" in r.stdout + r.stderr


def test_plot_paths_and_an_endpoint_error_stop_a_folder_at_once(tmp_path):
    import shutil

    folder = tmp_path / "runs"
    folder.mkdir()
    shutil.copy(_demo(), folder / "a.json")
    shutil.copy(str(Path(_demo()).with_name("chat_langgraph.json")), folder / "b.json")
    r = runner.invoke(app, ["analyze", _demo(), "--plot", str(tmp_path / "p.txt")])
    assert r.exit_code == 2 and ".png" in r.output and not (tmp_path / "p.txt").exists()
    r = runner.invoke(app, ["analyze", str(folder), "--plot", str(tmp_path / "plots")])
    assert r.exit_code == 0 and sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "chat-b.png", "whowhen-algorithm-a.png"]
    (folder / "sub").mkdir()  # a second run named chat-b: its own PNG, not an overwrite
    shutil.copy(str(Path(_demo()).with_name("chat_autogen.jsonl")), folder / "sub" / "b.json")
    r = runner.invoke(app, ["analyze", str(folder), "--plot", str(tmp_path / "plots2")])
    assert r.exit_code == 0 and sorted(p.name for p in (tmp_path / "plots2").iterdir()) == [
        "chat-b-2.png", "chat-b.png", "whowhen-algorithm-a.png"]
    # an unreachable endpoint is the same for every run: one error, its own code (4), not one per run as 5
    r = runner.invoke(app, ["analyze", str(folder), "--method", "judge-all", "--llm-base-url", "http://127.0.0.1:9/v1"])
    assert r.exit_code == 4 and r.output.count("error:") == 1, r.output


def test_plot_names_stay_in_the_folder_whatever_the_trace_id(tmp_path):
    """A trace id comes from the file's content: ``"id": "../../x"`` or an absolute path wrote its PNG outside the
    --plot folder. Each id is now a plain file name."""
    import orjson as oj

    from attrib.readers import load_trace

    trace = load_trace(_demo())
    runs = tmp_path / "runs"
    runs.mkdir()
    for n, tid in enumerate(["../../escaped", str(tmp_path / "abs"), "", "a/b"]):
        d = oj.loads(trace.to_json())
        d["id"] = tid or "x"
        (runs / f"{n}.json").write_bytes(oj.dumps(d))
    plots = tmp_path / "deep" / "plots"
    r = runner.invoke(app, ["analyze", str(runs), "--plot", str(plots)])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in plots.iterdir()) == sorted(
        ["_.._escaped.png", f"{str(tmp_path / 'abs').replace('/', '_').lstrip('.')}.png", "x.png", "a_b.png"])
    assert not (tmp_path / "escaped.png").exists() and not (tmp_path / "abs.png").exists()


def test_eval_refuses_an_unknown_method_naming_the_known_ones():
    r = runner.invoke(app, ["eval", "who-and-when", "--method", "nope"])
    assert r.exit_code == 2 and "learned-subset" in r.output and "floor" in r.output


def test_a_store_that_cannot_be_read_is_exit_3_and_a_missing_one_4(tmp_path):
    (tmp_path / "folder.duckdb").mkdir()
    r = runner.invoke(app, ["analyze", "some-id", "--store", str(tmp_path / "folder.duckdb")])
    assert r.exit_code == 3 and "is a folder" in r.output
    r = runner.invoke(app, ["analyze", "some-id", "--store", str(tmp_path / "none.duckdb")])
    assert r.exit_code == 4 and "no such store" in r.output


def _command_paths(cmd, path=()):
    yield path
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _command_paths(sub, (*path, name))


def test_every_help_is_whole_at_80_columns():
    """At 80 columns long flags, defaults and words were cut with "…" (`--with-ground-tr…`,
    `secret,persona,lan…`, `attrib.heads.HeadL…`): every command's help must show every word whole."""
    import typer

    paths = list(_command_paths(typer.main.get_command(app)))
    assert ("eval", "who-and-when") in paths and ("traces", "list") in paths and len(paths) > 15
    for path in paths:
        r = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
        assert r.exit_code == 0, (path, r.output)
        assert max(map(len, r.output.splitlines())) <= 80, path  # rendered at the width asked for
        assert "…" not in r.output, (path, [line for line in r.output.splitlines() if "…" in line])
        # an on/off flag shows no type: "--json <bool>" read as if it took a value
        assert "<bool>" not in r.output, path


def test_stdin_at_a_terminal_is_a_usage_error(monkeypatch, tmp_path):
    """`attrib analyze -` (or `ingest -`) with nothing piped in waited silently for a trace to be typed."""
    import io
    import sys

    import pytest

    from attrib.cli.analyze import load_target
    from attrib.errors import UsageError

    class Terminal(io.BytesIO):
        def isatty(self):
            return True

        @property
        def buffer(self):
            raise AssertionError("read the terminal")

    monkeypatch.setattr(sys, "stdin", Terminal())
    with pytest.raises(UsageError, match=r"nothing is piped in") as e:
        load_target("-")
    assert e.value.exit_code == 2
    from attrib.readers import read_stdin

    with pytest.raises(UsageError, match=r"^stdin: nothing is piped in") as e:  # library callers too
        read_stdin()
    assert e.value.exit_code == 2
    r = CliRunner().invoke(app, ["ingest", "-", "--store", str(tmp_path / "s.duckdb")])  # no terminal: read
    assert r.exit_code == 3 and "stdin: empty file" in r.output


def test_save_never_files_a_verdict_under_another_runs_trace(bundled, tmp_path) -> None:
    """Two different runs with one id (both files named chat.json): --save kept the first stored trace and filed
    the second run's verdict under it (a step and agent that run does not have). Piped-in runs all got the id
    '...-stdin'; now they are named by their content, as `attrib ingest -` names them."""
    import json
    import shutil

    from attrib.store import open_store

    store = tmp_path / "s.duckdb"
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    shutil.copy(bundled / "chat_langgraph.json", tmp_path / "a" / "chat.json")
    # the AutoGen log as a JSON list, under the same file name
    lines = [json.loads(x) for x in (bundled / "chat_autogen.jsonl").read_text().splitlines() if x.strip()]
    (tmp_path / "b" / "chat.json").write_text(json.dumps(lines))
    for folder in ("a", "b"):
        r = runner.invoke(app, ["analyze", str(tmp_path / folder / "chat.json"), "--store", str(store), "--save"])
        assert r.exit_code == 0, r.output
    assert "replaced the stored" in r.output
    with open_store(store, read_only=True) as st:
        (tid,) = st.trace_ids()
        t = st.get_trace(tid)
        verdicts = st.con.execute("SELECT agent, step FROM attributions WHERE trace_id = ?", [tid]).fetchall()
    assert len(verdicts) == 1 and verdicts[0][0] in t.agents and verdicts[0][1] < t.n_steps

    piped = tmp_path / "p.duckdb"
    for f in ("a", "b"):
        r = runner.invoke(app, ["analyze", "-", "--store", str(piped), "--save"],
                          input=(tmp_path / f / "chat.json").read_text())
        assert r.exit_code == 0, r.output
    with open_store(piped, read_only=True) as st:
        ids = st.trace_ids()
    assert len(ids) == 2 and all(i.startswith("chat-stdin-") for i in ids)


def test_a_folder_of_runs_prints_names_with_brackets_as_written(tmp_path) -> None:
    """An agent named like rich markup ("Solver[/x]") crashed the many-runs summary table with a MarkupError."""
    from attrib.trace import Step, Trace

    for i in range(2):
        steps = (Step(index=0, agent="Planner[b]", content="Plan: compute 6 x 7."),
                 Step(index=1, agent="Solver[/x]", content="6 x 7 = 48. The answer is 48."))
        (tmp_path / f"run{i}.json").write_bytes(Trace(id=f"run{i}[/x]", source_format="attrib", steps=steps).to_json())
    r = runner.invoke(app, ["analyze", str(tmp_path)], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "2 runs" in r.output and "run0[/x]" in r.output and "Solver[/x]" in r.output


def test_python_dash_m_attrib_is_the_cli() -> None:
    """`python -m attrib` failed with "No module named attrib.__main__"; it is the same CLI as `attrib` now."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "attrib", "analyze", _demo(), "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert orjson.loads(r.stdout)["method"] == "learned"
    r = subprocess.run([sys.executable, "-m", "attrib", "analyze", "x", "--top-k", "0"], capture_output=True, text=True)
    assert r.returncode == 2 and "'--top-k'" in r.stderr


def test_several_targets_are_analyzed_as_one_folder(tmp_path) -> None:
    """`attrib analyze runs/*.json` (a glob the shell expanded) exited 2 with "Got unexpected extra argument(s)":
    analyze took one target where ingest, eval traces and fit take many. Several targets (files, folders, globs,
    stored ids) now get a report each and the summary table; one that cannot be read is reported after the others
    and sets the exit code, as a bad file in a folder does."""
    import shutil

    from attrib.readers import read_path

    runs = tmp_path / "runs"
    runs.mkdir()
    for name in ("demo_whowhen.json", "chat_langgraph.json"):
        shutil.copy(traces_dir() / name, runs / name)
    shell_expanded = sorted(str(p) for p in runs.glob("*.json"))
    r = runner.invoke(app, ["analyze", *shell_expanded, "--json"])
    assert r.exit_code == 0, r.output
    assert {d["trace_id"] for d in orjson.loads(r.output)} == {"whowhen-algorithm-demo_whowhen",
                                                               "chat-chat_langgraph"}
    r = runner.invoke(app, ["analyze", *shell_expanded], terminal_width=200)
    assert r.exit_code == 0 and "2 runs" in r.output and "chat-chat_langgraph" in r.output, r.output

    # a stored trace id beside a file; a file reached twice (named, and through the folder) is analysed once
    store = tmp_path / "s.duckdb"
    assert runner.invoke(app, ["ingest", str(traces_dir() / "otlp_agents.json"), "--store", str(store)]).exit_code == 0
    (stored,) = read_path(traces_dir() / "otlp_agents.json")
    r = runner.invoke(app, ["analyze", shell_expanded[0], str(runs), stored.id, "--store", str(store), "--json"])
    assert r.exit_code == 0, r.output
    assert sorted(d["trace_id"] for d in orjson.loads(r.output)) == sorted(
        ["whowhen-algorithm-demo_whowhen", "chat-chat_langgraph", stored.id])

    # one JSON object for one run asked for, a list as soon as several targets are given (even of one run each)
    r = runner.invoke(app, ["analyze", shell_expanded[0], shell_expanded[0], "--json"])
    assert r.exit_code == 0 and isinstance(orjson.loads(r.output), list) and len(orjson.loads(r.output)) == 1

    # a missing file and an unknown id: the others are still reported, the exit code is the highest (4: the id)
    r = runner.invoke(app, ["analyze", *shell_expanded, str(tmp_path / "missing.json"), "no-such-id",
                            "--store", str(store), "--json"])
    assert r.exit_code == 4, r.output
    assert '"trace_id": "chat-chat_langgraph"' in r.output and "missing.json: no such file" in r.output
    assert "no-such-id" in r.output and "2 of 4 run(s) or file(s) failed" in r.output
    # nothing readable: every target's error, then the code
    r = runner.invoke(app, ["analyze", str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    assert r.exit_code == 3 and "a.json: no such file" in r.output and "b.json: no such file" in r.output
    assert "none of the 2 targets could be read" in r.output
    # a glob among the targets that matches nothing is named, not dropped silently
    r = runner.invoke(app, ["analyze", shell_expanded[0], str(tmp_path / "none" / "*.json")])
    assert r.exit_code == 3 and "none/*.json" in r.output and "1 of 2 run(s) or file(s) failed" in r.output
    # --all still takes no target
    r = runner.invoke(app, ["analyze", *shell_expanded, "--all", "--store", str(store)])
    assert r.exit_code == 2 and "not both" in r.output


def test_a_stored_run_analysed_with_another_ranker_than_its_stored_verdict_says_so(tmp_path):
    """`attrib analyze ID --store S` analyses afresh with the shipped ranker: after a batch with --model it gave
    another verdict than the one the store and the inspector show, without a word. It now says which ranker made
    the stored verdict; with the same ranker there is nothing to say."""
    runs = Path(__file__).parent / "fixtures" / "own_system" / "runs"
    store, ranker = tmp_path / "s.duckdb", tmp_path / "mine.json"
    assert runner.invoke(app, ["fit", str(runs), "--no-pool", "--out", str(ranker)]).exit_code == 0
    run = sorted((runs / "chat").glob("*.json*"))[0]
    r = runner.invoke(app, ["analyze", str(run), "--model", str(ranker), "--save", "--store", str(store), "--json"])
    assert r.exit_code == 0, r.output
    tid = orjson.loads(r.stdout)["trace_id"]
    r = runner.invoke(app, ["analyze", tid, "--store", str(store)], terminal_width=300)
    assert r.exit_code == 0, r.output
    assert f"note: {tid}: the store's verdict came from ranker {ranker.name} (step" in r.output
    assert "this one from ranker shipped (step" in r.output
    r = runner.invoke(app, ["analyze", tid, "--store", str(store), "--model", str(ranker)], terminal_width=300)
    assert r.exit_code == 0 and "the store's verdict came from" not in r.output


def test_targets_that_could_not_be_read_are_shown_when_the_one_run_read_fails(tmp_path):
    """With one run read and one target unreadable, the run's own failure (here an unreachable judge endpoint,
    exit 4) was raised at once and the unreadable target was never mentioned."""
    r = runner.invoke(app, ["analyze", _demo(), str(tmp_path / "missing.json"), "--method", "judge-all",
                            "--llm-base-url", "http://127.0.0.1:9/v1"], terminal_width=300)
    assert r.exit_code == 4, r.output
    assert "missing.json: no such file" in r.output and "cannot connect" in r.output


def test_otlp_and_plot_take_a_file_and_say_why_not_all(tmp_path, monkeypatch):
    """`--otlp -` wrote a file named "-" in the current folder; `--all --otlp` said --otlp "applies to one TARGET",
    though several targets take it."""
    monkeypatch.chdir(tmp_path)
    for flag in ("--otlp", "--plot"):
        r = runner.invoke(app, ["analyze", _demo(), flag, "-"])
        assert r.exit_code == 2 and "give a file path" in r.output, r.output
    assert not (tmp_path / "-").exists()
    r = runner.invoke(app, ["analyze", "--all", "--store", str(tmp_path / "s.duckdb"), "--otlp", "v.json"],
                      terminal_width=300)
    said = " ".join(r.output.replace("│", " ").split())  # the usage error's box wraps the message
    assert r.exit_code == 2 and "applies to TARGETs analysed here, not to --all" in said, said


def test_version_names_attrib_and_python():
    """`attrib --version` was "No such option": a bug report starts with the version."""
    import platform

    from attrib import __version__

    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.strip() == f"attrib {__version__} (Python {platform.python_version()})"


def test_a_zero_or_huge_columns_still_prints_the_report_and_errors(tmp_path) -> None:
    """COLUMNS=0 (a CI runner's) printed nothing, error lines included; 100000 made one verdict 1.9 MB
    (walkthrough w8 #3): the width is kept within 40-400."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    attrib = shutil.which("attrib", path=str(Path(sys.executable).parent))
    if attrib is None:
        pytest.skip("needs the attrib console script beside this Python")
    demo = str(Path(__file__).resolve().parents[1] / "traces" / "demo_whowhen.json")
    for cols, most in (("0", 12_000), ("100000", 40_000)):
        env = {**os.environ, "COLUMNS": cols}
        ok = subprocess.run([attrib, "analyze", demo], capture_output=True, text=True, env=env, cwd=tmp_path)
        assert ok.returncode == 0 and "UnitConversion_Expert" in ok.stdout and len(ok.stdout) < most
        bad = subprocess.run([attrib, "analyze", "nosuch.json"], capture_output=True, text=True, env=env, cwd=tmp_path)
        assert bad.returncode == 3 and "nosuch.json: no such file" in bad.stderr


def test_warnings_piped_to_a_log_stay_one_line_each(tmp_path) -> None:
    """stderr piped to a file wrapped a warning at 80 columns: `grep ^warning:` got half a sentence (walkthrough
    w8 #8)."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    attrib = shutil.which("attrib", path=str(Path(sys.executable).parent))
    if attrib is None:
        pytest.skip("needs the attrib console script beside this Python")
    traces = str(Path(__file__).resolve().parents[1] / "traces")
    r = subprocess.run([attrib, "analyze", traces, "--json"], capture_output=True, text=True, cwd=tmp_path)
    line = next(x for x in r.stderr.splitlines() if x.startswith("warning: recorded as successful"))
    assert line.endswith("not a cause") and len(line) > 80, r.stderr
