"""Ingest benchmark: a generated 100k-step OTLP corpus, read and stored, against raw orjson decoding.

Reports steps/s of the OTLP reader and the ratio to ``orjson.loads`` on the same bytes (measured in
the same run, best of ``--repeat``), end-to-end ``ingest`` into a DuckDB store, and peak memory
(tracemalloc for the reader's Python heap; peak RSS (VmHWM) of a fresh child process for the full ingest)
for the corpus as 1 file and as 10 files, plus 1 of those 10 files alone (memory should be flat in
the number of files). Writes bench/results/ingest.json. The corpus lives in a temp dir.

    python bench/ingest/run.py [--steps 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from attrib.readers.otlp import OTLPReader  # noqa: E402

SPANS_PER_TRACE = 100
WORDS = ["the", "flight", "fare", "tool", "result", "agent", "search", "hotel", "total", "budget", "per", "person",
         "price", "euro", "check", "verify", "plan", "step", "answer", "convert", "unit", "value", "error", "retry",
         "page", "click", "query"]


def _kv(k: str, v: object) -> dict:
    if isinstance(v, int):
        return {"key": k, "value": {"intValue": str(v)}}
    return {"key": k, "value": {"stringValue": v}}


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def make_trace(rng: random.Random, t: int) -> list[dict]:
    """One trace: a root agent, sub-agents, each with LLM calls (tool requests) and tool executions."""
    tid = f"{t:032x}"
    t0 = 1_700_000_000_000_000_000 + t * 10**12
    spans = []

    def add(parent: str, name: str, attrs: dict) -> str:
        sid = f"{t:08x}{len(spans):08x}"
        start = t0 + len(spans) * 1_000_000
        spans.append({"traceId": tid, "spanId": sid, "parentSpanId": parent, "name": name, "kind": 1,
                      "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + 900_000),
                      "attributes": [_kv(k, v) for k, v in attrs.items()], "status": {"code": 1}})
        return sid

    root = add("", "invoke_agent Orchestrator", {"gen_ai.operation.name": "invoke_agent",
                                                  "gen_ai.agent.name": "Orchestrator",
                                                  "input.value": _text(rng, 30), "output.value": _text(rng, 40)})
    agent, n_agent = root, 0
    while len(spans) < SPANS_PER_TRACE:
        r = len(spans) % 11
        if r == 1:
            n_agent += 1
            agent = add(root, f"invoke_agent Worker{n_agent}", {"gen_ai.operation.name": "invoke_agent",
                                                               "gen_ai.agent.name": f"Worker{n_agent}",
                                                               "input.value": _text(rng, 25),
                                                               "output.value": _text(rng, 25)})
        elif r % 2 == 0:
            add(agent, "chat gpt-4o-mini", {
                "openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini",
                "llm.token_count.prompt": rng.randint(100, 3000), "llm.token_count.completion": rng.randint(10, 300),
                "llm.output_messages.0.message.role": "assistant",
                "llm.output_messages.0.message.content": _text(rng, 60),
                "llm.output_messages.0.message.tool_calls.0.tool_call.id": f"call_{len(spans)}",
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "search",
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": json.dumps({"q": _text(rng, 5)}),
            })
        else:
            add(agent, "execute_tool search", {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search",
                                               "gen_ai.tool.call.id": f"call_{len(spans) - 1}",
                                               "gen_ai.tool.call.arguments": json.dumps({"q": _text(rng, 5)}),
                                               "gen_ai.tool.call.result": _text(rng, 80)})
    return spans


def write_corpus(directory: Path, n_steps: int, n_files: int, seed: int = 0) -> list[Path]:
    rng = random.Random(seed)
    n_traces = n_steps // SPANS_PER_TRACE
    per_file = n_traces // n_files
    paths = []
    for f in range(n_files):
        spans = [sp for t in range(f * per_file, (f + 1) * per_file) for sp in make_trace(rng, t)]
        doc = {"resourceSpans": [{"resource": {"attributes": [_kv("service.name", "bench")]},
                                  "scopeSpans": [{"scope": {"name": "bench"}, "spans": spans}]}]}
        p = directory / f"corpus_{n_files}_{f:02d}.json"
        p.write_bytes(orjson.dumps(doc))
        paths.append(p)
    return paths


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def measure_read(paths: list[Path], repeat: int) -> dict:
    blobs = [p.read_bytes() for p in paths]
    reader = OTLPReader()
    n_steps = sum(t.n_steps for b, p in zip(blobs, paths, strict=True) for t in reader.read(b, p))
    t_raw = best(lambda: [orjson.loads(b) for b in blobs], repeat)
    t_read = best(lambda: [reader.read(b, p) for b, p in zip(blobs, paths, strict=True)], repeat)
    mb = sum(len(b) for b in blobs) / 2**20
    # peak Python heap while reading the files one after another (results dropped per file, as ingest does)
    blobs.clear()
    tracemalloc.start()
    for p in paths:
        reader.read(p.read_bytes(), p)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"files": len(paths), "steps": n_steps, "mib": round(mb, 1),
            "raw_orjson_s": round(t_raw, 3), "reader_s": round(t_read, 3),
            "raw_orjson_steps_per_s": round(n_steps / t_raw), "reader_steps_per_s": round(n_steps / t_read),
            "ratio_to_raw_decode": round(t_raw / t_read, 3), "reader_peak_heap_mib": round(peak / 2**20, 1)}


def child_ingest(paths: list[str], store: str) -> None:
    """Run in a fresh process: ingest ``paths`` into ``store``; print seconds, steps and peak RSS."""
    from attrib.store.api import ingest

    t = time.perf_counter()
    rep = ingest(paths, store=store)
    dt = time.perf_counter() - t
    assert rep.ok, [f.error for f in rep.failed]
    print(json.dumps({"s": dt, "steps": rep.n_steps, "peak_rss_mib": peak_rss_mib()}))


def peak_rss_mib() -> float:
    """This process's peak RSS. VmHWM resets at exec; ru_maxrss would carry the forking parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_ingest(paths: list[Path], tmp: Path, tag: str) -> dict:
    store = tmp / f"{tag}.duckdb"
    out = subprocess.run([sys.executable, __file__, "--child", str(store), *map(str, paths)], check=True,
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return {"files": len(paths), "steps": r["steps"], "ingest_s": round(r["s"], 2),
            "ingest_steps_per_s": round(r["steps"] / r["s"]), "peak_rss_mib": round(r["peak_rss_mib"], 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ingest.json")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child_ingest(a.child[1:], a.child[0])
        return
    with tempfile.TemporaryDirectory(prefix="attrib-bench-") as d:
        tmp = Path(d)
        one = write_corpus(tmp, a.steps, 1)
        ten = write_corpus(tmp, a.steps, 10)
        read = {"1_file": measure_read(one, a.repeat), "10_files": measure_read(ten, a.repeat),
                "1_of_10_files": measure_read(ten[:1], a.repeat)}
        for k, v in read.items():
            print(f"read   {k:>13}: {v['steps']:>7} steps {v['reader_steps_per_s']:>9,} steps/s  "
                  f"raw orjson {v['raw_orjson_steps_per_s']:>9,} steps/s  ratio {v['ratio_to_raw_decode']:.2f}x  "
                  f"peak heap {v['reader_peak_heap_mib']} MiB")
        store = {"1_file": measure_ingest(one, tmp, "one"), "10_files": measure_ingest(ten, tmp, "ten"),
                 "1_of_10_files": measure_ingest(ten[:1], tmp, "first")}
        for k, v in store.items():
            print(f"ingest {k:>13}: {v['steps']:>7} steps {v['ingest_steps_per_s']:>9,} steps/s  "
                  f"{v['ingest_s']} s  peak RSS {v['peak_rss_mib']} MiB")
    result = {
        "benchmark": "ingest",
        "corpus": {"steps": a.steps, "spans_per_trace": SPANS_PER_TRACE, "format": "OTLP JSON (GenAI + OpenInference)"},
        "baseline": "orjson.loads of the same bytes, same process, best of repeats",
        "read": read,
        "ingest_to_duckdb": store,
        "memory_flat": {
            "reader_heap_10_files_over_1_of_10": round(read["10_files"]["reader_peak_heap_mib"]
                                                       / read["1_of_10_files"]["reader_peak_heap_mib"], 2),
            "ingest_rss_10_files_over_1_of_10": round(store["10_files"]["peak_rss_mib"]
                                                      / store["1_of_10_files"]["peak_rss_mib"], 2),
        },
        "goal": {"ratio_to_raw_decode": ">= 0.3", "memory": "flat in the number of files"},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "repeat": a.repeat,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    if a.out.is_file() and "huge_trace" in (old := json.loads(a.out.read_text())):
        result["huge_trace"] = old["huge_trace"]  # bench/ingest/huge_trace.py's key: its own script rewrites it
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
