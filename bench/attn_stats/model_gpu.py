"""End to end: per-layer segment attention statistics of a SmolLM2-135M-shaped model from one forward pass, on a GPU.

The weights are random (a SmolLM2 config, no download, nothing to carry to the GPU machine): the cost of a forward
pass is set by the shapes, not the values. Three ways, at each T, on the last 16 query positions of all 30 layers:

* ``forward``  : a plain SDPA forward pass, no statistics (the floor every method pays);
* ``stats``    : ``attrib.heads.long_context.layer_segment_stats(engine="hf")`` -> the CUDA kernel per layer;
* ``patterns`` : eager attention with ``output_attentions=True`` (every layer's [H, T, T] pattern is returned, as
                 a TransformerLens ``hook_pattern`` cache holds them), then the same statistics from the patterns.

Time is the best of ``--repeats`` synchronized runs after a warm-up; memory is the peak
``torch.cuda.max_memory_allocated`` over the loaded model. At the smallest T the two statistics are compared.

    python3 bench/attn_stats/model_gpu.py [--sizes 1024,4096,8192,16384,32768] [--out FILE]
Writes bench/results/attn_stats_model_gpu.json by default (needs a CUDA GPU; ``--device cpu`` for a smoke run).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))
OUT = HERE.parent / "results" / "attn_stats_model_gpu.json"
SEGMENTS = 4
LAST = 16


def smollm2_model(max_pos: int, device: str, dtype: str):
    """SmolLM2-135M-Instruct's architecture with random weights."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                      num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=max_pos,
                      rope_theta=100000.0, rms_norm_eps=1e-5, tie_word_embeddings=True, hidden_act="silu")
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).to(device=device, dtype=getattr(torch, dtype)).eval()


def inputs(T: int, device: str):
    import torch

    ids = torch.randint(100, 40000, (1, T), generator=torch.Generator().manual_seed(T)).to(device)
    seg = torch.zeros(T, dtype=torch.long)
    seg[1:T // 8], seg[T // 8:T // 4], seg[T // 4:] = 1, 2, 3
    return ids, seg.to(device)


def run_forward(model, ids, seg):
    import torch

    model.set_attn_implementation("sdpa")
    with torch.inference_mode():
        model(input_ids=ids, use_cache=False)
    return None


def run_stats(model, ids, seg):
    from attrib.heads.long_context import layer_segment_stats

    T = ids.shape[1]
    backend = "cuda" if ids.is_cuda else "torch"
    out = layer_segment_stats(model, ids[0], seg, query_positions=list(range(T - LAST, T)), engine="hf",
                              n_segments=SEGMENTS, backend=backend)
    return {layer: (s.mass[0], s.entropy[0]) for layer, s in out.items()}


def run_patterns(model, ids, seg):
    import torch

    T = ids.shape[1]
    model.set_attn_implementation("eager")
    try:
        with torch.inference_mode():
            out = model(input_ids=ids, use_cache=False, output_attentions=True)
        onehot = torch.nn.functional.one_hot(seg, SEGMENTS).to(torch.float32)
        res = {}
        for layer, pat in enumerate(out.attentions):
            p = pat[0, :, T - LAST:, :].float()  # [H, Q, T]
            res[layer] = (p @ onehot, torch.special.entr(p).sum(-1))
        return res
    finally:
        model.set_attn_implementation("sdpa")


METHODS = {"forward": run_forward, "stats": run_stats, "patterns": run_patterns}


def measure(fn, model, ids, seg, repeats: int, device: str) -> dict:
    import torch

    gpu = device == "cuda"
    try:
        fn(model, ids, seg)  # warm-up (the extension builds on first use)
        if gpu:
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn(model, ids, seg)
            if gpu:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if gpu else None
        return {"time_s": min(times), "times_s": [round(t, 4) for t in times], "peak_mb": peak}
    except torch.OutOfMemoryError as e:
        if gpu:
            torch.cuda.empty_cache()
        return {"skipped": f"out of memory: {str(e).splitlines()[0][:160]}"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1024,4096,8192,16384,32768")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16",
                    help="model dtype; in fp32 SDPA has no flash kernel and itself forms [H, T, T] scores per layer")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA GPU is visible (use --device cpu for a smoke run)")
    sizes = [int(s) for s in args.sizes.split(",")]
    model = smollm2_model(max(sizes), args.device, args.dtype)
    rows, check = [], {}
    for i, T in enumerate(sizes):
        ids, seg = inputs(T, args.device)
        for name, fn in METHODS.items():
            row = {"method": name, "T": T} | measure(fn, model, ids, seg, args.repeats, args.device)
            rows.append(row)
            print(json.dumps(row), flush=True)
        if i == 0:
            a, b = run_stats(model, ids, seg), run_patterns(model, ids, seg)
            check = {"T": T, "max_abs_mass_diff": max(float((a[k][0] - b[k][0]).abs().max()) for k in a),
                     "max_abs_entropy_diff": max(float((a[k][1] - b[k][1]).abs().max()) for k in a)}
            print(json.dumps(check), flush=True)
    fwd = {r["T"]: r["time_s"] for r in rows if r["method"] == "forward" and "time_s" in r}
    for r in rows:
        if "time_s" in r and r["T"] in fwd:
            r["time_over_forward"] = round(r["time_s"] / fwd[r["T"]], 3)
    report = {
        "benchmark": "attn_stats_model_gpu",
        "what": f"SmolLM2-135M shape (random weights, {args.dtype}), segment masses + entropy of the last {LAST} positions "
                "in all 30 layers from one forward pass",
        "device": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu",
        "machine": {"platform": platform.platform(), "torch": torch.__version__,
                    "transformers": __import__("transformers").__version__},
        "results": rows, "stats_vs_patterns": check,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
