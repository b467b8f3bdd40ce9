"""Chat logs as AutoGen (0.2, AgentChat, autogen-core), Magentic-One, LangGraph and plain loggers write them,
including stream dumps; each case is a defect a walkthrough found (fixtures in tests/fixtures/frameworks, made by
the walkthrough's generators after the frameworks' own dump shapes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attrib.cli import app
from attrib.errors import InputError
from attrib.readers import load_trace, read_path

FIXTURES = Path(__file__).parent / "fixtures" / "frameworks"
runner = CliRunner()


def _write(tmp_path: Path, name: str, data: object) -> Path:
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else json.dumps(data))
    return p


def _error(path: Path) -> InputError:
    with pytest.raises(InputError) as e:
        read_path(path)
    return e.value


# --------------------------------------------------------------------------- the unknown-shape line (#10)

def test_an_unknown_shape_says_what_was_looked_for_and_blames_no_flag() -> None:
    """A CrewAI tasks_output dump fits no reader: the line names the keys found and the ones each format reads,
    not a --format flag the user never gave."""
    path = FIXTURES / "crew_output.json"
    e = _error(path)
    assert e.field is None
    assert "unknown format" in e.message and "raw, tasks_output, token_usage" in e.message
    for wanted in ("'messages'", "'history'", "'resourceSpans'", "'source_format'", "'content'"):
        assert wanted in e.message, wanted
    r = runner.invoke(app, ["traces", "show", str(path)])
    assert r.exit_code == 3
    (line,) = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert "--format" not in line and line.startswith(f"error: {path}: unknown format: it has the keys")


def test_an_unknown_list_says_what_it_holds(tmp_path: Path) -> None:
    e = _error(_write(tmp_path, "odd.json", [1, 2, 3]))
    assert e.field is None and "a list whose first item is a number" in e.message


# --------------------------------------------------------------------------- Magentic-One names (#11)

def test_magentic_one_04_orchestrator_folds_like_the_log_names() -> None:
    """MagenticOneGroupChat (AutoGen 0.4) writes 'MagenticOneOrchestrator'; Magentic-One's log and Who&When write
    'Orchestrator (thought)': both are the agent Orchestrator, so `traces list --agent Orchestrator` finds both."""
    t = load_trace(FIXTURES / "m1_groupchat04.json")
    assert t.agents[:2] == ("user", "Orchestrator")
    assert {s.metadata.get("raw_name") for s in t.steps if s.agent == "Orchestrator"} == {"MagenticOneOrchestrator"}
    assert load_trace(FIXTURES / "m1_log.jsonl").agents[1] == "Orchestrator"
