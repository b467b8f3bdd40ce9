"""CLI topic 'analyze': ``attrib analyze TARGET...`` (files, folders, globs, ``-``, trace ids) ->
:func:`attrib.methods.analyze`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from attrib.cli._common import (
    check_format,
    check_method,
    console,
    err_console,
    handle_errors,
    method_options,
    prepare_output,
    print_error,
    writing,
)
from attrib.cli._llm_options import with_llm_options
from attrib.cli.batch import with_batch_options
from attrib.display import visible
from attrib.errors import AttribError, InputError, NoVerdictError, UsageError


def load_target(target: str, store: Path | None = None, format: str | None = None,
                errors: list[AttribError] | None = None) -> list[tuple[Any, str | None]]:
    """Traces named by ``target``, each with the file it came from (None: standard input or the store): a file
    (any readable format), a folder or glob of them, ``-`` for standard input, or a trace id in the store.

    For a folder or glob, a file that cannot be read is appended to ``errors`` (when given) and the others are
    still read; with every file unreadable, one error names them."""
    from attrib.errors import NotFoundError
    from attrib.readers import is_folder_or_glob, looks_like_trace_file, read_path, read_sources, read_stdin

    if target == "-":  # piped in: `cat run.json | attrib analyze -`; ids made from the content, as ingest's
        return [(t, None) for t in read_stdin(format)]
    p = Path(target)
    if is_folder_or_glob(target):
        failed: list[AttribError] = []
        out: list[tuple[Any, str | None]] = [(t, str(f)) for t, f in read_sources([target], format, errors=failed if errors is not None else None)]
        if failed and not out:
            if len(failed) == 1:
                raise failed[0]
            raise InputError(target, None, f"none of its {len(failed)} trace files could be read: "
                             + "; ".join(map(str, failed[:3])) + (" ..." if len(failed) > 3 else ""))
        if errors is not None:
            errors += failed
        return out
    if p.exists():
        return [(t, target) for t in read_path(p, format)]
    # a name that looks like a file (a suffix we read, or a folder in it) is a missing file first: exit 3
    path_like = looks_like_trace_file(target)
    if store is not None and not Path(store).exists():
        if path_like:
            raise InputError(target, None, "no such file")
        raise NotFoundError(f"{store}: no such store (and no file {target!r})")
    from attrib.store import open_store

    try:
        st = open_store(store, read_only=True)
    except AttribError as e:  # no store: not found (4); one that cannot be read (locked, a folder...): 3, as ingest
        if path_like:
            raise InputError(target, None, "no such file") from None
        message = f"no file {target!r}, and the store could not be opened ({e})"
        raise (NotFoundError(message) if isinstance(e, NotFoundError) else InputError(None, None, message)) from None
    with st:
        try:
            return [(st.get_trace(target), None)]
        except NotFoundError:
            if path_like:
                raise InputError(target, None, f"no such file (nor a trace with that id in {st.path})") from None
            raise


def load_targets(targets: list[str], store: Path | None = None, format: str | None = None,
                 errors: list[AttribError] | None = None) -> list[tuple[Any, str | None]]:
    """Traces named by several targets (each as :func:`load_target` reads one), read as one folder is: a target or
    file that cannot be read goes to ``errors`` and the others are still read (a shell-expanded glob,
    ``attrib analyze runs/*.json``, is many targets). A file reached by two targets is read once (as
    :func:`attrib.readers.read_sources` reads ingest's paths), a target named twice too. When nothing can be read,
    each error is shown and the command exits with the highest code, as it does when some runs failed."""
    from attrib.readers import expand_paths, is_folder_or_glob, read_sources

    if len(targets) == 1:
        return load_target(targets[0], store, format, errors)
    out: list[tuple[Any, str | None]] = []
    failed: list[AttribError] = []
    read: set[Path] = set()  # files read so far (resolved)
    for target in dict.fromkeys(targets):
        try:
            if target != "-" and (Path(target).exists() or is_folder_or_glob(target)):
                files = expand_paths([target])
                new = [f for f in files if f.resolve() not in read]
                if files and not new:  # every file already read through an earlier target
                    continue
                read.update(f.resolve() for f in new)
                # nothing matched: read_sources names the target ("no trace files here")
                out += [(t, str(f)) for t, f in read_sources(new or [target], format, errors=failed)]
            else:  # standard input or a stored trace id
                out += load_target(target, store, format)
        except UsageError:  # e.g. - with nothing piped in: the command line is wrong, not one target
            raise
        except AttribError as e:
            failed.append(e)
    if not out and failed:
        for error in failed:
            print_error(error)
        err_console.print(f"[bold red]none of the {len(targets)} targets could be read[/]", highlight=False)
        raise typer.Exit(max(error.exit_code for error in failed))
    if errors is not None:
        errors += failed
    elif failed:
        raise failed[0]
    return out


def stored_ranker_notes(results: list[tuple[Any, Any]], sources: list[str | None], store: Path | None) -> list[str]:
    """A note per run read from the store whose stored verdict of the same method came from another ranker than
    the one just used: `attrib analyze ID --store S` analyses afresh, so after a batch with ``--model`` it could
    silently disagree with the verdict the store (and the inspector) shows. Best effort: a store that cannot be
    opened gives no notes."""
    from attrib.render import rankers_differ
    from attrib.store import open_store

    if all(src is not None for src in sources):  # every run came from a file: no stored verdict to compare
        return []
    notes = []
    try:
        with open_store(store, read_only=True) as st:
            for (_, a), src in zip(results, sources, strict=True):
                if src is not None:
                    continue
                stored = st.get_attributions(a.trace_id, a.method)
                if not stored:
                    continue
                old = stored[-1]
                if differ := rankers_differ(a, old):
                    now, was = differ
                    notes.append(f"{a.trace_id}: the store's verdict came from ranker {was} (step {old.step} by "
                                 f"{old.agent}); this one from ranker {now} (step {a.step} by {a.agent}); pass "
                                 "--model to use the same ranker")
    except (AttribError, OSError):
        return []
    return notes


def plot_paths(plot: Path, trace_ids: list[str]) -> list[Path]:
    """Where each run's PNG goes: ``plot`` itself for one run (a .png path), ``plot/<trace id>.png`` for several
    (``plot`` a folder; the id as a safe file name, :func:`attrib.paths.file_name`; a repeated name gets ``-2``,
    ``-3``...); anything else is a usage error on ``--plot``.
    Checked before any run is analysed."""
    if len(trace_ids) == 1 and not plot.is_dir():
        if plot.suffix.lower() != ".png":
            raise UsageError(None, "plot", f"{plot}: give a .png path (the plot is a PNG)")
        return [plot]
    if plot.suffix or (plot.exists() and not plot.is_dir()):
        raise UsageError(None, "plot", f"{plot}: {len(trace_ids)} runs make {len(trace_ids)} plots; give a folder")
    from attrib.paths import file_name

    seen: dict[str, int] = {}
    out = []
    for tid in trace_ids:  # an id comes from the run's content: made a plain name, it stays in the folder
        name = file_name(tid)
        seen[name] = seen.get(name, 0) + 1
        out.append(plot / (f"{name}.png" if seen[name] == 1 else f"{name}-{seen[name]}.png"))
    return out


def analyze_each(loaded: list[tuple[Any, str | None]], method: str, options: dict[str, Any],
                 bad: list[AttribError]) -> tuple[list[tuple[Any, Any]], list[str | None]]:
    """Each trace's verdict with the file it came from; a run with no verdict goes to ``bad`` and the others go on
    (a single run's error is raised, as is the first when none gets a verdict). An error that would repeat for
    every run (an endpoint, model or store that cannot be found, a bad option) stops at once, with its own code."""
    from attrib.errors import EXIT_NOT_FOUND, EXIT_USAGE
    from attrib.methods import analyze

    results, sources = [], []
    for t, source in loaded:
        try:
            results.append((t, analyze(t, method, **options)))
            sources.append(source)
        except AttribError as e:
            if len(loaded) == 1 or e.exit_code in (EXIT_NOT_FOUND, EXIT_USAGE):
                for other in bad:  # the targets that could not be read are not lost behind this error
                    print_error(other)
                raise
            bad.append(e if isinstance(e, InputError) else NoVerdictError(f"{t.id}: {e}"))
    if not results:
        if len(bad) > 1:  # every run failed: show each, then exit with the first one's code
            for other in bad[1:]:
                print_error(other)
            err_console.print(f"[bold red]none of the {len(bad)} runs got a verdict[/]", highlight=False)
        raise bad[0]
    return results, sources


def verdicts_table(results: list[tuple[Any, Any]]) -> Any:
    """One line per analysed run: trace id, step, the blamed agent (and who took the step, when another agent did)
    and both confidences (a rich Table)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"{len(results)} runs")
    # ids whole on one line where they fit (they are copied into the next command): rich folds the widest column
    # first, so the agent column gets what the id and the numbers leave, its names cut with "…" past that
    trace_w = min(max((len(t.id) for t, _ in results), default=5), 60)
    table.add_column("trace", overflow="fold", min_width=trace_w)
    table.add_column("step", justify="right", min_width=4)
    table.add_column("blamed agent", overflow="ellipsis", max_width=max(12, console.width - trace_w - 34))
    from attrib.render import summary_headers, summary_rows

    conf, agent_conf = summary_headers(results)  # "score" for a judge's or a heuristic's number, not "conf"
    table.add_column(conf, justify="right", min_width=4)
    table.add_column(agent_conf, justify="right", min_width=10)

    for tid, step, agent, by, conf, agent_conf in summary_rows(results):
        # ids and names as plain text ("Solver[/x]" is a name, not rich markup), controls visible; each name on a
        # line of its own, cut with "…" past the column
        who = Text(visible(agent), overflow="ellipsis", no_wrap=True)
        if by is not None:
            who.append(f"\n(step by {visible(by)})", style="dim")
        table.add_row(Text(visible(tid)), step, who, conf, agent_conf)
    return table


def register(app: typer.Typer) -> None:
    """Add ``attrib analyze``."""

    @app.command("analyze")
    @with_batch_options
    @with_llm_options
    def analyze_cmd(
        target: list[str] = typer.Argument(None, help="Trace files (Who&When, OTLP, chat, attrib JSON), folders or "
                                           "globs of them, - for standard input, or trace ids in the store; "
                                           "several are analyzed as one folder is (omit with --all).",
                                           metavar="TARGET", show_default=False),
        method: str = typer.Option(None, "--method", "-m", callback=check_method, help="Attribution method (default: learned, offline). "
                                   "Others: flow-graph, causal, judge-all, judge-step, judge-binary, judge-hybrid."),
        as_json: bool = typer.Option(False, "--json", help="Print the Attribution as JSON (a list of them for "
                                     "several targets, a folder or glob, or a file holding several runs)."),
        markdown: bool = typer.Option(False, "--markdown", help="Print a Markdown report."),
        store: Path = typer.Option(None, "--store", "-s", help="Store file where a trace id TARGET is looked up, "
                                   "--save writes and --all reads (default: $ATTRIB_STORE, else ./attrib.duckdb)."),
        save: bool = typer.Option(False, "--save", help="Also save the verdict into the store."),
        top_k: int = typer.Option(5, "--top-k", "-k", min=1, help="How many candidate steps to show."),
        set_level: float = typer.Option(None, "--set-level", min=0.5, max=0.99,
                                        help="Coverage of the step set (learned method; default 0.9): a set of "
                                        "steps that holds the decisive one in this share of runs like those the "
                                        "ranker was calibrated on (conformal prediction; not a probability for one "
                                        "run).",
                                        show_default=False),
        format: str = typer.Option(None, "--format", "-f", callback=check_format, help="Skip format detection (whowhen, otlp, chat, attrib)."),
        plot: Path = typer.Option(None, "--plot", help="Also save a PNG of step probabilities and agent blame (a "
                                  ".png path; for several runs, a folder: one <trace id>.png each)."),
        otlp: Path = typer.Option(None, "--otlp", help="Also write the verdict as an OTLP/JSON span, for Jaeger, Tempo, "
                                  "Phoenix...: in the run's own trace for OTLP input; other formats get the run's "
                                  "steps as spans too, the verdict linked to the decisive one.", show_default=False),
        model: Path = typer.Option(None, "--model", help="A ranker fitted on your own labelled runs (`attrib fit`) "
                                   "instead of the shipped one (or set $ATTRIB_RANKER).", show_default=False),
        context_chars: int = typer.Option(None, "--llm-context-chars", min=500, show_default=False,
                                          rich_help_panel="LLM judge (optional)",
                                          help="Judges: cut the transcript to about this many characters (default "
                                          "48,000, ~12k tokens); lower it for a small context window, e.g. 8000 "
                                          "for a 4096-token server."),
        llm: Any = None,
    ) -> None:
        """Name the agent and step that made a failed run fail, with a confidence and evidence.

        Prints the decisive agent and step with a calibrated confidence and agents ranked by Shapley blame (± CI)
        (the learned method; others say what their scores are), the top-k candidate steps,
        the set of steps that holds the decisive one in 90 % of runs like the calibration runs (--set-level), the evidence (information-flow path, signals, the step's text) and a one-paragraph reason.
        Works offline on any single trace; exit code 0 when a verdict is produced, 1 when an output file cannot
        be written (or, with --all, when some traces failed), 2 for a bad flag, 3 for unreadable input, 4 for an
        unknown trace id, store, model or LLM endpoint, 5 when a method could not reach a verdict.

        Several targets (attrib analyze runs/*.json), a folder or a file with several runs get one report per run
        and a summary table at the end; a target that cannot be read is reported after the others, and sets the
        exit code.

        Example:  attrib analyze traces/demo_whowhen.json --top-k 3
        """
        import orjson
        from rich.markup import escape as escape_markup

        from attrib.methods import DEFAULT_METHOD

        if as_json and markdown:
            raise typer.BadParameter("choose one of --json and --markdown", param_hint="--json / --markdown")
        for flag, path in (("--otlp", otlp), ("--plot", plot)):
            if path is not None and str(path) == "-":  # it wrote a file named "-"; standard output holds the report
                raise typer.BadParameter("give a file path (standard output carries the report; - is not a file "
                                         "here)", param_hint=flag)
        if any(not t.strip() for t in target or ()):  # Path("") is the folder ".": it analysed every file below
            raise typer.BadParameter("an empty TARGET: give a file, folder, glob, - or a trace id", param_hint="TARGET")
        bad: list[AttribError] = []  # files of a folder that could not be read, runs with no verdict
        with handle_errors():
            loaded = load_targets(target, store, format, errors=bad)
            plots = plot_paths(plot, [t.id for t, _ in loaded]) if plot is not None else []
            prepare_output(*plots, otlp)  # writable, before any (paid) analysis
            if save:  # a folder or a file of another kind as the store, before the analysis too
                from attrib.store import check_store_file, default_path

                check_store_file(store or default_path())
            name = method or DEFAULT_METHOD
            opts: dict[str, Any] = {"top_k": top_k, **method_options(name, model, set_level=set_level,
                                                                      context_chars=context_chars)}
            if name.startswith("judge"):
                opts["llm"] = llm
            results, sources = analyze_each(loaded, name, opts, bad)
            ok = [a.trace_id for _, a in results if a.evidence.get("run_outcome") == "succeeded"]
            if ok:
                err_console.print(f"[yellow]warning:[/] recorded as successful: "
                                  f"{escape_markup(visible(', '.join(ok[:5])))}"
                                  f"{' ...' if len(ok) > 5 else ''}; their verdicts name the riskiest step, not a cause")
            if not save:  # --save replaces the stored verdict: nothing to compare then
                for note in stored_ranker_notes(results, sources, store):
                    err_console.print(f"[yellow]note:[/] {escape_markup(visible(note))}", highlight=False,
                                      soft_wrap=True)
            if save:
                from attrib.store import open_store

                with open_store(store) as st:
                    # the verdict goes with the run it was made on: a stored trace of the same id but other content
                    # is replaced (dropping its verdicts), as re-ingesting a changed file does
                    with st.transaction():
                        replaced = st.upsert([t for t, _ in results], sources).replaced
                        st.save_attributions(a for _, a in results)
                    for tid in replaced:
                        err_console.print(f"[yellow]note:[/] replaced the stored {escape_markup(visible(tid))} (other "
                                          "content under the same id); its earlier verdicts were dropped",
                                          highlight=False)
                    err_console.print(f"saved {len(results)} verdict(s) to {st.path}", highlight=False)
        if as_json:
            payload = [a.to_dict() for _, a in results]
            # one object for one run asked for; a list for several targets or a folder or glob however many runs they
            # held, and for a file or stdin that held several (a script can rely on the shape from what it passed)
            from attrib.readers import is_folder_or_glob

            many = len(payload) > 1 or len(target) > 1 or (target[0] != "-" and is_folder_or_glob(target[0]))
            typer.echo(orjson.dumps(payload if many else payload[0], option=orjson.OPT_INDENT_2).decode())
        elif markdown:
            from attrib.render import attribution_markdown, summary_markdown

            typer.echo("\n".join(attribution_markdown(a, t, top_k) for t, a in results))
            if len(results) > 1:  # a summary table at the end, as the rich output has
                typer.echo(summary_markdown(results))
        else:
            from attrib.render import attribution_rich

            for t, a in results:
                console.print(attribution_rich(a, t, top_k))
            if len(results) > 1:
                console.print(verdicts_table(results))
        with handle_errors():
            if plot is not None:
                by_trace = dict(zip((id(t) for t, _ in loaded), plots, strict=True))  # the runs with a verdict
                for t, a in results:
                    path = by_trace[id(t)]
                    path.parent.mkdir(parents=True, exist_ok=True)
                    with writing(path):
                        a.plot(str(path))
                    err_console.print(f"wrote the plot to {path}", highlight=False)
            if otlp is not None:
                # a run from OTLP already has its spans in the user's backend; any other run is exported with its steps
                spans = [a.to_otlp(t, top_k, with_steps=t.source_format != "otlp")["resourceSpans"][0]
                         for t, a in results]
                otlp.parent.mkdir(parents=True, exist_ok=True)
                with writing(otlp):
                    otlp.write_bytes(orjson.dumps({"resourceSpans": spans}, option=orjson.OPT_INDENT_2))
                err_console.print(f"wrote the verdict span(s) to {otlp}", highlight=False)
        for e in bad:  # the runs that could not be analysed, after the reports of those that could
            print_error(e)
        if bad:
            err_console.print(f"[bold red]{len(bad)} of {len(bad) + len(results)} run(s) or file(s) failed[/]",
                              highlight=False)
            raise typer.Exit(max(e.exit_code for e in bad))
