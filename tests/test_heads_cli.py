"""Head localization end to end on the real model (small probe subset), patching with TL hooks, the CLI, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from attrib.cli import app
from attrib.errors import InputError, NotFoundError


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


def test_cli_rejects_bad_flags():
    from attrib.cli.heads import parse_top_k

    assert parse_top_k("5%") == pytest.approx(0.05)
    assert parse_top_k("0.1") == pytest.approx(0.1)
    assert parse_top_k("14") == 14
    for bad in ("five", "150%", "100%", "1.5", "-5%"):
        with pytest.raises(InputError, match="--top-k"):
            parse_top_k(bad)
    r = CliRunner().invoke(app, ["heads", "--suite", "nope"])
    assert r.exit_code == 2 and "unknown suite" in r.output  # a bad flag value: a usage error
    r = CliRunner().invoke(app, ["heads", "--top-k", "500", "--families", "language", "--n-questions", "1"])
    assert r.exit_code == 2 and "500 heads asked, but smollm2-135m has 270" in r.output  # before the scan


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
