"""Batch attribution on a real Dask cluster that misbehaves: a scheduler that dies mid-batch, a worker that dies,
and addresses where no scheduler answers (a refused port, an HTTP server, a server that answers garbage).

The cluster is ``dask scheduler`` and ``dask worker`` started here as processes on free ports and killed here,
as a user would; the store is Who&When's 58 Hand-Crafted runs. ``sleepy`` is a slow, deterministic method
defined here (the workers import this module: its folder is on their PYTHONPATH) that logs each trace it
analyses to a file, so the test knows when the batch is under way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from attrib.engine import analyze_many
from attrib.errors import NotFoundError
from attrib.paths import who_and_when_dir
from attrib.store import open_store
from attrib.store.api import ingest
from attrib.trace import Attribution, StepBlame, Trace

pytest.importorskip("distributed")

DASK = Path(sys.executable).parent / "dask"
N_TRACES = 58  # Who&When Hand-Crafted


def sleepy(trace: Trace, delay: float = 0.0, log: str | None = None, fail_on: tuple[str, ...] = (),
           **_: object) -> Attribution:
    """Blame the last step, after ``delay`` seconds; append the trace id to ``log``; raise on ``fail_on``."""
    time.sleep(delay)
    if log:
        with open(log, "a") as f:
            f.write(trace.id + "\n")
    if trace.id in fail_on:
        raise ValueError(f"planted failure on {trace.id}")
    last = len(trace.steps) - 1
    return Attribution(trace_id=trace.id, method="sleepy", agent=trace.steps[last].agent, step=last, confidence=1.0,
                       steps=(StepBlame(step=last, agent=trace.steps[last].agent, score=1.0),), reason="last step")


sleepy.method_name = "sleepy"  # type: ignore[attr-defined]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def store(tmp_path: Path) -> Path:
    path = tmp_path / "s.duckdb"
    assert ingest([who_and_when_dir() / "Hand-Crafted"], store=str(path), progress=False).ok
    return path


class Cluster:
    """``dask scheduler`` and ``dask worker`` processes on a free port; every one is killed on exit."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = _free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.scheduler_log = tmp / "scheduler.log"
        tests = str(Path(__file__).parent)
        self.env = {**os.environ, "OMP_NUM_THREADS": "1",
                    "PYTHONPATH": os.pathsep.join(p for p in (tests, os.environ.get("PYTHONPATH")) if p)}

    def _start(self, args: list[str], log: Path) -> subprocess.Popen[bytes]:
        with open(log, "wb") as out:
            proc = subprocess.Popen([str(DASK), *args], stdout=out, stderr=subprocess.STDOUT, env=self.env,
                                    start_new_session=True)
        self.procs.append(proc)
        return proc

    def start_scheduler(self) -> subprocess.Popen[bytes]:
        self.scheduler = self._start(["scheduler", "--port", str(self.port), "--dashboard-address", ":0"],
                                     self.scheduler_log)
        deadline = time.monotonic() + 60
        while "Scheduler at" not in self.scheduler_log.read_text():
            assert self.scheduler.poll() is None and time.monotonic() < deadline, self.scheduler_log.read_text()
            time.sleep(0.1)
        return self.scheduler

    def start_workers(self, n: int) -> None:
        import distributed

        for i in range(n):
            self._start(["worker", self.address, "--nthreads", "1", "--no-dashboard"], self.tmp / f"worker{i}.log")
        with distributed.Client(self.address, timeout="30s") as c:
            c.wait_for_workers(n, timeout=60)

    def kill_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
            p.wait()


@pytest.fixture()
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.kill_all()


def _when_logged(log: Path, n: int, action: Any) -> threading.Thread:
    """Run ``action`` in a thread once ``log`` has ``n`` lines (the batch is under way)."""
    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if log.exists() and len(log.read_text().splitlines()) >= n:
                action()
                return
            time.sleep(0.02)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


def _errors(path: Path) -> list[str]:
    with open_store(str(path)) as st:
        return [tid for tid, *_ in st.con.execute("SELECT trace_id FROM analysis_errors").fetchall()]


@pytest.mark.timeout(120)
def test_a_scheduler_that_dies_mid_batch_is_one_line_exit_4_and_no_trace_is_blamed(
        store: Path, cluster: Cluster, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """The scheduler killed mid-batch: the batch ended after ~30 s in a ClosedClientError traceback, and every trace
    of the partitions in flight was recorded as a "worker failure ... scheduler-connection-lost". Now it stops at
    once with ClusterLost (exit 4) and one line naming the scheduler and the counts; the traces in flight are left
    to do (a rerun does them), while a trace whose method raised is still recorded as failed."""
    import typer

    from attrib.cli.batch import run_batch

    scheduler = cluster.start_scheduler()
    cluster.start_workers(1)
    log = tmp_path / "seen.txt"
    with open_store(str(store)) as st:  # in the first partition: written before the scheduler goes
        (second,) = st.con.execute("SELECT trace_id FROM traces ORDER BY rowid LIMIT 1 OFFSET 1").fetchone()
    options = {"delay": 0.1, "log": str(log), "fail_on": (second,)}
    _when_logged(log, 13, scheduler.kill)  # in the third partition of five
    t0 = time.perf_counter()
    with pytest.raises(NotFoundError) as e:
        analyze_many(store, method=sleepy, engine="dask", scheduler=cluster.address, batch_size=5, options=options)
    assert time.perf_counter() - t0 < 20  # not the Client's 30 s of reconnecting
    from attrib.engine import ClusterLost

    assert isinstance(e.value, ClusterLost) and e.value.exit_code == 4
    r = e.value.report
    assert f"lost the Dask scheduler at {cluster.address}" in str(e.value)
    assert r is not None and r.failed == 1 and r.analyzed in (4, 9), r  # whole partitions, nothing in flight
    assert _errors(store) == [second]  # the method's own failure only: none for the scheduler
    scheduler.wait()
    assert "Traceback" not in capfd.readouterr().err  # distributed's noise on closing the lost Client is muted

    # the CLI: one line with the counts, exit 4 (run_batch is what `attrib analyze --all` calls; sleepy is not
    # registered, so it is called directly)
    scheduler = cluster.start_scheduler()
    cluster.start_workers(1)
    log.unlink()
    _when_logged(log, 13, scheduler.kill)
    with pytest.raises(typer.Exit) as ex:
        run_batch(store, method=sleepy, engine="dask", scheduler=cluster.address, batch_size=5,
                  options=options)
    err = capfd.readouterr().err
    assert ex.value.exit_code == 4, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: lost the Dask scheduler at {cluster.address}"), err
    assert "finished in this run and are saved in the store" in lines[0] and "still to do" in lines[0], err

    again = analyze_many(store, method=sleepy, engine="serial", options={"fail_on": (second,)})  # the rest
    assert again.skipped >= r.analyzed + 4 and again.skipped + again.analyzed + again.failed == N_TRACES, again
    assert again.failed == 1, again
    assert _errors(store) == [second]


@pytest.mark.timeout(120)
def test_a_worker_that_dies_mid_batch_is_replaced_and_the_batch_finishes(
        store: Path, cluster: Cluster, tmp_path: Path) -> None:
    """A worker killed mid-batch (not the scheduler): Dask reruns its tasks on the other worker, the batch finishes
    with every trace analyzed and none failed. Also: the probe before connecting is an ordinary connection for
    the scheduler (it no longer logs one "closed before handshake completed" per check)."""
    import distributed

    cluster.start_scheduler()
    idle = analyze_many(store, method=sleepy, engine="dask", scheduler=cluster.address, where="1 = 0")
    assert idle.workers == 0  # nothing to do: the address is only probed
    cluster.start_workers(2)
    with distributed.Client(cluster.address, timeout="30s") as c:
        pids = sorted(c.run(os.getpid).values())
    log = tmp_path / "seen.txt"
    _when_logged(log, 12, lambda: os.kill(pids[0], signal.SIGKILL))
    r = analyze_many(store, method=sleepy, engine="dask", scheduler=cluster.address, batch_size=5,
                     options={"delay": 0.1, "log": str(log)})
    assert (r.analyzed, r.failed) == (N_TRACES, 0), r
    assert _errors(store) == []
    assert "closed before handshake completed" not in cluster.scheduler_log.read_text()


@contextlib.contextmanager
def _http_server() -> Iterator[str]:
    """An HTTP server on a free port (it answers anything with 404): the address, as tcp://."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f"tcp://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextlib.contextmanager
def _garbage_server() -> Iterator[str]:
    """A server that answers whatever it is sent with a fixed HTTP error and closes (as the proxy in front of an
    unroutable address did: Dask read "HTTP/1.1" as a message length and failed with MemoryError: 3.07 EiB)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                with contextlib.suppress(OSError):
                    if conn.recv(1024):
                        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield f"tcp://127.0.0.1:{srv.getsockname()[1]}"
    finally:
        stop.set()
        t.join()
        srv.close()


@pytest.mark.timeout(200)
def test_an_address_without_a_scheduler_is_one_line_at_once_with_work_to_do(store: Path) -> None:
    """With traces to do, a refused port waited the Client's 30 s and said "Timed out trying to connect"; an HTTP
    server gave "no answer in 30 s" after 35 s; a server answering garbage gave "MemoryError: Unable to allocate
    3.07 EiB". Now the same quick probe as with nothing to do runs first: "cannot reach" or "not a Dask
    scheduler", exit 4, in a second or two, and the store is untouched."""
    from typer.testing import CliRunner

    from attrib.cli import app

    refused = f"tcp://127.0.0.1:{_free_port()}"
    with _http_server() as http, _garbage_server() as garbage:
        for address, says in ((refused, "cannot reach a Dask scheduler"), (http, "not a Dask scheduler"),
                              (garbage, "not a Dask scheduler")):
            for where in (None, "1 = 0"):  # work to do, and nothing to do: the same answer
                t0 = time.perf_counter()
                with pytest.raises(NotFoundError) as e:
                    analyze_many(store, method=sleepy, engine="dask", scheduler=address, where=where)
                assert time.perf_counter() - t0 < 10, (address, where)
                assert str(e.value).startswith(f"{says} at {address}"), str(e.value)
                assert "HTTP" in str(e.value) or address == refused, str(e.value)
            t0 = time.perf_counter()
            r = CliRunner().invoke(app, ["analyze", "--store", str(store), "--all", "--method", "flow-graph",
                                         "--engine", "dask", "--scheduler", address, "--force"])
            assert time.perf_counter() - t0 < 10, address
            assert r.exit_code == 4 and r.output.strip().splitlines() == [r.output.strip()], r.output
            assert f"{says} at {address}" in r.output and "Traceback" not in r.output, r.output
    with open_store(str(store)) as st:
        assert st.con.execute("SELECT count(*) FROM attributions").fetchone() == (0,)
