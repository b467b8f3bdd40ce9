"""CLI topic 'traces': ``attrib traces list``, ``show ID`` (a timeline), ``delete ID...`` and ``schema``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from attrib.cli._common import check_format, console, handle_errors, print_wide
from attrib.display import visible

_COLORS = ("cyan", "magenta", "green", "yellow", "blue", "bright_red", "bright_cyan", "bright_magenta",
           "bright_green", "orange3")


def _one_line(text: str, width: int) -> str:
    """``text`` on one line of at most ``width`` characters, its control characters visible (:func:`visible`)."""
    s = " ".join(visible(text).split())
    return s if len(s) <= width else s[: max(0, width - 1)] + "…"


#: How ``traces show`` styles each part of a step (:func:`attrib.trace.step_parts`).
_PART_STYLE = {"content": "", "call": "bold", "result": "", "error": "red"}

#: ``traces show`` without ``--steps`` or ``--all`` shows at most this many steps (the first ones), then a line that says
#: how many are hidden and how to see them: rendering every step of a 240k-step run took 90 s.
SHOW_STEPS = 200


def load_any(ref: str, store: Path | None = None, format: str | None = None, pick: str | None = None) -> Any:
    """A trace from a file path (read as ``format``, else detected; ``pick``: which of a file's traces), else from
    the store by id (raises NotFoundError)."""
    from attrib.store import open_store

    p = _trace_file(ref)
    if p is not None:
        return _file_trace(p, format, pick)
    with _stored(ref), open_store(store, read_only=True) as st:
        return st.get_trace(ref)


def _file_trace(path: Path, format: str | None, pick: str | None) -> Any:
    """The one trace of a file, or the one ``pick`` names (its id) in a file of several (an OTLP export holds
    every trace the collector saw). A file of several with no ``pick`` is refused, listing the ids to pick from."""
    from attrib.readers import read_path

    return _one_of(read_path(path, format), path, pick)


def _one_of(traces: list[Any], path: Path | str, pick: str | None) -> Any:
    """The one trace of ``traces`` (read from ``path``, or "stdin"), or the one ``pick`` names."""
    from attrib.errors import InputError, UsageError

    if pick is not None:  # the id, else the one id that starts so (hex span ids are long)
        found = [t for t in traces if t.id == pick] or [t for t in traces if t.id.startswith(pick)]
        if len(found) != 1:
            what = "no trace" if not found else f"{len(found)} traces start with"
            raise UsageError(str(path), "trace", f"{what} {pick!r} in the file; it holds {_ids(traces)}")
        return found[0]
    if len(traces) != 1:
        raise InputError(path, None, f"holds {len(traces)} traces ({_ids(traces)}): pick one with --trace ID, "
                         "or ingest the file and show each by id")
    return traces[0]


def _ids(traces: list[Any]) -> str:
    """The first trace ids of a file, for a message."""
    from attrib.trace import some_names

    return some_names((t.id for t in traces), 5)


def _trace_file(ref: str) -> Path | None:
    """``ref`` as a trace file to read; None when it names no file (a trace id, then)."""
    from attrib.errors import InputError, UsageError

    if not ref.strip():  # Path("") is the folder "."
        raise UsageError(None, None, "an empty ID: give a trace id or a trace file")
    p = Path(ref)
    if p.is_dir():  # not a trace id either: say what it is, whatever the store holds
        raise InputError(ref, None, "is a folder; give one trace file or a trace id")
    return p if p.is_file() else None


@contextlib.contextmanager
def _stored(ref: str) -> Iterator[None]:
    """Reading ``ref`` from the store: an id it does not hold that looks like a file name is a missing file."""
    from attrib.errors import InputError, NotFoundError
    from attrib.readers import looks_like_trace_file

    try:
        yield
    except NotFoundError:
        if looks_like_trace_file(ref):  # meant as a file: say so (exit 3), as `attrib analyze` does
            raise InputError(ref, None, "no such file (nor a trace with that id in the store)") from None
        raise


def step_range(spec: str, n_steps: int) -> range:
    """``--steps``: ``45`` (one step), ``40-50`` (both ends included), ``40-`` or ``-10``; a UsageError naming
    ``steps`` otherwise, or for a range with no step of the trace in it."""
    from attrib.errors import UsageError

    lo, dash, hi = spec.strip().partition("-")
    try:
        start = int(lo) if lo.strip() else 0
        end = (int(hi) if hi.strip() else n_steps - 1) if dash else start
    except ValueError:
        raise UsageError(None, "steps", f"expected a step or a range such as 40-50, got {spec!r}") from None
    if end < start:
        raise UsageError(None, "steps", f"{spec!r} runs backwards: give the lower step first ({end}-{start})")
    if start < 0 or start >= n_steps:
        raise UsageError(None, "steps", f"{spec!r} holds no step of this trace (steps 0-{n_steps - 1})")
    return range(start, min(end, n_steps - 1) + 1)


@dataclass(frozen=True)
class View:
    """What a timeline shows: the trace's fields (``head``; its steps are not used), the steps shown, and what they
    need from the others (their first parents, for the indent, and the run's first start time)."""

    head: Any
    n_steps: int
    steps: Sequence[Any]
    #: each step's first parent (None for none), at least up to the last step shown; index = step
    first_parents: Sequence[int | None]
    t0: float | None
    #: the steps shown when not all of them are (``--steps``, or the first :data:`SHOW_STEPS` by default)
    window: range | None = None
    #: True when the window is the default one, not asked for: a line then says how to see the others
    bounded: bool = False
    #: the agents that are tools (:func:`attrib.trace.tool_agents`), listed apart from the others
    tools: tuple[str, ...] = ()
    #: why the label's agent did not write the labelled step (:func:`attrib.trace.label_mismatch`), or None
    label_note: str | None = None
    #: the verdicts the store holds on the trace (``attrib analyze --all --store`` / ``--save`` wrote them)
    verdicts: tuple[Any, ...] = ()


def view_of(trace: Any, window: range | None = None, bounded: bool = False) -> View:
    """A :class:`View` of a whole trace in memory (read from a file), ``window``'s steps or all."""
    from attrib.trace import tool_agents

    steps = trace.steps if window is None else trace.steps[window.start:window.stop]
    upto = trace.steps if window is None else trace.steps[:window.stop]
    return View(trace, trace.n_steps, steps, [s.parents[0] if s.parents else None for s in upto],
                next((s.start_time for s in trace.steps if s.start_time is not None), None), window, bounded,
                tool_agents(trace.steps), trace.label_mismatch())


def default_window(n_steps: int, spec: str | None, show_all: bool) -> tuple[range | None, bool]:
    """The steps ``traces show`` shows, and whether that bound was not asked for: ``--steps`` ones, all with
    ``--all``, else all of a trace of up to :data:`SHOW_STEPS` steps and the first :data:`SHOW_STEPS` of a longer one."""
    if spec is not None:
        return step_range(spec, n_steps), False
    if show_all or n_steps <= SHOW_STEPS:
        return None, False
    return range(SHOW_STEPS), True


def load_view(ref: str, store: Path | None = None, format: str | None = None, spec: str | None = None,
              show_all: bool = False, pick: str | None = None) -> View:
    """The :class:`View` ``traces show`` prints: a file is read whole; a stored trace reads only the rows shown (its
    fields, those steps, the others' first parents), never its JSON, so the first steps of a 240k-step run come back
    as fast as those of a short one."""
    p = _trace_file(ref)
    if p is not None:
        trace = _file_trace(p, format, pick)
        return view_of(trace, *default_window(trace.n_steps, spec, show_all))
    from attrib.store import open_store

    with _stored(ref), open_store(store, read_only=True) as st:
        head, n = st.get_trace_head(ref)
        window, bounded = default_window(n, spec, show_all)
        stored = tuple(st.get_attributions(ref))
        if window is None:  # every step: they hold the parents and start times themselves
            import dataclasses

            import msgspec

            whole = view_of(msgspec.structs.replace(head, steps=tuple(st.get_steps(ref))))
            return dataclasses.replace(whole, verdicts=stored)
        steps = st.get_steps(ref, window.start, window.stop)
        parents, t0 = st.step_outline(ref, window.stop)
        note = None
        if head.label is not None:  # reads the few steps around the labelled one in one query, not the run
            from attrib.trace import label_mismatch, label_window

            near = label_window(head.label, n)
            shown = near.start >= window.start and near.stop <= window.stop
            read = {s.index: s for s in (*steps, *(() if shown else st.get_steps(ref, near.start, near.stop)))}

            def step(i: int) -> Any:
                """Step ``i``: read already, else alone (a tool step's parent far before the window)."""
                if i not in read:
                    read[i] = st.get_steps(ref, i, i + 1)[0]
                return read[i]

            note = label_mismatch(head.label, step, n)
        tools = st.trace_tools(ref)
    return View(head, n, steps, parents, t0, window, bounded, tools, note, stored)


def render(view: View, width: int = 110, full: bool = False) -> Any:
    """A rich renderable of ``view``: the shown steps in order, agent-coloured, indented under their parent step; a
    line after them when the default bound hid steps."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from attrib.trace import some_names, step_parts

    trace, steps = view.head, view.window

    # every string from the run goes through visible(): an ESC sequence in a step must not clear the screen
    def args(a: str) -> str:
        """A call's arguments: whole with ``--full`` (a wrong argument is often the mistake), else cut to half the
        width."""
        return visible(a) if full else _one_line(a, width // 2)

    def text(t: str) -> str:
        """A message or tool result: whole with ``--full``, else on one line of at most ``width`` characters."""
        return visible(t) if full else _one_line(t, width)

    colors = {a: _COLORS[i % len(_COLORS)] for i, a in enumerate(trace.agents)}
    depth: dict[int, int] = {}
    for i, p in enumerate(view.first_parents):  # the steps before the shown ones count for their indent
        depth[i] = depth.get(p, -1) + 1 if p is not None else 0
    t0 = view.t0
    table = Table(box=None, show_header=True, header_style="bold", pad_edge=False, expand=False)
    table.add_column("#", justify="right", style="dim")
    if t0 is not None:
        table.add_column("t+s", justify="right", style="dim")
    table.add_column("agent", no_wrap=True)
    table.add_column("role", style="dim", no_wrap=True)
    table.add_column("what happened", overflow="fold")
    label = trace.label
    for s in view.steps:
        d = depth.get(s.index, 0)
        body = Text("  " * d)
        if s.parents and len(s.parents) > 1:
            body.append(f"↳{','.join(map(str, s.parents))} ", style="dim")
        # the content and the calls it makes, or for a tool step the call then what came back: one per line
        for k, (kind, part) in enumerate(step_parts(s, args, text)):
            body.append(("\n" if k else "") + visible(part), style=_PART_STYLE[kind])
        if (err := s.metadata.get("error")) and not s.tool_results:  # an ERROR status with no description: "error"
            body.append("  [error]" if str(err).strip().lower() == "error" else f"  [error: {visible(err)}]",
                        style="red")
        if s.metadata.get("exception"):  # an error the span recovered from (a retry): it failed nothing
            body.append(f"  [recovered: {_one_line(str(s.metadata['exception']), width // 2)}]", style="yellow")
        idx = Text(str(s.index), style="bold red" if label and label.mistake_step == s.index else "dim")
        row: list[Any] = [idx]
        if t0 is not None:
            row.append(f"{s.start_time - t0:.1f}" if s.start_time is not None else "")
        row += [Text(visible(s.agent), style=colors.get(s.agent, "white")), Text(visible(s.role)), body]
        table.add_row(*row)
    head = Text()
    head.append(visible(trace.id), style="bold")
    shown = (f"{view.n_steps} steps" if steps is None else f"step {steps.start} of {view.n_steps}" if len(steps) == 1
             else f"steps {steps.start}-{steps.stop - 1} of {view.n_steps}")
    head.append(f"  ({trace.source_format}, {shown}, outcome: {trace.outcome})\n", style="dim")
    if trace.task:
        head.append("task: ", style="bold")
        head.append(_one_line(trace.task, width * 2) if not full else visible(trace.task))
        head.append("\n")
    head.append("agents: ", style="bold")
    for i, a in enumerate(a for a in trace.agents if a not in view.tools):
        head.append(("" if i == 0 else ", ") + visible(a), style=colors[a])
    if view.tools:
        head.append("  tools: ", style="bold")
        for i, a in enumerate(view.tools):
            head.append(("" if i == 0 else ", ") + visible(a), style=colors.get(a, "white"))
    if trace.metadata.get("partial"):  # spans whose parents the file lacks (remote callers, lost spans)
        missing, remote = trace.metadata.get("missing_parents") or [], trace.metadata.get("remote_parents") or []
        head.append("\npartial: ", style="bold yellow")
        head.append(f"{len(missing)} parent span(s) not in the file ({visible(some_names(map(str, missing), 3))})"
                    + (f", {len(remote)} of them remote" if remote else ""))
    parts: list[Any] = [head, table]
    if view.bounded and steps is not None:
        hidden = view.n_steps - len(steps)
        nxt = f"{steps.stop}-{min(steps.stop + len(steps), view.n_steps) - 1}"
        parts.append(Text(f"… {hidden} more steps not shown: --steps {nxt} shows the next ones, --all every step",
                          style="dim"))
    tail = Text()
    if trace.final_answer:
        tail.append("final answer: ", style="bold")
        tail.append(_one_line(trace.final_answer, width * 2) + "\n")
    if trace.ground_truth is not None:
        tail.append("ground truth: ", style="bold")
        tail.append(_one_line(trace.ground_truth, width * 2) + "\n")
    if label is not None:
        tail.append("annotated mistake: ", style="bold red")
        tail.append(f"{visible(label.mistake_agent)} at step {label.mistake_step}")
        if label.reason:
            tail.append(f" — {_one_line(label.reason, width * 2)}", style="dim")
        if view.label_note:  # a warning, not an error: Who&When itself holds a few such labels
            tail.append("\nwarning: ", style="bold yellow")
            tail.append(visible(view.label_note))
    from attrib.render import verdict_summary

    for a in view.verdicts:
        tail.append(("\n" if tail else "") + f"stored verdict ({visible(a.method)}): ", style="bold")
        tail.append(verdict_summary(a))
    if tail:
        parts.append(tail)
    return Group(*parts)


#: ``traces list`` in a terminal narrower than this leaves out the task column, and below :data:`LIST_NARROW_WIDTH`
#: the source column too (what ``--source`` filters on), so the agents keep room to be read: at 80 columns they were
#: cut to "a…" / "b…". Piped output keeps every column.
LIST_FULL_WIDTH, LIST_NARROW_WIDTH = 120, 100


def left_out(width: int | None) -> list[str]:
    """The columns ``traces list`` leaves out in a terminal ``width`` columns wide (None: not a terminal, none)."""
    if width is None or width >= LIST_FULL_WIDTH:
        return []
    return ["task"] if width >= LIST_NARROW_WIDTH else ["task", "source"]


def list_table(rows: list[dict[str, Any]], total: int, width: int | None = None, method: str | None = None) -> Any:
    """The ``traces list`` table of ``rows`` (of ``total``): the agents of each, then its tools on a line of their
    own; in a terminal ``width`` columns wide, without the columns :func:`left_out` names; with ``method``, a column
    of each row's stored verdict of it (``row["verdict"]``)."""
    from rich.table import Table
    from rich.text import Text

    from attrib.render import verdict_summary

    drop = left_out(width)
    # expand: the table takes the terminal's width, so the agents and task columns give way (the task cut to one
    # line) and nothing runs past the right edge; ids stay whole where they fit (they are copied into commands)
    table = Table(title=f"{len(rows)} of {total} trace(s)", title_justify="left", expand=True)
    longest = max((len(r["trace_id"]) for r in rows), default=2)
    table.add_column("id", overflow="fold", min_width=min(longest, 60 if not drop else 36))
    if "source" not in drop:
        table.add_column("source", min_width=9)  # the format, or the Who&When subset (what --source filters on)
    table.add_column("outcome", min_width=9)
    table.add_column("steps", justify="right", min_width=5)
    table.add_column("agents", overflow="fold", ratio=1, min_width=18)
    if method is not None:
        table.add_column(f"verdict ({visible(method)})", overflow="fold", ratio=1, min_width=16)
    if "task" not in drop:
        table.add_column("task", overflow="ellipsis", no_wrap=True, ratio=2, min_width=10)
    for r in rows:
        own = r["tools"]
        who = Text(visible(", ".join(a for a in r["agents"] if a not in own)))
        if own:
            who.append(("\n" if who else "") + "tools: " + visible(", ".join(own)), style="dim")
        # Text, not str: rich reads a plain string as markup, and a task's "[link](...)" or ":red[...]" lost its
        # brackets; visible(): an ESC sequence in a name or task must not reach the terminal
        cells: list[Any] = [Text(visible(r["trace_id"]))]
        if "source" not in drop:
            cells.append(Text(visible(r["subset"] or r["source_format"])))
        cells += [r["outcome"], str(r["n_steps"]), who]
        if method is not None:
            cells.append(Text(verdict_summary(r["verdict"]) if r.get("verdict") is not None else "-"))
        if "task" not in drop:
            cells.append(Text(_one_line(r["task"] or "", 200)))
        table.add_row(*cells)
    return table


def _check_outcome(value: str | None) -> str | None:
    """``--outcome`` in any word a log may use for it (success, failure, ok...: :data:`attrib.trace.OUTCOME_WORDS`),
    as the stored canonical outcome; the readers accept those words, so the filter does too."""
    from attrib.errors import InputError
    from attrib.trace import parse_outcome

    try:
        return parse_outcome(value)
    except InputError as e:
        raise typer.BadParameter(e.message) from None


def register(app: typer.Typer) -> None:
    """Add ``attrib traces list|show|delete|schema``."""
    traces = typer.Typer(help="List stored traces, show one as a timeline of steps by agent, delete some, print the "
                         "trace JSON Schema.", no_args_is_help=True)
    app.add_typer(traces, name="traces")

    @traces.command("list")
    def list_cmd(
        store: Path = typer.Option(None, "--store", "-s", help="Store file (default: $ATTRIB_STORE, else ./attrib.duckdb)."),
        source: str = typer.Option(None, "--source", help="Only traces of this format (whowhen, otlp, chat, attrib) "
                                   "or Who&When subset (algorithm, hand)."),
        outcome: str = typer.Option(None, "--outcome", callback=_check_outcome, help="Only traces with this outcome: "
                                    "failed, succeeded or unknown (success, failure, ok... read as those)."),
        agent: str = typer.Option(None, "--agent", help="Only traces in which this agent speaks (a tool's name "
                                  "matches too: the traces that called it)."),
        limit: int = typer.Option(50, "--limit", "-n", min=0, help="At most this many rows (0 = all)."),
        offset: int = typer.Option(0, "--offset", min=0, help="Skip this many rows first."),
        as_json: bool = typer.Option(False, "--json", help="One JSON object per line instead of a table."),
        method: str = typer.Option(None, "--method", "-m", help="Also show each trace's stored verdict of this "
                                   "method (saved by `attrib analyze --all --store` or `--save`): step, agent, "
                                   "confidence; '-' where it has none."),
    ) -> None:
        """List stored traces (id, source: the format or Who&When subset, outcome, steps, agents and tools, task),
        with --method their stored verdicts.

        Tools (a tool message named after its tool, as LangGraph writes it) are listed apart from the agents. In a
        terminal narrower than 120 columns the task column is left out, below 100 the source column too, with a
        line saying so; piped output keeps every column.

        Example:  attrib traces list --source hand --agent WebSurfer -n 10
                  attrib traces list --method learned   (the verdicts `attrib analyze --all` saved)
        """
        from attrib.store import open_store

        with handle_errors(), open_store(store, read_only=True) as st:
            rows = st.list_traces(source=source, outcome=outcome, agent=agent, limit=limit or None, offset=offset)
            if method is not None:
                for r in rows:
                    got = st.get_attributions(r["trace_id"], method)
                    r["verdict"] = got[0] if got else None
            total = st.count_traces(source=source, outcome=outcome, agent=agent)
            if not total and (source or agent):  # a typo in a filter value: say which values there are
                from attrib.errors import UsageError

                facets = st.facets()
                for field, value, known in (("source", source, facets["source"]), ("agent", agent, facets["agent"])):
                    if value and value not in known:
                        raise UsageError(None, field, f"no stored trace has {value!r} (known: "
                                         f"{', '.join(known[:12]) or 'none: the store is empty'}"
                                         f"{' ...' if len(known) > 12 else ''})")
        if as_json:
            import orjson

            for r in rows:  # "agents" as stored (tools too, what --agent matches); "tools": which of them are tools
                if r.get("verdict") is not None:
                    r["verdict"] = orjson.loads(r["verdict"].to_json())
                typer.echo(orjson.dumps(r, default=str).decode())
            return
        print_wide(list_table(rows, total, console.width if console.is_terminal else None, method))
        if console.is_terminal and (left := left_out(console.width)):
            console.print(f"[dim]({' and '.join(left)} left out at this width: {LIST_FULL_WIDTH} columns show "
                          f"{'it' if len(left) == 1 else 'them'}, as --json does)[/]")

    @traces.command("schema")
    def schema_cmd(
        attribution: bool = typer.Option(False, "--attribution", help="The schema of a verdict (`attrib analyze "
                                         "--json`) instead of a trace."),
    ) -> None:
        """Print the JSON Schema of attrib's trace format, to write your runs straight in it (or of a verdict).

        The trace schema is what `attrib traces show FILE --json` prints and the `attrib` reader reads losslessly.

        Example:  attrib traces schema > trace.schema.json
        """
        import orjson

        from attrib.trace import json_schema

        typer.echo(orjson.dumps(json_schema("attribution" if attribution else "trace"),
                                option=orjson.OPT_INDENT_2).decode())

    @traces.command("delete")
    def delete_cmd(
        trace_ids: list[str] = typer.Argument(..., metavar="ID...", help="Trace ids in the store."),
        store: Path = typer.Option(None, "--store", "-s", help="Store file (default: $ATTRIB_STORE, else ./attrib.duckdb)."),
    ) -> None:
        """Delete traces and everything computed from them (labels, verdicts, errors), in one transaction.

        An unknown id deletes nothing and exits 4, naming it.

        Example:  attrib traces delete whowhen-hand-1 whowhen-hand-2
        """
        from attrib.store import open_store

        with handle_errors(), open_store(store, create=False) as st:
            missing = [t for t in trace_ids if not st.has_trace(t)]
            if missing:
                raise st.not_found(missing[0])
            with st.transaction():
                for t in dict.fromkeys(trace_ids):
                    st.delete_trace(t)
        console.print(f"deleted {len(set(trace_ids))} trace(s) from {st.path}")

    @traces.command("show")
    def show_cmd(
        trace_id: str = typer.Argument(..., metavar="ID", help="A trace id in the store, a trace file, or - for "
                                       "standard input."),
        store: Path = typer.Option(None, "--store", "-s", help="Store file (default: $ATTRIB_STORE, else ./attrib.duckdb)."),
        full: bool = typer.Option(False, "--full", help="Show whole messages and tool-call arguments instead of their first --width characters (half that for arguments)."),
        width: int = typer.Option(110, "--width", min=10, help="Characters of each message to show."),
        as_json: bool = typer.Option(False, "--json", help="Print the trace as attrib JSON."),
        format: str = typer.Option(None, "--format", "-f", callback=check_format, help="For a trace file: skip "
                                   "detection (whowhen, otlp, chat or attrib)."),
        steps: str = typer.Option(None, "--steps", metavar="RANGE", show_default=False,
                                  help="Only these steps: 45, 40-50 (both included), 40- or -10."),
        show_all: bool = typer.Option(False, "--all", help=f"Every step (a trace of more than {SHOW_STEPS} steps shows "
                                      f"its first {SHOW_STEPS} otherwise, and says how many are hidden)."),
        pick: str = typer.Option(None, "--trace", metavar="TRACE_ID", show_default=False,
                                 help="For a file of several traces (an OTLP export): the one to show (its id, or a unique start of it)."),
    ) -> None:
        """Show one trace as a timeline: step, time, agent, role, message, tool calls (→) and results (←).

        A trace of more than 200 steps shows its first 200 and a line saying how to see the others.

        Example:  attrib traces show whowhen-hand-46 --steps 5-12 --full   (around a verdict's step)
        """
        with handle_errors():
            from attrib.errors import UsageError

            if steps is not None and show_all:
                raise UsageError(None, "steps/all", "give one of them, not both")
            if as_json and steps is not None:  # it printed the whole trace and said nothing of --steps
                raise UsageError(None, "steps/json", "--json prints the whole trace (attrib JSON); --steps picks "
                                 "the steps of the timeline: give one of them")
            if trace_id == "-":  # piped in, as `attrib analyze -` and `attrib ingest -` read it
                from attrib.readers import read_stdin

                trace = _one_of(read_stdin(format), "stdin", pick)
                if not as_json:
                    view = view_of(trace, *default_window(trace.n_steps, steps, show_all))
            elif pick is not None and _trace_file(trace_id) is None:
                from attrib.errors import InputError
                from attrib.readers import looks_like_trace_file

                if looks_like_trace_file(trace_id):  # a file that is not there: say that, not how --trace works
                    raise InputError(trace_id, None, "no such file")
                raise UsageError(None, "trace", "picks one trace of a file; a stored trace is shown by its id")
            elif as_json:
                trace = load_any(trace_id, store, format, pick)
            else:
                view = load_view(trace_id, store, format, steps, show_all, pick)
        if as_json:
            typer.echo(trace.to_json().decode())
            return
        console.print(render(view, width=width, full=full))
