"""One huge run: peak memory and time of `attrib ingest` and `attrib traces show` on a generated 240k-step trace.

A Who&When log of ``--steps`` steps (default 240,000 of ~1.1 KB each: 268 MiB of JSON, words drawn from a 20k
vocabulary so it compresses like text) is written to a temp dir, ingested into a fresh store by `attrib ingest` in a
child process (peak RSS: the child's VmHWM), then shown from the store with `attrib traces show ID` (its default
first 200 steps) and `--steps` far into the run. Also records what the ingest left beside the store (a write-ahead
log that was never checkpointed into the file made every later open replay it). The ``before`` figures were
measured with the code before the memory work, same machine, same generator. Runs in about 30 s; merges its
results into bench/results/ingest.json under ``huge_trace`` (bench/ingest/run.py writes the rest of that file).

    python bench/ingest/huge_trace.py [--steps 240000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "bench" / "results" / "ingest.json"

#: This bench with ``--code`` an export of the commit before the memory work (55c5b20), same machine and file.
BEFORE = {"ingest_s": 9.86, "ingest_peak_rss_mib": 2422.5, "show_s": 97.47, "show_peak_rss_mib": 1527.9,
          "wal_left_mib": 306.5}


def write_run(path: Path, n_steps: int, seed: int = 0) -> None:
    """A Who&When log of ``n_steps`` messages of ~170 words, four agents, labelled at step 5."""
    rng = random.Random(seed)
    vocab = ["".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 9))) for _ in range(20000)]
    agents = ["Orchestrator (thought)", "WebSurfer", "Assistant", "Computer_terminal"]
    history = [{"role": "assistant" if i % 4 else "user", "name": agents[i % 4],
                "content": f"{i} " + " ".join(rng.choices(vocab, k=170))} for i in range(n_steps)]
    path.write_bytes(orjson.dumps({"question": "what is the total?", "question_ID": "q1", "ground_truth": "42",
                                   "is_correct": False, "history": history, "mistake_agent": "WebSurfer",
                                   "mistake_step": "5", "mistake_reason": "wrong"}))


def peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM resets at exec, so a child reports its own)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(args: list[str]) -> None:
    """Run one `attrib` command in this (fresh) process, its output dropped; print seconds and peak RSS."""
    import contextlib
    import io

    from attrib.cli import app

    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            app(args, standalone_mode=False)
        except SystemExit as e:
            if e.code:
                raise
    print(json.dumps({"s": time.perf_counter() - t, "peak_rss_mib": peak_rss_mib()}))


def run_child(code: Path, *args: str) -> dict:
    """``attrib ARGS`` in a fresh process running the attrib package under ``code``: seconds and peak RSS."""
    out = subprocess.run([sys.executable, __file__, "--child", *args], check=True, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1"})
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return {"s": round(r["s"], 2), "peak_rss_mib": round(r["peak_rss_mib"], 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=240_000)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--code", type=Path, default=ROOT, help="Run the attrib package in this folder (e.g. an export "
                    "of an older commit, to measure it the same way); results are then printed, not written.")
    ap.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child)
        return
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="attrib-huge-") as d:
        run, store = Path(d) / "huge.json", Path(d) / "s.duckdb"
        write_run(run, a.steps)
        mib = run.stat().st_size / 2**20
        ingest = run_child(a.code, "ingest", str(run), "--store", str(store), "-q")
        wal = store.with_name(store.name + ".wal")
        left = wal.stat().st_size / 2**20 if wal.exists() else 0.0
        show = run_child(a.code, "traces", "show", "whowhen-hand-huge", "--store", str(store))
        far = run_child(a.code, "traces", "show", "whowhen-hand-huge", "--store", str(store), "--steps",
                        f"{a.steps - 3}-")
        store_mib = store.stat().st_size / 2**20
    elapsed = time.perf_counter() - t_all
    now = {"ingest_s": ingest["s"], "ingest_peak_rss_mib": ingest["peak_rss_mib"], "show_s": show["s"],
           "show_peak_rss_mib": show["peak_rss_mib"], "wal_left_mib": round(left, 1)}
    result = {
        "trace": {"format": "Who&When JSON", "steps": a.steps, "file_mib": round(mib, 1)},
        "ingest": {**ingest, "peak_rss_over_file_size": round(ingest["peak_rss_mib"] / mib, 2),
                   "wal_left_mib": round(left, 1), "store_mib": round(store_mib, 1)},
        "show_default": show,
        "show_last_steps": far,
        "bench_s": round(elapsed, 1),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
    }
    if a.steps == 240_000:
        result["before"] = BEFORE
        result["after_over_before"] = {k: round(now[k] / v, 3) for k, v in BEFORE.items() if v}
    print(json.dumps(result, indent=2))
    if a.code.resolve() != ROOT:
        return
    doc = json.loads(a.out.read_text()) if a.out.is_file() else {}
    doc["huge_trace"] = result
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {a.out} (huge_trace), {elapsed:.0f} s")


if __name__ == "__main__":
    main()
