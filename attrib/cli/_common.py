"""Shared CLI plumbing: the console, and turning attrib errors into one line and an exit code."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from attrib.errors import EXIT_FAILURE, AttribError, UsageError

#: The widths $COLUMNS may set, as rich and typer read it: 0 printed nothing at all (error lines included), 1 one
#: character a line, 100000 a 1.9 MB verdict.
MIN_COLUMNS, MAX_COLUMNS = 40, 400


def _sane_columns() -> None:
    """Keep ``$COLUMNS`` within :data:`MIN_COLUMNS`-:data:`MAX_COLUMNS` for this process (read before any console)."""
    try:
        width = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):  # unset, or no number: rich measures the terminal, or takes 80
        return
    if not MIN_COLUMNS <= width <= MAX_COLUMNS:
        os.environ["COLUMNS"] = str(min(max(width, MIN_COLUMNS), MAX_COLUMNS))


_sane_columns()
console = Console()
err_console = Console(stderr=True)
# warnings and notes piped to a log or CI stay one line each (a `^warning:` grep got half a sentence at 80 columns)
err_console.soft_wrap = not err_console.is_terminal

#: The optional extras' top-level modules (pyproject.toml): a command that needs one that is not installed says
#: which extra to install, in one line, instead of a traceback.
EXTRAS = {
    **dict.fromkeys(("torch", "transformers", "gguf", "accelerate", "safetensors", "transformer_lens", "captum",
                     "peft", "sentence_transformers", "matplotlib"), "model"),
    **dict.fromkeys(("streamlit", "plotly"), "app"),
    **dict.fromkeys(("dask", "distributed"), "scale"),
}


def has_module(name: str) -> bool:
    """Whether the top-level module ``name`` is installed, without importing it (an optional extra's: :data:`EXTRAS`)."""
    import importlib.util

    return importlib.util.find_spec(name) is not None


def needs(*modules: str) -> None:
    """Check, before a command prepares anything (an output folder, a model load), that the optional extras it
    needs are installed; a missing one raises the ``ModuleNotFoundError`` :func:`handle_errors` turns into its one
    ``pip install 'attrib[...]'`` line."""
    for m in modules:
        if not has_module(m):
            raise ModuleNotFoundError(f"No module named {m!r}", name=m)


def duration(seconds: float) -> str:
    """``42.0 s`` or ``4 min 05 s``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s:02d} s"


def progress_line(command: str, text: str, elapsed: float | None = None,
                  write: Callable[[str], None] | None = None) -> None:
    """One plain progress line on stderr (no markup, no wrapping), for a log file or CI where rich's spinners and
    bars show nothing: ``attrib <command>: text``, or ``attrib <command> [<elapsed>]: text`` with the time since
    the command started. ``write`` replaces the stderr echo (tests)."""
    when = f" [{duration(elapsed)}]" if elapsed is not None else ""
    line = f"attrib {command}{when}: {text}"
    if write is None:
        typer.echo(line, err=True)
    else:
        write(line)


def print_error(error: BaseException | str) -> None:
    """One red ``error:`` line on stderr (a :class:`UsageError` names its flag)."""
    text = error.as_flag() if isinstance(error, UsageError) else str(error)
    err_console.print(f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True)


@contextlib.contextmanager
def handle_errors() -> Iterator[None]:
    """Print an :class:`AttribError` as one red line on stderr and exit with its code."""
    try:
        yield
    except AttribError as e:
        print_error(e)
        raise typer.Exit(e.exit_code) from None
    except OSError as e:  # a file we write (a folder that cannot be made, no permission, disk full): one line too
        where = f"{e.filename}: " if e.filename else ""
        if isinstance(e, FileExistsError | NotADirectoryError):  # "File exists" says nothing about the real problem
            what = "a file is in the way: the output path needs a folder here"
        else:
            what = e.strerror or str(e)
        print_error(where + what)
        raise typer.Exit(EXIT_FAILURE) from None
    except ModuleNotFoundError as e:  # an optional extra that is not installed (anything else is a bug: raised)
        top = (e.name or "").partition(".")[0]
        if top not in EXTRAS:
            raise
        print_error(f"this command needs {top}, which is not installed: pip install 'attrib[{EXTRAS[top]}]'")
        raise typer.Exit(EXIT_FAILURE) from None


@contextlib.contextmanager
def writing(path: Path | str) -> Iterator[None]:
    """Name ``path`` in an OSError raised while writing it: a failed ``write()`` (disk full, an I/O error) carries
    no file name, and :func:`handle_errors` then said only "No space left on device"."""
    try:
        yield
    except OSError as e:
        if e.filename is None:
            raise OSError(e.errno, e.strerror or str(e), str(path)) from None
        raise


def prepare_output(*paths: Path | None) -> None:
    """Make each output file's folder and check it can be written, before any slow work; None is skipped. Every
    command checks its outputs here, so a path that cannot be written (a folder, a file in the way of its folder,
    no permission) is the same one-line exit 1 of :func:`handle_errors` everywhere."""
    for path in paths:
        if path is None:
            continue
        if path.is_dir():
            raise IsADirectoryError(21, "is a folder; give a file name", str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(path.parent, os.W_OK):
            raise PermissionError(13, "Permission denied", str(path.parent))


def prepare_folder(path: Path) -> None:
    """Make the output folder ``path`` and check it can be written, before any slow work (the one-line exit 1 of
    :func:`attrib.paths.writable_folder`, as for :func:`prepare_output`)."""
    from attrib.paths import writable_folder

    writable_folder(path)


def check_stdin(paths: list[str], example: str) -> None:
    """A usage error when ``-`` (standard input) is among ``paths`` but nothing is piped in: reading a terminal
    waited, silently, for a trace to be typed."""
    import sys

    if "-" in paths and sys.stdin is not None and sys.stdin.isatty():
        raise UsageError(None, None, f"- reads a trace from standard input, but nothing is piped in (e.g. {example})")


def check_format(value: str | None) -> str | None:
    """``--format`` callback: a reader's name, or a usage error (exit 2) listing them."""
    from attrib.readers import READERS

    if value is not None and value not in READERS:
        raise typer.BadParameter(f"expected one of {', '.join(READERS)}, got {value!r}")
    return value


def check_method(value: str | None) -> str | None:
    """``--method`` callback: a registered attribution method, or a usage error (exit 2) listing them."""
    from attrib.methods import METHODS

    if value is not None and value not in METHODS:
        raise typer.BadParameter(f"expected one of {', '.join(METHODS)}, got {value!r}")
    return value


def print_wide(renderable: object, width: int = 180) -> None:
    """Print a wide table whole: piped or logged output (no terminal) gets ``width`` columns, not rich's 80."""
    if console.is_terminal:
        console.print(renderable)
    else:
        Console(width=max(console.width, width)).print(renderable)


def quiet_model_loading() -> None:
    """No transformers progress bar while a command loads a model: the command shows its own status line, and the
    bar ("Loading weights 272/272") is noise on every run. A CLI-wide setting, so the library itself leaves it alone."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def step_head_option() -> Any:
    """The ``--step-head`` option of ``attrib fit`` and ``attrib eval traces``, read as the library names the head
    ("first_passage" or "logit"; "first-passage", the CLI's spelling, or the library's: one name works in both)."""
    def check(value: str) -> str:
        from attrib.methods.ranker_names import RankerParamError, step_head_name

        try:
            return step_head_name(value)
        except RankerParamError:
            raise typer.BadParameter(f"expected one of first-passage, logit (first_passage works too), got {value!r}"
                                     ) from None

    return typer.Option("first-passage", "--step-head", callback=check,
                        help="The ranker's step head when it is refitted: first-passage (the default: the decisive "
                        "step is the earliest to go wrong) or logit (a plain softmax over steps; it transferred "
                        "better between Who&When's two systems, so try it when your system is unlike them).")


def method_options(method: str, model: Path | None, *, set_level: float | None = None,
                   context_chars: int | None = None, llm_flags: Sequence[str] = ()) -> dict[str, Any]:
    """A method's options from ``attrib analyze``'s flags, for one run and for ``--all`` alike: the ranker file
    (``--model``), the step-set level (the learned method only; a warning for any other) and the judges'
    transcript budget (``--llm-context-chars``). ``llm_flags``: the other ``--llm-*`` flags given; with a method
    that is not a judge they, and ``--llm-context-chars``, are ignored, and a warning says so (no LLM is used)."""
    ignored = [*llm_flags, *(["--llm-context-chars"] if context_chars is not None else [])]
    if ignored and not method.startswith("judge"):
        err_console.print(f"[yellow]warning:[/] {', '.join(ignored)} appl{'y' if len(ignored) > 1 else 'ies'} to "
                          f"the judge-* methods, not {method}: no LLM is used", highlight=False, soft_wrap=True)
    options = ranker_options(method, model)
    if set_level is not None:
        if method == "learned":
            options["set_level"] = set_level
        else:
            err_console.print(f"[yellow]warning:[/] --set-level applies to the learned method, not {method}")
    if context_chars is not None and method.startswith("judge"):
        options["context_chars"] = context_chars
    return options


def llm_flags_given(base_url: str | None, model: str | None, api_key_env: str | None) -> list[str]:
    """The ``--llm-*`` flags given on the command line, for :func:`method_options`' warning: a value that only
    repeats its environment variable (Typer fills ``--llm-base-url`` and ``--llm-model`` from them) is not one."""
    from attrib.llm import LLM_ENV, LLM_FLAGS

    given = {"base_url": base_url, "model": model, "api_key_env": api_key_env}
    return [LLM_FLAGS[k] for k, v in given.items() if v and v != os.environ.get(LLM_ENV[k])]


def ranker_options(method: str | None, model: Path | None) -> dict[str, Any]:
    """Method options that point the learned ranker at its file: ``--model``, else ``$ATTRIB_RANKER`` (as an
    absolute path); {} for the shipped one.

    The learned method reads it directly; ``judge-hybrid`` passes it to its offline evidence. The file is
    loaded once here (:func:`attrib.engine.pin_ranker`, as a batch does), so a missing or foreign file is one error
    (exit 4 or 3), not one per trace.
    """
    name = method or "learned"
    if name not in ("learned", "judge-hybrid"):
        if model is None:
            return {}
        raise typer.BadParameter(f"--model applies to the learned ranker (and judge-hybrid), not --method {name}",
                                 param_hint="--model")
    from attrib.engine import pin_ranker

    options, _ = pin_ranker({"model_path": str(model)} if model is not None else {})
    if name == "judge-hybrid" and options:
        return {"offline_options": options}
    return options
