"""Batch attribution over the store: serial in-process, or on a Dask cluster, with the same answers.

The driver (this process) is the only one that touches the DuckDB store (DuckDB is single-writer):
it streams the traces still to do out of the store a partition at a time as JSON, ships each
partition to a worker, and writes the returned attributions back in batches as partitions complete. Workers
only decode, call :func:`attrib.methods.analyze` and encode; they never open the store, so they can
live on other machines. At most a few partitions are in flight at once, so driver memory stays flat
in the number of traces. ``engine="serial"`` runs the very same partition function in-process: it is
the reference the Dask path is tested against. Dask is imported only when a Dask engine is used.

Resumable: traces that already have an attribution for the method are skipped unless ``force``.
A trace whose analysis raises is recorded with :meth:`Store.save_errors` and the batch goes on. A worker that
dies is Dask's to handle (it reruns the task elsewhere); a scheduler that goes away stops the batch at once with
:class:`ClusterLost`, the partitions in flight left to do, none recorded as failed; so does an LLM judge's endpoint
that becomes unavailable (:class:`EndpointLost`). A scheduler address is probed
first (one TCP connection and Dask's handshake), so a refused port or a server that is not a Dask scheduler is one
error in a second or two, with or without work to do.
The store owns all SQL: this module selects with :meth:`Store.count_selected` and
:meth:`Store.stream_trace_json` and writes with the bulk :meth:`Store.save_attributions`.
"""

from __future__ import annotations

import contextlib
import os
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import msgspec

from attrib.errors import AttribError, InputError, NotFoundError, UsageError, whole_number
from attrib.methods.ranker_names import seen_how
from attrib.trace import Attribution, Trace

Engine = Literal["serial", "local", "dask"]
ENGINES: tuple[str, ...] = ("serial", "local", "dask")

#: How many traces go to a worker in one task: large enough to amortise Dask's per-task cost
#: (about a millisecond), small enough to balance load and keep driver memory low.
DEFAULT_BATCH_SIZE = 64

#: Partitions in flight per worker: one computing, one queued, so a worker never waits on the driver.
IN_FLIGHT_PER_WORKER = 2

#: DuckDB's memory cap on the driver during a batch. DuckDB caches every block it scans up to its
#: limit (default 80 % of RAM), so without a cap the driver's memory would grow with the store. A scan
#: holds one 2048-row vector of trace JSON (about 128 MB at 40 kB a trace), so keep it well above that.
DRIVER_DUCKDB_MEMORY = os.environ.get("ATTRIB_ENGINE_DUCKDB_MEMORY", "512MB")

#: How many error lines the report keeps (all of them are in the store).
MAX_REPORTED_ERRORS = 50

#: A verdict as the attributions table stores it: (agent, step, confidence, attribution JSON).
Verdict = tuple[str, int, float, str]
#: One trace's outcome as it travels back from a worker: (trace id, verdict or None, error or None).
Outcome = tuple[str, Verdict | None, str | None]
#: One trace as it travels to a worker: (trace id, trace JSON).
Payload = tuple[str, str | bytes]


class BatchReport(msgspec.Struct, kw_only=True):
    """What a batch run did: counts, wall time, throughput and the first errors."""

    method: str
    engine: str
    workers: int  # workers that ran the batch (0: nothing to do, none started)
    matched: int  # traces selected by ``where``
    skipped: int  # already analyzed with this method (resume), not redone
    analyzed: int  # attributions written
    failed: int  # traces recorded with an error
    elapsed_s: float  # wall time of the whole call, cluster start included
    startup_s: float = 0.0  # of which: starting/connecting the cluster and importing the method everywhere
    errors: list[tuple[str, str]] = msgspec.field(default_factory=list)  # (trace id, error), first few
    ranker: str | None = None  # the learned method's ranker (``evidence.ranker`` of every verdict written)
    in_sample: int = 0  # of the verdicts written, those on a run the ranker was fitted on, or on another run of its task

    @property
    def traces_per_s(self) -> float:
        """Throughput: traces analysed or failed per second of wall time (0 when nothing ran)."""
        done = self.analyzed + self.failed
        return done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-able values, throughput included."""
        d = msgspec.to_builtins(self)
        d["traces_per_s"] = self.traces_per_s
        return d


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT), or SIGTERM, stopped a batch. Still a KeyboardInterrupt; ``report`` says how far it got (None when it
    stopped before selecting any trace): what it counts as analyzed and failed is in the store, the partitions in
    flight are not, so rerunning the same call finishes the rest."""

    def __init__(self, report: BatchReport | None) -> None:
        super().__init__()
        self.report = report


class BatchStopped(NotFoundError):
    """A batch stopped by something that is no trace's fault (exit 4): :class:`ClusterLost` or
    :class:`EndpointLost`. ``report`` (None when it stopped before any trace was selected) says how far it got;
    what it counts is in the store, the rest is still to do."""

    def __init__(self, message: str, report: BatchReport | None = None) -> None:
        super().__init__(message)
        self.report = report


class ClusterLost(BatchStopped):
    """The Dask scheduler went away in the middle of a batch (it stopped, or the network to it failed): exit 4, as an
    unreachable scheduler. No trace is recorded as failed for it: ``report`` (None when it went before any trace was
    selected) says how far the batch got; what it counts is in the store, the partitions in flight are not, so
    rerunning the same call, once a scheduler answers, finishes the rest."""


class EndpointLost(BatchStopped):
    """An LLM judge's endpoint is unavailable (unreachable, timing out, refusing the key or the model: the LLM
    errors with exit code 4) in the middle of a batch. Every later trace would fail the same way, each after its
    retries, so the batch stops at once, as for :class:`ClusterLost`: the traces of the partition finished before
    it (``done``, written by the driver) are kept, none is recorded as failed for it."""

    def __init__(self, message: str, report: BatchReport | None = None, done: Sequence[Outcome] = ()) -> None:
        super().__init__(message, report)
        self.done = list(done)

    def __reduce__(self) -> tuple[Any, ...]:  # raised on a Dask worker, rebuilt on the driver
        return (type(self), (str(self), None, self.done))


def _endpoint_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` is an LLM error that every later trace would hit too (exit code 4)."""
    from attrib.llm import LLMError

    return isinstance(exc, LLMError) and exc.exit_code == NotFoundError.exit_code


# ----------------------------------------------------------------------------------------------
# Worker side: pure bytes in, bytes out. Must stay importable without dask.


def _describe(exc: BaseException) -> str:
    """One line: the exception and where it was raised (innermost frame)."""
    msg = "".join(traceback.format_exception_only(type(exc), exc)).strip().replace("\n", " ")
    tb = traceback.extract_tb(exc.__traceback__)
    if tb:
        f = tb[-1]
        msg += f" (at {os.path.basename(f.filename)}:{f.lineno} in {f.name})"
    return msg


def warm(method: str | Callable[..., Attribution]) -> bool:
    """Import a registered method's module ahead of the first trace (run on every worker at start)."""
    if isinstance(method, str):
        from attrib.methods import get_method

        get_method(method)
    return True


def _attribute(method: str | Callable[..., Attribution], trace: Trace, options: dict[str, Any]) -> Attribution:
    """One trace through a registered method (as :func:`attrib.methods.analyze`, whose checks the batch made once)
    or a callable."""
    if isinstance(method, str):
        from attrib.methods import get_method, run

        return run(get_method(method), trace, options)
    t0 = time.perf_counter()  # the same contract as analyze(): label stripped, call timed
    result = method(trace.unlabelled(), **options)
    return msgspec.structs.replace(result, elapsed_s=time.perf_counter() - t0)


def analyze_payloads(
    method: str | Callable[..., Attribution],
    name: str,
    payloads: Sequence[Payload],
    options: dict[str, Any] | None = None,
) -> list[Outcome]:
    """Analyze one partition: decode each trace's JSON, attribute it, return the verdict rows.

    This is the task a Dask worker runs and the loop the serial engine runs. The result is stamped
    with ``trace_id`` and ``method=name`` so the store can tell which traces a method has done.
    A failure is returned as that trace's error line, never raised, so one bad trace cannot sink
    its partition; except an unavailable LLM endpoint (exit code 4), which would fail every later trace too:
    :class:`EndpointLost`, carrying the outcomes finished before it.
    """
    options = options or {}
    out: list[Outcome] = []
    for tid, data in payloads:
        try:
            trace = Trace.from_json(data)
            result = _attribute(method, trace, options)
            result = msgspec.structs.replace(result, trace_id=trace.id, method=name)
            verdict = (result.agent, result.step, result.confidence, result.to_json().decode())
            out.append((tid, verdict, None))
        except Exception as e:
            if _endpoint_unavailable(e):
                raise EndpointLost(f"the LLM endpoint stopped answering mid-batch, at trace {tid}: {e}",
                                   done=out) from None
            out.append((tid, None, _describe(e)))
    return out


# ----------------------------------------------------------------------------------------------
# Driver side.


def _method_name(method: str | Callable[..., Attribution] | None) -> str:
    if method is None:
        from attrib.methods import DEFAULT_METHOD

        if not DEFAULT_METHOD:
            raise AttribError("no default attribution method is registered; pass method=...")
        return DEFAULT_METHOD
    if isinstance(method, str):
        from attrib.methods import METHODS

        if method not in METHODS:
            raise AttribError(f"unknown method {method!r} (known: {', '.join(METHODS) or 'none yet'})")
        return method
    return str(getattr(method, "method_name", None) or getattr(method, "__name__", "custom"))


def pin_ranker(options: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The learned method's options with its ranker file fixed for every worker, and that ranker's
    ``evidence.ranker``: ``model_path``, else the driver's ``$ATTRIB_RANKER``, as an absolute path (a worker may have
    another working directory, and a remote one not the driver's environment); the file is loaded once here, so a
    missing or foreign one is one error (NotFoundError / InputError), not one per trace. The CLI pins it so too,
    for one trace as for a batch."""
    from attrib.methods.learned import check_ranker, ranker_source

    path = options.get("model_path") or os.environ.get("ATTRIB_RANKER") or None
    if path is None:
        return options, ranker_source(None)
    check_ranker(path)
    path = os.path.abspath(path)
    return {**options, "model_path": path}, ranker_source(path)


class _Writer:
    """Writes each partition's outcomes to the store as it completes (the driver is the only writer)."""

    def __init__(self, store: Any, report: BatchReport, progress: Callable[[int], None],
                 interrupted: Callable[[], bool]) -> None:
        self.store, self.report, self.progress = store, report, progress
        self.interrupted = interrupted

    def write(self, outcomes: list[Outcome]) -> None:
        verdicts, failed = [], []
        for tid, v, err in outcomes:
            if err is not None or v is None:
                failed.append((tid, err or "no verdict returned"))
                continue
            a = Attribution.from_json(v[3])
            used = a.evidence.get("ranker")
            if self.report.ranker is not None and used != self.report.ranker:  # never two rankers' verdicts in one batch
                failed.append((tid, f"the worker's verdict came from ranker {used!r}, not {self.report.ranker!r} "
                               "(does every worker see the same ranker file?); not saved"))
                continue
            verdicts.append(a)
        method = self.report.method
        with self.store.transaction():  # a partition's verdicts and errors land together or not at all
            self.store.save_attributions(verdicts)
            self.store.save_errors((tid, method, err) for tid, err in failed)
        self.report.analyzed += len(verdicts)
        self.report.in_sample += sum(seen_how(a) is not None for a in verdicts)
        self.report.failed += len(failed)
        room = MAX_REPORTED_ERRORS - len(self.report.errors)
        self.report.errors.extend(failed[: max(room, 0)])
        self.progress(len(outcomes))
        if self.interrupted():  # a Ctrl-C that library code swallowed (one in a gc callback is only printed)
            raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_as_interrupt(handler: Callable[[int, Any], None] | None = None) -> Iterator[None]:
    """While the block runs, SIGTERM (``kill``, ``timeout``, ``systemctl stop``) raises KeyboardInterrupt as Ctrl-C
    does, so long work stops the same way: what was written kept, a Dask cluster closed (SIGTERM's default ended the
    process at once, leaking the cluster's semaphores), one line saying what is left. Only on the main thread and
    where SIGTERM has its default action: a handler the program installed is left alone. ``handler``: run instead
    of a bare raise (:func:`_sigint_latch`'s, which also remembers the signal; it raises KeyboardInterrupt too)."""
    import signal
    import threading

    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        yield
        return

    def on_sigterm(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler or on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def _sigint_latch() -> Iterator[Callable[[], bool]]:
    """Remember a Ctrl-C (or a SIGTERM, through :func:`sigterm_as_interrupt`) while a batch runs; yields "was there
    one?". Either still raises KeyboardInterrupt at once, but Python only prints one raised inside a gc callback
    (distributed registers one), so the batch checks the latch after each partition it writes and stops there. Off
    the main thread (no signals there): never set."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    seen: list[bool] = []

    def on_signal(signum: int, frame: Any) -> None:
        seen.append(True)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_signal)
    try:
        with sigterm_as_interrupt(on_signal):
            yield lambda: bool(seen)
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _progress_bar(total: int, enabled: bool, label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on standard error, drawn only when it is a terminal (piped or logged, it would leave a blank
    line): callers need no check of their own. Yields the function that advances it."""
    if enabled and total:
        from rich.console import Console

        console = Console(stderr=True)
        enabled = console.is_terminal
    if not enabled or total == 0:
        yield lambda n: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(label, total=total, rate="")
        t0 = time.perf_counter()
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            rate = done / max(time.perf_counter() - t0, 1e-9)
            bar.update(task, advance=n, rate=f"{rate:,.0f} traces/s")

        yield advance


def _run_serial(parts: Iterator[list[tuple[str, str]]], writer: _Writer, run: dict[str, Any]) -> None:
    for payloads in parts:
        try:
            outcomes = analyze_payloads(run["method"], run["name"], payloads, run["options"])
        except EndpointLost as e:  # keep what the partition finished, then stop
            writer.write(e.done)
            raise
        writer.write(outcomes)


@contextlib.contextmanager
def _dask_client(scheduler: Any, workers: int | None) -> Iterator[tuple[Any, int]]:
    """A distributed Client: to ``scheduler`` (an address or a Client) or to a fresh LocalCluster."""
    try:
        import distributed
    except ImportError:
        raise AttribError(
            "the Dask engines need dask[distributed]: pip install 'attrib[scale]' (or use --engine serial)"
        ) from None
    def slots(client: Any) -> int:  # worker threads in the cluster: what bounds useful parallelism
        return max(sum(client.nthreads().values()), 1)

    if scheduler is not None and not isinstance(scheduler, str):  # a Client the caller owns
        yield scheduler, slots(scheduler)
        return
    if scheduler:
        client = _connect(distributed, scheduler)
        try:
            try:
                client.wait_for_workers(workers or 1, timeout=60)
            except TimeoutError:
                have = len(client.scheduler_info().get("workers", {}))
                raise AttribError(f"the Dask scheduler at {scheduler} has {have} of the {workers or 1} worker(s) "
                                  f"asked for after 60 s (start more: dask worker {scheduler} --nthreads 1"
                                  + (", or lower --workers)" if have else ")")) from None
            yield client, slots(client)
        finally:
            _close_client(client)
        return
    import logging

    import dask

    n = workers or len(os.sched_getaffinity(0))
    ctrl_c: list[bool] = []  # one per Ctrl-C held back while the cluster starts
    try:
        # No statistical profiler (it samples the task thread's stack every 10 ms): nobody
        # watches a batch's workers, and on a small machine every percent of CPU is throughput.
        with _sigint_held(ctrl_c), dask.config.set({"distributed.worker.profile.enabled": False}):
            cluster = distributed.LocalCluster(
                n_workers=n,
                threads_per_worker=1,  # attribution is CPU-bound Python: processes, not threads, give parallelism
                processes=True,
                dashboard_address=":0",  # a free port for its HTTP endpoint, never a clash on 8787
                silence_logs=logging.ERROR,
            )
    except RuntimeError as e:  # typically "Nanny failed to start": the worker processes re-ran the script
        if ctrl_c:  # or a worker that saw the Ctrl-C after all: it is the Ctrl-C that stops the batch
            raise KeyboardInterrupt from None
        raise AttribError(
            f"Dask could not start its worker processes ({str(e).splitlines()[0]}); from a script, call "
            "analyze_many under `if __name__ == \"__main__\":` (the workers re-import the script), "
            "or use engine='serial'") from None
    try:
        if ctrl_c:  # a Ctrl-C held back while the cluster started: stop before any task, cluster closed
            raise KeyboardInterrupt
        client = distributed.Client(cluster)
        try:
            yield client, n
        finally:
            client.close()
    finally:
        cluster.close()


def _close_client(client: Any) -> None:
    """Close a Client. One that lost its scheduler is still trying to reconnect, and distributed logs closing it
    then as errors (a "Failed to reconnect" line and two CancelledError tracebacks) though nothing is wrong: its
    client logger is muted while it closes, so a lost scheduler stays the one line :class:`ClusterLost` makes."""
    import logging

    if not _lost(client):
        client.close()
        return

    class _Mute(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return False

    log, mute = logging.getLogger("distributed.client"), _Mute()
    log.addFilter(mute)
    try:
        client.close()
    finally:
        log.removeFilter(mute)


@contextlib.contextmanager
def _sigint_held(seen: list[bool]) -> Iterator[None]:
    """Hold Ctrl-C back while a local cluster starts its worker processes, appending to ``seen`` for each one (look
    after the block: a Ctrl-C that waited is recorded on the way out).

    Ctrl-C reaches the whole process group, and worker processes that saw it would each print a traceback (this
    process, which owns them, stops them). So SIGINT is blocked in this thread for the block: every thread started
    meanwhile (distributed's event loop, the threads that spawn the workers) inherits the block, and so does every
    worker process, which never sees a Ctrl-C (multiprocessing starts its resource tracker so). A Ctrl-C meanwhile
    (delivered to a thread that does not block it, such as DuckDB's, or pending until the end) runs a handler that
    only records it: the caller stops once the cluster is up, instead of stopping half-way through its start-up.
    (SIGINT used to be ignored here instead, and a Ctrl-C during start-up was lost: the batch ran on.) Off the main
    thread, without pthread_sigmask, or when SIGINT is already ignored or not Python's: nothing is changed."""
    import signal
    import threading

    previous = signal.getsignal(signal.SIGINT)
    if (threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask")
            or previous is None or previous == signal.SIG_IGN):
        yield
        return

    def record(signum: int, frame: Any) -> None:
        seen.append(True)

    # multiprocessing's resource tracker, started (once per process) by the first worker, unblocks SIGINT in the
    # thread that starts it, distributed's event loop, before that thread spawns the workers: start it first, here
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
    signal.signal(signal.SIGINT, record)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a pending Ctrl-C is delivered now, to ``record``
        signal.signal(signal.SIGINT, previous)


#: How long to wait for a scheduler's handshake (distributed's own timeout does not cover a port that
#: accepts the connection and never answers, such as the dashboard's 8787).
CONNECT_TIMEOUT_S = 30.0


#: How long :func:`_probe` waits for a scheduler's port to accept a connection.
PROBE_TIMEOUT_S = 5.0

#: How long :func:`_probe` waits for the scheduler's greeting: first after its own handshake, then after a blank line
#: that makes an HTTP server answer. A Dask scheduler greets every connection at once (in milliseconds).
GREETING_WAIT_S = (0.5, 1.5)


def _scheduler_address(address: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a scheduler address, or a UsageError on ``--scheduler`` for one that is malformed or
    needs TLS credentials a string cannot carry."""
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("tcp", "tls", "ws", "wss", "ucx") or not parts.hostname or port is None:
        raise UsageError(None, "scheduler", f"expected a scheduler address such as tcp://10.0.0.5:8786, "
                         f"got {address!r}")
    if parts.scheme in ("tls", "wss"):
        raise UsageError(None, "scheduler", f"{parts.scheme}:// needs TLS credentials: from Python, pass "
                         "analyze_many(scheduler=distributed.Client(..., security=...))")
    return parts.scheme, parts.hostname, port


def _port_hint(port: int) -> str:
    return " (8787 is the dashboard; the scheduler listens on 8786)" if port == 8787 else ""


def _dask_handshake() -> bytes:
    """The handshake a Dask client sends first on a TCP connection (a length-prefixed message of one msgpack frame,
    ``{"compression": None, "python": (3, 11, 7), "pickle-protocol": 5}``), so that a scheduler sees an ordinary
    connection that closes, not a broken one."""
    import pickle
    import struct
    import sys

    v = sys.version_info
    body = (b"\x83\xabcompression\xc0\xa6python\x93" + bytes([v.major, v.minor, v.micro])
            + b"\xafpickle-protocol" + bytes([pickle.HIGHEST_PROTOCOL]))
    frames = struct.pack("<QQ", 1, len(body)) + body
    return struct.pack("<Q", len(frames)) + frames


def _is_dask_greeting(data: bytes) -> bool:
    """Whether ``data`` starts with a whole Dask message: its length, its frame count, the frames' lengths adding
    up (a scheduler's greeting is about 60 bytes; HTTP, SSH or TLS bytes read so make no sense)."""
    import struct

    if len(data) < 16:
        return False
    (size,) = struct.unpack_from("<Q", data)
    (n,) = struct.unpack_from("<Q", data, 8)
    if not 16 <= size <= 1 << 16 or len(data) < 8 + size or not 1 <= n <= 16 or 8 + 8 * n > size:
        return False
    return 8 + 8 * n + sum(struct.unpack_from(f"<{n}Q", data, 16)) == size


def _greeting(sock: Any) -> bytes | None:
    """What the server on ``sock`` says to a Dask client's handshake: the scheduler's greeting (or enough of
    another answer to name it), b"" when it closed the connection without a word, None when it stayed silent."""
    import socket
    import struct

    data = b""
    try:
        sock.sendall(_dask_handshake())
        for i, wait in enumerate(GREETING_WAIT_S):
            if i:  # silent so far: a blank line makes an HTTP server (such as the dashboard) answer
                sock.sendall(b"\r\n\r\n")
            sock.settimeout(wait)
            with contextlib.suppress(TimeoutError, socket.timeout):
                while chunk := sock.recv(4096):
                    data += chunk
                    if len(data) >= 8:
                        (size,) = struct.unpack_from("<Q", data)
                        if 16 <= size <= 1 << 16:
                            if len(data) >= 8 + size:  # a whole Dask message
                                return data
                        elif len(data) >= 512:  # not Dask's: enough to name it
                            return data
                        else:
                            sock.settimeout(0.2)  # not Dask's: the rest of its first lines, if they come at once
                return data  # closed
            if data:
                return data
    except OSError:  # reset by the peer
        return data
    return None


def _describe_answer(data: bytes) -> str:
    if not data:
        return "it closed the connection without answering"
    line = data.split(b"\n", 1)[0].strip()[:60]
    text = repr(line.decode()) if line.isascii() and line.decode().isprintable() else repr(line)
    http = data.startswith(b"HTTP/") or b"<html" in data[:512].lower()
    return f"it answered {text}" + (" (an HTTP server)" if http else "")


def _probe(address: str) -> None:
    """Check within seconds, without starting a Client, that a Dask scheduler answers at ``address``: one TCP
    connection that sends a Dask client's handshake and reads the scheduler's greeting. Run before every Client
    connection, and on its own when a batch has nothing to do, so that a mistyped or stopped scheduler is a
    NotFoundError (exit 4) at once: a refused port ("cannot reach a Dask scheduler"), or a server that answers
    something else, an HTTP server for one ("not a Dask scheduler"). A port that accepts the connection and stays
    silent cannot be told apart cheaply: taken as reachable (ucx:// addresses are not probed, ws:// ones only
    connected to)."""
    import socket

    scheme, host, port = _scheduler_address(address)
    if scheme == "ucx":
        return
    try:
        sock = socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S)
    except OSError as e:
        why = f"no answer in {PROBE_TIMEOUT_S:.0f} s" if isinstance(e, TimeoutError) else (
            e.strerror or type(e).__name__)
        raise NotFoundError(f"cannot reach a Dask scheduler at {address}: {why}{_port_hint(port)}") from None
    with sock:
        answer = _greeting(sock) if scheme == "tcp" else None
    if answer is not None and not _is_dask_greeting(answer):
        raise NotFoundError(f"not a Dask scheduler at {address}: {_describe_answer(answer)}{_port_hint(port)}")


def _connect(distributed: Any, address: str) -> Any:
    """A Client on the scheduler at ``address``, or one clear NotFoundError: at once (:func:`_probe`) for a refused
    port or a server that is not a Dask scheduler, within CONNECT_TIMEOUT_S for one that never answers."""
    import threading

    _probe(address)
    _, _, port = _scheduler_address(address)
    box: dict[str, Any] = {}

    def connect() -> None:
        try:
            box["client"] = distributed.Client(address, timeout=f"{CONNECT_TIMEOUT_S:.0f}s")
        except BaseException as e:  # anything: a refused port, a bad handshake, a bogus reply
            box["error"] = e

    t = threading.Thread(target=connect, daemon=True)  # daemon: a hung handshake cannot keep the process alive
    t.start()
    t.join(CONNECT_TIMEOUT_S + 5)
    if "client" in box:
        return box["client"]
    err = box.get("error")
    if err is not None and not isinstance(err, OSError):  # a handshake read as a message: MemoryError, ValueError
        raise NotFoundError(f"not a Dask scheduler at {address}: its answer to the handshake makes no sense "
                            f"({type(err).__name__}){_port_hint(port)}")
    why = (f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}" if err is not None
           else f"no answer in {CONNECT_TIMEOUT_S:.0f} s (something accepts connections there but never answered)")
    raise NotFoundError(f"cannot reach a Dask scheduler at {address}: {why}{_port_hint(port)}")


def _scheduler_of(client: Any) -> str:
    """The scheduler address a Client talks to, for messages."""
    try:
        return str(client.scheduler.address)
    except AttributeError:
        return "its address"


def _lost(client: Any) -> bool:
    """Whether ``client`` has lost its scheduler: reconnecting (its futures cancelled), closing or closed."""
    return getattr(client, "status", "running") not in ("running", "newly-created")


def _cluster_lost(client: Any, reason: str | None = None) -> ClusterLost:
    """The error for a batch whose scheduler went (its futures cancelled ``reason``, or the Client closed)."""
    address = _scheduler_of(client)
    if reason in (None, "scheduler-connection-lost") or _lost(client):
        return ClusterLost(f"lost the Dask scheduler at {address}: the connection to it dropped (did the scheduler "
                           "stop?)")
    return ClusterLost(f"the Dask scheduler at {address} cancelled this batch's tasks ({reason})")


def _run_dask(
    parts: Iterator[list[tuple[str, str]]], writer: _Writer, run: dict[str, Any], client: Any, n_workers: int
) -> None:
    """Stream the partitions through the cluster, a few in flight, writing each as it completes. A task that
    raises (a worker killed while running it too often: KilledWorker; an unpicklable result) is recorded against
    its traces; a worker that dies is otherwise Dask's to handle (it reruns the task elsewhere). A scheduler that
    goes away (the Client's futures cancelled, or the Client closed) is :class:`ClusterLost`, raised at once: the
    partitions in flight are not the traces' fault and stay to do."""
    from concurrent.futures import CancelledError

    from distributed import as_completed

    limit = max(1, IN_FLIGHT_PER_WORKER * n_workers)
    pending: dict[Any, list[str]] = {}
    queue = as_completed()

    def submit_next() -> bool:
        for payloads in parts:
            try:
                fut = client.submit(analyze_payloads, run["method"], run["name"], payloads, run["options"],
                                    pure=False)
            except Exception:
                if _lost(client):  # ClosedClientError: the Client gave up reconnecting
                    raise _cluster_lost(client) from None
                raise
            pending[fut] = [tid for tid, _ in payloads]
            queue.add(fut)
            return True
        return False

    for _ in range(limit):
        if not submit_next():
            break
    for fut in queue:
        ids = pending.pop(fut)
        try:
            outcomes = fut.result()
        except CancelledError as e:  # the scheduler went (or cancelled the task): not these traces' fault
            raise _cluster_lost(client, getattr(e, "reason", None)) from None
        except EndpointLost as e:  # the judge's endpoint went: keep what the partition finished, then stop
            writer.write(e.done)
            raise EndpointLost(str(e)) from None
        except Exception as e:  # the task itself died (killed worker, unpicklable result): blame the partition
            if _lost(client):
                raise _cluster_lost(client) from None
            err = f"worker failure: {_describe(e)}"
            outcomes = [(tid, None, err) for tid in ids]
        fut.release()
        writer.write(outcomes)
        submit_next()


def analyze_many(
    store_path: str | os.PathLike[str] | None = None,
    *,
    method: str | Callable[..., Attribution] | None = None,
    where: str | None = None,
    engine: Engine = "local",
    scheduler: Any = None,
    workers: int | None = None,
    force: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = False,
    options: dict[str, Any] | None = None,
) -> BatchReport:
    """Attribute every selected trace in the store and write the verdicts back to it.

    ``engine``: ``"serial"`` (in this process, the reference), ``"local"`` (a Dask LocalCluster of
    ``workers`` processes, default: one per core) or ``"dask"`` (the cluster at ``scheduler``, a
    ``tcp://host:port`` address or a ``distributed.Client``; a LocalCluster when none is given).
    A ``scheduler`` always wins over ``"local"``; with one, ``workers`` is how many workers to wait
    for (default 1). ``where`` is a SQL filter over the store's ``traces`` table (alias ``t``).
    Traces already analyzed with ``method`` (for ``learned``: by the same ranker) are skipped unless
    ``force``. ``method`` is a registered name (default: the offline default) or a callable ``attribute(trace, **options) -> Attribution``
    (importable or picklable on the workers; its ``method_name`` attribute, else its name, keys the
    stored verdicts). ``options`` go to the method. For the learned method the ranker file
    (``options["model_path"]``, else ``$ATTRIB_RANKER`` here) is loaded once up front and passed, as an absolute
    path, to every worker, whatever its environment; a verdict that comes back from another ranker is recorded as
    an error, never saved beside this batch's (``BatchReport.ranker`` names the one used).
    ``progress``: a progress bar on standard error.
    Returns a :class:`BatchReport` (``workers``: how many ran, 0 with nothing to do). With nothing to do no cluster
    starts, but a ``scheduler`` address is still checked, with one TCP connection: an unreachable one, or a server
    there that is not a Dask scheduler, is a NotFoundError either way. A scheduler lost mid-batch raises
    :class:`ClusterLost` (a NotFoundError carrying the report): what was written stays, the rest is still to do.
    So does an LLM judge's endpoint that becomes unavailable mid-batch (an LLM error with exit code 4):
    :class:`EndpointLost`, with no trace recorded as failed for it.

    The Dask engines start worker processes that re-import the calling script: call this under
    ``if __name__ == "__main__":`` in a script.
    """
    if engine not in ENGINES:
        raise UsageError(None, "engine", f"unknown engine {engine!r} (known: {', '.join(ENGINES)})")
    if scheduler is not None and engine == "serial":
        raise UsageError(None, "scheduler", "runs on a Dask cluster: use it with engine='dask', not 'serial'")
    if isinstance(scheduler, str) and scheduler:
        _scheduler_address(scheduler)  # a malformed address is a usage error, with work to do or not
    batch_size = whole_number("batch_size", batch_size)  # a bad argument value: UsageError, exit 2, as --batch-size
    if workers is not None:
        workers = whole_number("workers", workers)
    from attrib.store import StoreWriteError, open_store

    name = _method_name(method)
    if isinstance(method, str) or method is None:
        from attrib.methods import check_options

        check_options(name, options or {})  # a misspelt option fails now, not once per trace
    run: dict[str, Any] = {"method": method if method is not None else name, "name": name, "options": options or {}}
    expected_ranker = None  # the learned ranker every verdict of this batch must come from
    if name == "learned" and isinstance(run["method"], str) and "model" not in run["options"]:
        run["options"], expected_ranker = pin_ranker(run["options"])
    t0 = time.perf_counter()
    # analysing needs stored traces: a mistyped path must not become a new, empty store and "0 traces selected"
    try:
        store = open_store(store_path, memory_limit=DRIVER_DUCKDB_MEMORY, create=False)
    except InputError as e:
        if e.field != "memory_limit":
            raise
        raise type(e)(None, "ATTRIB_ENGINE_DUCKDB_MEMORY", e.message) from None  # the setting the user can change
    import duckdb

    report: BatchReport | None = None
    try:
        # a ranker object: nothing can tell its verdicts apart, so none is skipped; a verdict by another ranker
        # file is not done
        skip = None if force or (name == "learned" and "model" in run["options"]) else name
        try:
            matched, todo = store.count_selected(where, skip_method=skip, skip_ranker=expected_ranker)
            parts = store.stream_trace_json(where, skip_method=skip, batch_size=batch_size,
                                            skip_ranker=expected_ranker)
        except InputError as e:  # name the filter as the CLI user typed it: a flag's value, exit 2
            raise UsageError(None, "where", f"{e.message} (in {e.path})" if e.path else e.message) from None
        # workers: how many ran; 0 until some do (with nothing to do none start, and a size would be made up)
        report = BatchReport(
            method=name, engine=engine, workers=0, matched=matched, skipped=matched - todo,
            analyzed=0, failed=0, elapsed_s=0.0, ranker=expected_ranker,
        )
        if engine == "serial":
            t_start = time.perf_counter()
            if todo:
                warm(run["method"])
                report.workers = 1
            report.startup_s = time.perf_counter() - t_start
            with _progress_bar(todo, progress, f"{name} (serial)") as adv, _sigint_latch() as stop:
                _run_serial(parts, _Writer(store, report, adv, stop), run)
        elif not todo:
            if isinstance(scheduler, str) and scheduler:  # no cluster to start, but the address given must answer
                _probe(scheduler)
        else:
            t_start = time.perf_counter()
            # the latch covers start-up too: a Ctrl-C while the cluster starts or the workers load the method
            # stops the batch before its first task (one during LocalCluster's start is held back until it is up)
            with _sigint_latch() as stop, _dask_client(scheduler, workers) as (client, n):
                report.workers = n
                try:
                    client.run(warm, run["method"])  # a worker that cannot load the method fails here, once
                except Exception as e:
                    if _lost(client):
                        raise _cluster_lost(client) from None
                    raise AttribError(f"Dask workers cannot load method {name!r}: {_describe(e)} "
                                      "(every worker needs the same attrib installed)") from None
                if stop():  # a Ctrl-C that distributed swallowed during start-up
                    raise KeyboardInterrupt
                report.startup_s = time.perf_counter() - t_start
                label = f"{name} ({engine}, {n} worker{'s' if n != 1 else ''})"
                with _progress_bar(todo, progress, label) as adv:
                    _run_dask(parts, _Writer(store, report, adv, stop), run, client, n)
    except (KeyboardInterrupt, duckdb.InterruptException) as e:  # every partition written so far is whole
        if report is not None:
            report.elapsed_s = time.perf_counter() - t0
        raise BatchInterrupted(report) from e
    except BatchStopped as e:  # as for a Ctrl-C: what was written is whole, the rest stays to do
        if report is not None:
            report.elapsed_s = time.perf_counter() - t0
        e.report = report
        raise
    except StoreWriteError as e:  # the disk, not the traces: no later partition could be saved either
        done = report.analyzed + report.failed if report is not None else 0
        kept = f"the {done:,} trace(s) finished before it are saved" if done else "no verdict was saved"
        err = StoreWriteError(e.path, e.reason, f"{kept}; rerun the same command once the store can be written to do "
                              "the rest")
        err.report = report
        raise err from None
    except duckdb.OutOfMemoryException as e:
        raise AttribError(f"the driver's DuckDB memory cap ({DRIVER_DUCKDB_MEMORY}) is too small for these traces: "
                          "set ATTRIB_ENGINE_DUCKDB_MEMORY higher (e.g. 2GB) and rerun; finished traces are kept "
                          f"({str(e).splitlines()[0]})") from None
    finally:
        store.close()
    assert report is not None
    report.elapsed_s = time.perf_counter() - t0
    return report


__all__ = [
    "DEFAULT_BATCH_SIZE", "ENGINES", "BatchInterrupted", "BatchReport", "BatchStopped", "ClusterLost", "EndpointLost", "analyze_many",
    "analyze_payloads",
]
