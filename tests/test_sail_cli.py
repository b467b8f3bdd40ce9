"""``attrib sail`` and ``attrib compliance`` through the real CLI (Typer runner) on the real SmolLM2: a 1-step
repair on a few pairs, its adapter scored on held-out probes, and the bad-input exit codes."""

from __future__ import annotations

import orjson
import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")

from _sail_common import tiny_pairs  # noqa: E402

from attrib.cli import app  # noqa: E402
from attrib.surgery.pairs import write_pairs  # noqa: E402

runner = CliRunner()


@pytest.mark.slow
def test_sail_then_compliance(tmp_path):
    pairs = write_pairs(tmp_path / "pairs.jsonl", tiny_pairs(4))
    out = tmp_path / "adapter"
    r = runner.invoke(app, ["sail", "--pairs", str(pairs), "--layers", "3,7", "--steps", "1", "--batch-size", "2",
                            "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    summary = orjson.loads(r.stdout)  # --json: stdout is the JSON alone (progress lines go to stderr)
    assert summary["layers"] == [3, 7] and summary["steps"] == 1
    r = runner.invoke(app, ["compliance", "--adapter", str(out), "--family", "secret", "--condition", "user",
                            "--questions", "4", "--no-perplexity", "--json"])
    assert r.exit_code == 0, r.output
    rep = orjson.loads(r.stdout)
    assert rep["overall"]["n"] == 4 and set(rep["families"]) == {"secret"}  # one held-out template x 4 questions
    assert 0 <= rep["overall"]["rate"] <= 1


def test_bad_input_names_the_option(tmp_path):
    pairs = write_pairs(tmp_path / "pairs.jsonl", tiny_pairs(2))
    r = runner.invoke(app, ["sail", "--out", str(tmp_path / "a")])
    assert r.exit_code != 0 and "--pairs/--suite" in r.output
    r = runner.invoke(app, ["sail", "--pairs", str(pairs), "--layers", "40", "--out", str(tmp_path / "b")])
    assert r.exit_code != 0 and "layers" in r.output and "out of range" in r.output
    r = runner.invoke(app, ["compliance", "--questions", "13"])
    assert r.exit_code != 0 and "--questions" in r.output


@pytest.mark.parametrize("flag", [["--lr", "-1"], ["--rank", "0"], ["--steps", "0"], ["--batch-size", "0"]])
def test_out_of_range_training_flags_are_usage_errors(tmp_path, flag) -> None:
    """Caught by the CLI before the model loads (torch and peft raised tracebacks for --lr -1 and --rank 0)."""
    r = CliRunner().invoke(app, ["sail", "--suite", "conflicts", "--out", str(tmp_path / "a"), *flag])
    assert r.exit_code == 2 and flag[0] in r.output and "Traceback" not in r.output


def test_model_commands_turn_off_the_transformers_progress_bar() -> None:
    from transformers.utils import logging as hf_logging

    from attrib.cli._common import quiet_model_loading

    hf_logging.enable_progress_bar()
    quiet_model_loading()
    assert not hf_logging.is_progress_bar_enabled()
    hf_logging.enable_progress_bar()  # leave the process as it was for the other tests
