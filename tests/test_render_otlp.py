"""The verdict as an OTLP span: joins the run's own trace for OTLP input, links the decisive span, is valid
OTLP/JSON (our own OTLP reader reads it back), and ``attrib analyze --otlp`` writes it."""

import re

import orjson
import pytest
from typer.testing import CliRunner

from attrib.cli import app
from attrib.errors import InputError
from attrib.methods import analyze
from attrib.paths import traces_dir
from attrib.readers import read_path
from attrib.render_otlp import attribution_otlp, trace_otlp


def _span(d):
    (rs,) = d["resourceSpans"]
    (span,) = rs["scopeSpans"][0]["spans"]
    return span


def _attrs(kvs):
    return {kv["key"]: next(iter(kv["value"].values())) for kv in kvs}


def test_otlp_input_joins_its_trace_and_links_the_decisive_span():
    path = traces_dir() / "otlp_agents.json"
    (trace,) = read_path(path)
    a = analyze(trace)
    span = _span(a.to_otlp(trace, top_k=3))
    src_ids = {s["traceId"] for rs in orjson.loads(path.read_bytes())["resourceSpans"]
               for ss in rs["scopeSpans"] for s in ss["spans"]}
    assert span["traceId"] in src_ids
    at = _attrs(span["attributes"])
    decisive = trace.steps[a.step].metadata["span_id"]
    assert at["attrib.step"] == str(a.step) and at["attrib.agent"] == a.agent
    assert at["attrib.decisive_span_id"] == decisive and span["links"][0]["spanId"] == decisive
    steps = [int(v["intValue"]) for v in at["attrib.step_set"]["values"]]  # the conformal set, an OTLP int array
    assert steps == a.evidence["step_set"]["steps"] and a.step in steps and at["attrib.step_set_level"] == 0.9
    cands = [_attrs(e["attributes"]) for e in span["events"] if e["name"] == "attrib.candidate"]
    assert [c["attrib.rank"] for c in cands] == ["1", "2", "3"] and all("attrib.span_id" in c for c in cands)
    assert sum(e["name"] == "attrib.agent_blame" for e in span["events"]) == len(a.agents)


def test_other_formats_get_a_stable_trace_id_and_the_file_reads_back(tmp_path):
    (trace,) = read_path(traces_dir() / "demo_whowhen.json")
    a = analyze(trace)
    d1, d2 = attribution_otlp(a, trace, now_ns=10**18), attribution_otlp(a, trace, now_ns=2 * 10**18)
    s1, s2 = _span(d1), _span(d2)
    assert s1["traceId"] == s2["traceId"] and re.fullmatch(r"[0-9a-f]{32}", s1["traceId"])
    assert re.fullmatch(r"[0-9a-f]{16}", s1["spanId"]) and "links" not in s1
    out = tmp_path / "verdict.json"
    out.write_bytes(orjson.dumps(d1))
    with pytest.raises(InputError, match="holds only attrib verdicts"):  # a verdict alone is no run
        read_path(out, format="otlp")


def test_cli_analyze_writes_otlp(tmp_path):
    out = tmp_path / "v" / "verdict.otlp.json"
    r = CliRunner().invoke(app, ["analyze", str(traces_dir() / "otlp_agents.json"), "--otlp", str(out)])
    assert r.exit_code == 0, r.output
    assert _span(orjson.loads(out.read_bytes()))["name"] == "attrib.attribution"


def test_a_chat_run_exports_as_spans_with_the_verdict_and_reads_back(tmp_path):
    from attrib.paths import who_and_when_dir
    from attrib.render_otlp import trace_otlp

    hand = who_and_when_dir("hand") / "1.json"  # Orchestrator (-> WebSurfer): raw names the features read
    for path in (traces_dir() / "demo_whowhen.json", traces_dir() / "chat_autogen.jsonl", hand):
        name = path.name
        (trace,) = read_path(path)
        a = analyze(trace)
        d = trace_otlp(trace, a, top_k=3, now_ns=10**18)
        spans = d["resourceSpans"][0]["scopeSpans"][0]["spans"]
        assert len(spans) == trace.n_steps + 1 and len({s["traceId"] for s in spans}) == 1
        verdict = spans[-1]
        assert verdict["name"] == "attrib.attribution"
        decisive = spans[a.step]["spanId"]
        assert verdict["links"][0]["spanId"] == decisive
        assert _attrs(verdict["attributes"])["attrib.decisive_span_id"] == decisive
        out = tmp_path / f"{name}.otlp.json"
        out.write_bytes(orjson.dumps(d))
        (back,) = read_path(out)  # detected as OTLP; the verdict span is not a step
        assert back == trace and back.content_hash() == trace.content_hash()  # the very same trace
        assert trace_otlp(back, a, top_k=3, now_ns=10**18) == d  # so the same spans, ids and links again
        again = analyze(back)  # the same run, so the same verdict
        assert (again.step, again.agent, again.confidence) == (a.step, a.agent, a.confidence)


def test_cli_writes_the_steps_for_non_otlp_input(tmp_path):
    out = tmp_path / "run.otlp.json"
    path = traces_dir() / "demo_whowhen.json"
    r = CliRunner().invoke(app, ["analyze", str(path), "--otlp", str(out)])
    assert r.exit_code == 0, r.output
    (trace,) = read_path(path)
    spans = orjson.loads(out.read_bytes())["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert [s["name"] for s in spans][-1] == "attrib.attribution" and len(spans) == trace.n_steps + 1


def test_a_corrupt_exported_step_is_a_one_line_error(tmp_path):
    from attrib.render_otlp import trace_otlp

    (trace,) = read_path(traces_dir() / "demo_whowhen.json")
    d = trace_otlp(trace, now_ns=10**18)
    span = d["resourceSpans"][0]["scopeSpans"][0]["spans"][2]
    for kv in span["attributes"]:
        if kv["key"] == "attrib.step_json":
            kv["value"]["stringValue"] = '{"index": 2, "agent": 7}'
    bad = tmp_path / "bad.json"
    bad.write_bytes(orjson.dumps(d))
    with pytest.raises(InputError, match=r"bad\.json.*attrib\.step_json"):
        read_path(bad)


def test_a_verdict_beside_its_run_is_never_a_step_and_alone_is_passed_over(tmp_path):
    path = traces_dir() / "otlp_agents.json"
    (trace,) = read_path(path)
    verdict = _span(attribution_otlp(analyze(trace), trace, now_ns=10**18))
    doc = orjson.loads(path.read_bytes())
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"].append(verdict)  # a collector that got both
    both = tmp_path / "both.json"
    both.write_bytes(orjson.dumps(doc))
    assert read_path(both) == [trace]
    # a second trace id that holds only a verdict: the verdict on a run read from OTLP, which a multi-run
    # `attrib analyze --otlp` file holds without the run's spans. It used to fail the whole file, so a file attrib
    # wrote itself did not read back; it is passed over, and the run the file holds reads back
    other = {**verdict, "traceId": "f" * 32}
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"].append(other)
    both.write_bytes(orjson.dumps(doc))
    assert read_path(both) == [trace]


def test_a_multi_run_verdict_file_reads_back_its_runs(tmp_path):
    """`attrib analyze` of an OTLP run and a chat run with --otlp writes one file: the OTLP run's verdict in that run's
    trace (its spans stay in the original file) and the chat run with its steps. Reading it back failed on the first
    ("holds only attrib verdicts"); the chat run now comes back, the very same trace."""
    out = tmp_path / "v.json"
    runs = [str(traces_dir() / "otlp_agents.json"), str(traces_dir() / "chat_langgraph.json")]
    assert CliRunner().invoke(app, ["analyze", *runs, "--otlp", str(out)]).exit_code == 0
    (chat,) = read_path(traces_dir() / "chat_langgraph.json")
    assert read_path(out) == [chat]


def test_cli_a_verdict_file_never_replaces_the_run_in_the_store(tmp_path):
    store, verdict = str(tmp_path / "s.duckdb"), tmp_path / "verdict.json"
    run = CliRunner()
    path = str(traces_dir() / "otlp_agents.json")
    assert run.invoke(app, ["analyze", path, "--otlp", str(verdict)]).exit_code == 0
    assert run.invoke(app, ["ingest", path, "--store", store, "-q"]).exit_code == 0
    r = run.invoke(app, ["ingest", str(verdict), "--store", store])
    assert r.exit_code == 3 and "holds only attrib verdicts (attrib.attribution spans)" in r.output
    r = run.invoke(app, ["analyze", str(verdict)])
    assert r.exit_code == 3 and "no run to analyze" in r.output
    from attrib.store import open_store

    (trace,) = read_path(path)
    with open_store(store) as st:
        assert st.get_trace(trace.id) == trace


def test_reingesting_an_export_keeps_the_saved_verdicts(tmp_path, whowhen_dir):
    from attrib.render_otlp import trace_otlp
    from attrib.store import open_store

    (trace,) = read_path(whowhen_dir / "Hand-Crafted" / "1.json")
    a = analyze(trace)
    out = tmp_path / "run.otlp.json"
    out.write_bytes(orjson.dumps(trace_otlp(trace, a)))
    with open_store(tmp_path / "s.duckdb") as st:
        assert st.upsert_trace(trace)
        st.save_attribution(a)
        assert st.upsert_traces(read_path(out)) == [False]  # unchanged content: a no-op
        assert len(st.get_attributions(trace.id)) == 1


def test_non_hex_span_ids_get_valid_derived_ids_with_the_original_kept(tmp_path):
    """A TRAIL-style flat span list says ``s3``; collectors need 16 hex digits for a span id, 32 for a trace id."""
    spans = [{"span_id": "s1", "span_name": "Manager", "timestamp": "2025-03-19T16:44:40Z",
              "span_attributes": {"openinference.span.kind": "AGENT", "input.value": "Sum 2 and 2.",
                                  "output.value": "5"},
              "child_spans": [
                  {"span_id": "s2", "span_name": "Adder", "timestamp": "2025-03-19T16:44:41Z",
                   "span_attributes": {"openinference.span.kind": "LLM",
                                       "llm.output_messages.0.message.content": "2 + 2 = 5"}},
                  {"span_id": "s3", "span_name": "Checker", "timestamp": "2025-03-19T16:44:42Z",
                   "span_attributes": {"openinference.span.kind": "LLM",
                                       "llm.output_messages.0.message.content": "Looks right: 5."}}]}]
    path = tmp_path / "trail.json"
    path.write_bytes(orjson.dumps({"trace_id": "trail-1", "spans": spans}))
    (trace,) = read_path(path)
    a = analyze(trace)
    span = _span(a.to_otlp(trace, top_k=3))
    hex16, hex32 = re.compile(r"[0-9a-f]{16}"), re.compile(r"[0-9a-f]{32}")
    assert hex32.fullmatch(span["traceId"]) and hex16.fullmatch(span["spanId"])
    (link,) = span["links"]
    assert link["traceId"] == span["traceId"] and hex16.fullmatch(link["spanId"])
    at = _attrs(span["attributes"])
    assert at["attrib.decisive_span_id"] == link["spanId"]
    assert at["attrib.decisive_span_original_id"] == trace.steps[a.step].metadata["span_id"]
    cands = [_attrs(e["attributes"]) for e in span["events"] if e["name"] == "attrib.candidate"]
    assert cands and all(hex16.fullmatch(c["attrib.span_id"]) for c in cands)
    assert [c["attrib.span_original_id"] for c in cands] == \
        [trace.steps[int(c["attrib.step"])].metadata["span_id"] for c in cands]
    run = a.to_otlp(trace, top_k=3, with_steps=True)["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert run[a.step]["spanId"] == link["spanId"]  # the link points at the step's span when the run is written too
    assert all(hex16.fullmatch(s["spanId"]) and s["traceId"] == span["traceId"] for s in run)


def test_an_otlp_run_with_agent_totals_round_trips_through_analyze_otlp(tmp_path):
    """An agent span's run totals are metadata, not the step's tokens: the verdict file beside the run, and the
    run exported step by step, both read back as the very same trace, totals included."""
    from pathlib import Path

    from attrib.render_otlp import trace_otlp

    path = Path(__file__).parent / "fixtures" / "otlp_smolagents.json"
    (trace,) = read_path(path)
    run = trace.steps[0]
    assert (run.tokens_in, run.metadata["tokens_in_total"]) == (None, 9120)
    used = sum(s.tokens_in or 0 for s in trace.steps)
    out = tmp_path / "verdict.json"
    r = CliRunner().invoke(app, ["analyze", str(path), "--otlp", str(out)])
    assert r.exit_code == 0, r.output
    doc = orjson.loads(path.read_bytes())
    doc["resourceSpans"] += orjson.loads(out.read_bytes())["resourceSpans"]  # a collector that got both
    both = tmp_path / "both.json"
    both.write_bytes(orjson.dumps(doc))
    assert read_path(both) == [trace]
    exported = tmp_path / "steps.json"
    exported.write_bytes(orjson.dumps(trace_otlp(trace, analyze(trace), now_ns=10**18)))
    (back,) = read_path(exported)
    assert back == trace and back.content_hash() == trace.content_hash()
    assert sum(s.tokens_in or 0 for s in back.steps) == used and back.steps[0].metadata["tokens_out_total"] == 412


def test_the_span_says_what_kind_of_number_its_confidence_is():
    """A flow-graph verdict's 0.43 is a score, not a probability, and the reports call it so; the span said only
    `attrib.confidence=0.43`. It now carries the method's `confidence_kind`."""
    (trace,) = read_path(traces_dir() / "demo_whowhen.json")
    kinds = {m: _attrs(_span(attribution_otlp(analyze(trace, m), trace, now_ns=10**18))["attributes"])
             .get("attrib.confidence_kind") for m in ("learned", "flow-graph")}
    assert kinds["learned"] == "calibrated" and "not calibrated" in kinds["flow-graph"]


def test_a_chat_run_exported_nests_tool_steps_under_their_caller_and_shows_the_call(tmp_path):
    """A chat run's export showed a step that only calls a tool with an empty output.value, and its tool result as
    a root span, though the trace records the call (Step.parents): a viewer did not nest the tool under its caller.
    The run still reads back as the very same trace."""
    (trace,) = read_path(traces_dir() / "chat_autogen.jsonl")
    spans = orjson.loads(orjson.dumps(trace_otlp(trace)))["resourceSpans"][0]["scopeSpans"][0]["spans"]
    by_step = {int(_attrs(sp["attributes"])["attrib.step"]): sp for sp in spans}
    child = next(s for s in trace.steps if s.parents)
    caller = by_step[max(child.parents)]
    assert by_step[child.index]["parentSpanId"] == caller["spanId"]
    calls = [s for s in trace.steps if s.tool_calls and not s.content]
    assert calls and all(_attrs(by_step[s.index]["attributes"])["output.value"].startswith("→ ") for s in calls)
    out = tmp_path / "run.json"
    out.write_bytes(orjson.dumps(trace_otlp(trace)))
    assert read_path(out) == [trace]
