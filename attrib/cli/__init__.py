"""The ``attrib`` command line: one Typer app, one module per topic, each a thin wrapper over the library.

Topic modules expose ``register(app)``; heavy libraries are imported inside the commands so that
``attrib --help`` stays fast.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import typer

app = typer.Typer(
    name="attrib",
    help=(
        "Find which agent caused a multi-agent run to fail, at which step, and why inside the model.\n\n"
        "Start with:  attrib analyze my_run.json   (in a checkout: attrib analyze traces/demo_whowhen.json)"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

#: Topic modules, in the order their commands appear in --help.
TOPICS = ("analyze", "ingest", "traces", "export", "evaluate", "heads", "sail", "app")


def reflow(doc: str) -> str:
    """A docstring as --help text: the lines of a paragraph joined, so the terminal wraps them (rich markup mode keeps
    every hard line break of the source, which wraps raggedly at 80 columns); list items and indented lines stay."""
    out = []
    for para in doc.split("\n\n"):
        lines = para.splitlines()
        joined = lines[:1]
        for line in lines[1:]:
            if line.startswith((" ", "-", "*", "Example")) or joined[-1].startswith("Example"):
                joined.append(line)
            else:
                joined[-1] = f"{joined[-1]} {line.strip()}"
        out.append("\n".join(joined))
    return "\n\n".join(out)


def _reflow_commands(t: typer.Typer) -> None:
    for info in t.registered_commands:
        if info.help is None and info.callback is not None and info.callback.__doc__:
            info.help = reflow(inspect.cleandoc(info.callback.__doc__))
    for group in t.registered_groups:
        if group.typer_instance is not None:
            _reflow_commands(group.typer_instance)


def _flags_take_no_value() -> None:
    """--help shows an on/off flag without a type: typer 0.29 prints ``--json <bool>``, which reads as if the flag
    took a value (``--json true`` is then an "unexpected extra argument")."""
    from typer.core import TyperOption

    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None:  # an older typer: it prints no type for a flag
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


def _version(value: bool) -> None:
    """``attrib --version``: attrib's version and the Python it runs on, for a bug report."""
    if value:
        import platform

        from attrib import __version__

        typer.echo(f"attrib {__version__} (Python {platform.python_version()})")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print attrib's version and exit.")) -> None:
    """The root options (the commands are registered below)."""


_flags_take_no_value()
_typer_app = app
for _topic in TOPICS:
    importlib.import_module(f"attrib.cli.{_topic}").register(_typer_app)
# importing the submodule attrib.cli.app rebinds the package attribute `app`; put the Typer app back
app = _typer_app
_reflow_commands(app)


def main() -> None:
    """Console-script entry point: click's usage errors as one line, as attrib's own errors are."""
    import sys

    # typer may vendor click: take its exception classes from typer's public ones, wherever they come from
    usage_error: type[Any] = typer.BadParameter.__mro__[1]
    click_exception: type[Any] = usage_error.__mro__[1]
    try:
        rv = app(standalone_mode=False)
    except click_exception as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # `attrib traces`: the help, as typer shows it
            from typer import rich_utils

            rich_utils.rich_format_error(e)
        elif isinstance(e, usage_error):
            ctx = getattr(e, "ctx", None)
            where = ctx.command_path if ctx is not None else "attrib"
            print(f"error: {e.format_message()} (see {where} --help)", file=sys.stderr)
        else:
            print(f"error: {e.format_message()}", file=sys.stderr)
        sys.exit(e.exit_code)
    except typer.Abort:
        print("Aborted!", file=sys.stderr)
        sys.exit(130)
    except OSError as e:  # writing the report to standard output failed (`> /dev/full`, a closed pipe)
        import errno
        import os

        if not (isinstance(e, BrokenPipeError) or (e.filename is None and e.errno in (
                errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EFBIG))):
            raise  # anything else that escaped a command is a bug: its traceback says where
        if not isinstance(e, BrokenPipeError):  # a reader that stopped reading (`| head`) is no error to report
            print(f"error: could not write the output{f' ({e.filename})' if e.filename else ''}: "
                  f"{e.strerror or e}", file=sys.stderr)
        # what is still buffered would fail again at exit, with a traceback: send it nowhere
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)  # EXIT_FAILURE
    sys.exit(rv if isinstance(rv, int) else 0)
