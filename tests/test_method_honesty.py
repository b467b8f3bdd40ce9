"""What a verdict's numbers are and what it rests on, said truly by every offline method.

Walkthrough findings: flow-graph filled ``probability`` with its score; causal put 1/(tied steps) in ``confidence``
and, with no signal at all, a reason saying signals fired; a run of the user's messages only got a 99 % verdict; a
successful run's reason still said "57 %, calibrated"; a run whose answer is right, or a verdict resting on an
agent's name, carried no warning; a Who&When run rewritten as chat was told it came from "another system" while
flagged in sample; the reason cited "low overlap with the agent's previous turn" for its first turn; tool agents had
rows of their own in flow-graph's and causal's agent tables but not in learned's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from attrib.cli import app
from attrib.errors import EXIT_NO_VERDICT, NoVerdictError
from attrib.methods import LOOKS_CORRECT_NOTE, SUCCEEDED_NOTE, UNKNOWN_OUTCOME_NOTE, analyze
from attrib.paths import traces_dir
from attrib.readers import load_trace
from attrib.trace import Trace

runner = CliRunner()

#: An invented run in Who&When's format where nothing goes wrong: the checker confirms the right answer, and the
#: final answer is the ground truth (w2's t/novisible.json).
CAPITAL = [("Planner_Expert", "Task: Name the capital of Australia. Plan: Geo_Expert answers, Checker_Expert "
                              "verifies."),
           ("Geo_Expert", "The capital of Australia is Canberra."),
           ("Checker_Expert", "Verified: Canberra is the capital of Australia."),
           ("Planner_Expert", "Final answer: Canberra. TERMINATE")]


def whowhen_run(tmp_path: Path, history: list[tuple[str, str]], ground_truth: str = "Canberra",
                is_correct: bool = False, name: str = "run") -> Trace:
    """A run in Who&When's format, read by the real reader."""
    doc = {"is_correct": is_correct, "question": "Name the capital of Australia.", "question_ID": name,
           "level": "1", "ground_truth": ground_truth,
           "history": [{"content": c, "role": "assistant", "name": a} for a, c in history]}
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(doc))
    return load_trace(path)


def demo() -> Trace:
    return load_trace(traces_dir() / "demo_whowhen.json")


@pytest.fixture(autouse=True)
def _shipped_ranker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ATTRIB_RANKER", raising=False)


# --------------------------------------------------------------------------- flow-graph: scores are no probabilities


def test_flow_graph_gives_no_step_a_probability() -> None:
    """Its step numbers are shares of the inverted blame mass: ``probability`` stays None, as the judges leave it,
    so neither the JSON nor the OTLP candidates call them probabilities."""
    run = demo()
    a = analyze(run, "flow-graph")
    assert all(s.probability is None for s in a.steps)
    assert all(s["probability"] is None for s in a.to_dict()["steps"])
    assert "not calibrated" in a.evidence["confidence_kind"]
    assert a.confidence == max(s.score for s in a.steps if s.step == a.step)
    assert b"attrib.probability" not in orjson.dumps(a.to_otlp(run))
    assert b"attrib.score" in orjson.dumps(a.to_otlp(run))  # the score itself is still there


# --------------------------------------------------------------------------- causal: an honest score and reason


def test_causal_confidence_is_a_named_share_and_its_reason_names_the_signals(tmp_path: Path) -> None:
    """The confidence was 1 / (the steps tied for the top score), 100 % for a lone step; it is now the step's share
    of the run's positive step scores, called a score, and the reason says which signals the step shows."""
    run = whowhen_run(tmp_path, [("Math_Expert", "17*23+4 = 405."),
                                 ("Checker_Expert", "Final answer: 405. TERMINATE")], ground_truth="395")
    a = analyze(run, "causal")
    scores = [s.score for s in a.steps]
    assert a.step == 0 and a.confidence == pytest.approx(max(scores) / sum(max(x, 0.0) for x in scores))
    kind = a.evidence["confidence_kind"]
    assert "share of the run's summed positive step scores" in kind and "not calibrated" in kind
    assert list(a.evidence["features"]) == ["novel_numbers_any"]
    assert a.evidence["feature_meanings"]["novel_numbers_any"] in a.reason
    assert f"({a.evidence['features']['novel_numbers_any']:+.2f})" in a.reason
    assert "warnings" not in a.evidence
    tied = analyze(demo(), "causal")  # steps 0 and 1 score the same: the reason says the earliest won
    assert tied.evidence["tied_steps"] == [0, 1] and "Step 1 scores the same; the earliest wins." in tied.reason


def test_causal_says_nothing_fired_when_no_step_scores(tmp_path: Path) -> None:
    """Every step scored 0, yet the verdict said step 0 "shows the signals with the largest estimated causal
    effect", at "score 25 %"."""
    a = analyze(whowhen_run(tmp_path, CAPITAL), "causal")
    assert all(s.score == 0 for s in a.steps)
    assert a.confidence == 0.0 and a.step == 0
    assert "largest estimated causal effect" not in a.reason
    assert "Nothing points to a cause: no signal it weighs" in a.reason and "not for anything it shows" in a.reason
    assert any("found no signal with a positive effect on failure" in w for w in a.evidence["warnings"])
    assert a.evidence["features"] == {}


# --------------------------------------------------------------------------- no agent step: no verdict


@pytest.mark.parametrize("method", ["learned", "flow-graph", "causal", "judge-all"])
@pytest.mark.parametrize("messages", [
    [{"role": "user", "content": "What is 2+2?"}],
    [{"role": "system", "content": "You are helpful"}, {"role": "user", "content": "What is 2+2?"}],
], ids=["user", "system+user"])
def test_a_run_with_no_agent_step_gets_no_verdict(tmp_path: Path, method: str, messages: list[dict[str, Any]]
                                                  ) -> None:
    """The user's question alone was "step 0 by user, confidence 99 %"; every method now refuses it (exit 5), the
    judges before any LLM call."""
    path = tmp_path / "only_user.json"
    path.write_text(json.dumps({"messages": messages, "outcome": "failed"}))
    with pytest.raises(NoVerdictError, match="no agent or tool step: nothing to attribute"):
        analyze(load_trace(path), method)
    r = runner.invoke(app, ["analyze", str(path), "--method", method])
    assert r.exit_code == EXIT_NO_VERDICT and "nothing to attribute" in r.output


#: A chat log whose system prompt and question come before the agents (w6: flow-graph and causal named "step 0 by
#: system", the prompt itself, which no agent's fix repairs).
SYSTEM_FIRST = [{"role": "system", "content": "You are a helpful team. Answer with a number, 42 if unsure."},
                {"role": "user", "content": "What is 2 + 3? Give a number."},
                {"role": "assistant", "name": "Solver", "content": "2 + 3 = 6. FINAL ANSWER: 6"},
                {"role": "assistant", "name": "Checker", "content": "Looks right: 6."}]


@pytest.mark.parametrize("method", ["learned", "flow-graph", "causal"])
def test_no_method_blames_the_system_prompt(tmp_path: Path, method: str) -> None:
    """The system message is no agent's step (:func:`attrib.trace.is_agent_step`): flow-graph and causal blamed it
    (step 0), and learned's agent head named "system" as the decisive agent."""
    path = tmp_path / "system_first.json"
    path.write_text(json.dumps({"messages": SYSTEM_FIRST, "outcome": "failed"}))
    a = analyze(load_trace(path), method)
    assert a.step in (2, 3) and a.evidence.get("first_passage", {}).get("earlier_step", 2) == 2
    assert a.agent in ("Solver", "Checker")


def test_the_earlier_riskier_step_is_never_the_system_prompt(tmp_path: Path) -> None:
    """Learned's "an earlier step looked riskier" evidence skips the system message as it skips the question, however
    high its hazard (here the highest)."""
    import numpy as np

    from attrib.methods.learned import _earlier_evidence

    path = tmp_path / "system_first.json"
    path.write_text(json.dumps({"messages": SYSTEM_FIRST, "outcome": "failed"}))
    out = _earlier_evidence(np.array([0.9, 0.8, 0.2, 0.5]), 3, load_trace(path))
    assert out is not None and (out["earlier_step"], out["earlier_agent"]) == (2, "Solver")


def test_the_batch_engine_refuses_a_run_with_no_agent_step_too(tmp_path: Path) -> None:
    from attrib.engine import analyze_payloads

    path = tmp_path / "only_user.json"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "What is 2+2?"}]}))
    t = load_trace(path)
    [(tid, verdict, error)] = analyze_payloads("learned", "learned", [(t.id, t.to_json())])
    assert verdict is None and error is not None and "nothing to attribute" in error
    one_agent = tmp_path / "one_agent.json"  # one agent step is enough
    one_agent.write_text(json.dumps({"messages": [{"role": "user", "content": "What is 2+2?"},
                                                  {"role": "assistant", "name": "solver", "content": "5"}]}))
    assert analyze(load_trace(one_agent)).agent == "solver"


# --------------------------------------------------------------------------- the run's outcome


def test_a_succeeded_run_keeps_its_verdict_but_claims_no_calibrated_probability(tmp_path: Path) -> None:
    """The calibration was fitted on failed runs: on a successful one the reason said "the most likely decisive
    mistake (57 %, calibrated)"; it now calls the step the riskiest, its number a score, and so does the
    confidence_kind reports read."""
    from attrib.render import confidence_word

    failed = analyze(whowhen_run(tmp_path, CAPITAL, name="failed"))
    ok = analyze(whowhen_run(tmp_path, CAPITAL, is_correct=True, name="ok"))
    assert (ok.step, ok.agent, ok.confidence) == (failed.step, failed.agent, failed.confidence)
    assert f"is the most likely decisive mistake ({failed.confidence:.0%}, calibrated)" in failed.reason
    assert ok.reason.startswith(SUCCEEDED_NOTE) and ok.evidence["run_outcome"] == "succeeded"
    assert "decisive mistake" not in ok.reason and "calibrated)" not in ok.reason
    assert f"is the riskiest step (score {ok.confidence:.2f}" in ok.reason
    assert "%" not in ok.reason, ok.reason  # the agent head's number too
    assert ok.evidence["confidence_kind"] != "calibrated" and confidence_word(ok) == "score"
    assert confidence_word(failed) == "confidence"


def test_a_run_of_unknown_outcome_is_said_not_known_to_have_failed() -> None:
    """AutoGen TaskResults and LangGraph dumps record no outcome: the verdict now warns that the run is not known to
    have failed; a run recorded as failed gets no such warning."""
    for name in ("chat_langgraph.json", "chat_autogen.jsonl"):
        t = load_trace(traces_dir() / name)
        assert t.outcome == "unknown"
        for method in ("learned", "flow-graph", "causal"):
            assert UNKNOWN_OUTCOME_NOTE in analyze(t, method).evidence["warnings"]
    assert UNKNOWN_OUTCOME_NOTE not in analyze(demo()).evidence.get("warnings", [])


# --------------------------------------------------------------------------- a run that looks right, a name prior


def test_a_run_whose_final_answer_is_its_ground_truth_is_warned(tmp_path: Path) -> None:
    """A run recorded as failed whose final answer is its ground truth looks correct: a verdict on it names the
    riskiest step, not a cause, and every method says so."""
    right = whowhen_run(tmp_path, CAPITAL, name="right")
    for method in ("learned", "flow-graph", "causal"):
        assert LOOKS_CORRECT_NOTE in analyze(right, method).evidence["warnings"]
    wrong = whowhen_run(tmp_path, [*CAPITAL[:3], ("Planner_Expert", "Final answer: Sydney. TERMINATE")],
                        name="wrong")
    assert LOOKS_CORRECT_NOTE not in analyze(wrong).evidence.get("warnings", [])
    assert LOOKS_CORRECT_NOTE not in analyze(demo()).evidence.get("warnings", [])
    # "15" holds the ground truth "5", but is not it
    near = whowhen_run(tmp_path, [*CAPITAL[:3], ("Planner_Expert", "Final answer: 15")], ground_truth="5",
                       name="near")
    assert LOOKS_CORRECT_NOTE not in analyze(near).evidence.get("warnings", [])


def test_a_verdict_resting_on_an_agent_name_says_so(tmp_path: Path) -> None:
    """The checker who confirmed the right answer was blamed "mainly because of: an agent named checker", a prior of
    the Who&When runs the ranker was fitted on; the verdict now warns that it rests on the name."""
    a = analyze(whowhen_run(tmp_path, CAPITAL))
    assert next(iter(a.evidence["features"])) == "name_check"
    [warning] = [w for w in a.evidence["warnings"] if "agent's name" in w]
    assert warning.startswith("The verdict rests mainly on the agent's name (an agent named checker)")
    assert "Who&When runs the ranker was fitted on" in warning
    d = analyze(demo())  # rests on its position and code, not a name
    assert not next(iter(d.evidence["features"])).startswith("name_")
    assert not any("agent's name" in w for w in d.evidence.get("warnings", []))


# --------------------------------------------------------------------------- where the calibration was measured


def test_a_who_and_when_run_rewritten_as_chat_is_not_called_another_system(tmp_path: Path, whowhen_dir: Path) -> None:
    """By format, Who&When's AG 12 as chat was "on another system, as this run is" and "in sample" in one report;
    what the ranker knows of the run decides now, and the real file's verdict is as before."""
    from attrib.render import calibration_note, step_set_line

    src = whowhen_dir / "Algorithm-Generated" / "12.json"
    raw = json.loads(src.read_text())
    chat = {"messages": [{"role": h["role"], "name": h["name"], "content": h["content"]} for h in raw["history"]],
            "question": raw["question"], "ground_truth": raw["ground_truth"], "outcome": "failed"}
    path = tmp_path / "ww12_as_chat.json"
    path.write_text(json.dumps(chat))
    run = load_trace(path)
    assert run.source_format == "chat"
    a = analyze(run)
    assert a.evidence["in_sample"] is True and a.evidence["calibration_measured_here"] is True
    assert "on Who&When runs" not in a.reason and "%, calibrated)" in a.reason
    assert calibration_note(a) is None and "not on this system" not in step_set_line(a, run)
    real = analyze(load_trace(src))
    assert (real.step, real.agent, real.confidence) == (a.step, a.agent, a.confidence)
    assert real.evidence["calibration_measured_here"] is True and "%, calibrated)" in real.reason
    # a run the ranker does not know, from another system, is still told so
    other = analyze(load_trace(traces_dir() / "otlp_agents.json"))
    assert other.evidence["in_sample"] is False and other.evidence["calibration_measured_here"] is False


# --------------------------------------------------------------------------- a first turn has no previous turn


def test_the_reason_cites_no_overlap_with_a_previous_turn_that_does_not_exist(tmp_path: Path) -> None:
    """Six identical steps: step 0 won "mainly because of: low overlap with the agent's previous turn", which it
    has none of; the signal stays in the evidence, in true words, and out of the reason."""
    same = "I think the answer is 405."
    a = analyze(whowhen_run(tmp_path, [("A_Expert" if i % 2 == 0 else "B_Expert", same) for i in range(6)],
                            ground_truth="395"))
    assert a.step == 0 and "low sim_prev_same_agent" in a.evidence["features"]
    assert "previous turn" not in a.reason.split("Flow to the failure")[0], a.reason
    assert "first turn" in a.evidence["feature_meanings"]["low sim_prev_same_agent"]
    assert "mainly because of: " in a.reason and "mainly because of: its position" not in a.reason


# --------------------------------------------------------------------------- tools count to their callers


@pytest.mark.parametrize("method", ["flow-graph", "causal"])
def test_tool_steps_count_to_their_caller_in_every_agent_table(method: str) -> None:
    """The demo's Computer_terminal had a row of its own in flow-graph's and causal's agent tables (0.060) but not
    in learned's, whose Shapley game counts a tool step to its caller: the tables now list the same agents, and the
    evidence says where the tool's steps went, as learned's does."""
    run = demo()
    a, learned = analyze(run, method), analyze(run)
    assert {b.agent for b in a.agents} == {b.agent for b in learned.agents}
    assert "Computer_terminal" not in {b.agent for b in a.agents}
    assert a.evidence["tool_steps_to_caller"] == learned.evidence["tool_steps_to_caller"] == [
        {"agent": "Computer_terminal", "caller": "UnitConversion_Expert", "steps": [2, 7]}]
    if method == "flow-graph":  # the mass is only regrouped: the agents still share all of it
        assert sum(b.score for b in a.agents) == pytest.approx(sum(s.score for s in a.steps))
    else:
        assert sum(b.score for b in a.agents) == pytest.approx(sum(max(s.score, 0.0) for s in a.steps))


@pytest.mark.parametrize("method", ["learned", "flow-graph", "causal"])
def test_every_offline_verdict_round_trips_through_json(method: str) -> None:
    """causal's confidence was a numpy float64: --json, --save and analyze --all failed with a TypeError on 161 of the
    184 Who&When logs (every run where some step scored above 0) while the rich report worked (walkthrough w8 #1)."""
    from attrib.evaluate.data import load_subset
    from attrib.trace import Attribution

    for t in load_subset("algorithm")[:12]:
        a = analyze(t, method)
        assert Attribution.from_json(a.to_json()) == a, t.id
