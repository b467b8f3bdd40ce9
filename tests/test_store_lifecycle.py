"""A store that lives long on a shared box: runs of other files under one id, a new shipped ranker, a disk that
fills, ``~`` and blank settings, files the user made, a lock held by a reader, traces that move, SIGTERM."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from _store_lock import store_held
from typer.testing import CliRunner

from attrib.cli import app
from attrib.errors import EXIT_BAD_INPUT, EXIT_FAILURE
from attrib.methods import analyze
from attrib.store import open_store
from attrib.store.api import ingest

ALICE = {"messages": [{"role": "user", "name": "user", "content": "What is 2+2?"},
                      {"role": "assistant", "name": "Solver", "content": "2+2=5"},
                      {"role": "assistant", "name": "Checker", "content": "Looks right: 5"}], "outcome": "failed"}
BOB = {"messages": [{"role": "user", "name": "user", "content": "Capital of France?"},
                    {"role": "assistant", "name": "Planner", "content": "Ask the researcher"},
                    {"role": "assistant", "name": "Researcher", "content": "Berlin"}], "outcome": "failed"}


def _write(path: Path, doc: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def _analyzed(store: Path) -> None:
    """A verdict on every stored trace (flow-graph: quick, no model)."""
    with open_store(store) as st:
        for tid in st.trace_ids():
            st.save_attribution(analyze(st.get_trace(tid), "flow-graph"))


def _one_line(output: str) -> str:
    return " ".join(output.split())


# ------------------------------------------------------------------ 1. another file's run under the same id
def test_a_run_of_another_file_under_a_stored_id_is_refused_unless_replace(tmp_path: Path) -> None:
    """Both files are `run.json`, so both runs get the id `chat-run`: the later file fails, naming the id and the
    file the stored run came from, and Alice's run and verdict stay; with replace=True / --replace it goes in and
    says what it replaced. Identical content is still a no-op, and the same file re-read after an edit replaces its
    own run, counted apart from new ones."""
    alice, bob = _write(tmp_path / "alice" / "run.json", ALICE), _write(tmp_path / "bob" / "run.json", BOB)
    store = tmp_path / "team.duckdb"
    assert ingest(alice, store=store).ok
    _analyzed(store)

    report = ingest(bob, store=store)
    assert not report.ok and report.n_traces == 0
    err = report.failed[0].error or ""
    assert err.startswith(f"{bob}: id: trace id 'chat-run' is already stored from {alice}, with other content")
    assert "rename this file" in err and "--replace" in err and "\n" not in err
    with open_store(store, read_only=True) as st:  # Alice's run and its verdict are untouched
        assert st.get_trace("chat-run").steps[1].content == "2+2=5" and st.get_attributions("chat-run")
    r = CliRunner().invoke(app, ["ingest", str(bob), "--store", str(store)])
    assert r.exit_code == EXIT_BAD_INPUT and "already stored from" in _one_line(r.output)

    assert ingest(alice, store=store).n_unchanged == 1  # identical content: a no-op, verdict kept
    with open_store(store, read_only=True) as st:
        assert len(st.get_attributions("chat-run")) == 1

    r = CliRunner().invoke(app, ["ingest", str(bob), "--store", str(store), "--replace"])
    assert r.exit_code == 0, r.output
    out = _one_line(r.output)
    assert f"replaced the stored chat-run (read from {alice}); its 1 verdict(s) were dropped" in out
    with open_store(store, read_only=True) as st:
        assert st.get_trace("chat-run").steps[2].content == "Berlin" and not st.get_attributions("chat-run")

    _analyzed(store)
    _write(bob, {**BOB, "messages": [*BOB["messages"][:2], {**BOB["messages"][2], "content": "Paris"}]})
    report = ingest(bob, store=store)  # the same file, edited: its own run, replaced as before
    assert report.ok and report.n_new == 1
    (gone,) = report.replaced
    assert (gone.trace_id, gone.earlier, gone.verdicts, gone.other_file) == ("chat-run", str(bob), 1, False)
    r = CliRunner().invoke(app, ["ingest", str(bob), "--store", str(store)])
    assert r.exit_code == 0 and "unchanged" in r.output


def test_the_ingest_table_counts_replaced_runs_apart_from_new_ones(tmp_path: Path) -> None:
    alice = _write(tmp_path / "a" / "run.json", ALICE)
    other = _write(tmp_path / "a" / "other.json", BOB)
    store = tmp_path / "s.duckdb"
    assert ingest(alice, store=store).ok
    _analyzed(store)
    _write(alice, {**ALICE, "outcome": "succeeded"})
    r = CliRunner().invoke(app, ["ingest", str(alice), str(other), "--store", str(store)])
    assert r.exit_code == 0, r.output
    header = next(line for line in r.output.splitlines() if "format" in line)
    total = next(line for line in r.output.splitlines() if "total" in line)
    cols = [c.strip() for c in header.strip("┃│ ").split("┃")]
    assert cols == ["format", "files", "traces", "steps", "new", "replaced", "unchanged"]
    assert [c.strip() for c in total.strip("│ ").split("│")][1:] == ["2", "2", "6", "1", "1", "0"]
    assert "1 run(s) changed in their files since the last ingest were replaced; their 1 verdict(s) were dropped" in \
        _one_line(r.output)


# ------------------------------------------------------------------ 2. a new shipped ranker is another ranker
def test_the_shipped_rankers_identity_holds_its_files_hash_and_reads_shipped() -> None:
    import hashlib

    from attrib.methods.learned import SHIPPED, ranker_source
    from attrib.methods.ranker_names import SHIPPED_FILE, SHIPPED_NAME, ranker_name

    digest = hashlib.sha256(SHIPPED_FILE.read_bytes()).hexdigest()[:12]
    words = f"shipped (fitted on Who&When, sha256 {digest})"
    assert ranker_source(None) == SHIPPED == words
    assert ranker_name(SHIPPED) == SHIPPED_NAME == "shipped"
    assert ranker_name("shipped (fitted on Who&When)") == "shipped"  # a verdict an earlier attrib stored
    # reading a ranker's name reads no file: `attrib --help` and the reports import this module
    code = ("import attrib.cli, attrib.render\nfrom attrib.methods import ranker_names as r\n"
            "r.ranker_name('x'); print(r.shipped_source.cache_info().misses)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "0"
    # the shipped ranker's name is a plain constant of the learned method, not a lazy attribute of ranker_names
    import attrib.methods.ranker_names as names

    assert not hasattr(names, "SHIPPED") and not hasattr(names, "__getattr__")


def test_verdicts_of_an_earlier_shipped_ranker_are_redone_by_analyze_all(bundled: Path, tmp_path: Path) -> None:
    """A store analyzed by an earlier attrib holds verdicts whose ranker is the shipped one of then: `analyze --all`
    redoes them instead of calling them done by this ranker."""
    from attrib.engine import analyze_many
    from attrib.methods.learned import SHIPPED

    store = tmp_path / "s.duckdb"
    assert ingest(bundled / "demo_whowhen.json", store=store).ok
    first = analyze_many(store, method="learned", engine="serial")
    assert (first.analyzed, first.ranker) == (1, SHIPPED)
    assert analyze_many(store, method="learned", engine="serial").skipped == 1  # this ranker's: done
    with open_store(store) as st:  # as the attrib before this one wrote it
        st.con.execute("UPDATE attributions SET json = json_merge_patch(json, "
                       "'{\"evidence\": {\"ranker\": \"shipped (fitted on Who&When)\"}}')")
    again = analyze_many(store, method="learned", engine="serial")
    assert (again.skipped, again.analyzed) == (0, 1)
    with open_store(store, read_only=True) as st:
        (tid,) = st.trace_ids()
        assert [a.evidence["ranker"] for a in st.get_attributions(tid)] == [SHIPPED]


# ------------------------------------------------------------------ 3. a store that cannot be written
def _limited(limit: int):  # type: ignore[no-untyped-def]
    """A child process's files capped at ``limit`` bytes (RLIMIT_FSIZE): a write past it fails with EFBIG, as on a
    full disk, root or not (Python ignores SIGXFSZ)."""
    resource = pytest.importorskip("resource")

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return cap


def _attrib(args: list[str], limit: int | None = None, **kw) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "attrib", *args], capture_output=True, text=True, env=env,
                          preexec_fn=_limited(limit) if limit else None, timeout=300, **kw)


@pytest.fixture
def runs(whowhen_dir: Path, tmp_path: Path) -> Path:
    """30 Who&When logs in a folder of their own."""
    d = tmp_path / "runs"
    d.mkdir()
    for f in sorted((whowhen_dir / "Hand-Crafted").glob("*.json"))[:30]:
        shutil.copy(f, d / f.name)
    return d


def test_a_store_that_cannot_be_written_stops_the_ingest_with_one_line(runs: Path, tmp_path: Path) -> None:
    """The disk fills during an ingest: one line naming the store and the system's reason, exit 1 (not 3: the
    files are fine), no file blamed, and the files stored before it are whole in the store."""
    store = tmp_path / "s.duckdb"
    open_store(store).close()
    r = _attrib(["ingest", str(runs), "--store", str(store), "-q"], limit=store.stat().st_size + 400_000)
    if r.returncode == 0:
        pytest.skip("this machine let the process write past its file-size limit")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == EXIT_FAILURE, r.stderr
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot write the store {store}: File too large; "), lines
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr
    kept = int(lines[0].split("; ")[1].split()[0])
    assert 0 < kept < 30
    with open_store(store, read_only=True) as st:  # each file before it whole, nothing of the one that failed
        assert st.count_traces() == kept
        assert all(t.n_steps == len(t.steps) for t in st.iter_traces())


def test_a_store_that_cannot_be_written_stops_analyze_all_with_one_line(runs: Path, tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    assert ingest(runs, store=store).ok
    # the log fills after a few partitions of four verdicts (60 kB: two, here)
    r = _attrib(["analyze", "--all", "--store", str(store), "--engine", "serial", "--batch-size", "4", "--method",
                 "flow-graph"], limit=60_000)
    if r.returncode == 0:
        pytest.skip("this machine let the process write past its file-size limit")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == EXIT_FAILURE and "Traceback" not in r.stderr, r.stderr
    m = re.fullmatch(rf"error: cannot write the store {re.escape(str(store))}: File too large; the (\d+) trace\(s\) "
                     "finished before it are saved; rerun the same command once the store can be written to do the "
                     "rest", lines[-1])
    assert len(lines) == 1 and m, lines
    with open_store(store, read_only=True) as st:  # what it says is saved is, whole partitions
        assert len(st.analyzed_ids("flow-graph")) == int(m.group(1)) > 0 and not st.errors()
    r = _attrib(["traces", "delete", "whowhen-hand-1", "--store", str(store)], limit=100)
    assert r.returncode == EXIT_FAILURE and r.stderr.strip() == (
        f"error: cannot write the store {store}: File too large"), r.stderr


def test_a_store_write_error_is_one_attrib_error_that_pickles() -> None:
    import pickle

    from attrib.store import StoreWriteError

    e = StoreWriteError("s.duckdb", "No space left on device", "3 file(s) before it are stored whole")
    back = pickle.loads(pickle.dumps(e))
    assert str(back) == str(e) == ("cannot write the store s.duckdb: No space left on device; 3 file(s) before it "
                                   "are stored whole")
    assert back.exit_code == EXIT_FAILURE


# ------------------------------------------------------------------ 4, 10. ~ and blank $ATTRIB_STORE
def test_a_tilde_in_the_store_path_is_the_home_folder_for_attrib_as_for_duckdb(
        bundled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    with open_store("~/t.duckdb") as st:
        st.upsert_trace(__import__("attrib").load_trace(bundled / "demo_whowhen.json"))
        assert st.path == home / "t.duckdb"
    assert not (work / "~").exists() and (home / "t.duckdb").is_file()
    monkeypatch.setenv("ATTRIB_STORE", "~/t.duckdb")
    with open_store(read_only=True) as st:
        assert st.count_traces() == 1
    (home / "run.json").write_text("{}")  # another kind of file behind ~: refused, as without it
    with pytest.raises(Exception, match="not a DuckDB store"):
        open_store("~/run.json")


@pytest.mark.parametrize("value", ["", "  "])
def test_a_blank_attrib_store_setting_counts_as_unset(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from attrib.store import default_path

    monkeypatch.setenv("ATTRIB_STORE", value)
    assert default_path() == Path("attrib.duckdb")


# ------------------------------------------------------------------ 5. files the user made
def test_an_empty_file_the_user_made_is_never_removed(bundled: Path, tmp_path: Path) -> None:
    """A 0-byte file (mktemp) that no run went into stays, empty; one behind a link becomes the store behind the
    link, which stays a link."""
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    mine = tmp_path / "mine.duckdb"
    mine.touch()
    assert not ingest(bad, store=mine).ok
    assert mine.is_file() and mine.stat().st_size == 0
    assert not ingest(bad, store=mine).ok  # and again: still the user's empty file

    real = tmp_path / "real" / "s.duckdb"
    real.parent.mkdir()
    real.touch()
    link = tmp_path / "link.duckdb"
    link.symlink_to(real)
    assert not ingest(bad, store=link).ok
    assert link.is_symlink() and real.stat().st_size == 0
    assert ingest(bundled / "demo_whowhen.json", store=link).ok
    assert link.is_symlink() and real.stat().st_size > 0
    with open_store(real, read_only=True) as st:
        assert st.count_traces() == 1


# ------------------------------------------------------------------ 7. a lock held by a reader
def test_a_lock_held_by_a_reader_is_not_called_a_writer(bundled: Path, tmp_path: Path) -> None:
    from attrib.store import StoreLockedError

    store = tmp_path / "s.duckdb"
    assert ingest(bundled / "demo_whowhen.json", store=store).ok
    with store_held(store, read_only=True) as proc:
        with pytest.raises(StoreLockedError) as e:
            open_store(store)
        msg = str(e.value)
        assert msg.startswith(f"{store}: the store is locked by another process (PID {proc.pid})")
        assert "holds it open, to write or only to read" in msg and "writing to it" not in msg


# ------------------------------------------------------------------ 9. a trace moved with its activations
def test_a_trace_moved_with_its_activation_folder_keeps_its_verdicts(bundled: Path, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    shutil.copytree(bundled / "recorded", rec)
    store = tmp_path / "s.duckdb"
    assert ingest(rec, store=store).ok
    _analyzed(store)
    with open_store(store, read_only=True) as st:
        ids = st.trace_ids()
        with_acts = [t for t in ids if st.activations(t)]
        hashes = dict(st.con.execute("SELECT trace_id, content_hash FROM traces").fetchall())
    assert with_acts
    moved = tmp_path / "rec_moved"
    rec.rename(moved)
    report = ingest(moved, store=store)
    assert report.ok and report.n_new == 0 and report.n_unchanged == len(ids)
    with open_store(store, read_only=True) as st:
        assert dict(st.con.execute("SELECT trace_id, content_hash FROM traces").fetchall()) == hashes
        assert all(st.get_attributions(t) for t in ids)  # verdicts kept
        for tid in with_acts:  # the stored paths name the files where they are now
            assert all(a["path"].startswith(str(moved)) for a in st.activations(tid))
            t = st.get_trace(tid)
            assert all(s.activation.path.startswith(str(moved)) for s in t.steps if s.activation is not None)
            assert st.con.execute("SELECT source_path FROM traces WHERE trace_id = ?", [tid]).fetchone()[0].startswith(
                str(moved))
    assert ingest(moved, store=store).n_unchanged == len(ids)  # and then a no-op again


def test_a_store_hashed_with_absolute_activation_paths_keeps_its_verdicts(bundled: Path, tmp_path: Path) -> None:
    """A store an earlier attrib wrote hashed the activation paths in: its traces are the same content, rewritten
    once to the new hash, verdicts kept."""
    import hashlib

    rec = tmp_path / "rec"
    shutil.copytree(bundled / "recorded", rec)
    store = tmp_path / "s.duckdb"
    assert ingest(rec, store=store).ok
    _analyzed(store)
    with open_store(store) as st:
        new = dict(st.con.execute("SELECT trace_id, content_hash FROM traces").fetchall())
        for tid in st.trace_ids():
            st.con.execute("UPDATE traces SET content_hash = ? WHERE trace_id = ?",
                           [hashlib.sha256(st.get_trace(tid).to_json()).hexdigest(), tid])
    assert ingest(rec, store=store).n_new == 0
    with open_store(store, read_only=True) as st:
        assert dict(st.con.execute("SELECT trace_id, content_hash FROM traces").fetchall()) == new
        assert all(st.get_attributions(t) for t in st.trace_ids())


def test_one_same_content_rule_for_upsert_and_the_ingest_check(bundled: Path, tmp_path: Path) -> None:
    """``store._hashes`` is the one rule: content_hash is its first hash, matches_stored accepts either, and an
    upsert stores the first (a trace with activations under its folder: relative; another: its JSON's own)."""
    import hashlib

    from attrib.readers import read_path
    from attrib.store import _hashes, content_hash, matches_stored

    rec = tmp_path / "rec"
    shutil.copytree(bundled / "recorded", rec)
    store = tmp_path / "s.duckdb"
    assert ingest(rec, store=store).ok and ingest(_write(tmp_path / "alice.json", ALICE), store=store).ok
    with open_store(store, read_only=True) as st:
        stored = {tid: (src, h) for tid, (src, h, _) in st.stored_sources(st.trace_ids()).items()}
    kinds = set()
    for tid, (src, h) in stored.items():
        t = next(x for x in read_path(Path(src)) if x.id == tid)
        digest, old = _hashes(t, src)
        whole = hashlib.sha256(t.to_json()).hexdigest()
        assert digest == h == content_hash(t, src) and (old is None) == (digest == whole)
        assert old in (None, whole) and matches_stored(t, src, whole) and matches_stored(t, src, h)
        assert not matches_stored(t, src, "0" * 64)
        kinds.add(old is None)
    assert kinds == {True, False}  # both kinds of trace seen


# ------------------------------------------------------------------ 11. SIGTERM
def test_sigterm_stops_an_ingest_as_ctrl_c_does(bundled: Path, tmp_path: Path) -> None:
    """SIGTERM (`kill`, `timeout`, `systemctl stop`) as the second file starts: the same line as for Ctrl-C, exit
    130, the first file stored whole (SIGTERM's default ended the process without a word)."""
    store = tmp_path / "s.duckdb"
    code = ("import os, signal, sys\nimport attrib.store.api as api\nfrom attrib.cli import main\n"
            "real, calls = api.ingest_file, []\n"
            "def second(*a, **k):\n    calls.append(1)\n    if len(calls) == 2:\n        os.kill(os.getpid(), signal.SIGTERM)\n"
            "    return real(*a, **k)\n"
            "api.ingest_file = second\nsys.argv = ['attrib', *sys.argv[1:]]\nmain()\n")
    files = [str(bundled / n) for n in ("demo_whowhen.json", "otlp_agents.json", "chat_langgraph.json")]
    r = subprocess.run([sys.executable, "-c", code, "ingest", *files, "--store", str(store), "-q"],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})
    assert r.returncode == 130, (r.returncode, r.stderr)
    assert "interrupted: 1 file(s) stored whole" in r.stderr
    with open_store(store, read_only=True) as st:
        assert st.count_traces() == 1
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_sigterm_stops_analyze_all_as_ctrl_c_does(bundled: Path, tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    assert ingest(bundled, store=store).ok
    code = ("import os, signal, sys\nfrom attrib.engine import BatchInterrupted, analyze_many\n"
            "from attrib.methods import get_method, run\n"
            "def blame(trace, **kw):\n    os.kill(os.getpid(), signal.SIGTERM)\n"
            "    return run(get_method('flow-graph'), trace, {})\n"
            "try:\n    analyze_many(sys.argv[1], method=blame, engine='serial', batch_size=1)\n"
            "except BatchInterrupted as e:\n    print('interrupted', e.report.analyzed, e.report.matched)\n"
            "    print(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)\n")
    r = subprocess.run([sys.executable, "-c", code, str(store)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (r.returncode, r.stderr)
    words = r.stdout.split()
    assert words[0] == "interrupted" and int(words[1]) < int(words[2]) and words[3] == "True", r.stdout


def test_a_store_in_a_read_only_folder_is_an_unwritable_output_exit_1() -> None:
    """Opening a store to write in a folder (or a file) the user may not write was exit 3, "bad input", which a CI
    retry rule on 3 (a locked store) retried forever; the README says 1 (walkthrough w8 #4)."""
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="attrib-ro-"))  # not under pytest's tmp (a 700 folder only root enters)
    try:
        root.chmod(0o755)
        ro = root / "ro"
        ro.mkdir(mode=0o555)
        ro.chmod(0o555)
        cmd = [str(Path(sys.executable).parent / "attrib"), "ingest", str(Path(__file__).resolve().parents[1] /
               "traces" / "demo_whowhen.json"), "--store", str(ro / "new.duckdb")]
        if os.geteuid() == 0:  # root writes anywhere: run as nobody
            if shutil.which("setpriv") is None:
                pytest.skip("root, and no setpriv to run as another user")
            cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=root)
        if "Permission denied" not in r.stderr and r.returncode == 0:
            pytest.skip("this machine lets the user write there")
        assert r.returncode == 1, r.stderr
        assert f"cannot write the store {ro / 'new.duckdb'}: Permission denied" in r.stderr
    finally:
        shutil.rmtree(root, ignore_errors=True)
