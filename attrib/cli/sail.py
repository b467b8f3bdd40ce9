"""CLI topic 'sail': ``attrib sail`` trains a surgical LoRA repair; ``attrib compliance`` measures system-rule compliance.

Both are thin wrappers over :mod:`attrib.surgery`; torch, transformers and peft are imported inside the commands.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from attrib.cli._common import (
    console,
    duration,
    err_console,
    handle_errors,
    needs,
    prepare_folder,
    progress_line,
    quiet_model_loading,
)

MODEL_HELP = "Model: an alias (smollm2-135m), a local HF folder or a .gguf file. Never downloads."


def _count(n: int, noun: str) -> str:
    """``1 step``, ``2 steps``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _log_line(text: str) -> None:
    """One plain ``attrib sail: text`` line on stderr, for a log file."""
    progress_line("sail", text)


@contextlib.contextmanager
def _phase(what: str, status: Console | None = None) -> Iterator[None]:
    """A long phase of ``attrib sail``: in a terminal, rich's spinner on ``status`` (or nothing) as before; when
    stderr is not a terminal (a log file, a pipe), where the spinner shows nothing for minutes, a plain line on stderr
    when the phase starts and one with its elapsed time when it ends."""
    if err_console.is_terminal:
        with status.status(what) if status is not None else contextlib.nullcontext():
            yield
        return
    _log_line(f"{what} ...")
    t0 = time.perf_counter()
    yield
    _log_line(f"{what}: done in {duration(time.perf_counter() - t0)}")


def _positive(value: float) -> float:
    if value <= 0:
        raise typer.BadParameter(f"must be above 0, got {value}")
    return value


def register(app: typer.Typer) -> None:
    """Add this topic's commands to the app."""
    app.command("sail")(sail)
    app.command("compliance")(compliance)


def sail(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the adapter and checkpoints; with "
                                      "--suite, also the sampled pairs.jsonl.")],
    model: Annotated[str, typer.Option(help=MODEL_HELP)] = "smollm2-135m",
    layers: Annotated[str, typer.Option(help=(
        "'repair' (default): train a short LoRA on every layer with two thirds of the pairs and keep the 10 % of "
        "layers that carry its effect on the other third; 'auto': the top 10 % by the gradient of the preference "
        "loss on the training pairs (faster to choose, did not beat random layers in the benchmark); 'heads': focal "
        "layers and heads from attrib heads' localization; or layers like 12-15 or 3,7,9."))] = "repair",
    pairs: Annotated[Path | None, typer.Option(help=(
        "Preference pairs, a JSONL file: one object a line with messages (or system and prompt), chosen and "
        "rejected. Lines with \"split\": \"heldout\" are not trained on (kept for your evaluation); the run says "
        "how many."))] = None,
    suite: Annotated[str | None, typer.Option(help="Build pairs from a probe suite instead: 'conflicts'.")] = None,
    steps: Annotated[int, typer.Option(min=1, help="Optimizer steps.")] = 16,
    lr: Annotated[float, typer.Option(callback=_positive, help="Learning rate (paper: 1e-5 over full multi-GPU "
                                      "epochs; short CPU runs need ~1e-3).")] = 1e-3,
    beta: Annotated[float, typer.Option(callback=_positive, help="DPO temperature β.")] = 0.1,
    alpha: Annotated[float, typer.Option(min=0.0, max=1.0, help="Token-weight strength α in [0, 1]; 0 gives plain "
                                         "DPO.")] = 0.5,
    batch_size: Annotated[int, typer.Option(min=1, help="Pairs per micro-batch.")] = 4,
    grad_accum: Annotated[int, typer.Option(min=1, help="Micro-batches per optimizer step.")] = 1,
    rank: Annotated[int, typer.Option("--rank", "-r", min=1, help="LoRA rank.")] = 8,
    seed: Annotated[int, typer.Option(help="Seed for data order, sampling and init.")] = 0,
    resume: Annotated[bool, typer.Option(help="Continue from a checkpoint in --out if one matches.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run summary as JSON.")] = False,
) -> None:
    """Repair system-rule following with LoRA on the focal layers only (SAIL token-weighted DPO).

    Example:  attrib sail --model smollm2-135m --layers 12-15 --suite conflicts --out adapter/
    then:     attrib compliance --model smollm2-135m --adapter adapter/
    """
    with handle_errors():
        from attrib.errors import UsageError
        from attrib.models import load_model
        from attrib.surgery.api import LAYER_SPECS, resolve_layers, suite_pairs
        from attrib.surgery.lora import num_layers, parse_layers
        from attrib.surgery.pairs import read_pairs, split_pairs, write_pairs
        from attrib.surgery.train import config_dict, train_sail

        if (pairs is None) == (suite is None):
            raise UsageError(None, "pairs/suite", "give exactly one of --pairs FILE or --suite conflicts")
        if suite is not None and suite != "conflicts":
            raise UsageError(None, "suite", f"unknown suite {suite!r}; the one suite is 'conflicts'")
        # every check that needs no model comes before it loads, and the layer range right after: not after minutes
        # of sampling the suite (and writing pairs.jsonl)
        named_spec = layers.strip().lower() in LAYER_SPECS
        if not named_spec:
            parse_layers(layers)
        data = read_pairs(pairs) if pairs is not None else None
        needs("torch", "transformers", "peft")  # before the folder: a missing extra left an empty --out behind
        prepare_folder(out)  # a file in the way failed after a minute of sampling
        quiet_model_loading()
        with _phase(f"loading {model}"):
            hf, tok = load_model(model)
        if not named_spec:
            parse_layers(layers, num_layers(hf))
        if data is None:
            with _phase("sampling the model on the train templates and labelling with the checkers", err_console):
                data = suite_pairs(hf, tok, split="train", n_samples=0, max_new_tokens=24, random_state=seed)
            write_pairs(out / "pairs.jsonl", data)
        train, held = split_pairs(data)
        log = err_console if as_json else console  # --json keeps stdout for the JSON alone
        if not train:
            log.print(f"[yellow]warning:[/] all {len(held)} pairs are marked \"split\": \"heldout\"; training on them")
            train, held = held, []
        log.print(f"[bold]pairs[/] {len(train)} for training"
                  + (f"; {len(held)} held-out pairs (\"split\": \"heldout\") kept for evaluation, not trained on"
                     if held else ""))
        with _phase(f"choosing layers ({layers})", log):
            choice = resolve_layers(hf, tok, layers, pairs=train, random_state=seed)
        log.print(f"[bold]layers[/] {choice.layers}  ({choice.source})")
        # the reference pass runs inside train_sail (its tqdm bar is on stderr); its seconds come back in the result
        with _phase(f"reference pass over {_count(len(train), 'pair')}, then {_count(steps, 'SAIL step')}"):
            res = train_sail(hf, tok, train, choice.layers, steps=steps, lr=lr, beta=beta, alpha=alpha,
                             batch_size=batch_size, grad_accum=grad_accum, r=rank, random_state=seed, out_dir=out,
                             resume=resume, focal_heads=choice.heads or None)
        if not err_console.is_terminal:
            _log_line(f"reference pass took {duration(res.reference_seconds)}; "
                      f"{_count(len(res.step_seconds), 'SAIL step')} {duration(sum(res.step_seconds))}")
        summary = config_dict(res) | {"layer_source": choice.source}
        if as_json:
            typer.echo(json.dumps(summary, indent=2))  # plain: rich would wrap long strings at the width
        else:
            console.print(f"[green]saved[/] {res.adapter_dir}  ·  {res.share}  ·  "
                          f"loss {res.losses[0]:.4f} → {res.losses[-1]:.4f}  ·  {res.mean_step_seconds:.2f} s/step")


def compliance(
    model: Annotated[str, typer.Option(help=MODEL_HELP)] = "smollm2-135m",
    adapter: Annotated[Path | None, typer.Option(help="A SAIL adapter folder (the --out of attrib sail).")] = None,
    split: Annotated[str, typer.Option(help="Probe split: heldout (unseen templates), train or all.")] = "heldout",
    family: Annotated[list[str] | None, typer.Option(help=(
        "Only this probe family (repeatable): secret, persona, language, format_json, format_upper, "
        "format_oneword or length. Default: all."))] = None,
    condition: Annotated[list[str] | None, typer.Option(
        help="Probe conditions (repeatable): plain, user, plain_peer, peer. Default: all four; plain and plain_peer "
             "carry no conflicting instruction, so for compliance under conflict (the benchmark's) give --condition "
             "user --condition peer.")] = None,
    questions: Annotated[int, typer.Option(help=(
        "Questions per template, 1 to 12: up to 3 are each template's own, more add extra ones (12 gives 4x "
        "the prompts; the benchmark uses 12)."))] = 3,
    perplexity: Annotated[bool, typer.Option(help="Also report perplexity on the bundled neutral text.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """System-rule compliance per probe family (greedy answers, programmatic checkers, 95 % Wilson CI).

    Example:  attrib compliance --model smollm2-135m --adapter adapter/ --condition user --condition peer
    """
    with handle_errors():
        from rich.table import Table

        from attrib.errors import UsageError
        from attrib.models import load_model
        from attrib.probes import FAMILIES, conflict_suite
        from attrib.probes.suite import CONDITIONS, MAX_QUESTIONS
        from attrib.surgery import evaluate as ev
        from attrib.surgery.train import adapter_path, load_adapter

        if split not in ("heldout", "train", "all"):
            raise UsageError(None, "split", f"expected heldout, train or all, got {split!r}")
        unknown = [f for f in family or () if f not in FAMILIES]
        if unknown:
            raise UsageError(None, "family", f"unknown probe families {unknown} (known: {', '.join(FAMILIES)})")
        if not 1 <= questions <= MAX_QUESTIONS:
            raise UsageError(None, "questions", f"must be between 1 and {MAX_QUESTIONS}, got {questions}")
        bad = [c for c in condition or () if c not in CONDITIONS]
        if bad:
            raise UsageError(None, "condition", f"unknown conditions {bad}; use {', '.join(CONDITIONS)}")
        if adapter is not None:
            adapter_path(adapter)  # a missing or damaged adapter fails before the model loads
        quiet_model_loading()
        hf, tok = load_model(model)
        m = load_adapter(hf, adapter) if adapter is not None else hf
        kw = {"conditions": tuple(condition)} if condition else {}
        probes = conflict_suite(family or None, split=None if split == "all" else split, n_questions=questions, **kw)
        if not probes:
            raise UsageError(None, "condition", "no probes match these families/conditions")
        with err_console.status(f"generating {len(probes)} answers"):
            report = ev.compliance(m, tok, probes)
        ppl = ev.perplexity(m, tok) if perplexity else None
        used = [c for c in CONDITIONS if any(p.condition == c for p in probes)]  # which prompts the rates are of
        if as_json:
            typer.echo(json.dumps(report.to_dict() | {
                "perplexity": ppl, "adapter": str(adapter or ""), "split": split, "conditions": used,
                "n_questions": questions, "n_prompts": len(probes)}, indent=2))
            return
        table = Table(title=f"compliance on {len(probes)} {split} prompts" + (f" with {adapter}" if adapter else ""))
        for col in ("family", "compliant", "rate", "95 % CI"):
            table.add_column(col, justify="left" if col == "family" else "right")
        for fam, r in [*sorted(report.families.items()), ("all", report.overall)]:
            lo, hi = r.ci
            table.add_row(fam, f"{r.k}/{r.n}", f"{100 * r.rate:.0f} %", f"{100 * lo:.0f}–{100 * hi:.0f} %")
        console.print(table)
        console.print(f"{len(probes)} {split} prompts: conditions {', '.join(used)}; {_count(questions, 'question')} "
                      "per template", highlight=False)
        if {"plain", "plain_peer"} & set(used) and {"user", "peer"} & set(used):
            console.print("[dim]plain and plain_peer prompts carry no conflicting instruction; for compliance under "
                          "conflict alone: --condition user --condition peer[/]")
        if ppl is not None:
            console.print(f"perplexity on neutral text: {ppl:.2f}")
