"""LLM judges (attrib.methods.judge): plumbing, parsing and corrective retries against a scripted HTTP
server with known answers, and end to end against llama-cpp-python's server with SmolLM2-135M on a
real Who&When log (the 135M model is weak: we check the verdict is valid, not that it is right)."""

from __future__ import annotations

import json
import math
import re

import msgspec
import orjson
import pytest

import attrib.methods as registry
from attrib.errors import AttribError, NoVerdictError
from attrib.llm import LLMConfig, LLMUnavailableError
from attrib.methods import judge
from attrib.paths import who_and_when_dir
from attrib.readers.whowhen import parse_whowhen
from attrib.trace import Attribution, Step, Trace

try:
    from tests._llm_servers import LLAMA, ScriptedServer, free_port
except ImportError:  # rootdir-less import mode
    from _llm_servers import LLAMA, ScriptedServer, free_port

JUDGES = ("judge-all", "judge-step", "judge-binary", "judge-hybrid")


@pytest.fixture(scope="session")
def llama_url():
    url = LLAMA.start()
    yield url
    LLAMA.stop()


@pytest.fixture(scope="module")
def whowhen_trace() -> Trace:
    """A real, short Algorithm-Generated log (5 steps, 3 agents)."""
    path = who_and_when_dir("algorithm") / "12.json"
    return parse_whowhen(orjson.loads(path.read_bytes()), path).unlabelled()


def toy_trace(n: int = 6) -> Trace:
    agents = ["Planner", "WebSurfer", "Coder"]
    steps = tuple(Step(index=i, agent=agents[i % 3], content=f"message {i}") for i in range(n))
    return Trace(id="toy", source_format="test", steps=steps, task="What is 2+2?", ground_truth="4")


def cfg(url: str, **kw) -> LLMConfig:
    return LLMConfig(base_url=url, model="scripted", backoff_s=0.01, timeout_s=10, **kw)


def verdict(agent: str, step: int, conf: float = 0.7) -> str:
    return json.dumps({"reason": "because", "agent": agent, "step": step, "confidence": conf})


# -- registry and pure helpers -------------------------------------------------------------------


def test_judges_are_registered():
    for name in JUDGES:
        assert callable(registry.get_method(name))


def test_step_budget_and_truncation_keep_long_traces_within_the_documented_budget():
    assert judge.step_budget(10, context_chars=48_000, step_chars=2_000) == 2_000
    assert judge.step_budget(1_000, context_chars=48_000, step_chars=2_000) == 160  # floor
    assert judge.step_budget(100, context_chars=48_000, step_chars=2_000) == 480
    long = "HEAD " + "x" * 10_000 + " TAIL"
    cut = judge.truncate_middle(long, 300)
    assert len(cut) <= 300 and cut.startswith("HEAD") and cut.endswith("TAIL") and "chars cut" in cut
    steps = tuple(Step(index=i, agent="A", content=long) for i in range(130))
    text = judge.render_steps(steps, judge.step_budget(130))
    assert len(text) < 130 * (judge.step_budget(130) + 20)
    assert text.count("Step ") == 130


def test_answer_validators():
    agents = ("Orchestrator", "WebSurfer", "Data_Analysis_Expert")
    assert judge.match_agent("websurfer", agents) == "WebSurfer"
    assert judge.match_agent("Data Analysis Expert", agents) == "Data_Analysis_Expert"
    assert judge.match_agent("The Orchestrator agent", agents) == "Orchestrator"
    with pytest.raises(judge.VerdictProblem, match="unknown agent"):
        judge.match_agent("Nobody", agents)
    assert judge.parse_step("Step 3", 0, 5) == 3 and judge.parse_step(2.0, 0, 5) == 2
    for bad in (7, -1, "three", True, None):
        with pytest.raises(judge.VerdictProblem):
            judge.parse_step(bad, 0, 5)
    assert judge.parse_confidence("80%") == 0.8 and judge.parse_confidence(0.25) == 0.25
    assert judge.parse_confidence(None) is None and judge.parse_confidence(4) is None
    assert judge.parse_half("the lower half") == "lower" and judge.parse_yes_no("Yes.") is True
    with pytest.raises(judge.VerdictProblem):
        judge.parse_half("both")


# -- scripted server: corrective retries, strategies' control flow ------------------------------------


def test_all_at_once_corrects_malformed_unknown_agent_and_out_of_range_step():
    t = toy_trace()
    script = ["I think it was the planner.", verdict("Nobody", 2), verdict("Coder", 99), verdict("coder", 5, 0.9)]
    with ScriptedServer(script) as srv:
        att = registry.analyze(t, method="judge-all", llm=cfg(srv.url), answer_retries=3)
    assert isinstance(att, Attribution)
    assert (att.agent, att.step, att.confidence, att.method) == ("Coder", 5, 0.9, "judge-all")
    assert att.evidence["llm_calls"] == 4 and att.evidence["answer_corrections"] == 3
    bodies = srv.chat_bodies
    corrections = [b["messages"][-1]["content"] for b in bodies[1:]]
    assert "no JSON object" in corrections[0]
    assert "unknown agent 'Nobody'" in corrections[1]
    assert "step 99 is out of range" in corrections[2] and "between 0 and 5" in corrections[2]
    assert bodies[0]["response_format"]["json_schema"]["schema"]["properties"]["agent"]["enum"] == list(t.agents)


def test_evidence_sums_the_token_usage_the_server_reports():
    t = toy_trace()
    with ScriptedServer(["not json", verdict("Coder", 2)]) as srv:  # each answer reports 1 + 1 = 2 tokens
        att = judge.all_at_once(t, llm=cfg(srv.url))
    assert att.evidence["tokens"] == {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}


def test_http_errors_then_good_answer_are_retried_below_the_judge():
    with ScriptedServer([(500, "oops"), (503, "busy"), verdict("WebSurfer", 1)]) as srv:
        att = judge.all_at_once(toy_trace(), llm=cfg(srv.url))
    assert (att.agent, att.step) == ("WebSurfer", 1)
    assert att.evidence["http_retries"] == 2 and att.evidence["llm_calls"] == 1


def test_the_model_lookup_is_not_the_first_traces_request():
    """A process checks the model once (GET /models), on its first trace: counted into that trace's
    `http_requests`, a batch's verdicts differed by which worker judged first."""
    with ScriptedServer([verdict("Coder", 2)]) as srv:
        config = cfg(srv.url, max_retries=0)
        first = judge.all_at_once(toy_trace(), llm=config)
        second = judge.all_at_once(toy_trace(), llm=config)
    assert [r[0] for r in srv.requests].count("GET") == 1  # one lookup, made for the first trace
    assert first.evidence["http_requests"] == second.evidence["http_requests"] == 1


def test_no_verdict_after_retries_is_a_clear_error():
    with ScriptedServer([verdict("Ghost", 1)]) as srv, pytest.raises(NoVerdictError) as e:
        judge.all_at_once(toy_trace(), llm=cfg(srv.url), answer_retries=1)
    msg = str(e.value)
    assert "judge-all" in msg and "after 2 attempts" in msg and "unknown agent 'Ghost'" in msg
    assert e.value.exit_code == 5
    assert len(srv.chat_bodies) == 2


def test_a_verdict_whose_agent_did_not_write_the_step_gets_one_corrective_round():
    t = toy_trace()  # step 1 is WebSurfer's, step 2 Coder's
    with ScriptedServer([verdict("Coder", 1), verdict("Coder", 2, 0.8)]) as srv:
        att = judge.all_at_once(t, llm=cfg(srv.url))
    assert (att.agent, att.step, att.confidence) == ("Coder", 2, 0.8)
    assert att.evidence["agent_matches_step"] is True
    assert att.evidence["agent_step_mismatch"] == {"agent": "Coder", "step": 1, "author": "WebSurfer"}
    second = srv.chat_bodies[1]["messages"]
    assert second[-2]["role"] == "assistant" and json.loads(second[-2]["content"])["step"] == 1  # the same conversation
    assert "Step 1 was written by WebSurfer, not Coder: name the step Coder made the mistake at, or name WebSurfer" \
        in second[-1]["content"]
    with ScriptedServer([verdict("Coder", 2)]) as srv:  # a consistent answer: one call, no correction
        att = judge.all_at_once(t, llm=cfg(srv.url))
    assert att.evidence["agent_matches_step"] is True and "agent_step_mismatch" not in att.evidence
    assert len(srv.chat_bodies) == 1


def test_a_verdict_still_mismatched_keeps_the_step_and_takes_its_author():
    t = toy_trace()
    for name in ("judge-all", "judge-hybrid"):
        with ScriptedServer([verdict("Coder", 1)]) as srv:
            att = registry.analyze(t, method=name, llm=cfg(srv.url))
        assert (att.agent, att.step) == ("WebSurfer", 1) and len(srv.chat_bodies) == 2
        assert att.evidence["agent_matches_step"] is False and att.evidence["judge_agent"] == "Coder"
        assert "named Coder for step 1, which WebSurfer wrote, even when asked again" in att.reason
        assert att.steps[0].agent == att.agent


def test_cli_analyze_runs_a_judge_against_the_given_endpoint(monkeypatch):
    from typer.testing import CliRunner

    from attrib.cli import app

    monkeypatch.delenv("ATTRIB_LLM_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    path = str(who_and_when_dir("algorithm") / "12.json")
    runner = CliRunner()
    r = runner.invoke(app, ["analyze", path, "--method", "judge-all"])
    assert r.exit_code == 2 and "--llm-base-url" in r.output  # no endpoint: a usage error, one line
    with ScriptedServer([verdict("Verification_Expert", 1, 0.6)]) as srv:
        r = runner.invoke(app, ["analyze", path, "--method", "judge-all", "--llm-base-url", srv.url,
                                "--llm-model", "scripted", "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert (out["agent"], out["step"], out["method"], out["confidence"]) == ("Verification_Expert", 1, "judge-all", 0.6)
    assert srv.chat_bodies[0]["model"] == "scripted"
    with ScriptedServer([verdict("Verification_Expert", 1, 0.6)]) as srv:  # a name the server does not list
        r = runner.invoke(app, ["analyze", path, "--method", "judge-all", "--llm-base-url", srv.url,
                                "--llm-model", "nosuchmodel"])  # fmt: skip
    assert r.exit_code == 4 and "does not serve 'nosuchmodel'; it serves only 'scripted'" in r.output
    assert not srv.chat_bodies  # nothing was asked under a name that never ran
    too_long = {"error": {"message": "This model's maximum context length is 4096 tokens. However, you requested "
                                     "7390 tokens", "type": "invalid_request_error"}}
    with ScriptedServer([(400, too_long)]) as srv:
        r = runner.invoke(app, ["analyze", path, "--method", "judge-all", "--llm-base-url", srv.url])
    assert r.exit_code == 5 and "--llm-context-chars" in r.output and "Traceback" not in r.output
    assert len(srv.chat_bodies) == 1  # not retried in weaker JSON modes: the prompt itself is too long
    sizes = []
    for extra in ([], ["--llm-context-chars", "1000"]):  # the way out that the error names
        with ScriptedServer([verdict("Verification_Expert", 1, 0.6)]) as srv:
            r = runner.invoke(app, ["analyze", path, "--method", "judge-all", "--llm-base-url", srv.url, *extra])
        assert r.exit_code == 0, r.output
        sizes.append(len(srv.chat_bodies[0]["messages"][1]["content"]))
    assert sizes[1] < sizes[0]


def test_unknown_options_are_a_clear_error():
    with pytest.raises(AttribError, match="unknown judge option.*contxt_chars"):
        judge.all_at_once(toy_trace(), llm=cfg("http://127.0.0.1:9/v1"), contxt_chars=10)


@pytest.mark.parametrize("option, value", [("answer_retries", -1), ("answer_retries", 1.5), ("context_chars", 0),
                                           ("context_chars", -5), ("step_chars", 0), ("reason_chars", 0)])
def test_nonsense_options_are_a_clear_error_naming_the_option(option, value):
    with pytest.raises(AttribError, match=option) as e:
        judge.all_at_once(toy_trace(), llm=cfg("http://127.0.0.1:9/v1"), **{option: value})
    assert e.value.exit_code == 2


def test_an_answer_with_a_note_before_the_verdict_object_is_taken_at_once():
    note = '{"note": "thinking"} then ' + verdict("Coder", 2, 0.9)
    with ScriptedServer([note]) as srv:
        att = judge.all_at_once(toy_trace(), llm=cfg(srv.url))
    assert (att.agent, att.step, att.confidence, att.evidence["llm_calls"]) == ("Coder", 2, 0.9, 1)


def test_unreachable_endpoint():
    with pytest.raises(LLMUnavailableError, match="cannot connect"):
        judge.all_at_once(toy_trace(), llm=cfg(f"http://127.0.0.1:{free_port()}/v1", max_retries=0))


def test_step_by_step_stops_at_the_first_error_and_defaults_to_the_last_step():
    no = json.dumps({"reason": "fine", "error": False, "confidence": 0.9})
    yes = json.dumps({"reason": "wrong number", "error": True, "confidence": 0.6})
    with ScriptedServer([no, "```json\n" + no + "\n```", yes]) as srv:
        att = judge.step_by_step(toy_trace(), llm=cfg(srv.url))
    assert (att.step, att.agent, att.confidence) == (2, "Coder", 0.6)
    assert len(srv.chat_bodies) == 3
    assert "Step 2 - Coder" in srv.chat_bodies[2]["messages"][1]["content"]
    assert "Step 3" not in srv.chat_bodies[2]["messages"][1]["content"]  # the judge only sees the log so far
    with ScriptedServer([no]) as srv:
        att = judge.step_by_step(toy_trace(), llm=cfg(srv.url))
    assert att.step == 5 and att.evidence["no_error_found"] and len(srv.chat_bodies) == 6


@pytest.mark.parametrize("half, expected", [("upper", 0), ("lower", 9)])
def test_binary_search_halves_to_one_step(half, expected):
    t = toy_trace(10)
    ans = json.dumps({"reason": "r", "half": half, "confidence": 0.8})
    with ScriptedServer([ans]) as srv:
        att = judge.binary_search(t, llm=cfg(srv.url))
    assert att.step == expected and att.agent == t.steps[expected].agent
    calls = len(srv.chat_bodies)
    assert math.floor(math.log2(10)) <= calls <= math.ceil(math.log2(10))
    assert att.confidence == pytest.approx(0.8**calls)


def test_hybrid_shows_the_offline_ranking_or_falls_back(monkeypatch):
    t = toy_trace()
    offline = Attribution(trace_id=t.id, method="fake-offline", agent="WebSurfer", step=4, confidence=0.66,
                          evidence={"step_set": {"level": 0.9, "steps": [4, 1]}})
    monkeypatch.setitem(registry.METHODS, "fake-offline", "tests_fake_offline:attribute")
    import sys
    import types

    mod = types.ModuleType("tests_fake_offline")
    mod.attribute = lambda trace, **kw: offline  # an offline method with a known answer
    monkeypatch.setitem(sys.modules, "tests_fake_offline", mod)
    monkeypatch.setattr(registry, "DEFAULT_METHOD", "fake-offline")
    with ScriptedServer([verdict("WebSurfer", 4)]) as srv:
        att = judge.hybrid(t, llm=cfg(srv.url))
    prompt = srv.chat_bodies[0]["messages"][1]["content"]
    assert "offline analyzer (method fake-offline" in prompt and "step 4 by WebSurfer" in prompt
    assert "Steps 1, 4 form a set that held the decisive step in 90% of annotated runs" in prompt
    assert "with probability" not in prompt  # coverage over runs, not a probability for this run
    assert att.evidence["offline"]["agrees"] is True and att.method == "judge-hybrid"
    off = att.evidence["offline"]  # what the judge was shown is in the evidence, not only in the prompt
    assert off["shown_step_set"] == {"level": 0.9, "steps": [1, 4]} and off["agent_agrees"] is True
    assert "offline method (fake-offline, no LLM) put step 4 by WebSurfer first; the judge agrees" in att.reason
    monkeypatch.setattr(registry, "DEFAULT_METHOD", "")
    with ScriptedServer([verdict("Planner", 0)]) as srv:
        att = judge.hybrid(t, llm=cfg(srv.url))
    assert "offline analyzer" not in srv.chat_bodies[0]["messages"][1]["content"]
    assert "no offline default" in att.evidence["offline"]["fallback"]


# -- end to end against the real local llama.cpp server --------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", JUDGES)
def test_judges_end_to_end_on_a_real_whowhen_log(llama_url, whowhen_trace, name):
    # The first 3 steps of the log, 150 chars each (600 = 3 x 150 + the "Step i - agent: " heads, which the budget
    # counts), short reasons: prompt processing of the 135M model on one CPU thread (~100 tokens/s) is what this
    # suite's runtime is made of.
    t = msgspec.structs.replace(whowhen_trace, steps=whowhen_trace.steps[:3], agents=())
    llm = LLMConfig(base_url=llama_url, model="", max_tokens=100)
    att = registry.analyze(t, method=name, llm=llm, context_chars=600, step_chars=150, reason_chars=60)
    assert att.method == name and att.trace_id == t.id
    assert 0 <= att.step < t.n_steps
    assert att.agent in t.agents
    assert 0.0 <= att.confidence <= 1.0
    assert att.evidence["llm_calls"] >= 1 and att.evidence["llm"]["base_url"] == llama_url
    # every report shows the reason: it must say the number is the judge's own (or a placeholder), not calibrated
    assert "not calibrated" in att.reason or "placeholder" in att.reason, att.reason
    assert att.steps[0].probability is None
    assert att.elapsed_s is not None and att.elapsed_s > 0
    json.loads(att.to_json())  # the verdict serialises


@pytest.mark.slow
def test_a_130_step_run_fits_a_4096_token_server_with_context_chars(llama_url, long_trace):
    # --llm-context-chars is the way out that a too-long prompt's error names: it must make the prompt fit
    llm = LLMConfig(base_url=llama_url, model="", max_tokens=100)
    att = judge.all_at_once(long_trace, llm=llm, context_chars=2_000, reason_chars=60)
    assert 0 <= att.step < 130 and att.agent in long_trace.agents
    assert att.evidence["elided_steps"]


# -- agent names: whole names only, never a fragment of another name -------------------------------------


def test_match_agent_takes_whole_names_not_fragments_of_other_names():
    agents = ("Orchestrator", "WebSurfer", "Data_Analysis_Expert")
    assert judge.match_agent("WebSurfer agent", agents) == "WebSurfer"
    assert judge.match_agent("the Web Surfer", agents) == "WebSurfer"
    assert judge.match_agent("web-surfer", agents) == "WebSurfer"
    assert judge.match_agent("Orchestrator (thought)", agents) == "Orchestrator"
    assert judge.match_agent("Orchestrator (-> WebSurfer)", agents) == "Orchestrator"
    assert judge.match_agent("data analysis expert", agents) == "Data_Analysis_Expert"
    for made_up, names in (("Senior_Code_Reviewer", ("planner", "coder")), ("Verification_Expert", ("a", "WebSurfer")),
                           ("Code_Reviewer_Expert", ("Coder", "Reviewer_Expert_Team")), ("Surfer", agents),
                           ("WebSurfer_Assistant", agents), ("Data_Expert", agents)):  # fmt: skip
        with pytest.raises(judge.VerdictProblem, match="unknown agent"):
            judge.match_agent(made_up, names)


def test_a_made_up_agent_name_gets_a_corrective_round():
    t = Trace(id="t", source_format="test", task="q", ground_truth="4",
              steps=tuple(Step(index=i, agent=a, content=f"m{i}") for i, a in enumerate(["planner", "coder", "a"])))
    with ScriptedServer([verdict("Senior_Code_Reviewer", 1), verdict("Verification_Expert", 2), verdict("coder", 1)]) as srv:
        att = judge.all_at_once(t, llm=cfg(srv.url), answer_retries=2)
    assert (att.agent, att.step) == ("coder", 1)
    assert att.evidence["answer_corrections"] == 2
    corrections = [b["messages"][-1]["content"] for b in srv.chat_bodies[1:]]
    assert "unknown agent 'Senior_Code_Reviewer'" in corrections[0]
    assert "unknown agent 'Verification_Expert'" in corrections[1]


# -- the transcript budget binds, even on a long run ----------------------------------------------------------


@pytest.fixture(scope="module")
def long_trace() -> Trace:
    """The 130-step Hand-Crafted log (Magentic-One)."""
    path = who_and_when_dir("hand") / "11.json"
    t = parse_whowhen(orjson.loads(path.read_bytes()), path).unlabelled()
    assert t.n_steps == 130
    return t


def _transcript(prompt: str) -> str:
    body = re.split(r"steps \d+ to \d+:\n", prompt, maxsplit=1)[1]
    return body.split("\n\nWhich agent", 1)[0].split("\n\nThe mistake", 1)[0]


@pytest.mark.parametrize("context_chars", [500, 1000, 2000, 4000, 8000])
def test_context_chars_binds_on_a_130_step_run(long_trace, context_chars):
    with ScriptedServer([verdict("Orchestrator", 1)]) as srv:
        att = judge.all_at_once(long_trace, llm=cfg(srv.url), context_chars=context_chars)
    prompt = srv.chat_bodies[0]["messages"][1]["content"]
    assert len(_transcript(prompt)) <= context_chars
    assert len(prompt) <= context_chars + 1_500  # the task, the answer format and the agents' names
    elided = att.evidence["elided_steps"]
    assert elided and 0 not in elided and 129 not in elided  # the first and the last step are always shown
    assert "Step 0 - " in prompt and "Step 129 - " in prompt
    assert f"{len(elided)} of the 130 steps are not shown" in prompt
    shown = [i for i in range(130) if f"Step {i} - " in prompt]
    assert len(shown) + len(elided) == 130


def test_budget_keeps_the_steps_with_signal_and_the_offline_ranking(long_trace):
    steps = long_trace.steps
    fit = judge.fit_steps(steps, context_chars=1_500, prefer=(77, 78))
    assert {0, 77, 78, 129} <= set(fit.shown) and len(fit.text) <= 1_500
    assert set(fit.shown).isdisjoint(fit.elided) and len(fit.shown) + len(fit.elided) == 130
    noisy = [Step(index=i, agent="A", content="all fine here " * 20) for i in range(60)]
    noisy[30] = Step(index=30, agent="B", content="Traceback: ValueError, the download failed " * 5)
    fit = judge.fit_steps(noisy, context_chars=800)
    assert 30 in fit.shown
    short = [Step(index=i, agent="A", content="ok") for i in range(40)]
    assert judge.fit_steps(short, context_chars=800).elided == ()  # short steps all fit: nothing is cut


def test_binary_search_prompts_respect_the_budget(long_trace):
    ans = json.dumps({"reason": "r", "half": "upper", "confidence": 0.8})
    with ScriptedServer([ans]) as srv:
        judge.binary_search(long_trace, llm=cfg(srv.url), context_chars=1_000)
    for body in srv.chat_bodies:
        assert len(_transcript(body["messages"][1]["content"])) <= 1_000


# -- confidence: a placeholder is said to be one, and reports do not call a judge's number Shapley blame -------


@pytest.mark.parametrize("conf", [5, float("nan"), None, "very"])
def test_unusable_confidence_is_recorded_as_a_placeholder(conf):
    answer = {"reason": "because", "agent": "Coder", "step": 2}
    if conf is not None:
        answer["confidence"] = conf
    with ScriptedServer([json.dumps(answer)]) as srv:
        att = judge.all_at_once(toy_trace(), llm=cfg(srv.url))
    assert att.confidence == 0.5
    assert att.evidence["confidence_source"].startswith("none given")
    assert "placeholder" in att.evidence["confidence_source"]
    assert att.evidence["confidence_kind"] != "calibrated" and "placeholder" in att.evidence["confidence_kind"]


def test_judge_confidence_is_not_called_calibrated_or_shapley_in_reports():
    from attrib import render

    with ScriptedServer([verdict("Coder", 2, 0.8)]) as srv:
        att = judge.all_at_once(toy_trace(), llm=cfg(srv.url))
    ev = att.evidence
    assert ev["confidence_source"] == "self-reported by the LLM (not calibrated)"
    assert ev["confidence_kind"] not in (None, "calibrated") and ev["agent_blame"] == "judge confidence"
    md = render.attribution_markdown(att)
    assert "Shapley" not in md and "blame: judge confidence" in md and "score 0.80" in md and "score 80%" not in md
    # the reason (shown by text, Markdown, OTLP and the inspector) quotes the judge and says what its number is
    assert att.reason == 'The judge (scripted): "because" (its confidence 0.80 is self-reported, not calibrated).'
    assert 'The judge (scripted): "because"' in md and "self-reported, not calibrated" in md
    assert ev["judge_reason"] == "because"
    # a self-reported number is no probability of being the decisive step (JSON steps[].probability, OTLP)
    assert att.steps[0].probability is None
    from attrib.render_otlp import attribution_otlp

    otlp = json.dumps(attribution_otlp(att, toy_trace()))
    assert "attrib.probability" not in otlp and "self-reported, not calibrated" in otlp
    ans = [json.dumps({"reason": "r", "half": "upper", "confidence": 0.8}), json.dumps({"reason": "r", "half": "upper"})]
    with ScriptedServer(ans) as srv:
        att = judge.binary_search(toy_trace(4), llm=cfg(srv.url))
    assert att.confidence == pytest.approx(0.4) and "1 of 2" in att.evidence["confidence_source"]
    assert "on the last of 2 halvings (steps 0 to 1), chose the upper half" in att.reason
    assert "product of its self-reported confidences over 2 halvings, not calibrated; 1 gave none" in att.reason
    no = json.dumps({"reason": "fine", "error": False, "confidence": 0.9})
    with ScriptedServer([no]) as srv:
        att = judge.step_by_step(toy_trace(4), llm=cfg(srv.url))
    assert att.confidence == 0.25 and "no step was judged an error" in att.evidence["confidence_source"]
    assert "not from the LLM, not calibrated" in att.reason and att.evidence["judge_reason"] == ""
    with ScriptedServer([json.dumps({"reason": "wrong", "agent": "Coder", "step": 2})]) as srv:
        att = judge.all_at_once(toy_trace(), llm=cfg(srv.url))
    assert att.reason == 'The judge (scripted): "wrong" (it gave no usable confidence: 0.5 is a placeholder).'


# -- attrib eval who-and-when with a judge ------------------------------------------------------------


def test_eval_scores_a_log_with_no_usable_answer_as_a_miss_and_stops_on_endpoint_errors():
    from attrib.evaluate.data import load_subset
    from attrib.evaluate.harness import _unfitted

    t = load_subset("algorithm")[0]
    missed: list[str] = []
    with ScriptedServer(["no JSON here"]) as srv, pytest.MonkeyPatch.context() as mp:
        mp.setenv("ATTRIB_LLM_BASE_URL", srv.url)
        mp.setenv("ATTRIB_LLM_MODEL", "scripted")
        v = _unfitted("judge-all", missed)(t)
    assert (v.step, missed) == (-1, [t.id]) and v.true_step == t.label.mistake_step
    with ScriptedServer([(401, "no")]) as srv, pytest.MonkeyPatch.context() as mp:
        mp.setenv("ATTRIB_LLM_BASE_URL", srv.url)
        mp.setenv("ATTRIB_LLM_MODEL", "scripted")
        with pytest.raises(AttribError) as e:
            _unfitted("judge-all", missed)(t)
    assert e.value.exit_code == 4 and missed == [t.id]


def test_eval_who_and_when_names_environment_variables_and_reads_the_budget_from_one(monkeypatch):
    from typer.testing import CliRunner

    from attrib.cli import app

    too_long = {"error": {"message": "This model's maximum context length is 4096 tokens. However, you requested "
                                     "7390 tokens", "type": "invalid_request_error"}}
    monkeypatch.setenv("ATTRIB_LLM_MODEL", "scripted")
    with ScriptedServer([(400, too_long)]) as srv:
        monkeypatch.setenv("ATTRIB_LLM_BASE_URL", srv.url)
        r = CliRunner().invoke(app, ["eval", "who-and-when", "--subset", "algorithm", "--method", "judge-all",
                                     "--out", "-"])
    assert r.exit_code == 5, r.output
    assert "set ATTRIB_LLM_CONTEXT_CHARS=N" in r.output and "--llm-context-chars" not in r.output
    sizes = []
    for budget in ("", "600"):
        monkeypatch.setenv("ATTRIB_LLM_CONTEXT_CHARS", budget)
        with ScriptedServer([verdict("Coder", 2)]) as srv:
            judge.all_at_once(toy_trace(40), llm=cfg(srv.url))
        sizes.append(len(srv.chat_bodies[0]["messages"][1]["content"]))
    assert sizes[1] < sizes[0]
    for bad in ("lots", "100"):
        monkeypatch.setenv("ATTRIB_LLM_CONTEXT_CHARS", bad)
        with pytest.raises(AttribError, match="ATTRIB_LLM_CONTEXT_CHARS") as e:
            judge.all_at_once(toy_trace(), llm=cfg("http://127.0.0.1:9/v1"))
        assert e.value.exit_code == 2
