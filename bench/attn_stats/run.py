"""Benchmark: per-query segment attention mass + entropy, four ways, at T = 1k, 4k, 16k, 32k (SmolLM2 heads).

(a) naive      : full [H, T, T] scores -> softmax -> segment sums and entropy (lean: two T x T buffers at most);
(b) tl_cache   : TransformerLens-style attention (GQA keys repeated, mask by torch.where, softmax, NaN scrub)
                 with hook_pattern kept in a cache, then the statistics from the cached pattern;
(c) chunked    : attrib.kernels.segment_attention_stats(backend="torch") (online softmax, O(T) per query);
(d) cuda       : the same call with backend="cuda" (only when a GPU is visible).
Each (method, T) runs in a fresh subprocess so peak memory is that run's own: peak RSS growth over the
inputs on CPU, torch.cuda.max_memory_allocated on GPU. Sizes that would not fit the memory or time budget
are skipped and the reason is written to the JSON. Ratios are against (a) measured in the same run.

    .venv/bin/python bench/attn_stats/run.py [--sizes 1024,4096] [--repeats 3] [--budget-s 300] [--out FILE]
Writes --out, by default bench/results/attn_stats.json: the committed results, which a run overwrites (that is
how they are refreshed; give --out elsewhere for a trial run). --model-sizes merges into the same file.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "results" / "attn_stats.json"
SHAPE = {"batch": 1, "query_heads": 9, "kv_heads": 3, "head_dim": 64, "segments": 5, "causal": True}
LAYERS = 30  # SmolLM2-135M: a run_with_cache of hook_pattern keeps one [H, T, T] per layer
BLOCK = 512


# ----------------------------------------------------------------------------------------------------------
# Worker: one (method, T) measurement in this process.


def _inputs(T: int, device: str):
    import torch

    g = torch.Generator().manual_seed(0)
    B, Hq, Hkv, D = SHAPE["batch"], SHAPE["query_heads"], SHAPE["kv_heads"], SHAPE["head_dim"]
    q = torch.randn(B, Hq, T, D, generator=g).to(device)
    k = torch.randn(B, Hkv, T, D, generator=g).to(device)
    # sink | system rule | peer/user conflict | rest of prompt | response: contiguous spans like a transcript
    cuts = [0, 1, max(2, T // 8), max(3, T // 4), max(4, (3 * T) // 4), T]
    seg = torch.zeros(T, dtype=torch.long)
    for s in range(5):
        seg[cuts[s] : cuts[s + 1]] = s
    return q, k, seg.to(device)


def _naive(q, k, seg):
    import torch

    T, D = q.shape[2], q.shape[3]
    kk = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
    scores = torch.matmul(q, kk.transpose(-1, -2)).mul_(1 / math.sqrt(D))
    scores.masked_fill_(torch.ones(T, T, dtype=torch.bool, device=q.device).triu_(1), -math.inf)
    probs = torch.softmax(scores, dim=-1)
    del scores
    mass = torch.matmul(probs, torch.nn.functional.one_hot(seg, SHAPE["segments"]).to(probs.dtype))
    ent = torch.special.entr(probs).sum(-1)
    return mass, ent


def _tl_cache(q, k, seg, cache: dict):
    """The attention math of TransformerLens (HookedTransformer / bridge reconstruction), pattern kept."""
    import torch

    T, D = q.shape[2], q.shape[3]
    kk = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)  # repeat_kv
    attn_scores = torch.matmul(q, kk.transpose(-1, -2)) / math.sqrt(D)  # hook_attn_scores input
    mask = torch.ones(T, T, dtype=torch.bool, device=q.device).tril_()
    attn_scores = torch.where(mask, attn_scores, torch.tensor(-math.inf, device=q.device))
    pattern = torch.softmax(attn_scores, dim=-1)
    pattern = torch.where(torch.isnan(pattern), torch.zeros_like(pattern), pattern)
    cache["blocks.0.attn.hook_pattern"] = pattern  # run_with_cache keeps it
    del attn_scores
    mass = torch.matmul(pattern, torch.nn.functional.one_hot(seg, SHAPE["segments"]).to(pattern.dtype))
    ent = torch.special.entr(pattern).sum(-1)
    return mass, ent


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS (Linux >= 4.0); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def model_worker(engine: str, T: int) -> dict:
    """One forward pass of SmolLM2 over T random tokens, statistics of the last 16 positions in all 30 layers."""
    import torch

    from attrib.heads.long_context import layer_segment_stats
    from attrib.models import load_bridge, load_model

    hf, tok = load_model("smollm2-135m")
    model = load_bridge((hf, tok)) if engine == "bridge" else hf
    ids = torch.randint(100, 40000, (T,), generator=torch.Generator().manual_seed(0))
    seg = torch.zeros(T, dtype=torch.long)
    seg[1 : T // 8], seg[T // 8 : T // 4], seg[T // 4 :] = 1, 2, 3
    base = _status_bytes("VmRSS")
    exact = _reset_peak_rss()
    t0 = time.perf_counter()
    out = layer_segment_stats(model, ids, seg, query_positions=list(range(T - 16, T)), engine=engine)
    dt = time.perf_counter() - t0
    hwm = _status_bytes("VmHWM") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"method": f"model_{engine}", "T": T, "layers": len(out), "time_s": round(dt, 2),
            "peak_mb": round(max(0, hwm - base) / 2**20, 1),
            "pattern_cache_would_need_mb": round(LAYERS * SHAPE["query_heads"] * T * T * 4 / 2**20)}


def worker(method: str, T: int, repeats: int, device: str) -> dict:
    import torch

    from attrib.kernels import segment_attention_stats

    q, k, seg = _inputs(T, device)
    cache: dict = {}
    fns = {
        "naive": lambda: _naive(q, k, seg),
        "tl_cache": lambda: _tl_cache(q, k, seg, cache),
        "chunked": lambda: segment_attention_stats(q, k, seg, backend="torch", block_size=BLOCK),
        "cuda": lambda: segment_attention_stats(q, k, seg, backend="cuda"),
    }
    fn = fns[method]
    gpu = device == "cuda"
    times = []
    if gpu:
        fn()  # build / warm up
        torch.cuda.synchronize()
        cache.clear()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _status_bytes("VmRSS")
        exact = _reset_peak_rss()
    for _ in range(repeats):
        cache.clear()
        if gpu:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if gpu:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        del out
    if gpu:
        peak = torch.cuda.max_memory_allocated() - base
    else:
        hwm = _status_bytes("VmHWM") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        peak = max(0, hwm - base)
    return {"method": method, "T": T, "device": device, "time_s": min(times), "times_s": [round(t, 4) for t in times],
            "peak_mb": round(peak / 2**20, 1)}


# ----------------------------------------------------------------------------------------------------------
# Driver.


def _mem_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 8 * 2**30


def _predicted_bytes(method: str, T: int) -> int:
    H = SHAPE["query_heads"]
    if method in ("naive", "tl_cache"):
        return 3 * H * T * T * 4  # scores + probs (+ one temporary of the same size)
    return 8 * H * BLOCK * BLOCK * 4 + 2 * H * T * SHAPE["head_dim"] * 4


def _run(method: str, T: int, repeats: int, device: str, timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--worker", method, str(T), str(repeats), device]
    env = dict(os.environ, PYTHONPATH=str(HERE.parent.parent))
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"method": method, "T": T, "device": device, "skipped": f"exceeded the {timeout:.0f} s budget"}
    if res.returncode != 0:
        tail = (res.stderr.strip().splitlines() or ["?"])[-1]
        return {"method": method, "T": T, "device": device, "skipped": f"failed: {tail[:200]}"}
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1024,4096,16384,32768")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--budget-s", type=float, default=300.0, help="time budget per (method, T) subprocess")
    ap.add_argument("--mem-fraction", type=float, default=0.6, help="skip runs predicted above this share of free RAM")
    ap.add_argument("--out", default=str(OUT),
                    help=f"JSON to write (default: {OUT.relative_to(HERE.parent.parent)}, the committed results: a run "
                         "overwrites them)")
    ap.add_argument("--model-sizes", default="",
                    help="instead: SmolLM2 end to end (layer_segment_stats, engines bridge and hf) at these T, "
                         "merged into the JSON under 'model_level'")
    args = ap.parse_args()
    if args.model_sizes:
        return model_main(args)

    import torch

    gpu = torch.cuda.is_available()
    device = "cuda" if gpu else "cpu"
    sizes = [int(s) for s in args.sizes.split(",")]
    if gpu and 8192 not in sizes:
        sizes = sorted(sizes + [8192])
    methods = ["naive", "tl_cache", "chunked"] + (["cuda"] if gpu else [])
    budget_bytes = (torch.cuda.get_device_properties(0).total_memory if gpu else _mem_available()) * args.mem_fraction
    rows: list[dict] = []
    seconds: dict[str, dict[int, float]] = {m: {} for m in methods}
    for T in sizes:
        repeats = args.repeats if T <= 4096 or gpu else 1  # long CPU runs: one timed run
        for m in methods:
            pred = _predicted_bytes(m, T)
            prev = [t for t in seconds[m] if t < T]
            est = seconds[m][max(prev)] * (T / max(prev)) ** 2 * repeats if prev else 0.0
            if not gpu and pred > budget_bytes:
                row = {"method": m, "T": T, "device": device,
                       "skipped": f"needs ~{pred / 2**30:.1f} GiB, over {args.mem_fraction:.0%} of the "
                                  f"{budget_bytes / args.mem_fraction / 2**30:.1f} GiB available"}
            elif est > args.budget_s:
                row = {"method": m, "T": T, "device": device,
                       "skipped": f"estimated {est:.0f} s from the smaller size (T^2), over the {args.budget_s:.0f} s budget"}
            else:
                row = _run(m, T, repeats, device, args.budget_s * 1.5)
                if "time_s" in row:
                    seconds[m][T] = row["time_s"]
            rows.append(row)
            print(_fmt(row), flush=True)

    ratios = _ratios(rows, methods)
    at4k = ratios.get("4096", {}).get("chunked", {})
    goals = {
        "cpu_chunked_vs_naive_at_4k": {
            "memory_ratio": at4k.get("naive_peak_over_this"), "time_ratio": at4k.get("this_time_over_naive"),
            "goal": "memory ratio >= 4 and time ratio <= 1.5",
            "met": bool(at4k) and at4k.get("naive_peak_over_this", 0) >= 4 and at4k.get("this_time_over_naive", 9) <= 1.5,
        }
    } if not gpu else {"gpu": "see ratios for cuda at 8192 (goal: >= 5x faster than naive) and 32768"}
    report = {
        "benchmark": "attn_stats",
        "shape": SHAPE,
        "chunk_block": BLOCK,
        "device": device,
        "gpu": torch.cuda.get_device_name(0) if gpu else "none visible in this run: the CUDA kernel was not measured",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads(), "loadavg_at_start": os.getloadavg()},
        "note": "peak_mb = peak RSS growth over the inputs (CPU) or max_memory_allocated (GPU), fresh process per row; "
                "time_s = best of the repeats; tl_cache keeps one layer's pattern (x30 layers for a full "
                "run_with_cache of SmolLM2)",
        "results": rows,
        "ratios_vs_naive": ratios,
        "goals": goals,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


def model_main(args: argparse.Namespace) -> None:
    rows = []
    for T in [int(x) for x in args.model_sizes.split(",")]:
        for engine in ("bridge", "hf"):
            if engine == "bridge" and T > 4096:
                rows.append({"method": "model_bridge", "T": T, "skipped": "the bridge's eager attention forms "
                             "[H, T, T] scores per layer; not run above 4k tokens on CPU (time)"})
                continue
            cmd = [sys.executable, __file__, "--model-worker", engine, str(T)]
            env = dict(os.environ, PYTHONPATH=str(HERE.parent.parent))
            try:
                res = subprocess.run(cmd, capture_output=True, text=True, timeout=args.budget_s * 3, env=env)
                row = (json.loads(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else
                       {"method": f"model_{engine}", "T": T, "skipped": f"failed: {res.stderr.strip()[-200:]}"})
            except subprocess.TimeoutExpired:
                row = {"method": f"model_{engine}", "T": T, "skipped": f"over {args.budget_s * 3:.0f} s"}
            rows.append(row)
            print(row, flush=True)
    out = Path(args.out)
    report = json.loads(out.read_text()) if out.exists() else {"benchmark": "attn_stats"}
    report["model_level"] = {
        "what": "SmolLM2-135M forward over T tokens, segment masses + entropy of the last 16 positions, all 30 "
                "layers; peak_mb = peak RSS growth over the loaded model",
        "loadavg_at_end": os.getloadavg(),
        "results": rows,
    }
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


def _ratios(rows: list[dict], methods: list[str]) -> dict:
    by = {(r["method"], r["T"]): r for r in rows if "time_s" in r}
    out: dict[str, dict] = {}
    for (m, T), r in sorted(by.items(), key=lambda kv: kv[0][1]):
        base = by.get(("naive", T))
        if base is None or m == "naive":
            continue
        out.setdefault(str(T), {})[m] = {
            "naive_peak_over_this": round(base["peak_mb"] / max(r["peak_mb"], 0.1), 2),
            "this_time_over_naive": round(r["time_s"] / base["time_s"], 3),
        }
    for m in methods:
        if m == "tl_cache":
            for T in {r["T"] for r in rows}:
                pattern_mb = SHAPE["query_heads"] * T * T * 4 / 2**20
                out.setdefault(str(T), {}).setdefault("tl_cache_all_layers_pattern_mb", round(LAYERS * pattern_mb))
    return out


def _fmt(r: dict) -> str:
    if "skipped" in r:
        return f"{r['method']:>9} T={r['T']:>6}: skipped ({r['skipped']})"
    return f"{r['method']:>9} T={r['T']:>6}: {r['time_s']:8.3f} s  peak {r['peak_mb']:9.1f} MB"


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--model-worker":
        print(json.dumps(model_worker(sys.argv[2], int(sys.argv[3]))))
    elif len(sys.argv) > 1 and sys.argv[1] == "--worker":
        method, T, repeats, device = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
        print(json.dumps(worker(method, T, repeats, device)))
    else:
        main()
