"""Shared CLI plumbing: the console, and turning attrib errors into one line and an exit code."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer
from rich.console import Console
from rich.markup import escape

from attrib.errors import AttribError

console = Console()
err_console = Console(stderr=True)


@contextlib.contextmanager
def handle_errors() -> Iterator[None]:
    """Print an :class:`AttribError` as one red line on stderr and exit with its code."""
    try:
        yield
    except AttribError as e:
        err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        raise typer.Exit(e.exit_code) from None
