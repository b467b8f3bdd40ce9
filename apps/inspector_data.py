"""The inspector's data layer: store queries, analyses, uploads and result files, with no Streamlit in it.

Everything the pages show comes through here, so it can be tested without a browser and cached by
:mod:`inspector_cache`. The store is opened read-only per query (DuckDB allows many read-only
processes, and a short-lived connection never blocks ``attrib ingest`` for long nor is shared across
Streamlit's script threads). The trace list and its filter choices come from
``Store.page_traces`` / ``Store.facets`` (:mod:`attrib.store.queries`): no SQL lives in the app.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from attrib.errors import AttribError, InputError
from attrib.llm import LLMError
from attrib.markdown import LINE_BREAK, escape_line, lines_of
from attrib.markdown import md_code as code_span
from attrib.render import ranker_name, verdict_ranker  # noqa: F401  (the app's pages use them from here)
from attrib.store.queries import TraceFilter
from attrib.trace import Attribution, Trace

PAGE_SIZE = 50


# ---------------------------------------------------------------------------------------------- text in Markdown
#: Text Streamlit replaces after Markdown has dropped the escapes, so no backslash keeps it: arrows and the like
#: standing alone (``->`` becomes →, ``--`` —, ``>=`` ≥), its ``:material/icon:`` and ``:material_icon:`` icons and
#: its ``:streamlit:`` logo. A word joiner (U+2060, which shows as nothing) between two of their characters does.
_ST_REPLACED = re.compile(r"(?<!\S)(<->|->|<-|--|>=|<=|~=)(?!\S)|(:material)(?=[/_])|(:streamlit)(?=:)")
WORD_JOINER = "\u2060"


def _kept_from_streamlit(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        if m.group(1):
            return WORD_JOINER.join(m.group(1))
        return (m.group(2) or m.group(3)) + WORD_JOINER

    return _ST_REPLACED.sub(one, text)


def md_escape(text: object) -> str:
    """``text`` (from a trace, a verdict, a file: anything the app did not write) for a Streamlit Markdown string,
    so the page shows it as written: ``**Bold**_Expert`` stays so, not bold, ``[x](javascript:...)`` is no link,
    ``$x^2$`` no formula, ``:red[red]`` not red, a line ``# x`` no heading. What Markdown or Streamlit would read is
    escaped with a backslash (:func:`attrib.markdown.escape_line`, the report's escaper, plus every ``:``: escaping
    the first of ``:smile:`` alone still draws the emoji, and ``:red[...]`` is a Streamlit directive), what Streamlit replaces
    after that gets an invisible word joiner (:data:`_ST_REPLACED`); line breaks stay line breaks. The app's own
    Markdown around it (its bold labels, code spans) keeps working. Text inside a code span takes :func:`md_code`
    instead; every element that draws Markdown (``st.markdown``, ``st.caption``, ``st.info`` and the other alerts,
    headers, widget labels and ``help``) takes one of the two for such text."""
    return LINE_BREAK.join(escape_line(_kept_from_streamlit(line), also=":") for line in lines_of(text))


def md_code(text: object) -> str:
    """``text`` as an inline code span that shows it as written (:func:`attrib.markdown.md_code`), Streamlit's
    ``:material/`` icons kept out."""
    return code_span(str(text).replace(":material/", f":material{WORD_JOINER}/"))


def results_dir() -> Path:
    """Where benchmark runs write their JSON (:func:`attrib.paths.results_dir`)."""
    from attrib.paths import results_dir as where

    return where()


#: The trace-list filters live with the store's queries (one home); the pages call them ListFilter.
ListFilter = TraceFilter


def store_arg(argv: Sequence[str]) -> str | None:
    """``--store PATH`` (or ``--store=PATH``) from the script's arguments (what follows ``--``)."""
    for k, a in enumerate(argv):
        if a == "--store" and k + 1 < len(argv):
            return argv[k + 1]
        if a.startswith("--store="):
            return a.split("=", 1)[1]
    return None


def resolve_store_path(argv: Sequence[str]) -> Path:
    """The store to show: ``--store``, else ``$ATTRIB_STORE``, else ``./attrib.duckdb``."""
    from attrib.store import default_path

    given = store_arg(argv)
    return Path(given) if given else default_path()


def store_stamp(path: str | Path) -> tuple[int, int]:
    """A cheap fingerprint of the store file (mtime, size) that keys cached queries, so they refresh on ingest."""
    p = Path(path)
    stamp = (0, 0)
    for f in (p, Path(str(p) + ".wal")):
        if f.exists():
            st = f.stat()
            stamp = (max(stamp[0], st.st_mtime_ns), stamp[1] + st.st_size)
    return stamp


def open_ro(path: str | Path) -> Any:
    """A read-only store connection (raises NotFoundError/InputError with one clear line)."""
    from attrib.store import open_store

    return open_store(path, read_only=True)


def query_page(store: Any, f: ListFilter, page: int = 0, page_size: int = PAGE_SIZE) -> tuple[list[dict[str, Any]], int]:
    """One page of the trace list and the total number of matches (see :meth:`attrib.store.Store.page_traces`)."""
    return store.page_traces(f, page, page_size)


def facets(store: Any) -> dict[str, list[str]]:
    """The values each filter can take (sources, outcomes, agents, analyzed methods, annotated agents)."""
    return store.facets()


def methods() -> tuple[list[str], str]:
    """The registered attribution methods and the default one (empty while none is registered)."""
    from attrib.methods import DEFAULT_METHOD, METHODS

    names = list(METHODS)
    default = DEFAULT_METHOD if DEFAULT_METHOD in METHODS else (names[0] if names else "")
    return names, default


def analyze(trace: Trace, method: str) -> Attribution:
    """Run ``method`` on ``trace`` (the label is stripped by :func:`attrib.methods.analyze`)."""
    from attrib.methods import analyze as _analyze

    return _analyze(trace, method)


def stored_of(stored: Sequence[Attribution], method: str) -> Attribution | None:
    """The verdict of ``method`` among ``stored`` (methods match up to ``_`` / ``-``: flow_graph is flow-graph)."""
    want = method.replace("_", "-")
    return next((a for a in stored if a.method.replace("_", "-") == want), None)



def flow_edges(trace: Trace) -> tuple[list[tuple[int, int, float, str]], int | None, str]:
    """Edges ``(i, j, weight, kinds)`` of the information-flow graph, the failure step, and where they came from."""
    try:
        from attrib.methods import flow_graph
    except ImportError:
        flow_graph = None  # type: ignore[assignment]
    if flow_graph is not None:
        g = flow_graph.build_graph(trace)
        edges = [(int(i), int(j), float(d.get("weight", 1.0)), ", ".join(sorted(d.get("kinds", ()))))
                 for i, j, d in g.edges(data=True)]
        return edges, int(flow_graph.failure_node(trace)), "attrib.methods.flow_graph"
    edges = [(p, s.index, 1.0, "parent") for s in trace.steps for p in s.parents]
    edges += [(i - 1, i, 0.2, "sequence") for i in range(1, trace.n_steps)]
    return edges, trace.n_steps - 1, "parent links and turn order (flow_graph not available)"


def blame_path(trace: Trace, attribution: Attribution, edges: Sequence[tuple[int, int, float, str]],
               failure_step: int | None) -> list[int]:
    """The path from the decisive step to the failure: the method's own evidence, else the flow graph's strongest
    path (``attrib.methods.flow_graph.blame_path``) over ``edges``."""
    ev = attribution.evidence.get("graph_path") if attribution.evidence else None
    if isinstance(ev, list) and all(isinstance(x, int) for x in ev) and ev:
        return ev
    if failure_step is None:
        return [attribution.step]
    import networkx as nx

    g = nx.DiGraph()
    g.add_weighted_edges_from((i, j, w) for i, j, w, _ in edges)
    from attrib.methods.flow_graph import blame_path as strongest

    return strongest(g, attribution.step, failure_step)


# ---------------------------------------------------------------------------------------------- upload
def read_upload(name: str, data: bytes, format: str | None = None) -> list[Trace]:
    """Read an uploaded file exactly as the CLI reads a path (:func:`attrib.readers.read_path`).

    The bytes go to a temporary file named like the upload, so errors name the user's file; the
    temporary folder is stripped from the :class:`InputError` so its one line reads as the CLI's.
    Activation paths the reader resolved into that (deleted) folder are given back as the file wrote them
    (relative): an upload brings no activation files, see :func:`upload_activation_note`.
    """
    from attrib.readers import read_path
    from attrib.trace import with_activation_paths

    safe = re.sub(r"[^A-Za-z0-9._-]", "_", Path(name).name) or "upload.json"
    with tempfile.TemporaryDirectory(prefix="attrib-upload-") as d:
        p = Path(d) / safe
        p.write_bytes(data)
        try:
            traces = read_path(p, format=format)
        except InputError as e:
            raise InputError(name, e.field, e.message) from None
        base = Path(d).resolve()

        def unresolve(path: str) -> str:
            q = Path(path)
            try:
                return q.resolve().relative_to(base).as_posix()
            except ValueError:  # absolute in the file, or found beside the working directory: kept
                return path

        return [with_activation_paths(t, unresolve) for t in traces]


def upload_activation_note(trace: Trace, name: str | None = None) -> str | None:
    """Why an uploaded trace's recorded steps show no activations, or None when it has no relative activation paths
    (Markdown: the file's name, the trace's id and its folder are escaped).

    A browser upload carries the one trace file, not the ``.safetensors``/``.npz`` files its steps point to beside
    it, so those steps are shown without them; ingesting the file from its folder keeps them.
    """
    missing = [s for s in trace.steps if s.activation is not None and not Path(s.activation.path).is_absolute()]
    if not missing:
        return None
    folders = sorted({Path(s.activation.path).parts[0] for s in missing if s.activation is not None
                      and len(Path(s.activation.path).parts) > 1})
    where = f"in {md_code(folders[0] + '/')} beside the file" if len(folders) == 1 else "beside the file"
    file = name or "FILE"
    return (f"{md_escape(name or trace.id)}: {len(missing)} recorded step(s) keep their activations {where}, and an "
            f"uploaded file cannot bring those along. Run {md_code(f'attrib ingest {file} --store PATH')} where the "
            "file sits with its activation files, then open the trace from the store (`attrib app --store PATH`); "
            "the rest of the trace is shown here.")


# ---------------------------------------------------------------------------------------------- results
def _read_json(p: Path) -> Any:
    try:
        return orjson.loads(p.read_bytes())
    except (OSError, orjson.JSONDecodeError) as e:
        raise InputError(p, None, f"cannot read result JSON ({e})") from None


def eval_results(directory: Path | None = None) -> dict[str, Any]:
    """Every ``who_and_when*.json`` benchmark result, by file name."""
    d = directory or results_dir()
    return {p.name: _read_json(p) for p in sorted(d.glob("who_and_when*.json"))}


def _scalars(r: dict[str, Any]) -> dict[str, Any]:
    """The scalar fields of a result row, with 95 % intervals (``*_ci``: [low, high]) and paired gains
    (``*_gain_vs_floor``: {mean, ci_low, ci_high}) written as short text."""
    row: dict[str, Any] = {}
    for k, v in r.items():
        if isinstance(v, int | float | str | bool) or v is None:
            row[k] = v
        elif k.endswith("_ci") and isinstance(v, list) and len(v) == 2:
            row[k] = f"{v[0]:.0f}-{v[1]:.0f}"
        elif k.endswith("_vs_floor") and isinstance(v, dict) and {"mean", "ci_low", "ci_high"} <= set(v):
            row[k] = f"{v['mean']:+.1f} ({v['ci_low']:+.1f} to {v['ci_high']:+.1f})"
    return row


#: Metric fields that mark a dict as one method's numbers (``subsets.<subset>.<method>.{...}`` layout).
METRICS = ("step_accuracy", "agent_accuracy")


def _method_map(body: Any) -> dict[str, dict[str, Any]] | None:
    """``body`` as ``{method: {metrics}}`` when it is one subset of a per-method result (the judge benchmark,
    ``bench/who_and_when/judge.py``: ``subsets.<subset>.<method>.{n, step_accuracy, agent_accuracy, ...}``), else
    None (a default-method summary: metrics at its top level)."""
    if not isinstance(body, dict) or not body or any(k in body for k in METRICS):
        return None
    if not all(isinstance(v, dict) for v in body.values()):
        return None
    return body if any(any(k in v for k in METRICS) for v in body.values()) else None


def _subset_bodies(result: dict[str, Any]) -> Iterator[tuple[str, str, Any]]:
    """``(subset, setting, body)`` for every per-subset result: under ``subsets`` (the file's setting, else with_gt:
    the benchmarks show the ground-truth answer unless they say otherwise), then under ``subsets_without_gt``.
    A section that is not a mapping is skipped; ``body`` is given as the file holds it (callers check its type)."""
    for key, setting in (("subsets", str(result.get("setting") or "with_gt")), ("subsets_without_gt", "without_gt")):
        subsets = result.get(key)
        if isinstance(subsets, dict):
            for subset, body in subsets.items():
                yield subset, setting, body


def eval_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-method rows of a harness result (method, subset, protocol, setting, accuracies), scalars and text only.

    Rows sit under ``rows`` (one ``evaluate`` call), ``settings.<with_gt|without_gt>.rows`` (the benchmark), or
    per subset and method under ``subsets.<subset>.<method>`` (the judge benchmark).
    """
    if not isinstance(result, dict):
        return []
    found: list[tuple[str | None, Any]] = [(result.get("setting"), result.get("rows"))]
    for name, body in (result.get("settings") or {}).items():
        if isinstance(body, dict):
            found.append((name, body.get("rows")))
    for subset, subset_setting, body in _subset_bodies(result):
        by_method = _method_map(body)
        if by_method is not None:
            found.append((subset_setting, [{"method": m, "subset": subset, "setting": subset_setting, **v}
                                    for m, v in by_method.items()]))
    out = []
    for setting, rows in found:
        for r in rows if isinstance(rows, list) else []:
            if isinstance(r, dict):
                row = _scalars(r)
                if setting and "setting" not in row:
                    row["setting"] = setting
                out.append(row)
    return out


def published_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Published anchors carried in a result (``published.<method>.<subset>.{agent,step}_accuracy``)."""
    out = []
    for m, by_subset in (result.get("published") or {}).items():
        for s, v in (by_subset or {}).items():
            if isinstance(v, dict):
                out.append({"method": m, "subset": s, **v})
    return out


def eval_table(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The default method's summary, one row per subset and setting, from ``subsets`` (and ``subsets_without_gt``):
    ``{step_accuracy, agent_accuracy, ece, ...}``. Subsets holding every method's numbers instead (the judge
    benchmark) are not a default-method summary: :func:`eval_rows` shows them."""
    rows = []
    for subset, setting, body in _subset_bodies(result):
        if not isinstance(body, dict) or _method_map(body) is not None:
            continue
        row: dict[str, Any] = {"subset": subset, "setting": setting}
        row.update(_scalars(body))
        rows.append(row)
    return rows


def out_of_sample(result: Any) -> bool:
    """True when a result file records the harness's out-of-sample protocol: ``folds`` (k >= 2 folds grouped by
    question, what :func:`attrib.evaluate.harness.evaluate` and ``bench/who_and_when/run.py`` write). The judge
    benchmark (``bench/who_and_when/judge.py``: ``model``, ``fold_seed``, no ``folds``) does not say so for its rows,
    most of which fit nothing, so its page makes no such claim."""
    k = result.get("folds") if isinstance(result, dict) else None
    return isinstance(k, int) and not isinstance(k, bool) and k >= 2


def eval_misses(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The default method's wrong step verdicts (``subsets*.<subset>.per_trace``), the most confident first: where
    to start reading when the blame is wrong."""
    rows = []
    for subset, setting, body in _subset_bodies(result):
        for r in (body or {}).get("per_trace") or [] if isinstance(body, dict) else []:
            if isinstance(r, dict) and r.get("step_hit", 1.0) < 1.0:
                rows.append({"subset": subset, "setting": setting, "trace_id": r.get("trace_id"),
                             "annotated": f"{r.get('true_agent')} @ {r.get('true_step')}",
                             "verdict steps": ", ".join(map(str, r.get("steps", []))),
                             "step hit": r.get("step_hit"), "agent hit": r.get("agent_hit"),
                             "confidence": r.get("confidence")})
    return sorted(rows, key=lambda r: -(r["confidence"] or 0.0))


def read_json_file(path: str | Path) -> Any:
    """A result JSON file's content, or None when the file does not exist (bad JSON: InputError)."""
    p = Path(path)
    return _read_json(p) if p.exists() else None


def heads_result(directory: Path | None = None) -> dict[str, Any] | None:
    """``bench/results/heads.json`` (the head localization benchmark), or None when it has not been run."""
    return read_json_file((directory or results_dir()) / "heads.json")


def find_matrix(obj: Any, keys: Sequence[str] = ("scores", "S", "score_matrix", "drift", "heatmap")) -> list | None:
    """A layer × head matrix (list of equal-length numeric lists) under one of ``keys``, searched depth-first."""
    if isinstance(obj, dict):
        for k in keys:
            v = obj.get(k)
            if _is_matrix(v):
                return v
        for v in obj.values():
            m = find_matrix(v, keys)
            if m is not None:
                return m
    return None


def _is_matrix(v: Any) -> bool:
    return (isinstance(v, list) and len(v) > 0 and all(isinstance(r, list) and r for r in v)
            and len({len(r) for r in v}) == 1
            and all(x is None or (isinstance(x, int | float) and not isinstance(x, bool)) for r in v for x in r))


def focal_heads(obj: Any) -> list[tuple[int, int]]:
    """``[(layer, head), ...]`` from a heads result (``focal_heads`` as pairs or as ``{layer, head}``)."""
    if not isinstance(obj, dict):
        return []
    raw = obj.get("focal_heads")
    if raw is None:
        for v in obj.values():
            if isinstance(v, dict) and "focal_heads" in v:
                raw = v["focal_heads"]
                break
    if raw is not None and not isinstance(raw, list):
        raise InputError(None, "focal_heads", f"expected a list of [layer, head], got {type(raw).__name__}")
    out = []
    for k, h in enumerate(raw or []):
        if isinstance(h, list | tuple) and len(h) >= 2:
            out.append((head_index(h[0], f"focal_heads[{k}][0]"), head_index(h[1], f"focal_heads[{k}][1]")))
        elif isinstance(h, dict) and "layer" in h and "head" in h:
            out.append((head_index(h["layer"], f"focal_heads[{k}].layer"),
                        head_index(h["head"], f"focal_heads[{k}].head")))
        else:
            raise InputError(None, f"focal_heads[{k}]", f"expected [layer, head], got {h!r}")
    return out


def head_index(value: Any, field: str) -> int:
    """A layer or head index from a result file, or InputError naming the field."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value) or value < 0:
        raise InputError(None, field, f"expected a non-negative integer, got {value!r}")
    return int(value)


def report(attribution: Attribution, trace: Trace, kind: str) -> bytes:
    """The report the CLI exports, as bytes for a download: ``kind`` is 'markdown' or 'json'."""
    return attribution.to_json() if kind == "json" else attribution.to_markdown(trace).encode()


def error_line(e: BaseException) -> str:
    """The one line the CLI prints for an attrib error (anything else: its type and message); an LLM error's hints
    name the environment variables the app reads, not the CLI's ``--llm-*`` flags (the app has none)."""
    if isinstance(e, LLMError):
        return e.line("app")
    return str(e) if isinstance(e, AttribError) else f"{type(e).__name__}: {e}"


def error_md(e: BaseException) -> str:
    """:func:`error_line` for a Markdown element (``st.error``): it holds paths, file names and ids as the user
    wrote them, so it is shown as written (:func:`md_escape`)."""
    return md_escape(error_line(e))
