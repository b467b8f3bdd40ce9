"""The inspector shows text from traces and verdicts as written, and says why it cannot read a store.

A Who&When run (``traces/demo_whowhen.json``) whose agent names, question, step texts and annotated reason hold
Markdown and Streamlit's own markup (``**Bold**_Expert``, ``[x](javascript:alert(4))``, ``$x^2$``, ``:red[red]``)
is driven through each page with AppTest: every element that draws Markdown carries that text escaped (so the
browser shows it literally), never raw. ``md_escape`` itself is checked against the rules and, where Chromium is
installed, against what Streamlit's frontend draws. Then: the Evaluation page during another process's write lock,
and a 0-byte store file.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

pytest.importorskip("streamlit")
pytest.importorskip("plotly")

from _shown import shown  # noqa: E402
from _store_lock import hold_write_lock  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from attrib.methods import analyze  # noqa: E402
from attrib.paths import REPO_ROOT  # noqa: E402
from attrib.readers import read_path  # noqa: E402
from attrib.store import open_store  # noqa: E402
from attrib.store.api import ingest  # noqa: E402

APPS = REPO_ROOT / "apps"
sys.path.insert(0, str(APPS))
from inspector_data import WORD_JOINER, md_code, md_escape  # noqa: E402

APP = str(APPS / "inspector.py")

#: the Who&When run's agents renamed (the Computer_terminal stays: it marks the tool steps)
AGENTS = {"UnitConversion_Expert": "**Bold**_Expert", "Verification_Expert": "[x](javascript:alert(4))",
          "Recipe_Expert": "$x^2$_:red[red]"}
#: what each shows as in an element's Markdown source
ESCAPED = {"**Bold**_Expert": r"\*\*Bold\*\*\_Expert", "[x](javascript:alert(4))": r"\[x\](javascript\:alert(4))",
           "$x^2$_:red[red]": r"\$x^2\$\_\:red\[red\]"}
MARKUP = " **bold** [link](javascript:alert(1)) $y^2$ :blue[blue] :smile:"
#: raw markup that must not reach any Markdown element unescaped
RAW = ["**Bold**", "[x](", "$x^2$", ":red[", "**bold**", "[link](", "$y^2$", ":blue[", ":smile:"]
#: the file name gives the id (``whowhen-algorithm-md*run_``): ids are the trace's text too
FILE_NAME = "md*run_.json"
MARKDOWN_KINDS = ("markdown", "caption", "info", "warning", "error", "success", "subheader", "header", "title")


def _markdown_run(path: Path) -> Path:
    d = json.loads((REPO_ROOT / "traces" / "demo_whowhen.json").read_text())
    d["question"] = "Q:" + MARKUP
    for h in d["history"]:
        h["name"] = AGENTS.get(h["name"], h["name"])
        h["content"] += MARKUP
    d["mistake_agent"] = AGENTS[d["mistake_agent"]]
    d["mistake_reason"] = "Reason" + MARKUP
    d["system_prompt"] = {AGENTS.get(k, k): v for k, v in d["system_prompt"].items()}
    path.write_text(json.dumps(d))
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A store holding the Markdown run with its learned and flow-graph verdicts."""
    d = tmp_path_factory.mktemp("mdtext")
    run = _markdown_run(d / FILE_NAME)
    trace = read_path(run)[0]
    assert set(AGENTS.values()) <= set(trace.agents)
    store = d / "store.duckdb"
    with open_store(store) as s:
        assert ingest([run], store=s, progress=False).ok
        verdicts = {m: analyze(trace, m) for m in ("learned", "flow-graph")}
        for a in verdicts.values():
            s.save_attribution(a)
    return {"store": store, "trace": trace, "verdicts": verdicts, "run": run}


@pytest.fixture
def app(env: dict[str, object], monkeypatch: pytest.MonkeyPatch):
    """``app(store=..., page=..., ...)``: the inspector run once in a fresh session (the env store by default)."""
    monkeypatch.setattr(sys, "argv", ["inspector.py"])

    def make(store: Path | None = None, **query: str) -> AppTest:
        monkeypatch.setenv("ATTRIB_STORE", str(store or env["store"]))
        at = AppTest.from_file(APP, default_timeout=60)
        at.query_params.update({"method": "learned", **query})
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return make


def texts(at: AppTest, kind: str) -> list[str]:
    return [str(e.value) for e in at.get(kind)]


def markdown_sources(at: AppTest) -> list[str]:
    """The Markdown of every element that draws it, widget labels and help included."""
    out = [t for kind in MARKDOWN_KINDS for t in texts(at, kind)]
    for w in (*at.button, *at.selectbox, *at.text_input, *at.number_input, *at.radio):
        out += [str(w.label)] + ([str(w.help)] if getattr(w, "help", None) else [])
    return out


def assert_literal(at: AppTest) -> None:
    """No raw markup from the trace in any Markdown element (each shows escaped, as in :data:`ESCAPED`)."""
    for src in markdown_sources(at):
        for raw in RAW:
            assert raw not in src, (raw, src)


# ------------------------------------------------------------------------------------------ the escaping itself
@pytest.mark.parametrize(("text", "escaped"), [
    ("**Bold**_Expert", r"\*\*Bold\*\*\_Expert"),
    ("[x](javascript:alert(4))", r"\[x\](javascript\:alert(4))"),
    ("$x^2$ :red[red] :smile:", r"\$x^2\$ \:red\[red\] \:smile\:"),
    ("<b>html</b> &amp; a|b ~~s~~ `c` a\\b", r"\<b\>html\</b\> \&amp; a\|b \~\~s\~\~ \`c\` a\\b"),
    ("Verification_Expert snake__case _x_ a_", r"Verification_Expert snake__case \_x\_ a\_"),  # intraword: kept
    ("# h", r"\# h"), ("- item", r"\- item"), ("+ item", r"\+ item"), ("1. item", r"1\. item"), ("2) b", r"2\) b"),
    ("> quote", r"\> quote"), ("    code", "code"), ("foo\n---", "foo  \n\\---"), ("a\r\nb", "a  \nb"),
    ("whowhen-algorithm-2 v1.2 (a) ! {x} 100% #tag", "whowhen-algorithm-2 v1.2 (a) ! {x} 100% #tag"),
    ("www.x.com/_a_ me@x.com", r"www\.x.com/\_a\_ me\@x.com"),
    ("a -> b -- c >= d", f"a -{WORD_JOINER}\\> b -{WORD_JOINER}- c \\>{WORD_JOINER}= d"),
    (":material/home: :streamlit:", f"\\:material{WORD_JOINER}/home\\: \\:streamlit{WORD_JOINER}\\:"),
])
def test_md_escape(text: str, escaped: str) -> None:
    assert md_escape(text) == escaped
    # what shows is the text as written, each line's leading blanks aside (HTML drops them too)
    assert shown(escaped) == "  \n".join(line.lstrip() for line in re.split(r"\r\n|\n", text))


def test_md_code_fences_backticks() -> None:
    assert md_code("plain") == "`plain`"
    assert md_code("a`b") == "``a`b``"
    assert md_code("`x") == "`` `x ``"
    assert md_code("two\nlines") == "`two lines`"
    assert md_code(":material/home:") == f"`:material{WORD_JOINER}/home:`"


@pytest.mark.parametrize("text", ["plain", "two\nlines", "a\r\nb", "  indented", "\tcode", "v\x0bt\x85c", "\x1b[2Jx"])
def test_the_apps_escapers_add_only_streamlits_marks_to_the_reports(text: str) -> None:
    """The app's md_code / md_escape are attrib.markdown's plus Streamlit's own marks (``:``, icons, arrows): a text
    without those comes out as in a Markdown report, control characters shown as the reports show them (a vertical
    tab read as a line end in the app only) and leading blanks dropped once."""
    from attrib import markdown

    assert md_code(text) == markdown.md_code(text)
    assert md_escape(text) == markdown.md_escape(text)


# ------------------------------------------------------------------------------------------ each page
def test_timeline_shows_the_trace_text_as_written(app, env) -> None:
    trace, a = env["trace"], env["verdicts"]["learned"]
    assert a.agent == "**Bold**_Expert" and a.step == 1  # the run's decisive step is the renamed agent's
    at = app(page="Timeline", trace=trace.id)
    assert_literal(at)
    assert texts(at, "header") == [r"Trace whowhen-algorithm-md\*run\_"]
    assert f"Decisive step 1 — {ESCAPED['**Bold**_Expert']}" in texts(at, "subheader")
    caption = next(c for c in texts(at, "caption") if " steps · agents: " in c)
    assert caption.endswith("agents: " + ", ".join(md_escape(x) for x in trace.agents))
    assert all(ESCAPED[x] in caption for x in AGENTS.values())
    # the annotation box: agent and reason
    info = next(i for i in texts(at, "info") if i.startswith("Annotated mistake"))
    assert f"**{ESCAPED['**Bold**_Expert']}**, step **1**" in info
    assert r"_Reason \*\*bold\*\* \[link\](javascript\:alert(1)) \$y^2\$ \:blue\[blue\] \:smile\:_" in info
    # the reason quotes the run's agents; the task; the step's label; the step read below
    md = texts(at, "markdown")
    why = next(m for m in md if m.startswith("**Why:** "))
    assert shown(why[len("**Why:** "):]).replace("  \n", "\n") == a.reason and ESCAPED["**Bold**_Expert"] in why
    assert any(m.startswith(r"Q\: \*\*bold\*\*") for m in md)  # the task, in its expander
    assert f"**Step 1 text ({ESCAPED['**Bold**_Expert']}):**" in md
    assert any(m.startswith(f"**Step 1 · {ESCAPED['**Bold**_Expert']}**") for m in md)
    assert trace.steps[1].content in texts(at, "code")  # the step's own text, in its code box, as written
    # the bold labels the app writes are still Markdown
    assert why.startswith("**Why:** ") and info.startswith("Annotated mistake (evaluation label")


def test_compare_shows_agents_and_reasons_as_written(app, env) -> None:
    trace, v = env["trace"], env["verdicts"]
    at = app(page="Compare methods", trace=trace.id)
    at.selectbox(key="cmp_b").set_value("flow-graph").run()
    assert_literal(at)
    md = texts(at, "markdown")
    assert any(m.startswith(f"**learned** → **{ESCAPED['**Bold**_Expert']}**, step **1**") for m in md), md
    b = v["flow-graph"]
    assert any(m.startswith(f"**flow-graph** → **{md_escape(b.agent)}**, step **{b.step}**") for m in md), md
    assert any(f"annotation: {ESCAPED['**Bold**_Expert']}, step 1" in m for m in md), md
    reasons = [c for c in texts(at, "caption") if shown(c) in {a.reason for a in v.values()}]
    assert len(reasons) == 2


def test_flow_graph_names_the_path_as_written(app, env) -> None:
    trace = env["trace"]
    at = app(page="Flow graph", trace=trace.id)
    assert_literal(at)
    line = next(m for m in texts(at, "markdown") if m.startswith("**Blame path**"))
    assert f"1 ({ESCAPED['**Bold**_Expert']})" in line, line


def test_export_preview_is_the_file_as_written(app, env) -> None:
    import inspector_data as data

    trace, a = env["trace"], env["verdicts"]["learned"]
    at = app(page="Export", trace=trace.id)
    assert_literal(at)
    assert texts(at, "header") == [r"Export the report for whowhen-algorithm-md\*run\_"]
    report = data.report(a, trace, "markdown").decode()
    assert r"\*\*Bold\*\*\_Expert" in report and "**Bold**" not in report  # the run's text, escaped as in any report
    assert report.strip() in [c.strip() for c in texts(at, "code")]  # the file itself, not a drawing of it


def test_upload_and_other_pages_show_ids_and_agents_as_written(app, env) -> None:
    import inspector_data as data

    run = env["run"]
    tid = data.read_upload(run.name, run.read_bytes())[0].id  # named after the upload's file name, made safe
    at = app(page="Upload")
    at.file_uploader(key="up_file").set_value((run.name, run.read_bytes(), "application/json")).run()
    assert_literal(at)
    assert texts(at, "success") == [f"Read 1 trace(s): {md_escape(tid)} (10 steps)"]
    assert at.button(key=f"open_up_{tid}").label == f"Open {md_escape(tid)} in the timeline"
    assert md_escape(tid) != tid  # its trailing _ is escaped
    for page in ("Blame", "Inside the model", "Traces"):
        assert_literal(app(page=page, trace=env["trace"].id))


def test_error_boxes_show_file_names_as_written(app, env) -> None:
    """An error line holds the user's file name, path or id; it was drawn as Markdown, so an upload
    ``**Bold**_[x](javascript:alert(4)).json`` that could not be read was named in bold, with a link."""
    name = "**Bold**_[x](javascript:alert(4)).json"
    at = app(page="Upload")
    at.file_uploader(key="up_file").set_value((name, b'{"history": 3}', "application/json")).run()
    assert_literal(at)
    (err,) = texts(at, "error")
    assert shown(err).startswith(f"{name}: ") and "history" in err


@pytest.mark.browser
def test_the_page_shows_the_escaped_text_literally_in_a_browser(env) -> None:
    """What Streamlit's frontend draws of the escaped text: the run's text as written; no bold, link or formula."""
    import inspector_browser as browser

    if reason := browser.why_no_browser():
        pytest.skip(reason)
    tid = quote(env["trace"].id, safe="")
    with browser.serve(env["store"]) as url, browser.browser_page() as page:
        page.goto(f"{url}/?page=Timeline&trace={tid}&method=learned")
        page.get_by_text("Decisive step 1", exact=False).first.wait_for(state="visible")
        main = page.locator("section.stMain, [data-testid=stMain]").first
        body = main.inner_text()
        assert "Decisive step 1 — **Bold**_Expert" in body
        assert "Trace whowhen-algorithm-md*run_" in body and "[x](javascript:alert(4))" in body
        assert "Reason **bold** [link](javascript:alert(1)) $y^2$ :blue[blue] :smile:" in body
        assert main.locator("a[href^='javascript']").count() == 0 and main.locator(".katex").count() == 0
        assert main.locator("strong").filter(has_text=re.compile(r"^\s*bold\s*$", re.I)).count() == 0


# ------------------------------------------------------------------------------------------ unreadable stores
def test_evaluation_page_says_the_store_is_locked(app, env, monkeypatch, tmp_path) -> None:
    """With the store's default trace cached (so the sidebar has no error) and the store locked while the
    Evaluation page asks which runs it holds: the lock line, not "None of these runs is in the store"."""
    store = tmp_path / "locked.duckdb"
    shutil.copy(env["store"], store)
    tid = env["trace"].id
    per = [{"trace_id": tid, "true_agent": "X", "true_step": 1, "steps": [0], "step_hit": 0.0, "agent_hit": 0.0,
            "confidence": 0.9}]
    results = tmp_path / "results"
    results.mkdir()
    (results / "who_and_when.json").write_text(json.dumps({"folds": 5, "subsets": {"algorithm": {
        "step_accuracy": 10.0, "per_trace": per}}}))
    monkeypatch.setenv("ATTRIB_RESULTS_DIR", str(results))
    app(store=store, page="Traces")  # the store's default trace is now cached with the store's stamp
    proc = hold_write_lock(store)
    try:
        at = app(store=store, page="Evaluation")
        assert not at.sidebar.warning  # the cached query found the store readable
        err = texts(at, "error")
        assert len(err) == 1 and "the store is locked by another process" in err[0] and f"(PID {proc.pid})" in err[0]
        assert not any("None of these runs is in the store" in i for i in texts(at, "info"))
        table = next(d.value for d in at.dataframe if "trace_id" in d.value.columns)
        assert "in store" not in table.columns  # not known now: no column of False
    finally:
        proc.kill()
        proc.wait()
    at = app(store=store, page="Evaluation")  # lock gone: the run can be opened again
    table = next(d.value for d in at.dataframe if "trace_id" in d.value.columns)
    assert list(table["in store"]) == [True] and at.selectbox(key="eval_open").options == [tid]
    assert not texts(at, "error")


def test_an_empty_file_is_not_called_a_missing_store(app, tmp_path) -> None:
    """A 0-byte file (from mktemp) is one `attrib ingest` makes a store: the app says it is empty, not absent."""
    store = tmp_path / "empty.duckdb"
    store.touch()
    at = app(store=store, page="Traces")
    warning = at.sidebar.warning[0].value
    assert warning == (f"{md_escape(store)}: the file is empty (0 bytes), not a store yet: "
                       f"`attrib ingest PATH --store {store}` makes it one (or upload a trace)")
    assert "no store here" not in warning
    at = app(store=store, page="Timeline", trace="some-run")
    assert texts(at, "error") == [f"cannot read trace 'some-run': {warning}"]
    assert store.stat().st_size == 0  # the app only reads
