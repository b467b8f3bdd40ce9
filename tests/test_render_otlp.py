"""The verdict as an OTLP span: joins the run's own trace for OTLP input, links the decisive span, is valid
OTLP/JSON (our own OTLP reader reads it back), and ``attrib analyze --otlp`` writes it."""

import re

import orjson
from typer.testing import CliRunner

from attrib.cli import app
from attrib.methods import analyze
from attrib.paths import traces_dir
from attrib.readers import read_path
from attrib.render_otlp import attribution_otlp


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
    (back,) = read_path(out, format="otlp")
    assert back.steps[0].metadata["span_name"] == "attrib.attribution"


def test_cli_analyze_writes_otlp(tmp_path):
    out = tmp_path / "v" / "verdict.otlp.json"
    r = CliRunner().invoke(app, ["analyze", str(traces_dir() / "otlp_agents.json"), "--otlp", str(out)])
    assert r.exit_code == 0, r.output
    assert _span(orjson.loads(out.read_bytes()))["name"] == "attrib.attribution"
