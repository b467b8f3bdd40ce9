"""The ``attrib`` command line: one Typer app, one module per topic, each a thin wrapper over the library.

Topic modules expose ``register(app)``; heavy libraries are imported inside the commands so that
``attrib --help`` stays fast.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="attrib",
    help=(
        "Find which agent caused a multi-agent run to fail, at which step, and why inside the model.\n\n"
        "Start with:  attrib analyze traces/demo_whowhen.json"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

#: Topic modules, in the order their commands appear in --help.
TOPICS = ("analyze", "ingest", "traces", "export", "evaluate", "heads", "sail", "app")

_typer_app = app
for _topic in TOPICS:
    importlib.import_module(f"attrib.cli.{_topic}").register(_typer_app)
# importing the submodule attrib.cli.app rebinds the package attribute `app`; put the Typer app back
app = _typer_app


def main() -> None:
    """Console-script entry point."""
    app()
