"""CLI topic 'ingest': ``attrib ingest PATH...`` -> :func:`attrib.store.api.ingest`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from attrib.cli._common import check_format, check_stdin, console, err_console, handle_errors, print_error
from attrib.display import visible
from attrib.errors import EXIT_BAD_INPUT

if TYPE_CHECKING:
    from attrib.store.api import Replaced

MAX_BYTES = 512 * 1024 * 1024  # same as attrib.readers.MAX_BYTES (not imported: keeps --help fast)


def register(app: typer.Typer) -> None:
    """Add ``attrib ingest``."""

    @app.command("ingest")
    def ingest_cmd(
        paths: list[str] = typer.Argument(..., help="Files, folders (searched recursively for .json/.jsonl/.ndjson), globs "
                                          "('logs/**/*.json'), or - for standard input."),
        store: Path = typer.Option(None, "--store", "-s", help="Store file (default: $ATTRIB_STORE, else ./attrib.duckdb)."),
        format: str = typer.Option(None, "--format", "-f", callback=check_format, help="Skip detection: whowhen, otlp, chat or attrib."),
        model_config: Path = typer.Option(None, "--model-config", help="JSON with n_layers, n_heads, d_model... to "
                                          "shape-check activation files against (else the files' own metadata)."),
        max_bytes: int = typer.Option(MAX_BYTES, "--max-bytes", min=1, show_default=False,
                                      help=f"Refuse files larger than this many bytes (default {MAX_BYTES}, {MAX_BYTES // 2**20} MiB)."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or table; errors only."),
        replace: bool = typer.Option(False, "--replace", help="Let a run replace the stored run of the same id that "
                                     "came from another file (and drop its verdicts); without it such a file fails. "
                                     "A file re-read after an edit replaces its own runs either way."),
    ) -> None:
        """Read multi-agent run logs into the store (one transaction per file; re-ingesting is a no-op).

        Formats are detected from content: Who&When JSON, OTLP JSON (GenAI / OpenInference spans), chat logs (JSON/JSONL of {role, name, content}) and attrib's own trace JSON.

        A run under an id the store already holds from another file, with other content, is refused (its file fails)
        unless --replace. Exit code 0 when every file is stored or unchanged, 1 when the store cannot be written, 3
        when some files failed (nothing from them is stored; the others are) or none matched.

        Example:  attrib ingest ../shared/data/who_and_when traces/otlp_agents.json
        """
        from attrib.store.api import ingest

        with handle_errors():
            check_stdin(paths, "cat run.json | attrib ingest -")
        cfg = None
        if model_config is not None:
            from attrib.readers._common import loads

            with handle_errors():
                from attrib.activations import ModelConfig
                from attrib.errors import InputError

                if not model_config.exists():
                    raise InputError(model_config, None, "no such file")
                if model_config.is_dir():
                    raise InputError(model_config, None, "is a folder; --model-config takes a JSON file")
                try:
                    raw = model_config.read_bytes()
                except OSError as e:
                    raise InputError(model_config, None, f"cannot read it ({e.strerror or e})") from None
                try:  # check it once here, not once per activation file that would fail on it
                    cfg = ModelConfig.from_any(loads(raw, model_config))
                except InputError as e:
                    raise InputError(model_config, e.field, e.message) from None
                except (TypeError, ValueError) as e:
                    raise InputError(model_config, None, f"not a model config ({e})") from None
        from attrib.engine import sigterm_as_interrupt
        from attrib.store import StoreWriteError

        stored: list[str] = []  # files stored whole before a Ctrl-C (a failed file stored nothing)
        try:
            with handle_errors(), sigterm_as_interrupt():  # handle_errors: the store itself (a folder, a file of
                # another kind, locked by another process)
                try:
                    report = ingest(paths, store=store, format=format, progress=not quiet, model_config=cfg,
                                    max_bytes=max_bytes, on_file=lambda f: stored.extend([f.path] if f.ok else []),
                                    replace=replace)
                except StoreWriteError as e:  # the disk, not the input: stop, say what is kept (exit 1)
                    raise StoreWriteError(e.path, e.reason, f"{len(stored)} file(s) before it are stored whole; rerun "
                                          "the same command once it can be written (stored files count as "
                                          "unchanged)") from None
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: each file is one transaction, so say what is kept
            err_console.print(f"[bold red]interrupted:[/] {len(stored)} file(s) stored whole; the file being "
                              "read then is stored whole or not at all. Rerun the same command to finish (stored "
                              "files count as unchanged)", highlight=False, soft_wrap=True)
            raise typer.Exit(130) from None
        if not report.files:
            err_console.print(f"[bold red]error:[/] no input files matched {escape(' '.join(paths))}", highlight=False)
            raise typer.Exit(EXIT_BAD_INPUT)
        if not quiet and len(report.failed) < len(report.files):  # a table of zeros says nothing: errors follow
            from rich.table import Table

            from attrib.store import default_path

            table = Table(title=f"ingested into {store or default_path()}", title_justify="left")
            for col in ("format", "files", "traces", "steps", "new", "replaced", "unchanged"):
                table.add_column(col, justify="left" if col == "format" else "right")
            by_fmt: dict[str, list[int]] = {}
            total = [0] * 6
            for f in report.files:
                if f.ok:
                    row = by_fmt.setdefault(",".join(f.formats), [0] * 6)
                    n_replaced = len(f.replaced_runs)
                    for i, v in enumerate((1, f.traces, f.steps, f.new - n_replaced, n_replaced, f.unchanged)):
                        row[i] += v
                        total[i] += v
            for fmt, row in sorted(by_fmt.items()):
                table.add_row(fmt, *map(str, row))
            table.add_row("[bold]total", *map(str, total))
            console.print(table)
        if not quiet:
            _replaced_notes(report.replaced)
        for f in report.failed:
            print_error(f.exception or f.error or "")

        if report.failed:
            err_console.print(f"[bold red]{len(report.failed)} of {len(report.files)} file(s) failed[/]; "
                              "nothing from them was stored", highlight=False)
            raise typer.Exit(EXIT_BAD_INPUT)


def _replaced_notes(replaced: list[Replaced]) -> None:
    """Say what an ingest replaced: one line per run of another file (``--replace``), and one for the runs of files
    re-read after an edit whose verdicts went with their old content."""
    for r in (r for r in replaced if r.other_file):
        err_console.print(f"[yellow]note:[/] replaced the stored {escape(visible(r.trace_id))} (read from "
                          f"{escape(visible(r.earlier or 'an unknown source'))}); its {r.verdicts} verdict(s) were "
                          "dropped", highlight=False, soft_wrap=True)
    edited = [r for r in replaced if not r.other_file]
    dropped = sum(r.verdicts for r in edited)
    if dropped:
        err_console.print(f"[yellow]note:[/] {len(edited)} run(s) changed in their files since the last ingest were "
                          f"replaced; their {dropped} verdict(s) were dropped (rerun `attrib analyze --all`)",
                          highlight=False, soft_wrap=True)
