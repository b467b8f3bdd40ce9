"""Head localization end to end on the real model (small probe subset), patching with TL hooks, the CLI, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from attrib.cli import app
from attrib.errors import InputError, NotFoundError, UsageError


def test_unknown_model_path_is_one_line_not_found(tmp_path):
    from attrib.models import resolve

    with pytest.raises(NotFoundError, match="no such model"):
        resolve(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotFoundError, match="not a model folder"):
        resolve(tmp_path / "empty")
    r = CliRunner().invoke(app, ["heads", "--model", str(tmp_path / "nope")])
    assert r.exit_code == 4
    assert "no such model" in r.output and len(r.output.strip().splitlines()) == 1
    (tmp_path / "run.json").write_text("{}")  # a file that exists but is no model: unreadable input (3)
    r = CliRunner().invoke(app, ["heads", "--model", str(tmp_path / "run.json")])
    assert r.exit_code == 3 and "not a model" in r.output


def test_corrupt_model_files_are_one_line_input_errors(tmp_path):
    """An empty .gguf ('cannot mmap an empty file') and a config-only folder ('Couldn't instantiate the backend
    tokenizer') gave tracebacks."""
    from attrib.models import load_model

    empty = tmp_path / "bad.gguf"
    empty.write_bytes(b"")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama"}')
    for path in (empty, folder):
        with pytest.raises(InputError, match="cannot load this") as err:
            load_model(path, memo=False, use_cache=False)
        assert err.value.path == str(path)
        r = CliRunner().invoke(app, ["compliance", "--model", str(path), "--no-perplexity"])
        assert r.exit_code == 3 and str(path) in r.output and "Traceback" not in r.output, r.output
        assert len(r.output.strip().splitlines()) == 1


@pytest.mark.slow
def test_an_unusable_cache_only_costs_speed(tmp_path, monkeypatch, caplog):
    """ATTRIB_CACHE that cannot be made failed every model command ('error: /proc/nope: No such file or
    directory', exit 1, not naming ATTRIB_CACHE)."""
    import logging

    import torch

    from attrib import paths
    from attrib.models import load_model

    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    monkeypatch.setenv("ATTRIB_CACHE", str(blocker / "cache"))
    with caplog.at_level(logging.WARNING, logger="attrib.paths"):
        assert paths.persistent_cache_dir() is None
        d = paths.cache_dir()  # a stand-in for this process: small derived files still work
        assert d.is_dir() and d != blocker / "cache"
        (d / "x").write_text("ok")
        assert paths.persistent_cache_dir() is None and paths.cache_dir() == d
        model, _ = load_model("smollm2-135m", memo=False)  # converts the GGUF, skips writing the cache
    said = [r.getMessage() for r in caplog.records if r.name == "attrib.paths"]
    assert len(said) == 1 and f"ATTRIB_CACHE={blocker / 'cache'}" in said[0] and "only costs speed" in said[0]
    with torch.no_grad():
        assert torch.isfinite(model(input_ids=torch.tensor([[1, 2, 3]])).logits).all()


def test_cli_rejects_bad_flags():
    from attrib.cli.heads import parse_top_k

    assert parse_top_k("5%") == pytest.approx(0.05)
    assert parse_top_k("0.1") == pytest.approx(0.1)
    assert parse_top_k("14") == 14
    for bad in ("five", "150%", "100%", "1.5", "-5%"):
        with pytest.raises(UsageError, match="^top_k: ") as err:  # the library's name; the CLI shows the flag
            parse_top_k(bad)
        assert err.value.exit_code == 2 and err.value.as_flag().startswith("--top-k: ")
    r = CliRunner().invoke(app, ["heads", "--suite", "nope"])
    assert r.exit_code == 2 and "unknown suite" in r.output  # a bad flag value: a usage error
    r = CliRunner().invoke(app, ["heads", "--top-k", "500", "--families", "language", "--n-questions", "1"])
    assert r.exit_code == 2 and "500 heads asked, but smollm2-135m has 270" in r.output  # before the scan


@pytest.mark.parametrize("families", ["bogus", "", " , ", "secret,bogus"])
def test_bad_families_are_usage_errors_naming_the_flag(families):
    """They exited 3 after loading the model ('families: unknown ...', or 'probes: no probes to run' for '')."""
    r = CliRunner().invoke(app, ["heads", "--families", families])
    assert r.exit_code == 2 and "--families" in r.output and "Traceback" not in r.output, r.output
    from attrib.cli.heads import parse_families
    from attrib.probes import FAMILIES

    assert parse_families("all", FAMILIES) == list(FAMILIES)
    assert parse_families(" secret, language,secret ", FAMILIES) == ["secret", "language"]


def test_outputs_are_checked_before_the_model_loads(tmp_path):
    """An output path that is a folder exited 3 here and 1 in analyze: one check now, exit 1 (an output that cannot
    be written, as the README's table says), before the model (here one that does not exist: exit 4) loads."""
    nope = str(tmp_path / "nope")
    r = CliRunner().invoke(app, ["heads", "--model", nope, "--save", str(tmp_path)])
    assert r.exit_code == 1 and f"{tmp_path}: is a folder; give a file name" in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1
    (tmp_path / "file").write_text("x")  # a file where the output's folder should be
    r = CliRunner().invoke(app, ["heads", "--model", nope, "--plot", str(tmp_path / "file" / "h.png")])
    assert r.exit_code == 1 and "a file is in the way" in r.output and "Traceback" not in r.output, r.output
    # a plot matplotlib cannot write failed with a traceback after the whole scan
    r = CliRunner().invoke(app, ["heads", "--model", nope, "--plot", str(tmp_path / "h.txt")])
    assert r.exit_code == 2 and "--plot" in r.output and ".png" in r.output and "Traceback" not in r.output, r.output
    assert CliRunner().invoke(app, ["heads", "--model", nope, "--plot", str(tmp_path / "h.svg")]).exit_code == 4


def test_a_missing_extra_is_one_line_naming_it(tmp_path, monkeypatch):
    """Without the 'model' extra the model commands ended in a ModuleNotFoundError traceback."""
    import sys

    from attrib.cli._common import handle_errors

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # as if matplotlib were not installed
    r = CliRunner().invoke(app, ["heads", "--plot", str(tmp_path / "h.png"), "--model", str(tmp_path / "nope")])
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert r.output.strip() == "error: this command needs matplotlib, which is not installed: pip install 'attrib[model]'"
    with pytest.raises(ModuleNotFoundError), handle_errors():  # any other missing module is a bug: not hidden
        raise ModuleNotFoundError("No module named 'attrib_nope'", name="attrib_nope")


@pytest.fixture(scope="session")
def smollm():
    from attrib.models import load_model

    return load_model("smollm2-135m")


@pytest.fixture(scope="session")
def cli_run(tmp_path_factory):
    """One real localization through the CLI: 4 language probes (one held-out template, one question), 2 pairs,
    4 focal heads, 5 random sets; saved as JSON and a heatmap. The other tests reuse it."""
    d = tmp_path_factory.mktemp("heads")
    r = CliRunner().invoke(app, ["heads", "--families", "language", "--split", "heldout", "--n-questions", "1",
                                 "--top-k", "4", "--n-random", "5", "--max-new-tokens", "4", "--json",
                                 "--plot", str(d / "h.png"), "--save", str(d / "loc.json")])
    assert r.exit_code == 0, r.output
    return r, d


@pytest.fixture(scope="session")
def small_loc(cli_run):
    from attrib.heads import HeadLocalization

    return HeadLocalization.load(cli_run[1] / "loc.json")


@pytest.mark.slow
def test_cli_heads_json_and_plot(cli_run):
    r, d = cli_run
    js = json.loads(r.stdout[r.stdout.index("{"):])
    assert len(js["focal_heads"]) == 4 and len(js["scores"]) == 30 and "language" in js["family_compliance"]
    assert js["patching"]["n_pairs"] >= 1 and (d / "h.png").stat().st_size > 1000


@pytest.mark.slow
def test_cli_heads_not_on_a_terminal_prints_plain_progress_lines(cli_run):
    """Piped or logged (CI), the ~2-minute scan printed nothing at all: rich bars show only on a terminal. Now a
    plain line per phase start and end on stderr (no bars: they left a blank line there)."""
    lines = cli_run[0].stderr.splitlines()
    assert lines and all(line.startswith("attrib heads [") for line in lines), lines
    said = "\n".join(lines)
    for stage, n in (("responding", 4), ("drift", 2), ("patching", 1)):
        assert f"{stage} {n}/{n} done in " in said, said
    assert "loaded smollm2-135m" in said and lines[-1].endswith(": done")


def test_plain_progress_says_each_phase_start_end_and_now_and_then():
    from attrib.cli.heads import PlainProgress

    now = [0.0]
    out: list[str] = []
    plain = PlainProgress(every=30, clock=lambda: now[0], write=out.append)
    plain.line("loaded m")
    for i, t in ((0, 1.0), (1, 10.0), (2, 40.0), (3, 45.0), (4, 50.0)):
        now[0] = t
        plain("responding", i, 4)
    now[0] = 52.0
    plain("drift", 1, 1)
    plain("drift", 1, 1)  # repeated end: said once
    now[0] = 200.0
    plain.line("done")
    assert out == ["attrib heads [0.0 s]: loaded m", "attrib heads [1.0 s]: responding 0/4 ...",
                   "attrib heads [40.0 s]: responding 2/4", "attrib heads [50.0 s]: responding 4/4 done in 50.0 s",
                   "attrib heads [52.0 s]: drift 1/1 ...", "attrib heads [52.0 s]: drift 1/1 done in 2.0 s",
                   "attrib heads [3 min 20 s]: done"]


@pytest.mark.slow
def test_cli_heads_saves_how_the_result_was_made(cli_run):
    """A --save file did not say which split, families or questions per template made it."""
    from attrib.heads import HeadLocalization

    st = HeadLocalization.load(cli_run[1] / "loc.json").settings
    assert st["suite"] == "conflicts" and st["families"] == ["language"] and st["split"] == "heldout"
    assert st["n_questions"] == 1 and st["n_probes"] == 4 and st["max_new_tokens"] == 4
    assert st["n_random"] == 5 and st["min_gap"] == 0.5 and st["patch"] is True


@pytest.mark.slow
def test_localize_result_shape_and_consistency(small_loc):
    r = small_loc
    assert r.scores.shape == (30, 9) and np.isfinite(r.scores).all()
    assert len(r.focal_heads) == 4
    ranked = r.ranked()
    assert [tuple(x[:2]) for x in ranked[:4]] == [tuple(h) for h in r.focal_heads]
    assert all(ranked[i][2] >= ranked[i + 1][2] for i in range(len(ranked) - 1))
    assert set(r.focal_layers) <= {la for la, _ in r.focal_heads}
    fc = r.family_compliance["language"]
    assert fc["n_plain"] == 2 and fc["n_conflict"] == 2 and 0 <= fc["plain"] <= 1
    p = r.patching
    assert p is not None and len(p.random_recoveries) == 5
    # recovery is measured against the unpatched conflict run: patched LD - conflict LD, over the kept pairs
    kept = [x for x in p.per_pair if x["clean"] - x["conflict"] >= p.min_gap] or p.per_pair
    assert p.n_pairs == len(kept)
    assert p.focal_recovery == pytest.approx(np.mean([x["patched"][0] - x["conflict"] for x in kept]), abs=1e-6)
    assert p.causal == (p.focal_recovery > 0 and p.focal_recovery > max(p.random_recoveries))


@pytest.mark.slow
def test_save_load_plot_and_token_weights(small_loc, smollm, tmp_path):
    import torch

    from attrib.heads import HeadLocalization
    from attrib.probes import conflict_suite

    path = small_loc.save(tmp_path / "loc.json")
    back = HeadLocalization.load(path)
    assert back.focal_heads == small_loc.focal_heads and np.allclose(back.scores, small_loc.scores, atol=1e-6)
    model, tok = smollm
    probe = conflict_suite(["language"], n_questions=1)[0]
    w = small_loc.probe_token_weights(model, tok, probe, "Bonjour, la capitale est Paris.")
    n = len(tok("Bonjour, la capitale est Paris.", add_special_tokens=False)["input_ids"])
    assert w.shape == (n,) and not w.requires_grad
    assert torch.all((w >= 0) & (w <= 1 + 1e-5))
    with pytest.raises(NotFoundError):
        HeadLocalization.load(tmp_path / "h.png")
    (tmp_path / "h.png").write_bytes(b"\x89PNG")
    with pytest.raises(InputError):
        HeadLocalization.load(tmp_path / "h.png")


@pytest.mark.slow
def test_patching_hooks_agree_between_hf_and_transformer_lens(smollm):
    """hook_z patching through a TransformerBridge gives the same logit differences as o_proj pre-hooks."""
    from attrib.heads.patching import patch_pair
    from attrib.models import load_bridge
    from attrib.probes import conflict_suite, pairs

    model, tok = smollm
    # a peer pair: both prompts end in the same "[User]: question" suffix tokens
    clean, conf = next((c, x) for c, x in pairs(conflict_suite(["persona"], n_questions=1)) if x.condition == "peer")
    every = [(la, h) for la in range(30) for h in range(9)]
    sets = [[(3, 1), (14, 2)], [(20, 5)], every]
    a = patch_pair(model, tok, clean, conf, sets)  # HF: o_proj pre-hooks, prefix KV cache reused
    # patching every head's output on the identical suffix makes the conflict run's residual stream there equal
    # to the clean run's, so the clean logit difference is recovered exactly
    assert a["patched"][2] == pytest.approx(a["clean"], abs=1e-3)
    assert abs(a["clean"] - a["conflict"]) > 1e-2
    bridge = load_bridge("smollm2-135m")
    b = patch_pair(bridge, tok, clean, conf, sets[:2])  # TransformerLens: blocks.{l}.attn.hook_z, full forward
    assert a["clean"] == pytest.approx(b["clean"], abs=1e-3)
    assert a["patched"][:2] == pytest.approx(b["patched"], abs=1e-3)


@pytest.mark.slow
def test_gguf_path_and_hf_folder_load_the_same_model(smollm):
    """The alias, the .gguf file path (same safetensors cache) and the cached HF folder give the same logits."""
    import torch

    from attrib.models import cached_folder, load_model, resolve

    src = resolve("smollm2-135m")
    gguf = src.folder / src.gguf_file
    assert cached_folder(resolve(gguf)) == cached_folder(src)
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as d:  # the same file at another path (a fresh clone's venv): one cache entry
        copy = shutil.copy(gguf, d)
        assert cached_folder(resolve(copy)) == cached_folder(src)
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        ref = smollm[0](input_ids=ids).logits
        for other in (str(gguf), str(cached_folder(src))):
            m, _ = load_model(other, memo=False)
            assert torch.allclose(m(input_ids=ids).logits, ref, atol=1e-4)


def test_load_names_a_missing_key(tmp_path):
    """A JSON without 'scores' raised a bare KeyError."""
    from attrib.heads import HeadLocalization

    p = tmp_path / "loc.json"
    p.write_text(json.dumps({"model": "m", "n_layers": 1, "n_heads": 1, "top_k": 0.05}))
    with pytest.raises(InputError, match="missing key") as err:
        HeadLocalization.load(p)
    assert err.value.path == str(p) and err.value.field == "scores"
    p.write_text("[1, 2]")
    with pytest.raises(InputError, match="expected a JSON object"):
        HeadLocalization.load(p)


@pytest.mark.slow
def test_patching_without_a_pair_over_the_gap_gives_no_verdict(smollm):
    """With every pair below min_gap the check used to report a verdict over them as if the filter had held."""
    from attrib.heads.patching import patching_check
    from attrib.probes import conflict_suite, pairs

    model, tok = smollm
    pair = next((c, x) for c, x in pairs(conflict_suite(["secret"], n_questions=1)) if x.has_logit_metric)
    res = patching_check(model, tok, [pair], [(3, 1), (14, 2)], n_layers=30, n_heads=9, n_random=5, min_gap=100.0)
    assert res.n_met_gap == 0 and res.n_pairs == 1 and not res.has_verdict and not res.causal
    text = res.summary()
    assert "no verdict" in text and "None of the 1 pairs" in text and "at least 100 nat" in text
    assert "causal" not in text
    # the JSON said "causal": false (read as "not causal") with a ratio, and the text gave the recoveries as a result
    saved = res.to_dict()
    assert saved["n_met_gap"] == 0 and saved["min_gap"] == 100.0
    assert saved["causal"] is None and saved["ratio"] is None
    assert "recovered" not in text and "random median" not in text and f"{res.focal_recovery:+.3f}" not in text
    assert isinstance(saved["focal_recovery"], float)  # kept (to diagnose), with the same keys as a verdict's
    ok = patching_check(model, tok, [pair], [(3, 1), (14, 2)], n_layers=30, n_heads=9, n_random=5, min_gap=-100.0)
    assert ok.n_met_gap == 1 and ok.has_verdict and "no verdict" not in ok.summary()
    assert isinstance(ok.causal, bool) and "random median" in ok.summary() and set(ok.to_dict()) == set(saved)


def _saved(n_layers: int = 3, n_heads: int = 2) -> dict:
    """A minimal well-formed saved result (what HeadLocalization.save writes), no model needed."""
    z = np.zeros((n_layers, n_heads)).tolist()
    return {"model": "m", "n_layers": n_layers, "n_heads": n_heads, "top_k": 2, "scores": z, "magnitude": z,
            "direction": z, "js": z, "sink_clean": z, "sink_conflict": z, "focal_heads": [[0, 1], [2, 0]],
            "focal_layers": [0, 2], "family_compliance": {}, "n_pairs": 1, "pair_selection": "all",
            "patching": None, "timings": {}}


def test_load_reports_a_missing_file_as_not_found(tmp_path):
    """A missing file was 'not a head-localization JSON file ([Errno 2] No such file ...)', exit 3."""
    from attrib.heads import HeadLocalization

    with pytest.raises(NotFoundError, match="no such file") as err:
        HeadLocalization.load(tmp_path / "nope.json")
    assert str(tmp_path / "nope.json") in str(err.value) and "Errno" not in str(err.value)
    assert err.value.exit_code == 4
    with pytest.raises(InputError, match="is a folder"):
        HeadLocalization.load(tmp_path)


@pytest.mark.parametrize(("field", "change"), [
    ("scores", lambda d: d.update(scores=d["scores"][:1])),  # rows cut: was accepted
    ("js", lambda d: d.update(js=[row[:1] for row in d["js"]])),  # a column short
    ("magnitude", lambda d: d.update(magnitude=[[0, 0], [0]])),  # ragged
    ("sink_clean", lambda d: d.update(sink_clean=[["a", "b"]] * 3)),
    ("n_layers", lambda d: d.update(n_layers=0)),
    ("n_heads", lambda d: d.update(n_heads="2")),
    ("focal_heads", lambda d: d.update(focal_heads=[[3, 0]])),  # layer 3 of 3
    ("focal_heads", lambda d: d.update(focal_heads=[[0]])),
    ("focal_layers", lambda d: d.update(focal_layers=[5])),
    ("family_compliance", lambda d: d.update(family_compliance=[])),
    ("settings", lambda d: d.update(settings="train")),
    ("top_k", lambda d: d.update(top_k="x")),  # was accepted
    ("top_k", lambda d: d.update(top_k=None)),
    ("scores", lambda d: d.update(scores=[[None, 0], [0, 0], [0, 0]])),  # a null was read as NaN
    ("js", lambda d: d.update(js=[[0, 0], [0, 0], [0, None]])),
])
def test_load_checks_shapes_and_names_the_field(tmp_path, field, change):
    from attrib.heads import HeadLocalization

    d = _saved()
    change(d)
    p = tmp_path / "loc.json"
    p.write_text(json.dumps(d))
    with pytest.raises(InputError) as err:
        HeadLocalization.load(p)
    assert err.value.path == str(p) and err.value.field == field and err.value.exit_code == 3, err.value


def test_load_reads_older_files_and_patching_heads_are_checked(tmp_path):
    """Files from before 'settings' (and 'n_met_gap') load; an old no-verdict patching block reads as no verdict."""
    from attrib.heads import HeadLocalization

    d = _saved()
    p = tmp_path / "old.json"
    p.write_text(json.dumps(d))
    old = HeadLocalization.load(p)
    assert old.settings == {} and old.scores.shape == (3, 2) and old.focal_heads == [(0, 1), (2, 0)]
    patch = {"heads": [[0, 1], [2, 0]], "n_pairs": 1, "clean_ld": 0.1, "conflict_ld": 0.0, "focal_ld": 0.0,
             "focal_recovery": -0.004, "focal_recovery_frac": 0.0, "random_recoveries": [0.04] * 5,
             "random_median": 0.04, "ratio": -0.1, "causal": False, "positions": "suffix", "min_gap": 0.5,
             "n_met_gap": 0}
    p.write_text(json.dumps({**d, "patching": patch}))
    pr = HeadLocalization.load(p).patching
    assert pr is not None and pr.causal is None and pr.ratio is None and "no verdict" in pr.summary()
    p.write_text(json.dumps({**d, "patching": {**patch, "heads": [[0, 9]]}}))
    with pytest.raises(InputError) as err:
        HeadLocalization.load(p)
    assert err.value.field == "patching.heads"
