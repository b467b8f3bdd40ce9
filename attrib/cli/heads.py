"""CLI topic 'heads': ``attrib heads`` localizes the attention heads behind instruction-conflict failures."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

import typer

from attrib.cli._common import (
    console,
    duration,
    err_console,
    handle_errors,
    prepare_output,
    print_wide,
    progress_line,
    quiet_model_loading,
)
from attrib.errors import UsageError

SUITES = ("conflicts",)


def parse_top_k(text: str) -> float:
    """'5%' -> 0.05, '0.05' -> 0.05, '14' -> 14 heads (a share below 1 is a fraction, a whole number a count)."""
    t = text.strip()
    try:
        v = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        raise UsageError(None, "top_k", f"{text!r} is not a percentage (5%), a fraction (0.05) or a count (14)") from None
    if v <= 0:
        raise UsageError(None, "top_k", "must be positive")
    if t.endswith("%") and v >= 1:
        raise UsageError(None, "top_k", f"{text!r}: a percentage must be below 100% (give a count for that many heads)")
    if v >= 1 and v != int(v):
        raise UsageError(None, "top_k", f"{text!r}: a count of heads must be a whole number (or a fraction below 1)")
    return v if v < 1 else int(v)


def parse_families(text: str, known: Iterable[str], field: str = "families") -> list[str]:
    """'secret,persona' -> ['secret', 'persona'], 'all' -> every family; a usage error naming ``field`` (shown as
    its flag) for an empty list or an unknown family (before the model loads)."""
    known = list(known)
    if text.strip().lower() == "all":
        return known
    fams = [f.strip() for f in text.split(",") if f.strip()]
    if not fams:
        raise UsageError(None, field, f"no probe families given (known: {', '.join(known)}, or 'all')")
    unknown = [f for f in fams if f not in known]
    if unknown:
        raise UsageError(None, field, f"unknown probe families {unknown} (known: {', '.join(known)}, or 'all')")
    return list(dict.fromkeys(fams))


def check_plot_path(plot: Path | None) -> None:
    """A usage error on ``--plot`` unless matplotlib can write its suffix (it failed after the scan otherwise)."""
    if plot is None:
        return
    from matplotlib.figure import Figure

    kinds = Figure().canvas.get_supported_filetypes()
    if plot.suffix.lower().lstrip(".") not in kinds:
        raise UsageError(None, "plot", f"{plot}: give an image path ending in .png, .svg or .pdf")


class PlainProgress:
    """Progress as plain :func:`~attrib.cli._common.progress_line` lines on stderr, for a log file or CI where rich
    shows nothing (``attrib heads`` ran ~2 minutes silent there): a line when a phase starts, when it ends (with its
    time), and at most one every ``every`` seconds in between; each says the time since the command started."""

    def __init__(self, every: float = 30.0, clock: Callable[[], float] = time.monotonic,
                 write: Callable[[str], None] | None = None) -> None:
        self.every, self.clock, self.write = every, clock, write
        self.t0 = self.last_line = self.mark = self.phase_start = clock()
        self.stage: str | None = None
        self.finished = True

    def line(self, text: str) -> None:
        """One line: ``attrib heads [12.0 s]: text``."""
        now = self.clock()
        self.last_line = self.mark = now
        progress_line("heads", text, now - self.t0, self.write)

    def __call__(self, stage: str, i: int, n: int) -> None:
        """The ``progress(stage, i, n)`` callback of :func:`attrib.heads.localize`."""
        now = self.clock()
        if stage != self.stage:  # a new phase: timed from the last line (the previous phase's end, or "loaded")
            self.stage, self.finished, self.phase_start = stage, False, self.mark
            self.line(f"{stage} {i}/{n} ...")
        if self.finished:
            return
        if i >= n:
            self.finished = True
            self.line(f"{stage} {i}/{n} done in {duration(now - self.phase_start)}")
        elif now - self.last_line >= self.every:
            self.line(f"{stage} {i}/{n}")


def heads_command(
    model: str = typer.Option("smollm2-135m", "--model", "-m", help="Alias (smollm2-135m), HF folder or .gguf file."),
    suite: str = typer.Option("conflicts", "--suite", help="Probe suite: 'conflicts' (instruction conflicts)."),
    top_k: str = typer.Option("5%", "--top-k", help="Focal heads: a percentage (5%), fraction (0.05) or count (14)."),
    families: str = typer.Option("secret,persona,language", "--families", show_default=False,
                                 help="Comma-separated probe families, or 'all'. Default: secret, persona and "
                                      "language, the rules SmolLM2 keeps on plain prompts and may break under "
                                      "conflict."),
    split: str = typer.Option("train", "--split", help="Probe templates (split by wording): train (as the library and "
                              "the measured figures; the held-out wordings stay unseen, to check the heads on), "
                              "heldout, or all (both)."),
    n_questions: int = typer.Option(3, "--n-questions", min=1, max=3, help="Questions per template (fewer = faster)."),
    n_random: int = typer.Option(10, "--n-random", min=5, help="Random head sets for the patching check (>= 5)."),
    patch: bool = typer.Option(True, "--patch/--no-patch", help="Run the causal patching check."),
    max_new_tokens: int = typer.Option(16, "--max-new-tokens", min=1, help="Greedy response length per probe."),
    as_json: bool = typer.Option(False, "--json", help="Print the full result as JSON (scores of every head)."),
    plot: Path | None = typer.Option(None, "--plot", help="Also write a layer x head heatmap here (a .png, .svg or "
                                     ".pdf path)."),
    save: Path | None = typer.Option(None, "--save", help="Also save the full result as JSON here (see above to "
                                     "reload it)."),
    show: int = typer.Option(15, "--show", min=1, help="How many ranked heads to print."),
) -> None:
    """Rank every attention head by attention drift between paired non-conflict / conflict prompts.

    Prints the ranked heads, the focal layers, each family's base compliance (plain vs conflict prompts) and the
    patching check: the compliance logit-difference recovered by patching the focal heads from the non-conflict run
    into the conflict run, against random head sets of the same size ("causal" only when it beats all of them).

    A --save file reloads in Python with attrib.heads.HeadLocalization.load(path).

    Example:  attrib heads --model smollm2-135m --top-k 5% --plot heads.png
    """
    with handle_errors():
        from attrib.heads import localize
        from attrib.probes import FAMILIES, conflict_suite

        if suite not in SUITES:
            raise UsageError(None, "suite", f"unknown suite {suite!r} (known: {', '.join(SUITES)})")
        if split not in ("train", "heldout", "all"):
            raise UsageError(None, "split", f"expected train, heldout or all, got {split!r}")
        k = parse_top_k(top_k)
        fams = parse_families(families, FAMILIES)
        from attrib.models import load_model

        check_plot_path(plot)
        prepare_output(plot, save)  # before minutes of work, not after
        # a log file or CI sees no rich bar or spinner: plain lines at each phase's start and end instead
        # (the first line once the model is loaded and the flags that need it are checked: an error before that stays
        # the one line it is)
        plain = PlainProgress() if not err_console.is_terminal else None
        with err_console.status(f"loading {model} ..."):
            quiet_model_loading()
            pair = load_model(model)
        cfg = pair[0].config
        n_heads = int(cfg.num_hidden_layers) * int(cfg.num_attention_heads)
        if k >= 1 and k > n_heads:  # a count beyond the model: say so now, not after the scan
            raise UsageError(None, "top_k", f"{k} heads asked, but {model} has {n_heads}")
        probes = conflict_suite(fams, split=None if split == "all" else split, n_questions=n_questions)
        if plain:
            plain.line(f"loaded {model}; {len(probes)} probes ({split} split)")
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskID,
            TextColumn,
            TimeElapsedColumn,
        )

        # bars only for a person watching: piped or logged, they left a blank line on stderr
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err_console, transient=True, disable=not err_console.is_terminal) as prog:
            tasks: dict[str, TaskID] = {}

            def on(stage: str, i: int, n: int) -> None:
                if plain:
                    plain(stage, i, n)
                    return
                if stage not in tasks:
                    tasks[stage] = prog.add_task(stage, total=n)
                prog.update(tasks[stage], completed=i, total=n)

            res = localize(pair, probes, top_k=k, patch=patch, n_random=n_random, max_new_tokens=max_new_tokens,
                           progress=on)
        if plain:
            plain.line("done")
        res.model = model
        res.settings = {"suite": suite, **res.settings}
        if save:
            res.save(save)
        if plot:
            res.plot(plot)
        if as_json:
            typer.echo(res.to_json())
            return
        render(res, show=show)
        if plot:
            console.print(f"heatmap: {plot}")
        if save:
            console.print(f"saved: {save}")


def render(res: object, show: int = 15) -> None:
    """Rich tables: ranked heads, focal layers, base compliance, patching check."""
    from rich.table import Table

    r = res  # HeadLocalization
    t = Table(title=f"Attention drift S(l,h) — {r.model}: {r.n_pairs} pairs ({r.pair_selection}), "  # type: ignore[attr-defined]
                    f"{r.n_layers}x{r.n_heads} heads")  # type: ignore[attr-defined]
    for col in ("rank", "layer", "head", "S", "magnitude", "direction", "JS", "sink c/x", "focal"):
        t.add_column(col, justify="right")
    focal = set(map(tuple, r.focal_heads))  # type: ignore[attr-defined]
    for i, (la, h, s) in enumerate(r.ranked(show), start=1):  # type: ignore[attr-defined]
        t.add_row(str(i), str(la), str(h), f"{s:+.2f}", f"{r.magnitude[la, h]:+.3f}", f"{r.direction[la, h]:.3f}",  # type: ignore[attr-defined]
                  f"{r.js[la, h]:.3f}", f"{r.sink_clean[la, h]:.2f}/{r.sink_conflict[la, h]:.2f}",  # type: ignore[attr-defined]
                  "*" if (la, h) in focal else "")
    print_wide(t, 120)
    console.print(f"focal heads ({len(r.focal_heads)}, top {r.top_k:g}): "  # type: ignore[attr-defined]
                  + ", ".join(f"L{la}H{h}" for la, h in r.focal_heads))  # type: ignore[attr-defined]
    console.print(f"focal layers: {r.focal_layers}")  # type: ignore[attr-defined]
    c = Table(title="Base compliance per family (programmatic checkers)")
    for col in ("family", "plain", "conflict", "flipped pairs", "n plain/conflict"):
        c.add_column(col, justify="right")
    for fam, fc in r.family_compliance.items():  # type: ignore[attr-defined]
        c.add_row(fam, f"{fc['plain']:.0%}", f"{fc['conflict']:.0%}", f"{fc['flipped']}/{fc['n_pairs']}",
                  f"{fc['n_plain']}/{fc['n_conflict']}")
    console.print(c)
    if r.patching is not None:  # type: ignore[attr-defined]
        console.print(r.patching.summary())  # type: ignore[attr-defined]
    tm = r.timings  # type: ignore[attr-defined]
    if tm:
        console.print(f"time: {tm.get('total_s')} s (responses {tm.get('generate_s')} s, drift {tm.get('drift_s')} s, "
                      f"patching {tm.get('patching_s')} s) for {tm.get('n_probes')} probes")


def register(app: typer.Typer) -> None:
    """Add this topic's commands to the app."""
    app.command("heads")(heads_command)
