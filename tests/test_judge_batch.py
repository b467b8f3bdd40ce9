"""LLM judges in a batch over the store (``analyze --all --method judge-*``, :func:`attrib.engine.analyze_many`),
against the scripted OpenAI-shaped server of tests/_llm_servers.py and a few real Who&When logs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attrib.cli import app
from attrib.engine import EndpointLost, analyze_many
from attrib.llm import LLMConfig
from attrib.paths import who_and_when_dir
from attrib.store import open_store
from attrib.store.api import ingest

try:
    from tests._llm_servers import ScriptedServer
except ImportError:  # rootdir-less import mode
    from _llm_servers import ScriptedServer

LOGS = ("12.json", "5.json", "7.json")  # short Algorithm-Generated logs


@pytest.fixture()
def store(tmp_path: Path) -> Path:
    """A store holding three real Who&When logs."""
    path = tmp_path / "judge.duckdb"
    ingest([who_and_when_dir("algorithm") / f for f in LOGS], store=str(path), progress=False)
    return path


def good(agent: str = "Computer_terminal", step: int = 2) -> str:
    """A verdict that fits every log in ``LOGS`` (each has Computer_terminal at step 2)."""
    return json.dumps({"reason": "because", "agent": agent, "step": step, "confidence": 0.6})


def cfg(url: str) -> LLMConfig:
    return LLMConfig(base_url=url, model="scripted", backoff_s=0.01, timeout_s=10, max_retries=1)


AUTH = (401, {"error": {"message": "invalid api key"}})


def test_an_endpoint_lost_mid_batch_stops_it_keeping_what_was_done_and_recording_no_failure(store: Path) -> None:
    with ScriptedServer([good(), AUTH]) as srv:
        with pytest.raises(EndpointLost) as e:
            analyze_many(store, method="judge-all", engine="serial", options={"llm": cfg(srv.url)})
        n_chats = len(srv.chat_bodies)
    assert e.value.exit_code == 4 and "401" in str(e.value)
    assert e.value.report is not None and (e.value.report.analyzed, e.value.report.failed) == (1, 0)
    assert n_chats == 2  # no trace after the refusal was sent
    with open_store(str(store)) as st:
        assert st.errors("judge-all") == []
        assert len(st.con.execute("SELECT * FROM attributions WHERE method = 'judge-all'").fetchall()) == 1


def test_the_cli_batch_probes_chat_up_front_so_a_chat_only_refusal_is_one_line(store: Path) -> None:
    """A server that lists its models but refuses chat (a proxy with a public model list): one error, exit 4."""
    with ScriptedServer([AUTH]) as srv:
        r = CliRunner().invoke(app, ["analyze", "--store", str(store), "--all", "--engine", "serial", "--method",
                                     "judge-all", "--llm-base-url", srv.url, "--llm-model", "scripted"])
        n_chats = len(srv.chat_bodies)
    assert r.exit_code == 4, r.output
    assert r.output.count("error:") == 1 and "401" in r.output and "failed" not in r.output
    assert n_chats == 1 and srv.chat_bodies[0]["max_tokens"] == 1
    with open_store(str(store)) as st:
        assert st.errors("judge-all") == []


def test_the_cli_batch_stops_at_once_when_the_endpoint_goes_after_the_probe(store: Path) -> None:
    with ScriptedServer(["OK", good(), (404, {"error": {"message": "The model `scripted` does not exist"}})]) as srv:
        r = CliRunner().invoke(app, ["analyze", "--store", str(store), "--all", "--engine", "serial", "--method",
                                     "judge-all", "--llm-base-url", srv.url, "--llm-model", "scripted"])
    assert r.exit_code == 4, r.output
    assert r.output.count("error:") == 1 and "does not exist" in r.output and "1 trace(s) finished" in r.output
    with open_store(str(store)) as st:
        assert st.errors("judge-all") == []


def test_an_endpoint_lost_on_a_dask_worker_stops_the_batch_too(store: Path) -> None:
    pytest.importorskip("distributed")
    with ScriptedServer([AUTH]) as srv, pytest.raises(EndpointLost) as e:
        analyze_many(store, method="judge-all", engine="local", workers=1, options={"llm": cfg(srv.url)})
    assert e.value.report is not None and e.value.report.failed == 0
    with open_store(str(store)) as st:
        assert st.errors("judge-all") == []


@pytest.mark.parametrize("answer, code", [(AUTH, "401"), ((400, {"error": {"message": "This model's maximum context "
                                                                               "length is 4096 tokens"}}), "context")])
def test_the_judge_bench_stops_on_an_endpoint_error_and_writes_no_table(answer, code, tmp_path: Path) -> None:
    """bench/who_and_when/judge.py scored a refused or too-small endpoint as 'no answer' misses and wrote a 0 % table."""
    import subprocess
    import sys

    from attrib.paths import REPO_ROOT

    out = tmp_path / "judge.json"
    with ScriptedServer([answer]) as srv:
        r = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "who_and_when" / "judge.py"), "--subset",
                            "algorithm", "--limit", "5", "--methods", "judge-all", "--llm-base-url", srv.url,
                            "--llm-model", "scripted", "--out", str(out)], capture_output=True, text=True,
                           timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode != 0 and code in r.stderr and "nothing written" in r.stderr, r.stderr[-2000:]
    assert not out.exists()


def test_a_rerun_with_a_judge_says_stored_verdicts_of_another_model_are_kept(store: Path) -> None:
    """The store skips traces a judge already did, whatever model did them: the summary says so (--force redoes)."""
    base = ["analyze", "--store", str(store), "--all", "--engine", "serial", "--method", "judge-all", "--llm-model",
            "scripted"]
    with ScriptedServer(["OK", good()]) as srv:
        r = CliRunner().invoke(app, [*base, "--llm-base-url", srv.url])
        assert r.exit_code == 0, r.output
        assert "keep their stored verdict" not in r.output
        r = CliRunner().invoke(app, [*base, "--llm-base-url", srv.url])
    assert r.exit_code == 0, r.output
    assert "The 3 already analyzed trace(s) keep their stored verdict, whichever model or endpoint made it: pass " \
        "--force to redo them with scripted" in r.output


def test_llm_flags_with_a_method_that_is_not_a_judge_are_warned_about(store: Path, monkeypatch) -> None:
    monkeypatch.delenv("ATTRIB_LLM_BASE_URL", raising=False)
    path = str(who_and_when_dir("algorithm") / "12.json")
    r = CliRunner().invoke(app, ["analyze", path, "--llm-context-chars", "8000"])
    assert r.exit_code == 0 and "warning: --llm-context-chars applies to the judge-* methods, not learned: no LLM " \
        "is used" in " ".join(r.output.split()), r.output
    r = CliRunner().invoke(app, ["analyze", "--store", str(store), "--all", "--engine", "serial", "--method",
                                 "learned", "--llm-base-url", "http://127.0.0.1:9/v1"])
    assert r.exit_code == 0 and "warning: --llm-base-url applies to the judge-* methods, not learned" in \
        " ".join(r.output.split()), r.output
    monkeypatch.setenv("ATTRIB_LLM_BASE_URL", "http://127.0.0.1:9/v1")  # from the environment: no warning
    r = CliRunner().invoke(app, ["analyze", "--store", str(store), "--all", "--engine", "serial", "--method",
                                 "learned", "--force"])
    assert r.exit_code == 0 and "warning" not in r.output, r.output


def test_the_summary_of_several_judged_runs_calls_their_numbers_scores() -> None:
    from attrib.methods import analyze
    from attrib.readers import load_trace
    from attrib.render import summary_headers, summary_markdown

    runs = [load_trace(who_and_when_dir("algorithm") / f) for f in LOGS[:2]]
    with ScriptedServer([good()]) as srv:
        judged = [(t, analyze(t, method="judge-all", llm=cfg(srv.url))) for t in runs]
    assert summary_headers(judged) == ("score", "agent score")
    assert "| trace | step | blamed agent | score | agent score |" in summary_markdown(judged)
    learned = [(t, analyze(t, method="learned")) for t in runs]
    assert summary_headers(learned) == ("conf", "agent conf")
