"""Batch mode of ``attrib analyze --store PATH --all``: a thin layer over :func:`attrib.engine.analyze_many`.

:func:`with_batch_options` decorates the ``analyze`` command (one line there): it adds ``--all``,
``--where``, ``--engine``, ``--scheduler``, ``--workers``, ``--force``, ``--batch-size`` and, when
``--all`` is given, runs :func:`run_batch` instead of the single-trace command.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from attrib.cli._common import console, err_console, handle_errors, has_module, needs, print_error

if TYPE_CHECKING:
    from attrib.engine import BatchReport

ENGINE_HELP = (
    "Where to run: [bold]local[/] (a Dask cluster of --workers processes on this machine), "
    "[bold]dask[/] (the cluster at --scheduler; without one, a local cluster as for local), or [bold]serial[/] "
    "(in this process, the reference)."
)
SCHEDULER_HELP = ("Address of a running Dask scheduler for --engine dask, e.g. tcp://10.0.0.5:8786 (start one with "
                  "`dask scheduler`; 8786 is its port, 8787 its dashboard).")
WHERE_HELP = (
    "SQL filter over the store's traces table (columns trace_id, source_format, outcome, n_steps, agents, task, "
    "metadata, ingested_at), e.g. \"source_format = 'whowhen' AND n_steps > 20\"."
)
_PANEL = "Batch over the store (--all)"
#: analyze's per-trace output options (flag, parameter, default), refused with --all
_SINGLE_ONLY = (("--markdown", "markdown", False), ("--plot", "plot", None), ("--otlp", "otlp", None),
                ("--top-k", "top_k", 5), ("--format", "format", None))
F = TypeVar("F", bound=Callable[..., Any])

_BATCH_PARAMS = [
    ("all_", False, Annotated[bool, typer.Option("--all", help="Analyze every trace in --store (or those --where "
                                                 "selects) and save the verdicts there, one per trace and method; "
                                                 "resumable. With the learned method, a verdict of another ranker "
                                                 "(--model, $ATTRIB_RANKER) is redone and replaced.",
                                                 rich_help_panel=_PANEL)]),
    ("where", None, Annotated[str | None, typer.Option("--where", help=WHERE_HELP, rich_help_panel=_PANEL,
                                                       show_default=False)]),
    ("engine", "local", Annotated[str, typer.Option("--engine", help=ENGINE_HELP, rich_help_panel=_PANEL)]),
    ("scheduler", None, Annotated[str | None, typer.Option("--scheduler", help=SCHEDULER_HELP,
                                                           rich_help_panel=_PANEL, show_default=False)]),
    ("workers", None, Annotated[int | None, typer.Option("--workers", min=1, help="Worker processes for --engine "
                                                         "local (default: one per core); with --scheduler, how many "
                                                         "workers to wait for (default 1).", rich_help_panel=_PANEL,
                                                         show_default=False)]),
    ("force", False, Annotated[bool, typer.Option("--force", help="Redo traces that already have a verdict from "
                                                  "this method (and ranker).", rich_help_panel=_PANEL)]),
    ("batch_size", None, Annotated[int | None, typer.Option("--batch-size", min=1, help="Traces per Dask task "
                                                            "(default: 64).", rich_help_panel=_PANEL,
                                                            show_default=False)]),
]


def with_batch_options(fn: F) -> F:
    """Add the batch options to the ``analyze`` command; with ``--all`` run the batch, else call ``fn``.

    ``fn`` must take ``target`` (a list of targets, empty or None then), ``store``, ``method`` and ``as_json``.
    """
    sig = inspect.signature(fn)
    extra = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=a) for n, d, a in _BATCH_PARAMS]
    new_sig = sig.replace(parameters=[*sig.parameters.values(), *extra])

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        batch = {n: kwargs.pop(n, d) for n, d, _ in _BATCH_PARAMS}
        all_ = batch.pop("all_")
        if all_:
            if kwargs.get("target"):
                raise typer.BadParameter("give either TARGETs or --all, not both", param_hint="TARGET")
            from attrib.engine import ENGINES

            if batch["engine"] not in ENGINES:
                raise typer.BadParameter(f"expected one of {', '.join(ENGINES)}, got {batch['engine']!r}",
                                         param_hint="--engine")
            if batch["scheduler"] and batch["engine"] != "dask":
                raise typer.BadParameter(f"--scheduler runs on a Dask cluster: use it with --engine dask, not "
                                         f"{batch['engine']}", param_hint="--scheduler")
            single = [flag for flag, name, default in _SINGLE_ONLY if kwargs.get(name, default) != default]
            if single:  # the batch writes verdicts to the store and prints a summary, nothing per trace
                raise typer.BadParameter(f"{', '.join(single)} appl{'y' if len(single) > 1 else 'ies'} to TARGETs "
                                         "analysed here, not to --all, which writes its verdicts to the store (read "
                                         "them back with attrib analyze ID --store S, or the inspector)",
                                         param_hint="--all")
            from attrib.cli._common import llm_flags_given, method_options
            from attrib.methods import DEFAULT_METHOD

            name = kwargs.get("method") or DEFAULT_METHOD
            with handle_errors():
                flags = llm_flags_given(kwargs.get("llm_base_url"), kwargs.get("llm_model"),
                                        kwargs.get("llm_api_key_env"))
                options: dict[str, Any] = method_options(name, kwargs.get("model"), set_level=kwargs.get("set_level"),
                                                         context_chars=kwargs.get("context_chars"), llm_flags=flags)
            if name.startswith("judge"):  # the judges need the endpoint, on every worker
                from attrib.cli._llm_options import llm_config_from_options

                with handle_errors():
                    options["llm"] = kwargs.get("llm") or llm_config_from_options(
                        kwargs.get("llm_base_url"), kwargs.get("llm_model"), kwargs.get("llm_api_key_env"))
                if options["llm"] is None:
                    raise typer.BadParameter(f"--method {name} needs an endpoint: pass --llm-base-url "
                                             "(reachable from every Dask worker)", param_hint="--llm-base-url")
                with handle_errors():  # reach it once here (and check the model), not once per trace of the batch
                    probe_endpoint(options["llm"])
            return run_batch(kwargs.get("store"), method=kwargs.get("method"), as_json=kwargs.get("as_json", False),
                             options=options, **batch)
        given = [f"--{n.replace('_', '-')}" for n, d, _ in _BATCH_PARAMS if n in batch and batch[n] != d]
        if given:
            raise typer.BadParameter(f"{', '.join(given)} only appl{'y' if len(given) > 1 else 'ies'} with --all",
                                     param_hint="--all")
        if not kwargs.get("target"):
            raise typer.BadParameter("give trace files, folders or trace ids, or --all to analyze the whole store",
                                     param_hint="TARGET")
        return fn(*args, **kwargs)

    wrapper.__signature__ = new_sig  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def probe_endpoint(llm: Any) -> None:
    """Check a judge's endpoint once before a batch: its model (``GET /models``), then a 1-token chat, so an
    endpoint that lists models but refuses chat (a wrong key behind a proxy with a public model list, a model it
    does not serve) is one error up front. The client is the pooled one the serial engine then reuses."""
    from attrib.llm import get_client

    get_client(llm).chat([{"role": "user", "content": "Reply with OK."}], max_tokens=1)


def run_batch(
    store: Path | None,
    *,
    method: str | None = None,
    where: str | None = None,
    engine: str = "local",
    scheduler: str | None = None,
    workers: int | None = None,
    force: bool = False,
    batch_size: int | None = None,
    as_json: bool = False,
    options: dict[str, Any] | None = None,
) -> None:
    """Analyze every selected trace in the store, print a summary; exit 1 when any trace failed. A Ctrl-C (130), or
    a scheduler or judge endpoint lost mid-batch (4), prints one line saying what was kept and what is still to do."""
    from attrib.engine import DEFAULT_BATCH_SIZE, BatchInterrupted, BatchStopped, analyze_many

    try:
        with handle_errors():
            if scheduler is not None or engine == "dask":  # before probing a scheduler: the extra it needs first
                needs("dask", "distributed")
            elif engine == "local" and not has_module("distributed"):
                # the default engine: a base install (no `scale` extra) still runs the batch, in this process
                err_console.print("dask is not installed (pip install 'attrib[scale]' for a local cluster): running "
                                  "the batch serially, in this process", highlight=False, soft_wrap=True)
                engine = "serial"
            try:
                report = analyze_many(
                    store,
                    method=method,
                    where=where,
                    engine=engine,  # type: ignore[arg-type]
                    scheduler=scheduler,
                    workers=workers,
                    force=force,
                    batch_size=batch_size or DEFAULT_BATCH_SIZE,
                    progress=not as_json,
                    options=options,
                )
            except BatchStopped as e:  # a scheduler or judge endpoint lost: not the traces' fault: none recorded as failed, the rest still to do
                print_error(f"{e}; {interrupted_line(e.report)}")
                raise typer.Exit(e.exit_code) from None
    except BatchInterrupted as e:  # Ctrl-C: without a word the user cannot tell what was kept
        err_console.print(f"[bold red]interrupted:[/] {interrupted_line(e.report)}", highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    if as_json:
        import orjson

        sys.stdout.write(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        _render(report, scheduler)
        if report.skipped and report.method.startswith("judge") and not force:
            _judge_skip_note(report.skipped, (options or {}).get("llm"))
    if report.failed:
        raise typer.Exit(1)


def _judge_skip_note(skipped: int, llm: Any) -> None:
    """Say that a judge's stored verdicts were kept whatever model made them. The store skips a trace with a verdict
    of the method; unlike the learned method's ranker, it does not compare the judge's model and endpoint
    (``evidence.llm``), so a switch from one model to another would silently keep the old verdicts."""
    from attrib.llm import get_client

    client = get_client(llm)
    console.print(f"The {skipped:,} already analyzed trace(s) keep their stored verdict, whichever model or endpoint "
                  f"made it: pass --force to redo them with {client.model} at {client.config.base_url}.",
                  highlight=False, soft_wrap=True)


def interrupted_line(report: Any) -> str:
    """What a Ctrl-C'd batch kept (a :class:`BatchReport`, or None when it stopped before selecting traces)."""
    if report is None:
        return "nothing was analyzed yet; rerun the same command"
    done = report.analyzed + report.failed
    left = report.matched - report.skipped - done
    if not done:  # stopped during start-up (the cluster starting, the workers loading the method)
        return f"stopped before any trace was analyzed; the store is unchanged ({left:,} to do): rerun the same command"
    return (f"{done:,} trace(s) finished in this run and are saved in the store ({report.analyzed:,} analyzed, "
            f"{report.failed:,} failed); {left:,} still to do: rerun the same command to finish them")


def _render(r: BatchReport, scheduler: str | None = None) -> None:
    """The batch summary table; with nothing to do it says no worker started (and, for ``scheduler``, that the
    address answered: the engine checks it even then)."""
    from rich.table import Table

    ran = r.analyzed or r.failed  # with nothing to do no cluster starts: its size would be made up
    idle = (f"nothing to do: the scheduler at {scheduler} answers, no task sent" if scheduler
            else "nothing to do, no workers started")
    where = f"{r.engine} ({r.workers} worker(s))" if ran else f"{r.engine} ({idle})"
    t = Table(title=f"attrib analyze --all: {r.method} on {where}", show_header=False)
    t.add_column(justify="left")
    t.add_column(justify="right")
    if getattr(r, "ranker", None):  # whose verdicts these are: the store keeps one per trace and method
        t.add_row("ranker", str(r.ranker))
    t.add_row("traces selected", f"{r.matched:,}")
    t.add_row("already analyzed (skipped)" if not getattr(r, "ranker", None) else "already analyzed by this ranker "
              "(skipped)", f"{r.skipped:,}")
    t.add_row("analyzed now", f"[green]{r.analyzed:,}[/]")
    if r.in_sample:  # verdicts on the ranker's own training runs (or tasks) look better than new runs' would
        t.add_row("of them in sample (the ranker was fitted on the run or its task)", f"[yellow]{r.in_sample:,}[/]")
    t.add_row("failed (recorded in store)", f"[red]{r.failed:,}[/]" if r.failed else "0")
    start = "start-up" if r.engine == "serial" else "cluster start"  # serial: loading the method, no cluster
    t.add_row("wall time", f"{r.elapsed_s:.1f} s" + (f" ({start} {r.startup_s:.1f} s)" if r.startup_s else ""))
    compute = r.elapsed_s - r.startup_s
    done = r.analyzed + r.failed
    t.add_row("throughput", f"{r.traces_per_s:,.1f} traces/s" + (
        f" ({done / compute:,.1f} after start-up)" if r.startup_s and compute > 0 and done else ""))
    console.print(t)
    for tid, err in r.errors[:10]:
        console.print(f"[red]failed[/] {tid}: {err}", highlight=False, soft_wrap=True)
    if r.failed > 10:
        console.print(f"... and {r.failed - 10} more; see the store's errors for every one.")
    if r.skipped and not r.analyzed and not r.failed:
        console.print("Nothing to do: every selected trace is already analyzed (pass --force to redo).")
