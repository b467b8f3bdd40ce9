"""Renderers for an :class:`~attrib.trace.Attribution`: Markdown, a rich renderable, a matplotlib plot.

Called through ``Attribution.to_markdown / to_rich / plot``; the CLI and the app both use these, so a
verdict reads the same everywhere. rich and matplotlib are imported inside the functions.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Sequence
from typing import Any

from attrib.display import visible
from attrib.errors import AttribError, UsageError, not_a_trace
from attrib.markdown import md_code, md_escape, md_inline, md_quote
from attrib.methods.ranker_names import SHIPPED_NAME, ranker_name, seen_how
from attrib.trace import Attribution, Trace, step_words


def _ci(lo: float | None, hi: float | None, score: float) -> str:
    if lo is None or hi is None:
        return ""
    half = max(hi - score, score - lo)
    return f" ± {half:.3f}" if half > 1e-12 else " (exact)"


def _excerpt(attr: Attribution, trace: Trace | None, step: int, n: int = 300) -> str:
    """The text of ``step``, from the trace; without it only the decisive step's is known (``evidence.step_text``),
    so another step's is empty rather than the decisive step's repeated under its number."""
    if trace is not None and 0 <= step < trace.n_steps:
        return step_words(trace.steps[step], n)  # a step that only calls a tool reads as the call, not blank
    return str(attr.evidence.get("step_text", ""))[:n] if step == attr.step else ""


def step_author(attr: Attribution, trace: Trace | None) -> str | None:
    """Who took the decisive step (the trace's record, else the method's step list, else its evidence)."""
    if trace is not None and 0 <= attr.step < trace.n_steps:
        return trace.steps[attr.step].agent
    for s in attr.steps:
        if s.step == attr.step:
            return s.agent
    got = attr.evidence.get("step_agent") if attr.evidence else None
    return str(got) if got else None


def span_words(attr: Attribution) -> str | None:
    """The decisive step's span for a run read from OpenTelemetry (``evidence.decisive_span``), e.g.
    "span 'invoke_agent booker' (6cd62aa6309ee9c7)", to look up in a trace viewer; None for other runs."""
    span = attr.evidence.get("decisive_span") if attr.evidence else None
    if not isinstance(span, dict) or not span.get("span_id"):
        return None
    return f"span {span['span_name']!r} ({span['span_id']})" if span.get("span_name") else f"span {span['span_id']}"


def verdict_line(attr: Attribution, trace: Trace | None = None) -> str:
    """'step 3 by Alice', or 'step 3 (by Bob), blamed agent Alice' when the agent verdict is not the step's agent;
    a run read from OpenTelemetry adds the step's span (name and id, to find it in a trace viewer)."""
    by = step_author(attr, trace)
    where = f", {span}" if (span := span_words(attr)) else ""
    if by is None or by == attr.agent:
        return f"step {attr.step} by {attr.agent}{where}"
    return f"step {attr.step} (by {by}), blamed agent {attr.agent}{where}"


def _signals(ev: dict[str, Any], key: str = "features") -> list[str]:
    """Each signal in words with its weight, e.g. "the first code that was run (first_code_step, +0.57)";
    ``key="agent_features"``: the agent head's signals for the blamed agent."""
    words = ev.get(key.replace("features", "feature_meanings")) or {}
    return [f"{words[k]} ({k}, +{v:.2f})" if k in words else f"{k} (+{v:.2f})" for k, v in ev[key].items()]


def tool_callers_line(attr: Attribution) -> str | None:
    """Where the agent table's blame for tool steps went (``evidence.tool_steps_to_caller``: one entry per author
    and caller, ``{"agent", "caller", "steps"}``), e.g. "Tool steps count to the agent that called them: searcher's
    step 3 to planner; booker's steps 4, 5 to planner."; None when no step moved. An author whose steps all moved has
    no row of its own, and without this line it vanished unexplained. A verdict stored before the steps were grouped
    has one entry per step (``"step"``), read alike."""
    moved = attr.evidence.get("tool_steps_to_caller") if attr.evidence else None
    if not moved:
        return None
    groups: dict[tuple[str, str], list[int]] = {}
    for m in moved:
        steps = m["steps"] if "steps" in m else [m["step"]]
        groups.setdefault((str(m["agent"]), str(m["caller"])), []).extend(int(i) for i in steps)
    parts = [f"{agent}'s step{'s' if len(steps) > 1 else ''} {step_ranges(sorted(steps))} to {caller}"
             for (agent, caller), steps in groups.items()]
    return "Tool steps count to the agent that called them (a tool is not repaired, the call is): " \
        + "; ".join(parts) + "."


def _earlier(ev: dict[str, Any]) -> str:
    """The first-passage head's evidence in one line: this step's hazard against the most suspicious earlier one."""
    fp = ev.get("first_passage")
    if not fp:
        return ""
    if "earlier_step" not in fp:
        return f"hazard {fp['hazard']:.2f}, the first agent step of the run"
    higher = fp["earlier_hazard"] > fp["hazard"]
    return (f"hazard {fp['hazard']:.2f} here; highest before it {fp['earlier_hazard']:.2f} "
            f"(step {fp['earlier_step']}, {fp['earlier_agent']})" + (": an earlier step looks likelier" if higher else ""))


def step_set_line(attr: Attribution, trace: Trace | None = None) -> str:
    """The conformal step set in words, e.g. "steps 1, 3, 4 (3 of 10 steps) — a set that holds the decisive step in
    ≥ 90% of runs like those it was calibrated on, not a probability for this run"; "" when the method gave none.

    Conformal coverage is marginal, over runs like the calibration runs: worded as a probability for this run ("with
    90% probability the decisive step is step 1") it contradicted the verdict's own calibrated confidence beside it
    (54%), so a one-step set at a level above that confidence says both. It also says when the shipped ranker's promise
    was measured on other runs than this one's system."""
    ss = attr.evidence.get("step_set") if attr.evidence else None
    if not ss or not ss.get("steps"):
        return ""
    steps = sorted(int(i) for i in ss["steps"])
    n = trace.n_steps if trace is not None else len(attr.steps) or None
    level = float(ss["level"])
    promise = (f"a set that holds the decisive step in ≥ {level:.0%} of runs like those it was calibrated on, "
               "not a probability for this run")
    if n == 1:
        return f"step {steps[0]}, the run's only step"
    if n and len(steps) >= n:
        return f"any of the {n} steps: too unsure to narrow the run down ({promise})"
    ev = attr.evidence
    # the set's promise was measured on the runs its threshold was fitted on; say so on a run from elsewhere
    where = ("; a promise measured on Who&When runs, not on this system"
             if ev.get("calibrated_on") == "Who&When" and not ev.get("calibration_measured_here", True) else "")
    of = f" ({len(steps)} of {n} steps{where})" if n else (f" ({where[2:]})" if where else "")
    what = f"step {steps[0]}" if len(steps) == 1 else f"steps {step_ranges(steps)}"
    line = f"{what}{of} — {promise}"
    if steps == [attr.step] and confidence_word(attr) == "confidence" and attr.confidence < level:
        line += f" (this run's calibrated confidence in step {attr.step}: {attr.confidence:.0%})"
    return line


def step_ranges(steps: list[int], limit: int = 12) -> str:
    """Sorted step indices with runs of three or more as ranges ("1-27, 30, 33-35"), at most ``limit`` pieces."""
    pieces: list[str] = []
    start = prev = steps[0]
    for i in [*steps[1:], None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        pieces += [f"{start}-{prev}"] if prev - start >= 2 else [str(k) for k in range(start, prev + 1)]
        if i is not None:
            start = prev = i
    return ", ".join(pieces[:limit]) + (", ..." if len(pieces) > limit else "")


#: Below this calibrated confidence a report says to read the candidate list, not only the verdict.
LOW_CONFIDENCE = 0.3


def low_confidence_note(attr: Attribution, top_k: int) -> str | None:
    """A plain warning for an unsure verdict: which share of the blame the top-k candidates hold together."""
    if attr.confidence >= LOW_CONFIDENCE or len(attr.steps) < 2:  # one step (a judge's answer): no list to check
        return None
    if confidence_word(attr) == "score":  # not a probability: "low confidence" and "share of the mass" would mislead
        return None
    top = attr.top_steps(top_k)
    mass = sum(s.probability if s.probability is not None else s.score for s in top)
    whose = "ranker" if step_probabilities(attr) else "method"  # a judge listing several steps is no ranker
    return (f"Low confidence ({attr.confidence:.0%}): treat the top {len(top)} steps (together {mass:.0%} of the "
            f"{whose}'s step probability) as candidates to check, not the first one as the answer.")


def calibration_note(attr: Attribution) -> str | None:
    """Where the confidence was calibrated, when that is not where this run comes from: the shipped ranker was
    calibrated on Who&When only, and its accuracy does not carry across systems (measured between Who&When's own
    two: a ranker fitted on one finds 10-24 % of the other's decisive steps, 32-47 % within a system)."""
    ev = attr.evidence or {}
    if ev.get("calibrated_on") != "Who&When" or ev.get("calibration_measured_here", True):
        return None
    note = ("The shipped ranker was fitted and calibrated on Who&When runs only (AutoGen group chats of experts, "
            "Magentic-One); on another system, as this run is, read its confidence as a rough guide. To measure it "
            "on yours: `attrib eval traces` on labelled runs, then `attrib fit` for a ranker of your own.")
    if attr.step == ev.get("failure_step"):
        # measured on the 30 runs of tests/fixtures/own_system, the one other system at hand (annotated there: 4)
        note += (" It named the step where the failure shows, which on the one other system measured here it did "
                 "in 25 of 30 runs and was right in 4: read the steps before it too.")
    return note


def in_sample_note(attr: Attribution) -> str | None:
    """A warning that the ranker was fitted on this very run, or on another run of its task, so its verdict says
    little about new runs (or new tasks)."""
    seen = seen_how(attr)
    if seen == "in sample":
        return ("In sample: the ranker was fitted on this very run (its annotation was in the training data), so "
                "this verdict looks better than it would on a run it never saw; `attrib eval` scores out of sample.")
    if seen == "seen task":
        return ("Seen task: the ranker was fitted on another run of this same task, with its annotation; "
                "`attrib eval` holds out whole tasks, so its figures say how it does on new tasks, not on this run.")
    return None


def verdict_ranker(a: Attribution) -> str | None:
    """The ranker a verdict came from (:func:`ranker_name` of its ``evidence.ranker``), None for a method that
    names none (every method but the learned one)."""
    source = a.evidence.get("ranker") if isinstance(a.evidence, dict) else None
    return ranker_name(source) if isinstance(source, str) and source else None


def verdict_summary(a: Attribution) -> str:
    """A verdict in one line, as the reports word it: "step 3 by Alice, confidence 54%, ranker shipped"; a verdict of
    a ranker fitted on this very run (or another run of its task) says so (:func:`seen_how`), as the reports' notes
    do: beside the annotation it would read as a hit. Control characters visible (:func:`visible`)."""
    ranker = verdict_ranker(a)
    seen = {"in sample": ", in sample (the ranker was fitted on this run)",
            "seen task": ", seen task (the ranker was fitted on another run of it)", None: ""}[seen_how(a)]
    return visible(f"{verdict_line(a)}, {confidence_word(a)} {confidence_figure(a, a.confidence)}"
                   + (f", ranker {ranker}" if ranker else "") + seen)


def rankers_differ(now: Attribution, stored: Attribution) -> tuple[str, str] | None:
    """``(now's ranker, stored's ranker)`` when a verdict analysed now and a stored one on the same run came from
    different rankers (so their steps and agents can differ), short names unless those coincide (two files of one
    name, or one file rewritten: then the full names with their hashes); None when they agree or either names none.
    The CLI (`attrib analyze ID --store S`) and the inspector both say it from here."""
    a, b = now.evidence.get("ranker"), stored.evidence.get("ranker")
    if a == b or not (isinstance(a, str) and isinstance(b, str)):
        return None
    short = ranker_name(a), ranker_name(b)
    return short if short[0] != short[1] else (a, b)


def _own_ranker(attr: Attribution) -> str | None:
    """The ranker of a verdict from another ranker than the shipped one (reports name it beside the method, so two
    verdicts on one run from different rankers are told apart); None otherwise."""
    name = verdict_ranker(attr)
    return name if name and name != SHIPPED_NAME else None


def few_runs_note(attr: Attribution) -> str | None:
    """A warning that the ranker rests on few labelled runs or tasks (``evidence.fitted_on``), so its confidence
    and step set are rough: calibrated on a dozen runs, a ranker said 99 % for a step it gave p = 0.25."""
    fit = (attr.evidence or {}).get("fitted_on") or {}
    runs, tasks = fit.get("runs"), fit.get("tasks")
    if runs is None and tasks is None:  # another method, or a ranker file that predates the count
        return None
    from attrib.methods.ranker_names import few_runs_words

    if (few := few_runs_words(runs, tasks)) is None:
        return None
    return (f"This ranker was fitted on {few}: read its confidence "
            "and step set as rough; `attrib eval traces` on your labelled runs measures it against one pooled with "
            "Who&When (`attrib fit` without --no-pool), which rests on more runs.")


def partial_note(attr: Attribution) -> str | None:
    """For a run read from spans some of whose parents the file lacks (``evidence.partial_trace``): the decisive
    step may be among the missing spans, so this verdict names the likeliest step of what is there."""
    part = attr.evidence.get("partial_trace") if attr.evidence else None
    if not part:
        return None
    n, remote = int(part.get("missing_parents", 0)), int(part.get("remote_parents", 0))
    where = (f" ({remote} of them remote: the caller's spans are in another service's export)" if remote else "")
    return (f"Partial run: {n} parent span{'s are' if n != 1 else ' is'} not in the file{where}. The decisive "
            "step may be among the missing spans; this names the likeliest of the steps that are here.")


def method_warnings(attr: Attribution) -> list[str]:
    """The method's own warnings about this verdict (``evidence.warnings``: a run whose final answer equals its
    ground truth, a verdict that rests on an agent's name, a run with no agent step...), each once. They are the
    method's words and may quote the run (an agent's name), so a Markdown report escapes them (:func:`note_markdown`)."""
    got = attr.evidence.get("warnings") if attr.evidence else None
    if not isinstance(got, list | tuple):
        return []
    return list(dict.fromkeys(str(w) for w in got if w))


def verdict_notes(attr: Attribution, top_k: int) -> list[tuple[str, str]]:
    """The notes a report shows under the verdict, each with its level: ``warning`` (the method's own warnings,
    :func:`method_warnings`, first; an unsure verdict, see :func:`low_confidence_note`...) or ``info`` (where the
    confidence was calibrated, a ranker fitted on this run)."""
    notes = [*((w, "warning") for w in method_warnings(attr)),
             (low_confidence_note(attr, top_k), "warning"), (few_runs_note(attr), "warning"),
             (partial_note(attr), "warning"),
             (calibration_note(attr), "info"), (in_sample_note(attr), "info")]
    return [(text, level) for text, level in notes if text]


def note_markdown(attr: Attribution, note: str, escape: Callable[[str], str] = md_escape) -> str:
    """A note of :func:`verdict_notes` as Markdown: attrib's own notes are Markdown already (code spans, no run text
    in them); a method's warning is escaped (``escape``: :func:`attrib.markdown.md_escape`, or the inspector's, which
    also keeps Streamlit's replacements out), as the run's text is."""
    return escape(note) if note in method_warnings(attr) else note


def confidence_word(attr: Attribution) -> str:
    """'confidence' for a calibrated probability (or a judge's own), 'score' when the method says it is not one."""
    kind = attr.evidence.get("confidence_kind")
    return "score" if kind and kind != "calibrated" else "confidence"


def confidence_figure(attr: Attribution, value: float) -> str:
    """``value`` (the confidence or agent confidence) as every report prints it: "54%" for a probability, "0.43" for
    a method's score (:func:`confidence_word`), which a percent sign would make read as one."""
    return f"{value:.0%}" if confidence_word(attr) == "confidence" else f"{value:.2f}"


def step_probabilities(attr: Attribution) -> bool:
    """Whether the per-step numbers are probabilities (the learned ranker's) rather than a method's scores."""
    return attr.method == "learned"


#: What a report calls the learned ranker's per-step number: its joint softmax, not calibrated (the verdict's
#: confidence is; headed "p" beside it, 0.68 read as a second, contradicting probability of the 54 % verdict).
RANKER_P = "ranker p (uncalibrated)"


def step_column(attr: Attribution) -> str:
    """The heading of the per-step numbers in every report: :data:`RANKER_P`, or "score" for a method's scores."""
    return RANKER_P if step_probabilities(attr) else "score"


def _step_shapley(ev: dict[str, Any]) -> str | None:
    """The top steps' exact Shapley blame (``evidence.step_shapley``) and the failure score they share."""
    rows = ev.get("step_shapley")
    if not rows:
        return None
    total = ev.get("failure_score")
    of = f" (of {total:.2f})" if isinstance(total, float) else ""
    return ", ".join(f"step {i} {b:.2f}" for i, b in rows) + of


def _evidence_lines(attr: Attribution) -> list[tuple[str, str]]:
    """The evidence a report lists, as (label, text) in order; each renderer styles the labels its own way."""
    ev = attr.evidence
    out = []
    if ev.get("graph_path"):
        from attrib.methods.flow_graph import flow_words

        out.append((f"flow to the failure (step {ev.get('failure_step')})",
                    flow_words(ev["graph_path"], ev.get("graph_path_hops"), ev.get("failure_step"))))
    if shapley_steps := _step_shapley(ev):
        out.append(("Shapley blame over steps", shapley_steps))
    if ev.get("features"):
        out.append(("signals", "; ".join(_signals(ev))))
    if ev.get("agent_features"):
        out.append((f"why {attr.agent} (agent head)", "; ".join(_signals(ev, "agent_features"))))
    if earlier := _earlier(ev):
        out.append(("first to go wrong (hazard)", earlier))
    return out


def blame_title(attr: Attribution) -> str:
    """What the agent scores are: Shapley blame (the learned method) or the method's own sums."""
    kind = attr.evidence.get("agent_blame")
    return "Shapley blame" if kind in (None, "shapley") else f"blame: {kind}"


def check_same_run(attr: Attribution, trace: Trace | None) -> None:
    """A report takes its step texts and authors from ``trace``: another run's (a different id) would show them
    under this verdict, silently. A ``UsageError`` naming ``trace`` instead (also for a value that is no Trace)."""
    if trace is not None and not isinstance(trace, Trace):
        raise not_a_trace(trace)
    if trace is not None and trace.id != attr.trace_id:
        raise UsageError(None, "trace", f"the verdict is on run {attr.trace_id!r}, the trace given is {trace.id!r}")


def _default_top_k(attr: Attribution, top_k: int | None) -> int:
    """``top_k``, else as many steps as the method was asked for (``evidence.top_k``), else 5. A bad one is refused
    by :meth:`Attribution.top_steps`, which every report calls to list the steps."""
    if top_k is not None:
        return top_k
    return len(attr.evidence.get("top_k") or ()) or 5


def attribution_markdown(attr: Attribution, trace: Trace | None = None, top_k: int | None = None) -> str:
    """A Markdown report: verdict, agents with Shapley blame ± CI, top steps, evidence, reason.

    ``top_k``: steps listed (default: as many as the method was asked for, ``evidence.top_k``, else 5)."""
    check_same_run(attr, trace)
    top_k = _default_top_k(attr, top_k)
    word = confidence_word(attr)
    ac = (f", agent {word} {confidence_figure(attr, attr.agent_confidence)}" if attr.agent_confidence is not None
          else "")
    lines = [
        f"## Failure attribution: {md_code(attr.trace_id)}",
        "",
        f"**Decisive {md_inline(verdict_line(attr, trace))}** — {word} {confidence_figure(attr, attr.confidence)}{ac} "
        f"(method {md_code(attr.method)}" + (f", ranker {md_code(rk)}" if (rk := _own_ranker(attr)) else "")
        + (f", {attr.elapsed_s * 1000:.0f} ms" if attr.elapsed_s is not None else "")
        + ")",
        "",
    ]
    for note, level in verdict_notes(attr, top_k):
        text = note_markdown(attr, note)
        lines += [f"> **{text}**" if level == "warning" else f"> {text}", ""]
    if attr.agents:
        col = "blame" if blame_title(attr) == "Shapley blame" else blame_title(attr)  # e.g. "blame: summed step mass"
        lines += [f"| agent | {md_inline(col)} |", "|---|---|"]
        lines += [f"| {md_inline(a.agent)} | {a.score:.3f}{_ci(a.ci_low, a.ci_high, a.score)} |" for a in attr.agents]
        lines.append("")
        if moved := tool_callers_line(attr):
            lines += [md_escape(moved), ""]
    if attr.steps:
        lines += [f"| step | agent | {step_column(attr)} | excerpt |", "|---|---|---|---|"]
        for s in attr.top_steps(top_k):
            p = s.probability if s.probability is not None else s.score
            lines.append(f"| {s.step} | {md_inline(s.agent)} | {p:.2f} | {md_inline(_excerpt(attr, trace, s.step, 90))} |")
        lines.append("")
    if sset := step_set_line(attr, trace):
        lines += [f"**Step set** (conformal): {md_escape(sset)}", ""]
    lines += [f"**{md_inline(label[0].upper() + label[1:])}**: {md_escape(text)}" for label, text in _evidence_lines(attr)]
    lines.append("")
    lines.append(md_quote(_excerpt(attr, trace, attr.step, 400)))
    lines += ["", md_escape(attr.reason), ""]
    return "\n".join(lines)


def summary_rows(results: Sequence[tuple[Trace, Attribution]]) -> list[tuple[str, str, str, str | None, str, str]]:
    """Each run's summary row: trace id, step, the blamed agent, the step's author where that is another agent
    (else None), confidence and agent confidence (a score as 0.43, a probability as 54 %:
    :func:`confidence_figure`). The agent verdict need not be the step's author, and a row
    "step 1 | Math_Expert" read as "step 1 by Math_Expert" when Checker_Expert took step 1."""
    rows = []
    for t, a in results:
        by = step_author(a, t)
        rows.append((t.id, str(a.step), a.agent, by if by is not None and by != a.agent else None,
                     confidence_figure(a, a.confidence),
                     "-" if a.agent_confidence is None else confidence_figure(a, a.agent_confidence)))
    return rows


def summary_headers(results: Sequence[tuple[Trace, Attribution]]) -> tuple[str, str]:
    """The headers of :func:`summary_rows`' two numbers: "conf" / "agent conf" for calibrated probabilities,
    "score" / "agent score" when no verdict's number is one (an LLM judge's self-reported number, a heuristic's
    score: :func:`confidence_word`), so the table does not call a judge's number a confidence."""
    words = {confidence_word(a) for _, a in results}
    if words == {"score"}:
        return "score", "agent score"
    if words == {"confidence"} or not words:
        return "conf", "agent conf"
    return "conf / score", "agent conf / score"


def summary_markdown(results: Sequence[tuple[Trace, Attribution]]) -> str:
    """The summary table of several runs' verdicts in Markdown (:func:`summary_rows`, headed by
    :func:`summary_headers`; ``attrib analyze --markdown`` prints it after their reports, as the terminal's summary
    table after theirs); ids and names escaped."""
    conf, agent_conf = summary_headers(results)
    lines = [f"## {len(results)} runs", "", f"| trace | step | blamed agent | {conf} | {agent_conf} |",
             "|---|---:|---|---:|---:|"]
    lines += [f"| {md_code(tid)} | {step} | {md_inline(agent)}{f' (step by {md_inline(by)})' if by else ''} | "
              f"{conf} | {agent_conf} |" for tid, step, agent, by, conf, agent_conf in summary_rows(results)]
    return "\n".join(lines) + "\n"


def attribution_rich(attr: Attribution, trace: Trace | None = None, top_k: int | None = None) -> Any:
    """A rich Group: verdict panel, agent table with Shapley ± CI, top-k steps, evidence and reason."""
    check_same_run(attr, trace)
    from rich.console import Group
    from rich.markup import escape
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    # rich reads a plain string as markup: every string from the run or the method (agent names, ids, step text)
    # is escaped, so a step quoting "[/docs]" or indexing "x[i]" prints as written instead of raising MarkupError
    # or turning italic; and its control characters are shown as escapes, so an ESC sequence in a step cannot
    # clear the screen or recolour the report

    def esc(text: object) -> str:
        return escape(visible(text))

    top_k = _default_top_k(attr, top_k)
    word = confidence_word(attr)
    ac = (f"   agent {word} [bold]{confidence_figure(attr, attr.agent_confidence)}[/]"
          if attr.agent_confidence is not None else "")
    ms = f"   {attr.elapsed_s * 1000:.0f} ms" if attr.elapsed_s is not None else ""
    head = Panel(
        Text.from_markup(
            f"[bold]{esc(verdict_line(attr, trace))}[/]   {word} [bold]{confidence_figure(attr, attr.confidence)}[/]"
            f"{ac}   method {esc(attr.method)}"
            + (f", ranker {esc(rk)}" if (rk := _own_ranker(attr)) else "") + ms
        ),
        title=f"decisive mistake in {esc(attr.trace_id)}",
    )
    parts: list[Any] = [head]
    parts += [Text(visible(note), style="bold yellow" if level == "warning" else "yellow")
              for note, level in verdict_notes(attr, top_k)]
    if attr.agents:
        t = Table(title=f"agents ({esc(blame_title(attr))})", show_edge=False)
        t.add_column("agent")
        t.add_column("blame", justify="right")
        for a in attr.agents:
            t.add_row(esc(a.agent), f"{a.score:.3f}{_ci(a.ci_low, a.ci_high, a.score)}")
        parts.append(t)
        if moved := tool_callers_line(attr):
            parts.append(Text(visible(moved), style="dim"))
    if attr.steps:
        shown = attr.top_steps(top_k)
        t = Table(title=f"top {len(shown)} steps", show_edge=False)
        for c in ("step", "agent", step_column(attr), "excerpt"):  # the number's long heading on two lines
            t.add_column(c, overflow="fold", max_width=14 if c == RANKER_P else None)
        for s in shown:
            p = s.probability if s.probability is not None else s.score
            t.add_row(str(s.step), esc(s.agent), f"{p:.2f}", esc(_excerpt(attr, trace, s.step, 80)))
        parts.append(t)
    if sset := step_set_line(attr, trace):
        parts.append(Text(f"step set (conformal): {visible(sset)}", style="cyan"))
    bits = [f"{label}: {text}" for label, text in _evidence_lines(attr)]
    bits.append(f"step text: “{_excerpt(attr, trace, attr.step, 300)}”")
    parts.append(Panel(esc("\n".join(bits)), title="evidence"))
    parts.append(Text(visible(attr.reason)))
    return Group(*parts)


def attribution_plot(attr: Attribution, path: str | os.PathLike[str] | None = None) -> Any:
    """Bar charts of step probabilities and agent blame (± CI); saved to ``path`` when given."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise AttribError("plotting needs matplotlib: pip install matplotlib (or 'attrib[model]')") from None

    # a bare Figure, not pyplot: no backend switch and no global figure list (a notebook keeps its inline backend)
    fig = Figure(figsize=(11, 3.5))
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 1]})
    xs = [s.step for s in attr.steps]
    ys = [s.probability if s.probability is not None else s.score for s in attr.steps]
    ax1.bar(xs, ys, color=["crimson" if x == attr.step else "steelblue" for x in xs])
    ax1.set_xlabel("step")
    ax1.set_ylabel(step_column(attr))
    if len(xs) == 1:  # one step (a judge's answer): integer ticks, not -0.4..0.4
        ax1.set_xticks(xs)
    # titles wrapped to their panel: a method's long blame title ran past the figure's edge, cut off
    ax1.set_title(textwrap.fill(f"{attr.trace_id}: step {attr.step} ({confidence_word(attr)} "
                                f"{confidence_figure(attr, attr.confidence)})", 70))
    names = [a.agent for a in attr.agents]
    vals = [a.score for a in attr.agents]
    err = [[a.score - (a.ci_low if a.ci_low is not None else a.score) for a in attr.agents],
           [(a.ci_high if a.ci_high is not None else a.score) - a.score for a in attr.agents]]
    ax2.barh(names[::-1], vals[::-1], xerr=[e[::-1] for e in err], color="darkorange")
    ax2.set_title(textwrap.fill(blame_title(attr), 24))
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=120)
    return fig
