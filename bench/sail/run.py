"""SAIL benchmark: does surgical LoRA on the focal layers repair system-rule following, and at what cost?

One run, on CPU, SmolLM2-135M-Instruct: the base model and, for each of ``--seeds`` seeds, four trained variants on the
same preference pairs (train templates of the conflict suite, minus the validation questions) with the same budget:

* ``sail_focal``  — SAIL loss (α = 0.5, attention token weights) with LoRA on the focal layers (``--layers repair``, the
  default: the top 10 % of layers by their share of a short all-layer LoRA on the validation pairs; ``--layers auto``:
  by gradient attribution on the training pairs, :mod:`attrib.surgery.layers`);
* ``lora_random`` — the same loss (same focal-head token weights) and LoRA budget on as many random non-focal layers;
* ``lora_all``    — the same loss and token weights with LoRA on all layers;
* ``dpo_focal``   — plain DPO (α = 0) on the focal layers.

Each is scored on the *held-out templates* (unseen wordings) for compliance per family (greedy, programmatic
checkers, Wilson 95 % CI) and perplexity on a hand-written neutral text; step time is compared with all-layer LoRA
measured in the same run. Results go to ``--out``, by default ``bench/results/sail.json``: the committed results,
which a run overwrites (that is how they are refreshed; give ``--out`` elsewhere for a trial run, as for the smoke
run below).

Validation: the last question (``q2``) of every *train* template is held back from training; ``bench/sail/tune.py``
picks lr and steps on it (never on the held-out templates) and writes ``bench/results/sail_tune.json``, whose choice
this script uses by default.

    .venv/bin/python bench/sail/run.py --eval-questions 12   # the benchmark configuration (168 held-out prompts)
    .venv/bin/python bench/sail/run.py --seeds 1 --steps 4 --out /tmp/sail_smoke.json   # smoke run
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

CONDITIONS = ("sail_focal", "lora_random", "lora_all", "dpo_focal")
#: The question of every train template kept back as the validation split (training never sees its pairs).
VAL_QUESTION = "q2"
TUNE_FILE = ROOT / "bench" / "results" / "sail_tune.json"


def is_validation(probe_id: str) -> bool:
    """``family/tN/qK/condition`` ids whose question is the validation question."""
    parts = probe_id.split("/")
    return len(parts) > 2 and parts[2] == VAL_QUESTION


def validation_probes(conditions: tuple[str, ...]) -> list:
    """Probes of the train templates' validation question (the tuning set; disjoint from the training pairs)."""
    from attrib.probes import conflict_suite

    return [p for p in conflict_suite(split="train", conditions=conditions) if is_validation(p.id)]


def _train_split(model_name: str, build=None) -> list:
    """Train-template pairs from the cached pair file; ``build()`` makes the file when it is missing."""
    from attrib.paths import cache_dir
    from attrib.surgery.pairs import read_pairs, split_pairs, write_pairs

    pair_file = cache_dir() / "sail_bench" / f"pairs-{model_name}.jsonl"
    if not pair_file.is_file():
        if build is None:
            raise SystemExit(f"{pair_file} is missing: run the benchmark once to build the pairs")
        write_pairs(pair_file, build())
    train_pairs, _ = split_pairs(read_pairs(pair_file))
    return train_pairs


def training_pairs(model_name: str, model, tok, max_response_tokens: int, per_family: int) -> tuple[list, int]:
    """The fixed training subset: train-template pairs minus the validation question, ``per_family`` per family."""
    from attrib.surgery.api import suite_pairs

    train_pairs = _train_split(model_name, lambda: suite_pairs(model, tok, split="train", n_samples=0,
                                                                max_new_tokens=max_response_tokens))
    train_pairs = [p for p in train_pairs if not is_validation(p.probe_id)]
    return stratified(train_pairs, per_family, seed=0), len(train_pairs)


def validation_pairs(model_name: str) -> list:
    """The validation question's pairs (train templates, never trained on): ``--layers repair`` scores layers on them."""
    return [p for p in _train_split(model_name) if is_validation(p.probe_id)]


def tuned() -> dict:
    """lr/steps chosen on the validation split by tune.py (empty when it has not run)."""
    return json.loads(TUNE_FILE.read_text()).get("chosen", {}) if TUNE_FILE.is_file() else {}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def stratified(pairs: list, per_family: int, seed: int) -> list:
    """Up to ``per_family`` pairs of each family, preferring distinct prompts (fixed across seeds and conditions)."""
    rng = random.Random(seed)
    by_fam: dict[str, list] = defaultdict(list)
    for p in pairs:
        by_fam[p.family].append(p)
    out = []
    for fam in sorted(by_fam):
        items = by_fam[fam][:]
        rng.shuffle(items)
        seen, first, rest = set(), [], []
        for p in items:
            (rest if p.probe_id in seen else first).append(p)
            seen.add(p.probe_id)
        out.extend((first + rest)[:per_family])
    rng.shuffle(out)
    return out


def mean_sd(xs: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(xs), "sd": statistics.stdev(xs) if len(xs) > 1 else 0.0, "values": xs}


def markdown_table(result: dict) -> str:
    """The README comparison table from a result JSON (means ± sd over seeds; gain vs base in the same run)."""
    summ = result["summary"]
    fams = sorted(summ["base"]["families"])
    short = {f: f.replace("format_", "") for f in fams}
    head = ("| variant | layers | trainable | held-out compliance | gain (points) | "
            + " | ".join(short[f] for f in fams) + " | neutral ppl | step time vs all-layer |")
    sep = "|" + "---|" * (7 + len(fams) - 1)
    names = {"base": "base model", "sail_focal": "SAIL, focal layers", "lora_random": "SAIL loss, random layers",
             "lora_all": "SAIL loss, all layers", "dpo_focal": "plain DPO, focal layers"}
    layers = {"base": "—", "sail_focal": str(result["config"]["focal_layers"]), "lora_random": "random (same count)",
              "lora_all": "all 30", "dpo_focal": str(result["config"]["focal_layers"])}
    rows = [head, sep]
    for key in ("base", "sail_focal", "lora_random", "lora_all", "dpo_focal"):
        if key not in summ:
            continue
        v = summ[key]
        comp = f"{100 * v['overall']['mean']:.1f} ± {100 * v['overall']['sd']:.1f} %"
        gain = "—" if key == "base" else f"{v['gain_points']['mean']:+.1f} ± {v['gain_points']['sd']:.1f}"
        ppl = v["perplexity"] if key == "base" else v["perplexity"]["mean"]
        dppl = "" if key == "base" else f" ({v['perplexity_change_pct']['mean']:+.1f} %)"
        ratio = v.get("step_time_vs_all_layers")
        rows.append(
            f"| {names[key]} | {layers[key]} | {100 * v['trainable_share']:.3f} % | {comp} | {gain} | "
            + " | ".join(f"{100 * v['families'][f]:.0f}" for f in fams)
            + f" | {ppl:.2f}{dppl} | {'—' if ratio is None else f'{ratio:.2f}×'} |"
        )
    return "\n".join(rows)


def choose_layers(model_name: str, spec: str, model, tok, pairs: list) -> dict:
    """Resolve ``--layers`` (cached per spec and training pairs, since tune.py and run.py share it)."""
    from attrib.paths import cache_dir
    from attrib.surgery.api import resolve_layers

    key = hashlib.sha1(repr(sorted(p.id for p in pairs)).encode()).hexdigest()[:10]
    layer_file = cache_dir() / "sail_bench" / f"layers-{model_name}-{spec}-{key}.json"
    if layer_file.is_file():
        return json.loads(layer_file.read_text()) | {"cached": True}
    val = validation_pairs(model_name) if spec == "repair" else None
    ch = resolve_layers(model, tok, spec, pairs=pairs, val_pairs=val)
    choice = {"layers": ch.layers, "heads": [list(h) for h in ch.heads], "source": ch.source, "detail": ch.detail}
    layer_file.parent.mkdir(parents=True, exist_ok=True)
    layer_file.write_text(json.dumps(choice))
    return choice


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--layers", default="repair",
                    help="focal layers: repair (default: share of a short all-layer LoRA on the validation pairs), "
                         "auto (gradient ranking on the training pairs; the main README table), heads "
                         "(attrib.heads.localize) or e.g. 12-15")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--seed-start", type=int, default=0, help="first seed (extra random-layer draws: --seed-start 3)")
    ap.add_argument("--steps", type=int, default=None, help="default: tune.py's choice on the validation split, else 8")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--per-family", type=int, default=5, help="training pairs per family (one epoch = steps*batch)")
    ap.add_argument("--lr", type=float, default=None,
                    help="default: tune.py's choice on the validation split, else 2e-3 (paper: 1e-5 over full epochs "
                         "on 8 GPUs; see README)")
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--max-response-tokens", type=int, default=24)
    ap.add_argument("--eval-tokens", type=int, default=16)
    ap.add_argument("--eval-conditions", default="user,peer",
                    help="held-out probe conditions to score (user,peer = instruction conflicts; add plain,plain_peer)")
    ap.add_argument("--eval-questions", type=int, default=3,
                    help="questions per held-out template (3: the templates' own; up to 12 adds extra questions)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: all cores unless oversubscribed)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "sail.json"),
                    help="JSON to write, or to read with --table (default: bench/results/sail.json, the committed "
                         "results: a run overwrites them)")
    ap.add_argument("--conditions", default=",".join(CONDITIONS), help="variants to train (comma-separated)")
    ap.add_argument("--table", action="store_true", help="print the README table from --out and exit")
    args = ap.parse_args()
    chosen = tuned()
    args.tuned_on_validation = bool(chosen) and args.lr is None and args.steps is None
    args.lr = args.lr if args.lr is not None else chosen.get("lr", 2e-3)
    args.steps = args.steps if args.steps is not None else chosen.get("steps", 8)
    if args.table:
        print(markdown_table(json.loads(Path(args.out).read_text())))
        return

    import torch

    from attrib.models import load_model
    from attrib.probes import conflict_suite
    from attrib.surgery.evaluate import compliance, perplexity
    from attrib.surgery.lora import trainable_share
    from attrib.surgery.train import train_sail
    from attrib.surgery.weights import heads_for_layers

    load = os.getloadavg()[0]
    threads = args.threads or (1 if load > (os.cpu_count() or 2) else (os.cpu_count() or 2))
    torch.set_num_threads(threads)
    log(f"load average {load:.1f} on {os.cpu_count()} cores -> torch threads {threads}")
    t_all = time.perf_counter()
    model, tok = load_model(args.model)
    n_layers = model.config.num_hidden_layers

    # 1. preference pairs from the train templates (greedy answers labelled by the checkers + templated responses),
    #    minus the validation question
    t0 = time.perf_counter()
    subset, n_train_pairs = training_pairs(args.model, model, tok, args.max_response_tokens, args.per_family)
    pair_seconds = time.perf_counter() - t0
    log(f"{n_train_pairs} train pairs, {len(subset)} used ({args.per_family}/family), {pair_seconds:.0f} s")

    # 2. focal layers, chosen on the training pairs (timed: part of SAIL's cost)
    t0 = time.perf_counter()
    choice = choose_layers(args.model, args.layers, model, tok, subset)
    focal = choice["layers"]
    heads = [tuple(h) for h in choice["heads"]] or heads_for_layers(model, focal)
    # when cached (tune.py ran the ranking first), report the seconds the ranking took when it ran
    layer_seconds = choice.get("detail", {}).get("seconds", 0.0) if choice.get("cached") else time.perf_counter() - t0
    log(f"focal layers {focal} ({choice['source']}), {layer_seconds:.0f} s")

    # 3. evaluation set: the held-out templates (by default their instruction-conflict prompts)
    probes = conflict_suite(split="heldout", conditions=tuple(args.eval_conditions.split(",")),
                            n_questions=args.eval_questions)

    def evaluate(m) -> dict:
        t = time.perf_counter()
        rep = compliance(m, tok, probes, max_new_tokens=args.eval_tokens, batch_size=42)
        ppl = perplexity(m, tok)
        return {"compliance": rep.to_dict(), "perplexity": ppl, "eval_seconds": time.perf_counter() - t,
                "probe_ok": {r["probe"]: r["compliant"] for r in rep.responses}, "examples": rep.responses[::7]}

    base = evaluate(model)
    base["trainable"] = {"trainable": 0, "total": trainable_share(model).total, "share": 0.0}
    log(f"base: compliance {base['compliance']['overall']['rate']:.3f}, ppl {base['perplexity']:.2f}")

    wanted = [c for c in args.conditions.split(",") if c]
    if not set(wanted) <= set(CONDITIONS):
        ap.error(f"--conditions: choose from {','.join(CONDITIONS)}")
    runs: dict[str, list[dict]] = {c: [] for c in wanted}
    train_seconds = 0.0

    def write_result(partial: bool) -> dict:
        base_rate = base["compliance"]["overall"]["rate"]
        fams = sorted(base["compliance"]["families"])
        summary: dict[str, dict] = {"base": {
            "overall": {"mean": base_rate, "sd": 0.0}, "families": {f: base["compliance"]["families"][f]["rate"] for f in fams},
            "perplexity": base["perplexity"], "trainable_share": 0.0}}
        all_step = statistics.fmean(r["mean_step_seconds"] for r in runs["lora_all"]) if runs.get("lora_all") else None
        for cond, rs in runs.items():
            if not rs:
                continue
            summary[cond] = {
                "overall": mean_sd([r["compliance"]["overall"]["rate"] for r in rs]),
                "gain_points": mean_sd([100 * (r["compliance"]["overall"]["rate"] - base_rate) for r in rs]),
                "families": {f: statistics.fmean(r["compliance"]["families"][f]["rate"] for r in rs) for f in fams},
                "perplexity": mean_sd([r["perplexity"] for r in rs]),
                "perplexity_change_pct": mean_sd([100 * (r["perplexity"] / base["perplexity"] - 1) for r in rs]),
                "trainable_share": rs[0]["trainable"]["share"],
                "mean_step_seconds": statistics.fmean(r["mean_step_seconds"] for r in rs),
                "step_time_vs_all_layers": (statistics.fmean(r["mean_step_seconds"] for r in rs) / all_step)
                if all_step else None,
                "train_wall_seconds": statistics.fmean(r["train_wall_seconds"] for r in rs),
            }
        s, rnd = summary.get("sail_focal"), summary.get("lora_random")
        goals = {}
        if s and rnd:
            sd_noise = max(s["overall"]["sd"], rnd["overall"]["sd"])
            goals = {
                "gain_ge_15_points": s["gain_points"]["mean"] >= 15,
                "trainable_le_2pct": s["trainable_share"] <= 0.02,
                "beats_random_beyond_seed_noise": s["overall"]["mean"] - rnd["overall"]["mean"] > 2 * sd_noise,
                "perplexity_within_5pct": s["perplexity_change_pct"]["mean"] <= 5,
                "train_le_15_min": train_seconds + layer_seconds <= 900,
            }
        result = {
            "benchmark": "sail",
            "model": args.model,
            "machine": {"cpus": os.cpu_count(), "load_average_at_start": load, "torch_threads": threads,
                        "platform": platform.platform(), "torch": torch.__version__},
            "config": vars(args) | {"focal_layers": focal, "focal_heads": [list(h) for h in heads], "layer_source": choice["source"],
                                    "layer_detail": choice.get("detail", {}),
                                    "validation": f"question {VAL_QUESTION} of every train template (not trained on)",
                                    "tune_file": str(TUNE_FILE.relative_to(ROOT)) if args.tuned_on_validation else None,
                                    "n_train_pairs_used": len(subset), "n_heldout_probes": len(probes),
                                    "heldout_templates": sorted({p.template for p in probes})},
            "partial": partial,
            "timings": {"pairs_seconds": pair_seconds, "layer_choice_seconds": layer_seconds,
                        "layer_choice_cached": choice.get("cached", False), "train_seconds_all_runs": train_seconds,
                        "total_seconds": time.perf_counter() - t_all},
            "summary": summary,
            "goals": goals,
            "base": base,
            "runs": runs,
        }
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1, default=str))
        return goals

    with tempfile.TemporaryDirectory(prefix="sail_bench_") as tmp:
        ref_cache = Path(tmp) / "reference"
        for seed in range(args.seed_start, args.seed_start + args.seeds):
            rng = random.Random(1000 + seed)
            others = [la for la in range(n_layers) if la not in focal]
            layer_sets = {
                "sail_focal": (focal, args.alpha, heads),
                "lora_random": (sorted(rng.sample(others, len(focal))), args.alpha, heads),
                "lora_all": (list(range(n_layers)), args.alpha, heads),
                "dpo_focal": (focal, 0.0, heads),
            }
            for cond, (layers, alpha, hds) in layer_sets.items():
                if cond not in runs:
                    continue
                t = time.perf_counter()
                res = train_sail(model, tok, subset, layers, steps=args.steps, lr=args.lr, beta=args.beta, alpha=alpha,
                                 batch_size=args.batch_size, random_state=seed,
                                 out_dir=Path(tmp) / f"{cond}-{seed}",
                                 resume=False, focal_heads=hds, max_response_tokens=args.max_response_tokens,
                                 reference_cache=ref_cache, progress=False)
                wall = time.perf_counter() - t
                train_seconds += wall
                ev = evaluate(res.model)
                rec = {
                    "seed": seed, "layers": layers, "alpha": alpha, "train_wall_seconds": wall,
                    "reference_seconds": res.reference_seconds, "mean_step_seconds": res.mean_step_seconds,
                    "losses": res.losses, "reward_accuracies": res.reward_accuracies,
                    "trainable": {"trainable": res.share.trainable, "total": res.share.total, "share": res.share.share},
                    **ev,
                }
                runs[cond].append(rec)
                log(f"seed {seed} {cond:11s} layers {layers if len(layers) < 8 else 'all'}: "
                    f"compliance {ev['compliance']['overall']['rate']:.3f} ppl {ev['perplexity']:.2f} "
                    f"step {res.mean_step_seconds:.1f} s, train {wall:.0f} s, loss {res.losses[-1]:.3f}")
                del res
                write_result(partial=True)

    goals = write_result(partial=False)
    log(f"wrote {args.out}; goals {goals}")


if __name__ == "__main__":
    main()
