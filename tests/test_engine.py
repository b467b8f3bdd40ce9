"""Batch attribution (attrib.engine): Dask gives the same verdicts as serial, failures are recorded, runs resume.

The store holds the real Who&When logs plus synthetic traces mutated from them (bench/scale/gen_corpus.py).
``longest_step`` is a trivial deterministic method defined here only (never registered in the product),
so the comparison does not depend on which product method is the default.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import msgspec
import pytest

from attrib.engine import analyze_many
from attrib.paths import REPO_ROOT, who_and_when_dir
from attrib.store import open_store
from attrib.store.api import ingest
from attrib.trace import AgentBlame, Attribution, StepBlame, Trace

pytest.importorskip("distributed")

N_SYNTHETIC = 216  # + 184 real Who&When logs = 400 traces


def _gen_corpus():
    spec = importlib.util.spec_from_file_location("gen_corpus", REPO_ROOT / "bench" / "scale" / "gen_corpus.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def longest_step(trace: Trace, **_: object) -> Attribution:
    """Blame the step with the most content (earliest on ties); agent blame = share of characters."""
    lengths = [len(s.content) for s in trace.steps]
    total = sum(lengths) or 1
    best = max(range(len(lengths)), key=lambda k: (lengths[k], -k))
    per_agent: dict[str, int] = {}
    for s, n in zip(trace.steps, lengths, strict=True):
        per_agent[s.agent] = per_agent.get(s.agent, 0) + n
    return Attribution(
        trace_id=trace.id,
        method="longest_step",
        agent=trace.steps[best].agent,
        step=best,
        confidence=lengths[best] / total,
        agents=tuple(AgentBlame(agent=a, score=n / total) for a, n in sorted(per_agent.items())),
        steps=tuple(StepBlame(step=k, agent=s.agent, score=n / total) for k, (s, n) in enumerate(zip(trace.steps, lengths, strict=True))),
        reason=f"step {best} is the longest ({lengths[best]} characters)",
    )


def flaky(trace: Trace, fail_on: tuple[str, ...] = (), **_: object) -> Attribution:
    """``longest_step``, except that it raises on the traces named in ``fail_on``."""
    if trace.id in fail_on:
        raise ValueError(f"planted failure on {trace.id}")
    return longest_step(trace)


longest_step.method_name = "longest_step"  # type: ignore[attr-defined]
flaky.method_name = "longest_step"  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with the 184 real Who&When logs and N_SYNTHETIC synthetic traces, built once."""
    path = tmp_path_factory.mktemp("engine") / "corpus.duckdb"
    ingest([who_and_when_dir()], store=str(path), progress=False)
    gen = _gen_corpus()
    store = open_store(str(path))
    try:
        gen.add_traces(store, gen.synthetic_traces(N_SYNTHETIC, seed=7))
        assert store.count_traces() == 184 + N_SYNTHETIC
    finally:
        store.close()
    return path


@pytest.fixture()
def store_copy(corpus: Path, tmp_path: Path):
    """A fresh copy of the corpus store for one test (results are written into it)."""
    def make(name: str) -> Path:
        p = tmp_path / f"{name}.duckdb"
        shutil.copy(corpus, p)
        return p
    return make


@pytest.fixture(scope="module")
def client():
    """One 2-worker LocalCluster shared by the Dask tests (starting one costs seconds)."""
    distributed = pytest.importorskip("distributed")
    import logging

    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=logging.ERROR
    ) as cluster, distributed.Client(cluster) as c:
        yield c


def _verdicts(path: Path, method: str) -> dict[str, dict]:
    """Every stored verdict of ``method``, keyed by trace id, without the wall time (the one field that may differ)."""
    store = open_store(str(path))
    try:
        rows = store.con.execute("SELECT trace_id, json FROM attributions WHERE method = ?", [method]).fetchall()
        out = {}
        for tid, js in rows:
            d = msgspec.to_builtins(Attribution.from_json(js))
            d.pop("elapsed_s")
            assert tid not in out, f"{tid}: two verdicts for {method}"
            out[tid] = d
        # the public reader returns the same thing
        some = rows[0][0] if rows else None
        if some is not None:
            (via_api,) = store.get_attributions(some, method)
            assert msgspec.to_builtins(via_api) | {"elapsed_s": None} == out[some] | {"elapsed_s": None}
        return out
    finally:
        store.close()


def test_local_cluster_matches_serial_on_400_traces(store_copy) -> None:
    a, b = store_copy("serial"), store_copy("dask")
    ra = analyze_many(a, method=longest_step, engine="serial", progress=False)
    rb = analyze_many(b, method=longest_step, engine="local", workers=2, batch_size=32, progress=False)
    assert (ra.analyzed, ra.failed, rb.analyzed, rb.failed) == (400, 0, 400, 0)
    assert rb.workers == 2
    va, vb = _verdicts(a, "longest_step"), _verdicts(b, "longest_step")
    assert len(va) == 400
    assert va == vb
    # and serial agrees with calling the method directly, trace by trace
    store = open_store(str(a))
    try:
        for tid in list(va)[::37]:
            direct = msgspec.to_builtins(longest_step(store.get_trace(tid).unlabelled()))
            direct.pop("elapsed_s")
            assert va[tid] == direct
    finally:
        store.close()


def test_failing_traces_are_recorded_and_do_not_stop_the_batch(store_copy, client) -> None:
    path = store_copy("flaky")
    store = open_store(str(path))
    ids = list(store.trace_ids())
    store.close()
    bad = (ids[3], ids[100], ids[101], ids[399])
    # connect by address, as to a cluster on other machines (`dask scheduler` + `dask worker`)
    addr = client.scheduler.address
    assert addr.startswith("tcp://")
    r = analyze_many(path, method=flaky, engine="dask", scheduler=addr, options={"fail_on": bad}, progress=False)
    assert (r.matched, r.analyzed, r.failed) == (400, 396, 4)
    assert {tid for tid, _ in r.errors} == set(bad)
    assert all("planted failure" in err and "ValueError" in err for _, err in r.errors)
    done = open_store(str(path))
    try:
        assert done.analyzed_ids("longest_step") == set(ids) - set(bad)
        errors = {e["trace_id"]: e["error"] for e in done.errors("longest_step")}
        assert set(errors) == set(bad)
        assert "planted failure" in errors[bad[0]]
    finally:
        done.close()
    # a rerun retries exactly the failed ones (they are not "analyzed"), and they now succeed
    r2 = analyze_many(path, method=longest_step, engine="dask", scheduler=addr, progress=False)
    assert (r2.skipped, r2.analyzed, r2.failed) == (396, 4, 0)


def test_resume_skips_done_traces_and_force_redoes_them(store_copy, client) -> None:
    path = store_copy("resume")
    first = analyze_many(path, method=longest_step, engine="serial", where="source_format = 'whowhen'", progress=False)
    assert (first.matched, first.analyzed, first.skipped) == (184, 184, 0)
    rest = analyze_many(path, method=longest_step, engine="dask", scheduler=client, progress=False)
    assert (rest.matched, rest.skipped, rest.analyzed) == (400, 184, 216)
    again = analyze_many(path, method=longest_step, engine="serial", progress=False)
    assert (again.skipped, again.analyzed, again.failed) == (400, 0, 0)
    before = _verdicts(path, "longest_step")
    forced = analyze_many(path, method=longest_step, engine="dask", scheduler=client, force=True, progress=False)
    assert (forced.skipped, forced.analyzed) == (0, 400)
    assert _verdicts(path, "longest_step") == before  # redone, not duplicated, same answers


def test_default_method_same_on_dask_as_serial_and_as_analyze(store_copy, client) -> None:
    """The product's default method, through the CLI (serial) and on Dask, equals attrib.analyze trace by trace."""
    from typer.testing import CliRunner

    from attrib.cli import app
    from attrib.methods import DEFAULT_METHOD, analyze

    a, b = store_copy("default-serial"), store_copy("default-dask")
    where = "rowid % 16 = 3"  # 25 traces, real and synthetic
    res = CliRunner().invoke(app, ["analyze", "--store", str(a), "--all", "--engine", "serial", "--where", where, "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert (report["method"], report["matched"], report["analyzed"], report["failed"]) == (DEFAULT_METHOD, 25, 25, 0)
    rb = analyze_many(b, engine="dask", scheduler=client, where=where, batch_size=8, progress=False)
    assert (rb.analyzed, rb.failed) == (25, 0)
    va, vb = _verdicts(a, DEFAULT_METHOD), _verdicts(b, DEFAULT_METHOD)
    assert len(va) == 25 and va == vb
    store = open_store(str(a))
    try:
        for tid in list(va)[:5]:
            direct = msgspec.to_builtins(analyze(store.get_trace(tid)))
            direct.pop("elapsed_s")
            assert va[tid] == direct
    finally:
        store.close()


def test_cli_batch_resumes_and_reports_failures_with_exit_1(store_copy) -> None:
    from typer.testing import CliRunner

    from attrib.cli import app

    path = store_copy("cli")
    run = ["analyze", "--store", str(path), "--all", "--engine", "serial", "--method", "flow-graph",
           "--where", "rowid < 12"]
    first = CliRunner().invoke(app, run)
    assert first.exit_code == 0, first.output
    assert "analyzed now" in first.output and "12" in first.output
    assert "cluster start" not in first.output  # a serial run starts no cluster (it said "cluster start 0.0 s")
    again = CliRunner().invoke(app, run)
    assert again.exit_code == 0 and "Nothing to do" in again.output
    bad_where = CliRunner().invoke(app, ["analyze", "--store", str(path), "--all", "--where", "no_such_column > 1"])
    assert bad_where.exit_code == 2  # a flag's value
    assert "--where" in bad_where.output and "no_such_column" in bad_where.output
    usage = CliRunner().invoke(app, ["analyze", "--store", str(path), "--engine", "serial"])
    assert usage.exit_code == 2 and "--engine only applies with --all" in usage.output


def test_cli_batch_refuses_a_missing_store_and_a_bad_engine_and_honours_set_level(store_copy, tmp_path) -> None:
    from typer.testing import CliRunner

    from attrib.cli import app

    typo = tmp_path / "typo.duckdb"
    r = CliRunner().invoke(app, ["analyze", "--store", str(typo), "--all", "--engine", "serial"])
    assert r.exit_code == 4 and "no store here" in r.output and not typo.exists()  # no empty store left behind
    path = store_copy("levels")
    r = CliRunner().invoke(app, ["analyze", "--store", str(path), "--all", "--engine", "spark"])
    assert r.exit_code == 2 and "--engine" in r.output
    r = CliRunner().invoke(app, ["analyze", "--store", str(path), "--all", "--engine", "serial", "--where",
                                 "rowid < 3", "--set-level", "0.6"])
    assert r.exit_code == 0, r.output
    with open_store(path, read_only=True) as st:
        sets = [a.evidence["step_set"] for tid in st.trace_ids() for a in st.get_attributions(tid, "learned")]
    assert len(sets) == 3 and {s["level"] for s in sets} == {0.6}


def test_bad_arguments_are_one_clear_error(corpus: Path) -> None:
    from attrib.errors import AttribError

    with pytest.raises(AttribError, match="unknown engine"):
        analyze_many(corpus, method=longest_step, engine="spark", progress=False)  # type: ignore[arg-type]
    with pytest.raises(AttribError, match="unknown method"):
        analyze_many(corpus, method="no-such-method", engine="serial", progress=False)


@pytest.mark.parametrize(("kw", "flag"), [({"batch_size": 0}, "--batch-size"), ({"workers": 0}, "--workers"),
                                          ({"workers": -2}, "--workers")])
def test_bad_batch_size_and_workers_are_usage_errors(corpus: Path, kw: dict, flag: str) -> None:
    """They were plain AttribErrors (exit 1, no field) where every other bad argument value is a UsageError."""
    from attrib.errors import UsageError

    with pytest.raises(UsageError, match="must be a whole number >= 1") as e:
        analyze_many(corpus, method=longest_step, engine="serial", progress=False, **kw)
    assert e.value.field == next(iter(kw)) and e.value.exit_code == 2 and e.value.as_flag().startswith(flag)


def test_cli_batch_refuses_flags_it_would_ignore_and_bad_scheduler_addresses(store_copy) -> None:
    import socket
    import time

    from typer.testing import CliRunner

    from attrib.cli import app

    path = str(store_copy("flags"))
    base = ["analyze", "--store", path, "--all"]
    for extra, flag in ((["--plot", "p.png"], "--plot"), (["--otlp", "o.json"], "--otlp"), (["--markdown"], "--markdown"),
                        (["--top-k", "2"], "--top-k"), (["--engine", "serial", "--scheduler", "tcp://h:8786"], "--scheduler"),
                        (["--method", "judge-all"], "--llm-base-url")):
        r = CliRunner().invoke(app, [*base, *extra])
        assert r.exit_code == 2 and flag in r.output, (extra, r.output)
    for addr in ("notaurl", "tcp://127.0.0.1", "http://127.0.0.1:8786", "tls://127.0.0.1:8786"):
        r = CliRunner().invoke(app, [*base, "--engine", "dask", "--scheduler", addr])
        assert r.exit_code == 2 and "--scheduler" in r.output and "Traceback" not in r.output, (addr, r.output)
    # a port that accepts and never answers (as the dashboard's would): one line, exit 4, within the timeout
    import attrib.engine as engine

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]
    old, engine.CONNECT_TIMEOUT_S = engine.CONNECT_TIMEOUT_S, 3.0
    try:
        t0 = time.perf_counter()
        r = CliRunner().invoke(app, [*base, "--engine", "dask", "--scheduler", f"tcp://127.0.0.1:{port}"])
        assert r.exit_code == 4 and "cannot reach a Dask scheduler" in r.output, r.output
        assert time.perf_counter() - t0 < 30
    finally:
        engine.CONNECT_TIMEOUT_S = old
        srv.close()


def test_cli_batch_with_a_judge_reaches_the_endpoint_once_before_any_trace(store_copy) -> None:
    from typer.testing import CliRunner

    from attrib.cli import app

    path = store_copy("judge")
    r = CliRunner().invoke(app, ["analyze", "--store", str(path), "--all", "--engine", "serial", "--method",
                                 "judge-all", "--llm-base-url", "http://127.0.0.1:9/v1"])
    assert r.exit_code == 4 and r.output.count("error:") == 1 and "failed" not in r.output.split("error:")[0]
    with open_store(path, read_only=True) as st:
        assert st.errors("judge-all") == []  # nothing recorded per trace


def test_a_store_another_process_holds_is_one_store_locked_error(tmp_path) -> None:
    """A batch on a store that another process holds (an ingest, another batch) stops before any work with the
    store's StoreLockedError (exit 3, the holder's pid): the library raises it, the CLI prints its one line."""
    from _store_lock import store_held
    from typer.testing import CliRunner

    from attrib.cli import app
    from attrib.errors import EXIT_BAD_INPUT
    from attrib.store import StoreLockedError

    path = tmp_path / "held.duckdb"
    assert ingest([who_and_when_dir("hand") / "1.json"], store=str(path), progress=False).ok
    with store_held(path) as proc:
        with pytest.raises(StoreLockedError) as e:
            analyze_many(path, method=longest_step, engine="serial", progress=False)
        assert e.value.pid == proc.pid and e.value.exit_code == EXIT_BAD_INPUT
        r = CliRunner().invoke(app, ["analyze", "--store", str(path), "--all", "--engine", "serial"])
        assert r.exit_code == EXIT_BAD_INPUT and str(e.value) in " ".join(r.output.split()), r.output


OWN_RUNS = Path(__file__).parent / "fixtures" / "own_system" / "runs"


def _own_store_and_ranker(tmp_path: Path) -> tuple[Path, Path]:
    """A store of 3 of tests/fixtures/own_system's runs and a ranker fitted on its chat runs."""
    import orjson

    from attrib.methods.learned import fit_artifact
    from attrib.readers import read_paths

    model = tmp_path / "mine.json"
    model.write_bytes(orjson.dumps(fit_artifact(read_paths([OWN_RUNS / "chat"]), "test")))
    path = tmp_path / "own.duckdb"
    files = sorted((OWN_RUNS / "otlp").glob("*.json"))[:3]
    assert ingest(files, store=str(path), progress=False).ok
    return path, model


def _rankers(path: Path) -> list[str]:
    with open_store(str(path), read_only=True) as st:
        return sorted(a.evidence["ranker"] for tid in st.trace_ids() for a in st.get_attributions(tid, "learned"))


def test_attrib_ranker_reaches_workers_that_do_not_have_it(tmp_path, client, monkeypatch) -> None:
    """$ATTRIB_RANKER set where the batch runs but not on the workers (a remote cluster; here one started before it
    was set): the workers used the shipped ranker, so the store held its verdicts while the driver resumed by the
    user's ranker. The driver now passes the file, as an absolute path, to every worker."""
    path, model = _own_store_and_ranker(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ATTRIB_RANKER", model.name)  # relative, as users type it
    report = analyze_many(path, engine="dask", scheduler=client)
    assert (report.analyzed, report.failed) == (3, 0), report.errors
    assert report.ranker is not None and report.ranker.startswith(f"{model.resolve()} (sha256 ")
    assert _rankers(path) == [report.ranker] * 3
    assert analyze_many(path, engine="dask", scheduler=client).skipped == 3  # resumes by that ranker


def test_a_verdict_from_another_ranker_is_never_saved(tmp_path, monkeypatch) -> None:
    """A worker that loads another ranker than the driver resolved (another file at the same path, its own
    $ATTRIB_RANKER) must not slip its verdicts into the store beside this batch's: each is an error instead."""
    import attrib.engine as engine

    path, model = _own_store_and_ranker(tmp_path)
    real = engine._attribute

    def elsewhere(method, trace, options):  # what a worker with its own ranker file returns
        a = real(method, trace, {k: v for k, v in options.items() if k != "model_path"})
        return a

    monkeypatch.setattr(engine, "_attribute", elsewhere)
    report = analyze_many(path, engine="serial", options={"model_path": str(model)})
    assert (report.analyzed, report.failed) == (0, 3)
    assert "not saved" in report.errors[0][1] and "shipped" in report.errors[0][1]
    assert _rankers(path) == []


def _hand_crafted_store(tmp_path: Path) -> Path:
    """A store of Who&When's 58 Hand-Crafted runs, for the Ctrl-C tests."""
    path = tmp_path / "s.duckdb"
    ingest([who_and_when_dir() / "Hand-Crafted"], store=str(path))
    return path


def test_ctrl_c_keeps_finished_partitions_says_how_far_and_a_rerun_finishes(tmp_path: Path) -> None:
    """A KeyboardInterrupt in the middle of a batch: the partitions written are whole in the store, the
    BatchInterrupted (a KeyboardInterrupt) carries the report, and rerunning does only the rest."""
    from attrib.cli.batch import interrupted_line
    from attrib.engine import BatchInterrupted

    path = _hand_crafted_store(tmp_path)
    seen: list[str] = []

    def stops_at_the_25th(trace: Trace, **_: object) -> Attribution:
        seen.append(trace.id)
        if len(seen) == 25:
            raise KeyboardInterrupt
        return longest_step(trace)

    stops_at_the_25th.method_name = "longest_step"  # type: ignore[attr-defined]
    with pytest.raises(BatchInterrupted) as e:
        analyze_many(str(path), method=stops_at_the_25th, engine="serial", batch_size=10)
    r = e.value.report
    assert isinstance(e.value, KeyboardInterrupt) and r is not None and (r.analyzed, r.failed) == (20, 0)
    assert len(_verdicts(path, "longest_step")) == 20
    assert "20 trace(s) finished" in interrupted_line(r) and f"{r.matched - 20:,} still to do" in interrupted_line(r)
    again = analyze_many(str(path), method=longest_step, engine="serial", batch_size=10)
    assert (again.skipped, again.analyzed) == (20, r.matched - 20)


def test_a_ctrl_c_while_the_local_cluster_starts_stops_the_batch(tmp_path: Path) -> None:
    """A Ctrl-C while the local Dask cluster was starting was ignored (SIGINT was ignored so that the workers would
    not see it) and the batch ran to the end. Now it stops, with 130 and one line, once the cluster is up: the
    cluster closed, no worker left, nothing written, and no worker traceback. The Ctrl-C goes to the whole process
    group, as a terminal sends it, the moment the first worker process exists: the cluster's start waits for its
    workers to register, so that moment is inside it."""
    import contextlib
    import os
    import signal
    import subprocess
    import sys
    import time

    import psutil

    path = _hand_crafted_store(tmp_path)
    cmd = [sys.executable, "-m", "attrib", "analyze", "--all", "--store", str(path), "--engine", "local",
           "--workers", "2", "--method", "flow-graph"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    children: dict[int, psutil.Process] = {}
    try:
        parent = psutil.Process(proc.pid)
        deadline = time.monotonic() + 120
        worker = False
        while not worker and proc.poll() is None and time.monotonic() < deadline:
            for child in parent.children(recursive=True):
                children[child.pid] = child
                with contextlib.suppress(psutil.Error):  # gone already
                    worker = worker or "spawn_main" in " ".join(child.cmdline())  # a Dask worker process
            time.sleep(0.005)
        assert worker, f"no worker process started: {proc.communicate()}"
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, (out, err)
    assert err.strip().splitlines() == ["interrupted: stopped before any trace was analyzed; the store is unchanged "
                                        "(58 to do): rerun the same command"], err
    _, alive = psutil.wait_procs(list(children.values()), timeout=30)
    assert alive == []  # the cluster was shut down
    with open_store(str(path), read_only=True) as st:
        assert st.errors("flow-graph") == [] and not any(st.get_attributions(t) for t in st.trace_ids())
    again = analyze_many(str(path), method="flow-graph", engine="serial")
    assert (again.skipped, again.analyzed, again.failed) == (0, 58, 0)


def test_a_ctrl_c_that_library_code_swallows_still_stops_the_batch(tmp_path: Path) -> None:
    """A Ctrl-C raised inside code that swallows it (distributed's gc callback only prints it) was lost and the
    batch ran to the end; the batch remembers the signal and stops after the partition it is writing."""
    import os
    import signal
    import time

    from attrib.engine import BatchInterrupted

    path = _hand_crafted_store(tmp_path)
    seen: list[str] = []

    def swallows_a_ctrl_c(trace: Trace, **_: object) -> Attribution:
        seen.append(trace.id)
        if len(seen) == 5:
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.2)  # the handler runs here
            except KeyboardInterrupt:
                pass  # swallowed, as a library callback might
        return longest_step(trace)

    swallows_a_ctrl_c.method_name = "longest_step"  # type: ignore[attr-defined]
    with pytest.raises(BatchInterrupted) as e:
        analyze_many(str(path), method=swallows_a_ctrl_c, engine="serial", batch_size=10)
    assert e.value.report is not None and e.value.report.analyzed == 10 and len(seen) == 10


def _free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_nothing_to_do_still_checks_the_scheduler_and_reports_no_workers(tmp_path) -> None:
    """With every trace already analyzed, an unreachable --scheduler said "Nothing to do" and exited 0 (the README:
    exit 4), and a malformed one passed too; --json said "workers": 1 though none ran. The address is now checked
    (one TCP connection, no Client) and the report counts the workers that ran: 0."""
    import socket
    import time

    from typer.testing import CliRunner

    from attrib.cli import app
    from attrib.errors import NotFoundError

    path = tmp_path / "own.duckdb"
    assert ingest(sorted((OWN_RUNS / "otlp").glob("*.json"))[:3], store=str(path), progress=False).ok
    first = analyze_many(path, method="flow-graph", engine="serial")
    assert (first.analyzed, first.workers) == (3, 1)  # a serial run is one worker
    for engine in ("serial", "local"):
        idle = analyze_many(path, method="flow-graph", engine=engine)  # type: ignore[arg-type]
        assert (idle.skipped, idle.analyzed, idle.workers) == (3, 0, 0), engine
    base = ["analyze", "--store", str(path), "--all", "--method", "flow-graph"]
    r = CliRunner().invoke(app, [*base, "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["workers"] == 0, r.output

    closed = f"tcp://127.0.0.1:{_free_port()}"
    t0 = time.perf_counter()
    with pytest.raises(NotFoundError, match="cannot reach a Dask scheduler"):
        analyze_many(path, method="flow-graph", engine="dask", scheduler=closed)
    r = CliRunner().invoke(app, [*base, "--engine", "dask", "--scheduler", closed])
    assert r.exit_code == 4 and "cannot reach a Dask scheduler" in r.output and "Nothing to do" not in r.output
    assert time.perf_counter() - t0 < 10  # a refused port answers at once: no 30 s Client handshake
    r = CliRunner().invoke(app, [*base, "--engine", "dask", "--scheduler", "notaurl"])
    assert r.exit_code == 2 and "--scheduler" in r.output, r.output

    with socket.socket() as srv:  # something listens there: nothing to do, and the summary says it answered
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        address = f"tcp://127.0.0.1:{srv.getsockname()[1]}"
        assert analyze_many(path, method="flow-graph", engine="dask", scheduler=address).workers == 0
        r = CliRunner().invoke(app, [*base, "--engine", "dask", "--scheduler", address], terminal_width=200)
        assert r.exit_code == 0 and "Nothing to do" in r.output and "answers, no task sent" in r.output, r.output


def test_the_batch_summary_counts_verdicts_on_the_rankers_own_runs(store_copy) -> None:
    """`analyze --all` over runs the ranker was fitted on stored verdicts that read as hits, and the summary did not
    say so (walkthrough w5 #7): the shipped ranker was fitted on every Who&When log."""
    import json

    from typer.testing import CliRunner

    from attrib.cli import app

    path = store_copy("insample")
    run = ["analyze", "--store", str(path), "--all", "--engine", "serial", "--where", "source_format = 'whowhen' "
           "AND rowid < 6"]
    shown = CliRunner().invoke(app, run, env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "of them in sample" in shown.output
    again = CliRunner().invoke(app, [*run, "--force", "--json"])
    report = json.loads(again.output)
    assert report["analyzed"] >= 1 and report["in_sample"] == report["analyzed"]


def test_one_check_says_whether_an_extra_is_installed(monkeypatch) -> None:
    """`needs` (the install hint) and the batch's fallback to serial ask the same :func:`has_module`, so they cannot
    disagree on whether dask is there."""
    import importlib.util

    from attrib.cli._common import has_module, needs

    assert has_module("json") and not has_module("attrib_no_such_module")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "distributed" else real(name, *a))
    assert not has_module("distributed")
    with pytest.raises(ModuleNotFoundError, match="distributed"):
        needs("json", "distributed")


def test_a_base_install_runs_the_batch_serially_and_asks_for_dask_before_a_scheduler(store_copy, monkeypatch) -> None:
    """Without the `scale` extra the default `analyze --all` failed with the install hint, and `--scheduler` said it
    could not reach the scheduler before naming the missing extra (walkthrough w6 #9)."""
    import importlib.util

    from typer.testing import CliRunner

    from attrib.cli import app

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",  # the installed packages, as a base install has them
                        lambda name, *a: None if name.split(".")[0] in ("dask", "distributed") else real(name, *a))
    path = store_copy("base")
    r = CliRunner().invoke(app, ["analyze", "--store", str(path), "--all", "--method", "flow-graph",
                                 "--where", "rowid < 3"])
    assert r.exit_code == 0, r.output
    assert "running the batch serially" in r.output and "analyzed now" in r.output
    r = CliRunner().invoke(app, ["analyze", "--store", str(path), "--all", "--engine", "dask", "--scheduler",
                                 "tcp://127.0.0.1:1"])
    assert r.exit_code == 1 and "pip install 'attrib[scale]'" in r.output and "reach" not in r.output, r.output


def test_sigterm_reads_as_ctrl_c_through_one_helper() -> None:
    """`attrib ingest` (sigterm_as_interrupt) and a batch (_sigint_latch, which also remembers it) install SIGTERM's
    handler through the same helper, and both put the default back."""
    import os
    import signal
    import time

    from attrib.engine import _sigint_latch, sigterm_as_interrupt

    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        pytest.skip("SIGTERM has a handler in this test process")
    got: list[int] = []

    def mine(signum: int, frame: object) -> None:
        got.append(signum)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), sigterm_as_interrupt(mine):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)
    assert got == [signal.SIGTERM] and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    with _sigint_latch() as stopped:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        except KeyboardInterrupt:
            pass
        assert stopped()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
