"""CLI topic 'evaluate': ``attrib eval who-and-when`` -> :func:`attrib.evaluate.evaluate`, ``attrib eval traces``
-> :func:`attrib.evaluate.labelled.evaluate_labelled`, and ``attrib fit`` -> :func:`attrib.methods.learned.fit_artifact`."""

from __future__ import annotations

from pathlib import Path

import typer

from attrib.cli._common import (
    check_format,
    console,
    err_console,
    handle_errors,
    prepare_output,
    print_error,
    print_wide,
    step_head_option,
    writing,
)
from attrib.errors import AttribError

#: Table titles for Who&When's subsets.
SUBSET_TITLES = {"algorithm": "Algorithm-Generated", "hand": "Hand-Crafted"}

eval_app = typer.Typer(help="Benchmarks: score attribution methods out of sample against annotated runs.",
                       no_args_is_help=True)


def _fmt(v: float | None, pct: bool = False) -> str:
    if v is None:
        return "-"
    return f"{100 * v:.1f}" if pct else f"{v:.1f}"


def _ci(r: dict, key: str) -> str:
    ci = r.get(f"{key}_ci")
    return f"{ci[0]:.0f}-{ci[1]:.0f}" if ci else "-"


#: Every column of both evaluation tables (:func:`_row_cells` fills them for one result row), and those left out
#: first in a terminal too narrow for all of them.
TABLE_COLUMNS = ("method", "protocol", "step %", "95% CI", "±1 %", "±3 %", "top-3 %", "top-5 %", "90% set: cover/size",
                 "agent %", "95% CI", "ECE %", "ECE if calibrated %")
NARROW_DROP = ("±1 %", "±3 %", "top-5 %", "ECE if calibrated %")
FULL_WIDTH = 170  # about what all the columns need without cutting method names


def print_metrics(title: str, rows: list[tuple[list[str], str | None]]) -> None:
    """A metrics table (``rows``: every column's cell, and a style). In a terminal narrower than :data:`FULL_WIDTH`
    the columns of :data:`NARROW_DROP` are left out, with a line saying so, so that method names are not cut to
    "lear… (shi…"; piped output and wide terminals get every column."""
    from rich.table import Table

    narrow = console.is_terminal and console.width < FULL_WIDTH
    keep = [i for i, c in enumerate(TABLE_COLUMNS) if not (narrow and c in NARROW_DROP)]
    t = Table(title=title, title_justify="left")
    for i in keep:
        c = TABLE_COLUMNS[i]
        t.add_column(c, justify="left" if c in ("method", "protocol") else "right")
    for cells, style in rows:
        t.add_row(*(cells[i] for i in keep), style=style)
    print_wide(t)
    if narrow:
        console.print(f"[dim]({', '.join(NARROW_DROP)} left out at this width: widen the terminal to "
                      f"{FULL_WIDTH} columns, or use --json)[/]")


def _row_cells(r: dict, protocol: str) -> list[str]:
    return [r["method"], protocol, _fmt(r["step_accuracy"]), _ci(r, "step_accuracy"), _fmt(r["step_accuracy_pm1"]),
            _fmt(r["step_accuracy_pm3"]), _fmt(r.get("step_top3")), _fmt(r.get("step_top5")), _set(r),
            _fmt(r["agent_accuracy"]), _ci(r, "agent_accuracy"), _fmt(r["ece"], pct=True),
            _fmt(r.get("ece_null"), pct=True)]


def _published_cells(name: str, step: float, agent: float) -> list[str]:
    """A published method's row: only its step and agent accuracy are known."""
    cells = [name, "published (LLM)", *["-"] * (len(TABLE_COLUMNS) - 2)]
    cells[TABLE_COLUMNS.index("step %")], cells[TABLE_COLUMNS.index("agent %")] = _fmt(step), _fmt(agent)
    return cells


def _set(r: dict) -> str:
    return "-" if r.get("set_coverage") is None else f"{r['set_coverage']:.0f} / {r['set_size']:.1f}"


def advice_line(adv: dict | None, paths: list[str], format: str | None = None) -> str | None:
    """`attrib eval traces`'s advice in one line: which ranker to use, by how much, and the command that fits it (with
    the step head measured, and ``--format`` when the traces were read with one)."""
    if not adv:
        return None
    if adv["use"] is None:
        return (f"none against '{adv['against']}': it was fitted on every one of these runs or on other runs of "
                f"their tasks, so its row is in sample and no refit can be paired with it; of the refits, '{adv['best_refit']}' scores higher "
                f"({adv['refit_step_accuracy']:.1f} % step)")
    gain = f"step {_gain(adv['step_gain'])}, agent {_gain(adv['agent_gain'])}, paired on {adv['n']} runs"
    if adv["step_gain"]["mean"] < 0:
        return f"keep '{adv['against']}': the best refit, '{adv['best_refit']}', does worse: {gain}"
    if adv["significant"]:
        flags = (f" -f {format}" if format else "") + (f" {adv['fit_flags']}" if adv["fit_flags"] else "")
        import shlex

        few = (f". Fitted on {adv['caution']} alone, its confidences and 90% step sets are rough, as `attrib fit` "
               "warns" if adv.get("caution") else "")
        return (f"use '{adv['best_refit']}': it beats '{adv['against']}' by {gain}. Fit it with `attrib fit "
                f"{shlex.join(paths)}{flags} --out my_ranker.json`{few}")
    return (f"keep '{adv['against']}': the best refit, '{adv['best_refit']}', differs by {gain}, an interval that "
            "includes zero; label more runs before switching")


def stop_on_unreadable(errors: list[AttribError], paths: list[str], outcome: str) -> None:
    """When some of ``paths``' files could not be read (``errors``, from :func:`read_labelled`), `attrib fit` and
    `attrib eval traces` print each one's error line, then how many of how many files failed and ``outcome`` (what
    was not done), and exit with the highest code (3 for bad input). They stopped at the first bad file, so a
    folder's second was found only after fixing the first; and they never go on without them: a ranker fitted, or a
    score taken, on a silently smaller set is worse than none."""
    if not errors:
        return
    from rich.markup import escape

    from attrib.readers import expand_paths

    for e in errors:
        print_error(e)
    bad = len({p for e in errors if (p := getattr(e, "path", None)) is not None}) or len(errors)
    err_console.print(f"[bold red]{bad} of {len(expand_paths(paths))} trace file(s) could not be read: "
                      f"{escape(outcome)}[/]", highlight=False, soft_wrap=True)
    raise typer.Exit(max(e.exit_code for e in errors))


def _gain(g: dict) -> str:
    return f"{g['mean']:+.1f} points (95% CI {g['ci_low']:+.1f} to {g['ci_high']:+.1f})"


def register(app: typer.Typer) -> None:
    """Add ``attrib eval``."""
    app.add_typer(eval_app, name="eval")

    @eval_app.command("who-and-when")
    def who_and_when_cmd(
        subset: str = typer.Option(None, "--subset", help="algorithm or hand (default: both)."),
        without_gt: bool = typer.Option(False, "--without-ground-truth",
                                        help="Hide each task's ground-truth answer from the methods (by default "
                                        "they see it)."),
        # the older spellings, kept working but not shown: an on/off pair this long is cut off in 80-column help
        with_gt_flag: bool = typer.Option(None, "--with-ground-truth/--without", "--with", hidden=True),
        method: list[str] = typer.Option(None, "--method", "-m", help="Methods to score (repeatable) "
                                         "(default: learned, learned-subset, floor, flow-graph, causal). The "
                                         "judge-* methods call an LLM: set ATTRIB_LLM_BASE_URL and ATTRIB_LLM_MODEL, and "
                                         "the transcript budget in characters with ATTRIB_LLM_CONTEXT_CHARS "
                                         "(default 48000); a log with no usable answer counts as a miss."),
        folds: int = typer.Option(5, "--folds", min=2, help="k for k-fold grouped by question_ID."),
        seed: int = typer.Option(0, "--seed", help="Fold assignment seed."),
        seeds: int = typer.Option(1, "--seeds", min=1, help="Average k-fold rows over this many fold seeds "
                                  "(seed, seed+1, ...); the SD across them goes in the JSON."),
        as_json: bool = typer.Option(False, "--json", help="Print the result JSON instead of the table."),
        out: Path = typer.Option(None, "--out", show_default=False,
                                 help="Where to write the result JSON, or - for nowhere. Default: "
                                 "who_and_when_eval.json in $ATTRIB_RESULTS_DIR, else in bench/results of a "
                                 "checkout, else in ./attrib-results (the inspector reads it there)."),
    ) -> None:
        """Score attribution on Who&When (184 failed runs), strictly out of sample.

        Learned parts are refitted inside folds grouped by question_ID (and fitted on one subset, tested on
        the other for cross-subset rows); baselines (random, always step 1, most active agent, first
        WebSurfer step, always WebSurfer) and the logistic floor are printed beside every method, with the
        published LLM-based numbers. Runs offline, unless a judge-* method is chosen.

        "90% set": how often the learned ranker's conformal step set (`attrib analyze --set-level`) holds the
        decisive step, and how many steps it lists on average.

        "ECE if calibrated" is the 10-bin ECE a perfectly calibrated model would show with the same
        confidences on this many logs (binned ECE is biased upwards on small samples): read ECE against it.

        The committed 5-seed results (bench/results/who_and_when.json) come from bench/who_and_when/run.py.

        Example:  attrib eval who-and-when --subset algorithm --without-ground-truth
        """
        import orjson

        from attrib.evaluate import evaluate
        from attrib.evaluate.data import SUBSETS
        from attrib.paths import results_dir

        if with_gt_flag is not None and without_gt and with_gt_flag:
            raise typer.BadParameter("give one of --with-ground-truth and --without-ground-truth",
                                     param_hint="--without-ground-truth")
        with_gt = not without_gt if with_gt_flag is None else with_gt_flag
        out = out if out is not None else results_dir() / "who_and_when_eval.json"
        subsets = (subset,) if subset else SUBSETS
        with handle_errors():
            if subset and subset not in SUBSETS:
                raise typer.BadParameter(f"expected one of {', '.join(SUBSETS)}, got {subset!r}", param_hint="--subset")
            if str(out) != "-":
                prepare_output(out)  # before the evaluation, not after it
            method = list(dict.fromkeys(method)) if method else method  # a method named twice is scored once
            judges = [m for m in method or () if m.startswith("judge")]
            if judges:  # this command has no --llm-* flags: the endpoint comes from the environment
                from attrib.llm import LLMConfig, LLMConfigError

                try:
                    LLMConfig.from_env()
                except LLMConfigError:
                    raise typer.BadParameter(f"{judges[0]} calls an LLM: set ATTRIB_LLM_BASE_URL (and "
                                             "ATTRIB_LLM_MODEL) first; bench/who_and_when/judge.py runs the judges "
                                             "with transcript budgets", param_hint="--method") from None
            from attrib.llm import LLMError

            try:
                with err_console.status("scoring Who&When out of sample...") as status:
                    result = evaluate(subsets, with_gt, method or None, k=folds, seed=seed, n_seeds=seeds,
                                      progress=lambda m: status.update(f"scoring {m} ..."))
            except LLMError as e:  # this command has no --llm-* flags: name the environment variables
                print_error(e.line("env"))
                raise typer.Exit(e.exit_code) from None
        data = orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
        if str(out) != "-":
            with handle_errors(), writing(out):
                out.write_bytes(data)
        if as_json:
            typer.echo(data.decode())
            return

        setting = result["setting"].replace("_", " ").replace("gt", "ground truth")
        for s in subsets:
            rows = [r for r in result["rows"] if r["subset"] == s]
            cells = [(_row_cells(r, r["protocol"]),
                      "bold" if r["method"] == result["default_method"] and r["protocol"].endswith("pooled") else None)
                     for r in rows]
            cells += [(_published_cells(name, by[s]["step_accuracy"], by[s]["agent_accuracy"]), "dim")
                      for name, by in result["published"].items() if s in by]
            print_metrics(f"Who&When {SUBSET_TITLES.get(s, s)} ({rows[0]['n']} logs), {setting}, out of sample "
                          f"({folds}-fold by question)", cells)
            for r in rows:
                if r.get("no_answer"):
                    console.print(f"{r['method']}: {r['no_answer']} of {r['n']} logs had no usable answer after "
                                  "the retries, scored as misses", highlight=False)
            d = result["subsets"].get(s, {})
            if "step_gain_vs_floor" in d:
                console.print(f"{result['default_method']} against the floor, paired on the same logs and folds: step "
                              f"{_gain(d['step_gain_vs_floor'])}, agent {_gain(d['agent_gain_vs_floor'])}\n")
        console.print(f"wall time {result['wall_s']:.1f} s" + (f"; JSON in {out}" if str(out) != "-" else ""))

    @eval_app.command("traces")
    def traces_cmd(
        paths: list[str] = typer.Argument(..., help="Labelled trace files, folders or globs (any format attrib reads).",
                                          show_default=False),
        format: str = typer.Option(None, "--format", "-f", callback=check_format, help="Skip format detection (whowhen, otlp, chat, attrib)."),
        model: Path = typer.Option(None, "--model", help="Score this ranker file (`attrib fit`) in place of the "
                                   "shipped ranker (default: $ATTRIB_RANKER when set); runs it was fitted on are "
                                   "flagged IN SAMPLE.", show_default=False),
        folds: int = typer.Option(5, "--folds", min=2, help="k for the refit rows, grouped by metadata.question_id."),
        seed: int = typer.Option(0, "--seed", help="Fold assignment seed."),
        pool: bool = typer.Option(True, "--pool/--no-pool", help="Also refit on your traces pooled with Who&When "
                                  "(when that data is on this machine)."),
        step_head: str = step_head_option(),
        as_json: bool = typer.Option(False, "--json", help="Print the result JSON instead of the table."),
    ) -> None:
        """Score attribution on your own labelled runs: is the blame right on your system?

        A trace is labelled when it carries the decisive step and agent (mistake_step / mistake_agent in
        Who&When or chat JSON, `label` in attrib JSON, `attrib.label.mistake_agent` and
        `attrib.label.mistake_span_id` or `.mistake_step` on the root span in OTLP). Re-runs of one task
        should share metadata.question_id; runs without one are grouped by identical task text.

        Rows: the shipped ranker as it is (fitted on Who&When only, so your traces are out of sample), and
        your ranker file beside it (--model, $ATTRIB_RANKER; IN SAMPLE for the runs it was fitted on and other
        runs of their tasks); the ranker
        refitted on your traces (k-fold by task, out of sample; and pooled with Who&When, what `attrib fit`
        writes by default), the logistic floor, and rule baselines. Ship a refit only if it beats the shipped
        row here; with a few dozen runs, read the 95% intervals before trusting a difference.

        "90% set": how often the conformal step set holds the decisive step, and its mean size. "ECE if
        calibrated": the ECE a perfectly calibrated ranker would show on this many runs: read ECE against it.
        --json adds per_trace: each run's annotation and every method's verdict and hits.

        Every file that cannot be read is named, one line each, and then nothing is scored (exit 3): fix or
        move them and rerun.

        Example:  attrib eval traces my_runs/ --folds 5   (then: attrib fit my_runs/ --out my_ranker.json)
        """
        import orjson

        from attrib.evaluate.labelled import evaluate_labelled, read_labelled

        with handle_errors():
            files: dict[str, str] = {}  # trace id -> file, so a note names the file
            unreadable: list[AttribError] = []
            traces, n_unlabelled = read_labelled(paths, format, files, errors=unreadable)
            stop_on_unreadable(unreadable, paths, "nothing was scored; fix or move them, then rerun")
            if not traces:
                from attrib.errors import InputError

                raise InputError(", ".join(paths), "label", f"none of the {n_unlabelled} traces carries a label "
                                 "(mistake_step and mistake_agent); nothing to score")
            with err_console.status(f"scoring {len(traces)} labelled traces...") as status:
                result = evaluate_labelled(traces, k=folds, seed=seed, model_path=str(model) if model else None,
                                           pool_who_and_when=pool, step_head=step_head, files=files,
                                           progress=lambda m: status.update(f"scoring {m} ..."))
            result["n_unlabelled"] = n_unlabelled
        if as_json:
            typer.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY).decode())
            return
        from rich.markup import escape

        refits = any("-fold" in r["protocol"] for r in result["rows"])
        # a protocol names the user's ranker file: its path is text, not rich markup
        print_metrics(f"{result['n']} labelled traces of {result['n_tasks']} tasks"
                      + (f"; refit rows out of sample ({result['folds']}-fold by task)" if refits else ""),
                      [(_row_cells(r, escape(r["protocol"])),
                        "bold" if r["method"].startswith("learned") else None) for r in result["rows"]])
        for note in result["notes"] + ([f"{result['n_unlabelled']} unlabelled traces were skipped"]
                                       if result["n_unlabelled"] else []):
            console.print(f"[yellow]note:[/] {escape(note)}")  # a note may name a ranker file's path
        if line := advice_line(result.get("advice"), paths, format):
            console.print(f"[bold]advice:[/] {escape(line)}")
        console.print(f"wall time {result['wall_s']:.1f} s")

    @app.command("fit")
    def fit_cmd(
        paths: list[str] = typer.Argument(..., help="Labelled trace files, folders or globs (any format attrib reads).",
                                          show_default=False),
        out: Path = typer.Option(..., "--out", "-o", help="Where to write the ranker (JSON coefficients)."),
        format: str = typer.Option(None, "--format", "-f", callback=check_format, help="Skip format detection (whowhen, otlp, chat, attrib)."),
        pool: bool = typer.Option(True, "--pool/--no-pool", help="Fit on your traces plus Who&When (when that data "
                                  "is on this machine), as the shipped ranker is fitted."),
        step_head: str = step_head_option(),
    ) -> None:
        """Fit the learned ranker on your own labelled runs, for `attrib analyze --model` or $ATTRIB_RANKER.

        Check first what it buys you with `attrib eval traces` (same traces): it prints the shipped ranker
        and the refitted one, alone ("learned, refit": what --no-pool writes) and pooled with Who&When
        ("learned, refit + Who&When": what the default writes), side by side, out of sample; fit the better.
        Unlabelled traces are skipped; two runs with one trace id are refused. Every file that cannot be read
        is named, one line each, and then nothing is fitted or written (exit 3). Traces that re-run one task
        should share metadata.question_id. The file lists the runs it was fitted on, so
        `attrib eval traces --model FILE` flags them IN SAMPLE.

        Example:  attrib fit my_runs/ --out my_ranker.json && attrib analyze run.json --model my_ranker.json
        """
        import orjson

        from attrib.errors import InputError
        from attrib.evaluate.labelled import (
            MIN_TRAIN,
            check_labels,
            pool_extra,
            read_labelled,
        )
        from attrib.methods.learned import fit_artifact

        with handle_errors():
            prepare_output(out)  # before reading and fitting, not after
            files: dict[str, str] = {}
            unreadable: list[AttribError] = []
            traces, n_unlabelled = read_labelled(paths, format, files, errors=unreadable)
            stop_on_unreadable(unreadable, paths, f"nothing was fitted and {out} was not written; fix or move them, "
                               "then rerun")
            from rich.markup import escape

            # what eval traces notes, before fitting on it: disputed labels (two annotators' labels of one run: fit on
            # one), likely off-by-one labels, and re-runs of one task that lack a question id
            traces, warnings = check_labels(traces, files)
            for warning in warnings:
                err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
            if len(traces) < MIN_TRAIN:
                raise InputError(", ".join(paths), "label", f"{len(traces)} labelled traces"
                                 + (f" ({n_unlabelled} unlabelled)" if n_unlabelled else "")
                                 + f"; fitting needs at least {MIN_TRAIN}")
            extra = pool_extra(traces) if pool else []
            if pool and not extra:
                from attrib.evaluate.labelled import who_and_when_traces

                if not who_and_when_traces():
                    err_console.print("[yellow]warning:[/] Who&When is not on this machine (set "
                                      "ATTRIB_WHO_AND_WHEN): fitting on your traces only, as --no-pool would")
            with err_console.status(f"fitting on {len(traces)} traces" + (f" + {len(extra)} Who&When" if extra else "")):
                art = fit_artifact(traces + extra, f"{len(traces)} traces from {', '.join(paths)}"
                                   + (f" + Who&When ({len(extra)})" if extra else ""), step_head=step_head)
            with writing(out):
                out.write_bytes(orjson.dumps(art))
        console.print(f"wrote {out}: fitted on {len(traces)} labelled traces of yours"
                      + (f" + {len(extra)} Who&When logs" if extra else "")
                      + (f" ({n_unlabelled} unlabelled skipped)" if n_unlabelled else "")
                      + f"; use it with `attrib analyze TRACE --model {out}` or ATTRIB_RANKER={out}")
        if line := _few_runs_warning(art["settings"]["with_gt"], pool, paths):
            err_console.print(line, highlight=False, soft_wrap=True)  # one line: a warning, not an error


def _few_runs_warning(ranker: dict, pool: bool, paths: list[str]) -> str | None:
    """The warning `attrib fit` prints when the ranker it wrote rests on few runs or tasks (None: enough)."""
    import shlex

    from rich.markup import escape

    from attrib.methods.ranker_names import few_runs_words

    n_runs, n_tasks = ranker.get("n_train"), ranker.get("n_tasks")
    few = few_runs_words(n_runs, n_tasks) if n_runs is not None and n_tasks is not None else None
    if few is None:
        return None
    evaluate = f"`attrib eval traces {escape(shlex.join(paths))}`"
    # which of alone and pooled is better was measured on your runs by `eval traces` (its advice); say so, rather
    # than tell a user who followed that advice to drop --no-pool
    check = (f"{evaluate} compares it with the pooled fit (without --no-pool) and the shipped ranker on your runs: "
             "keep --no-pool where it scores higher there" if not pool else
             f"set ATTRIB_WHO_AND_WHEN to pool with Who&When, and compare it with the shipped ranker first: {evaluate}")
    return f"[yellow]warning:[/] fitted on {few}: its confidences and 90% step sets are rough; {check}"

