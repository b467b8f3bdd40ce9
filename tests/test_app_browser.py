"""End to end in a real browser: ``attrib app`` serves the inspector on 127.0.0.1 (a free port), headless Chromium
opens it, the decisive step's text must be visible, a broken upload must show the CLI's one-line error, and the
screenshots go to ``test-artifacts/``. Skips (with the reason) only where Chromium or Playwright is missing.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from attrib.errors import InputError
from attrib.methods import analyze
from attrib.paths import REPO_ROOT, who_and_when_dir
from attrib.readers import read_path
from attrib.store import open_store
from attrib.store.api import ingest

sys.path.insert(0, str(REPO_ROOT / "apps"))
import inspector_browser as browser  # noqa: E402

ARTIFACTS = REPO_ROOT / "test-artifacts"
TRACE_FILE = who_and_when_dir("algorithm") / "2.json"
#: A pure, offline method, so the test checks the app and not the current state of the learned ranker.
METHOD = os.environ.get("ATTRIB_BROWSER_METHOD", "flow-graph")

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``attrib app`` on a free localhost port, browsing a store with two real traces."""
    reason = browser.why_no_browser()
    if reason:
        pytest.skip(reason)
    store = tmp_path_factory.mktemp("browser") / "store.duckdb"
    with open_store(store) as s:
        assert ingest([TRACE_FILE, REPO_ROOT / "traces" / "otlp_agents.json"], store=s).ok
    with browser.serve(store) as url:
        yield url


@pytest.fixture(scope="module")
def page(server: str) -> Iterator[object]:
    with browser.browser_page(height=1300) as pg:
        yield pg


def test_decisive_step_is_visible(server: str, page) -> None:
    trace = read_path(TRACE_FILE)[0]
    a = analyze(trace, METHOD)  # computed here, independently of the app
    first_line = next(line for line in trace.steps[a.step].content.splitlines() if line.strip()).strip()
    browser.open_timeline(page, server, trace.id, METHOD, f"Decisive step {a.step} — {a.agent}")
    text = page.get_by_text(first_line[:60], exact=False).first
    text.wait_for(state="visible")
    assert text.is_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "inspector_timeline.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000


def test_broken_upload_shows_the_cli_error(server: str, page, tmp_path: Path) -> None:
    bad = json.loads(TRACE_FILE.read_text())
    bad["history"] = []
    p = tmp_path / "empty_history.json"
    p.write_text(json.dumps(bad))
    with pytest.raises(InputError) as cli:
        read_path(p)
    page.goto(f"{server}/?page=Upload")
    page.locator("input[type=file]").set_input_files(str(p))
    expected = str(cli.value).replace(str(p), p.name)
    page.get_by_text(expected).wait_for(state="visible")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "inspector_upload_error.png"))


def test_an_upload_is_still_listed_after_another_page(server: str, page) -> None:
    """In the browser the file box forgets its file when the Upload page is left; what was read from it stays
    listed there, with its open button, for the rest of the session."""
    otlp = REPO_ROOT / "traces" / "otlp_agents.json"
    tid = read_path(otlp)[0].id
    page.goto(f"{server}/?page=Upload")
    page.locator("input[type=file]").set_input_files(str(otlp))
    page.get_by_text(f"Read 1 trace(s): {tid}", exact=False).wait_for(state="visible")
    sidebar = page.locator("[data-testid=stSidebar]")
    sidebar.get_by_text("Traces", exact=True).click()
    # the Traces page drawn to its last widget, so its run is over and the file box is gone (a run stopped for a
    # rerun keeps the widgets it did not reach, the file box too)
    page.get_by_role("button", name="Open timeline").wait_for(state="visible")
    page.wait_for_timeout(1000)
    sidebar.get_by_text("Upload", exact=True).click()
    page.get_by_text("Uploaded in this session").wait_for(state="visible")
    button = page.get_by_role("button", name=f"Open {tid} in the timeline")
    button.wait_for(state="visible")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "inspector_upload_kept.png"))
    button.click()
    page.get_by_text("Decisive step", exact=False).first.wait_for(state="visible")
