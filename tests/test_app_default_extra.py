"""The trace the inspector opens when none is asked for: the one ingested or analyzed last, not the first id.

AppTest on a real store of Who&When runs, grown step by step (ingest, save a verdict, ingest again), as a user does.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
pytest.importorskip("plotly")

from streamlit.testing.v1 import AppTest  # noqa: E402

from attrib.methods import analyze  # noqa: E402
from attrib.paths import REPO_ROOT, who_and_when_dir  # noqa: E402
from attrib.store import open_store  # noqa: E402
from attrib.store.api import ingest  # noqa: E402

APP = str(REPO_ROOT / "apps" / "inspector.py")
METHOD = "flow-graph"


def _ingest(store: Path, *names: tuple[str, int]) -> None:
    files = [who_and_when_dir(subset) / f"{i}.json" for subset, i in names]
    assert ingest(files, store=str(store), progress=False).ok


@pytest.fixture
def run_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``run_app(page=..., trace=...)``: the inspector on ``tmp_path/store.duckdb``, run once (a fresh session)."""
    monkeypatch.setenv("ATTRIB_STORE", str(tmp_path / "store.duckdb"))
    monkeypatch.setattr(sys, "argv", ["inspector.py"])

    def make(**query: str) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=60)
        at.query_params.update({"method": METHOD, **query})
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return make


def _opened(at: AppTest) -> str:
    return str(at.session_state["trace_id"])


def test_the_app_opens_the_run_ingested_or_analyzed_last(run_app, tmp_path: Path) -> None:
    """It opened the first id in sorted order whatever the store held (whowhen-algorithm-1 here throughout)."""
    store = tmp_path / "store.duckdb"
    _ingest(store, ("algorithm", 1), ("algorithm", 2))
    _ingest(store, ("hand", 1))  # the run just added
    assert _opened(run_app(page="Traces")) == "whowhen-hand-1"
    at = run_app(page="Timeline")
    assert "Trace whowhen-hand-1" in [str(h.value) for h in at.header]

    with open_store(store) as s:  # the run just analyzed (`attrib analyze ID --save`, the batch engine)
        s.save_attribution(analyze(s.get_trace("whowhen-algorithm-2"), METHOD))
    assert _opened(run_app(page="Traces")) == "whowhen-algorithm-2"

    _ingest(store, ("algorithm", 3))  # a run ingested after that verdict is newer still
    assert _opened(run_app(page="Traces")) == "whowhen-algorithm-3"


def test_a_batch_of_verdicts_opens_one_of_them_and_ties_go_to_the_smallest_id(run_app, tmp_path: Path) -> None:
    """Verdicts written in one transaction share a timestamp: of those, the smallest id (the same on every run)."""
    store = tmp_path / "store.duckdb"
    _ingest(store, ("algorithm", 1), ("algorithm", 2), ("algorithm", 3), ("hand", 1))
    with open_store(store) as s:
        s.save_attributions([analyze(s.get_trace(t), METHOD) for t in ("whowhen-hand-1", "whowhen-algorithm-3")])
    assert _opened(run_app(page="Traces")) == "whowhen-algorithm-3"


def test_a_trace_in_the_url_or_chosen_in_the_session_wins(run_app, tmp_path: Path) -> None:
    store = tmp_path / "store.duckdb"
    _ingest(store, ("algorithm", 1), ("algorithm", 2))
    _ingest(store, ("hand", 1))
    at = run_app(page="Timeline", trace="whowhen-algorithm-2")  # a shared link
    assert _opened(at) == "whowhen-algorithm-2" and at.query_params["trace"] == "whowhen-algorithm-2"
    at.sidebar.text_input(key="trace_id").set_value("whowhen-algorithm-1").run()  # typed in the sidebar
    _ingest(store, ("algorithm", 3))  # the store changes meanwhile: the choice stays
    at.sidebar.radio[0].set_value("Blame").run()
    assert _opened(at) == "whowhen-algorithm-1" and "Trace whowhen-algorithm-1" in [str(h.value) for h in at.header]


def test_an_empty_store_opens_no_trace(run_app, tmp_path: Path) -> None:
    with open_store(tmp_path / "store.duckdb"):
        pass
    at = run_app(page="Timeline")
    assert not at.session_state["trace_id"]
