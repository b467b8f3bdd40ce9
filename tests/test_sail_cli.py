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


@pytest.mark.parametrize("flag", [["--lr", "-1"], ["--rank", "0"], ["--steps", "0"], ["--batch-size", "0"],
                                  ["--alpha", "1.5"]])
def test_out_of_range_training_flags_are_usage_errors(tmp_path, flag) -> None:
    """Caught by the CLI before the model loads (torch and peft raised tracebacks for --lr -1 and --rank 0; --alpha
    above 1 trained with negative factors on the rejected side)."""
    r = CliRunner().invoke(app, ["sail", "--suite", "conflicts", "--out", str(tmp_path / "a"), *flag])
    assert r.exit_code == 2 and flag[0] in r.output and "Traceback" not in r.output


def test_model_commands_turn_off_the_transformers_progress_bar() -> None:
    from transformers.utils import logging as hf_logging

    from attrib.cli._common import quiet_model_loading

    hf_logging.enable_progress_bar()
    quiet_model_loading()
    assert not hf_logging.is_progress_bar_enabled()
    hf_logging.enable_progress_bar()  # leave the process as it was for the other tests


def test_layers_and_pairs_are_checked_before_the_slow_steps(tmp_path):
    """--layers 99 was only checked after sampling the whole suite (69 s) and writing pairs.jsonl."""
    out = tmp_path / "a"
    r = runner.invoke(app, ["sail", "--suite", "conflicts", "--layers", "99", "--out", str(out)])
    assert r.exit_code == 2 and "--layers" in r.output and "out of range" in r.output, r.output
    assert not (out / "pairs.jsonl").exists()
    r = runner.invoke(app, ["sail", "--suite", "conflicts", "--layers", "3-x", "--out", str(out)])
    assert r.exit_code == 2 and "--layers" in r.output and "cannot parse" in r.output
    r = runner.invoke(app, ["sail", "--pairs", str(tmp_path / "missing.jsonl"), "--out", str(out)])
    assert r.exit_code == 3 and "does not exist" in r.output and "Traceback" not in r.output


def test_out_and_pairs_paths_are_checked_before_the_model_loads(tmp_path):
    """--out a file failed only after a minute of sampling the suite; --pairs a folder said "does not exist"."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    nope = str(tmp_path / "no-model")  # were the model loaded first, this would exit 4
    r = runner.invoke(app, ["sail", "--suite", "conflicts", "--model", nope, "--out", str(blocker)])
    assert r.exit_code == 1 and str(blocker) in r.output and "a file is in the way" in r.output, r.output
    r = runner.invoke(app, ["sail", "--pairs", str(tmp_path), "--model", nope, "--out", str(tmp_path / "o")])
    assert r.exit_code == 3 and r.output.strip() == f"error: {tmp_path}: is a folder, not a pairs file (a JSONL file, one pair a line)"


def test_compliance_help_names_every_family_and_condition():
    """--family gave no way to learn the names but a failed run; the help lists them (the list is typed there,
    not imported, to keep --help fast: this keeps it in step)."""
    from attrib.probes import FAMILIES
    from attrib.probes.suite import CONDITIONS

    text = " ".join(runner.invoke(app, ["compliance", "--help"], env={"COLUMNS": "200"}).output.split())
    assert all(name in text for name in [*FAMILIES, *CONDITIONS])


def test_unknown_family_is_a_usage_error_naming_the_flag():
    r = runner.invoke(app, ["compliance", "--family", "bogus", "--no-perplexity"])
    assert r.exit_code == 2 and "--family" in r.output and "bogus" in r.output, r.output


@pytest.mark.slow
def test_heldout_pairs_in_a_pairs_file_are_reported(tmp_path):
    """Lines with "split": "heldout" were dropped from training without a word."""
    import msgspec

    rows = [msgspec.to_builtins(p) for p in tiny_pairs(3)]
    rows[2]["split"] = "heldout"
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    r = runner.invoke(app, ["sail", "--pairs", str(path), "--layers", "28", "--steps", "1", "--batch-size", "1",
                            "--out", str(tmp_path / "out"), "--json"])
    assert r.exit_code == 0, r.output
    assert "pairs 2 for training; 1 held-out pairs" in " ".join(r.stderr.split())
    assert orjson.loads(r.stdout)["config"]["n_pairs"] == 2
    assert "heldout" in " ".join(runner.invoke(app, ["sail", "--help"]).output.split())


def test_compliance_checks_the_adapter_before_the_model_loads(tmp_path):
    """A missing or damaged --adapter failed only after the model had loaded (or in peft's traceback)."""
    nope = str(tmp_path / "no-model")  # were the model loaded first, this would exit 4 naming it
    damaged = tmp_path / "adapter"
    damaged.mkdir()
    (damaged / "adapter_config.json").write_text("{not json")
    r = runner.invoke(app, ["compliance", "--model", nope, "--adapter", str(damaged)])
    assert r.exit_code == 3 and "adapter_config.json: not a JSON object" in r.output and nope not in r.output, r.output
    r = runner.invoke(app, ["compliance", "--model", nope, "--adapter", str(tmp_path / "gone")])
    assert r.exit_code == 4 and "no such adapter folder" in r.output, r.output


@pytest.mark.slow
def test_sail_logs_each_long_phase_when_stderr_is_not_a_terminal(tmp_path):
    """Run into a log file, `attrib sail` printed nothing for minutes: rich's spinner shows nothing off a terminal.
    Each long phase now writes a plain line to stderr when it starts and one with its elapsed time when it ends."""
    import re

    pairs = write_pairs(tmp_path / "pairs.jsonl", tiny_pairs(2))
    r = runner.invoke(app, ["sail", "--pairs", str(pairs), "--layers", "28", "--steps", "1", "--batch-size", "1",
                            "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("attrib sail: ")]
    for what in ("loading smollm2-135m", "choosing layers (28)", "reference pass over 2 pairs, then 1 SAIL step"):
        assert f"attrib sail: {what} ..." in lines, r.stderr
        assert any(re.fullmatch(rf"attrib sail: {re.escape(what)}: done in \d+\.\d s", ln) for ln in lines), lines
    assert any(re.fullmatch(r"attrib sail: reference pass took \d+\.\d s; 1 SAIL step \d+\.\d s", ln)
               for ln in lines), lines
    assert not any("attrib sail:" in ln for ln in r.stdout.splitlines())  # stdout keeps the results alone


@pytest.mark.slow
def test_compliance_names_its_conditions_and_prompt_count():
    """The title said only "compliance on heldout probes": nothing told that the default scores all four conditions
    (96/336 with --questions 12, where the README promised 168 user/peer-conflict prompts)."""
    args = ["compliance", "--family", "secret", "--questions", "1", "--no-perplexity"]
    r = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    text = " ".join(r.stdout.split())
    assert "compliance on 4 heldout prompts" in text, text
    assert "4 heldout prompts: conditions plain, user, plain_peer, peer; 1 question per template" in text, text
    assert "--condition user --condition peer" in text  # the plain conditions carry no conflict: say how to drop them
    r = runner.invoke(app, [*args, "--questions", "2", "--condition", "peer", "--condition", "user"],
                      env={"COLUMNS": "200"})
    text = " ".join(r.stdout.split())
    assert "compliance on 4 heldout prompts" in text, text
    assert "4 heldout prompts: conditions user, peer; 2 questions per template" in text, text
    assert "--condition user" not in text
    r = runner.invoke(app, [*args, "--condition", "user", "--json"])
    rep = orjson.loads(r.stdout)
    assert (rep["conditions"], rep["n_prompts"], rep["n_questions"], rep["split"]) == (["user"], 1, 1, "heldout")


@pytest.mark.timeout(120)  # without the check it goes on to load the model and sample the suite (minutes)
def test_a_missing_extra_is_named_before_the_output_folder_is_made(tmp_path, monkeypatch) -> None:
    """In a base install `attrib sail --out adapter/` printed the install hint but left an empty adapter/ behind
    (walkthrough w6 #5)."""
    import importlib.util

    from typer.testing import CliRunner

    from attrib.cli import app

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",  # the installed packages, as a base install has them
                        lambda name, *a: None if name.split(".")[0] == "peft" else real(name, *a))
    out = tmp_path / "adapter"
    r = CliRunner().invoke(app, ["sail", "--suite", "conflicts", "--out", str(out)])
    assert r.exit_code == 1 and "pip install 'attrib[model]'" in r.output, r.output
    assert not out.exists()
