"""Chat logs as AutoGen (0.2, AgentChat, autogen-core), Magentic-One, LangGraph and plain loggers write them,
including stream dumps; each case is a defect a walkthrough found (fixtures in tests/fixtures/frameworks, made by
the walkthrough's generators after the frameworks' own dump shapes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attrib.errors import InputError
from attrib.readers import load_trace, read_path

FIXTURES = Path(__file__).parent / "fixtures" / "frameworks"


def _write(tmp_path: Path, name: str, data: object) -> Path:
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else json.dumps(data))
    return p


def _error(path: Path) -> InputError:
    with pytest.raises(InputError) as e:
        read_path(path)
    return e.value


# --------------------------------------------------------------------------- Magentic-One names (#11)

def test_magentic_one_04_orchestrator_folds_like_the_log_names() -> None:
    """MagenticOneGroupChat (AutoGen 0.4) writes 'MagenticOneOrchestrator'; Magentic-One's log and Who&When write
    'Orchestrator (thought)': both are the agent Orchestrator, so `traces list --agent Orchestrator` finds both."""
    t = load_trace(FIXTURES / "m1_groupchat04.json")
    assert t.agents[:2] == ("user", "Orchestrator")
    assert {s.metadata.get("raw_name") for s in t.steps if s.agent == "Orchestrator"} == {"MagenticOneOrchestrator"}
    assert load_trace(FIXTURES / "m1_log.jsonl").agents[1] == "Orchestrator"
