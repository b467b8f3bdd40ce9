"""Activation files: three formats, lazy/memory-mapped reads, shape checks against a model config, linking."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from attrib.activations import (
    ActivationFile,
    ModelConfig,
    check_shape,
    check_trace,
    expected_shape,
    link_activations,
    load_step,
    save_step,
)
from attrib.errors import InputError
from attrib.readers import load_trace

# SmolLM2-135M's dimensions (30 layers, 9 query heads, 3 key/value heads, d_model 576, d_mlp 1536)
CFG = ModelConfig(n_layers=30, n_heads=9, d_model=576, d_mlp=1536, n_key_value_heads=3)
POS = 7


def _good() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "blocks.12.attn.hook_pattern": rng.random((9, POS, POS), dtype=np.float32),
        "blocks.12.hook_resid_post": rng.random((1, POS, 576), dtype=np.float32),  # with a batch dim of 1
        "blocks.3.attn.hook_k": rng.random((POS, 3, 64), dtype=np.float32),
        "blocks.3.mlp.hook_post": rng.random((POS, 1536), dtype=np.float32),
    }


def test_expected_shapes_follow_transformer_lens() -> None:
    assert expected_shape("blocks.0.attn.hook_pattern", CFG) == (9, None, None)
    assert expected_shape("blocks.0.attn.hook_z", CFG) == (None, 9, 64)
    assert expected_shape("blocks.0.attn.hook_v", CFG) == (None, 3, 64)  # grouped-query attention
    assert expected_shape("ln_final.hook_normalized", CFG) == (None, 576)
    assert expected_shape("blocks.0.my_probe", CFG) is None
    assert ModelConfig.from_any({"num_hidden_layers": 30, "num_attention_heads": 9, "hidden_size": 576}).head_dim == 64


@pytest.mark.parametrize("fmt", ["safetensors", "npz", "pt"])
def test_each_format_reads_back_and_checks(tmp_path: Path, fmt: str) -> None:
    arrays = _good()
    p = tmp_path / f"step_0.{fmt}"
    if fmt == "safetensors":
        save_step(p, arrays, CFG)
    elif fmt == "npz":
        np.savez(p, **arrays)
    else:
        import torch

        torch.save({k: torch.from_numpy(v) for k, v in arrays.items()}, p)
    with ActivationFile(p) as f:
        assert sorted(f.keys()) == sorted(arrays)
        assert f.shape("blocks.12.attn.hook_pattern") == (9, POS, POS)
        f.check(CFG)
        for k, v in arrays.items():
            np.testing.assert_array_equal(np.asarray(f.get(k)), v)
        if fmt == "npz":
            assert isinstance(f.get("blocks.3.attn.hook_k"), np.memmap)  # stored member: mapped, not read
        if fmt == "safetensors":
            assert f.config == CFG  # the file describes its own model


@pytest.mark.parametrize(("hook", "shape", "why"), [
    ("blocks.12.attn.hook_pattern", (8, POS, POS), "expected [9, pos, pos]"),
    ("blocks.12.attn.hook_pattern", (9, POS + 1, POS), "expected [9, pos, pos]"),
    ("blocks.12.hook_resid_post", (POS, 512), "expected [pos, 576]"),
    ("blocks.30.hook_resid_post", (POS, 576), "layer 30 does not exist"),
    ("blocks.3.attn.hook_k", (POS, 9, 64), "expected [pos, 3, 64]"),
])
def test_wrong_shapes_name_file_and_hook(tmp_path: Path, hook: str, shape: tuple[int, ...], why: str) -> None:
    p = tmp_path / "bad.npz"
    np.savez(p, **{hook: np.zeros(shape, np.float32)})
    with ActivationFile(p) as f, pytest.raises(InputError) as e:
        f.check(CFG)
    msg = str(e.value)
    assert str(p) in msg and hook in msg and why in msg and "\n" not in msg
    with pytest.raises(InputError):
        check_shape(p, hook, shape, CFG)


def test_unreadable_and_unknown_files(tmp_path: Path) -> None:
    p = tmp_path / "junk.safetensors"
    p.write_bytes(b"\x00\x01not a safetensors file")
    with pytest.raises(InputError, match="junk.safetensors"):
        ActivationFile(p)
    (tmp_path / "x.h5").write_bytes(b"x")
    with pytest.raises(InputError, match="unknown activation format"):
        ActivationFile(tmp_path / "x.h5")
    with pytest.raises(InputError, match="not found"):
        ActivationFile(tmp_path / "missing.npz")


def test_link_and_load_steps(tmp_path: Path, bundled: Path) -> None:
    trace = load_trace(bundled / "demo_whowhen.json")
    save_step(tmp_path / "step_1.safetensors", _good(), CFG)
    np.savez(tmp_path / "step_2.npz", **{"blocks.0.hook_resid_pre": np.ones((POS, 576), np.float32)})
    linked = link_activations(trace, tmp_path)
    assert [s.index for s in linked.steps if s.activation] == [1, 2]
    assert linked.steps[2].activation.format == "npz"
    acts = load_step(linked.steps[1], hooks=("blocks.12.attn.hook_pattern",), config=CFG)
    assert acts["blocks.12.attn.hook_pattern"].shape == (9, POS, POS)
    assert check_trace(linked, CFG) == 2


def test_multi_step_file_with_step_prefixed_keys(tmp_path: Path) -> None:
    p = tmp_path / "all.npz"
    np.savez(p, **{"0/blocks.1.hook_resid_post": np.zeros((3, 576), np.float32),
                   "1/blocks.1.hook_resid_post": np.zeros((5, 576), np.float32)})
    msgs = [{"role": "user", "name": "u", "content": "a", "activation": {"path": "all.npz"}},
            {"role": "assistant", "name": "b", "content": "b", "activation": {"path": "all.npz"}}]
    (tmp_path / "chat.json").write_text(json.dumps(msgs))
    trace = load_trace(tmp_path / "chat.json")
    assert trace.steps[0].activation.path == str(p)  # relative paths resolve beside the trace file
    assert load_step(trace.steps[1], config=CFG)["blocks.1.hook_resid_post"].shape == (5, 576)


def test_native_trace_activation_paths_resolve_beside_the_file(tmp_path: Path, monkeypatch) -> None:
    """attrib JSON with a relative activation path reads from any working directory; a path written relative
    to the working directory (the recorder's first format) still works from there."""
    import msgspec

    from attrib.activations import relative_activations
    from attrib.trace import ActivationRef, Step, Trace

    run = tmp_path / "runs"
    (run / "acts").mkdir(parents=True)
    np.savez(run / "acts" / "step_0.npz", **{"blocks.1.hook_resid_post": np.zeros((3, 576), np.float32)})
    ref = ActivationRef(path=str(run / "acts" / "step_0.npz"), hooks=("blocks.1.hook_resid_post",), format="npz")
    t = Trace(id="t", source_format="attrib", steps=(Step(index=0, agent="a", content="x", activation=ref),))
    rel = relative_activations(t, run)
    assert rel.steps[0].activation.path == "acts/step_0.npz"
    (run / "t.json").write_bytes(rel.to_json())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    got = load_trace(run / "t.json")
    assert got.steps[0].activation.path == str(run / "acts" / "step_0.npz")
    assert load_step(got.steps[0], config=CFG)["blocks.1.hook_resid_post"].shape == (3, 576)
    # legacy: the path is relative to the working directory, not to the file
    legacy = msgspec.structs.replace(rel, steps=(msgspec.structs.replace(
        rel.steps[0], activation=msgspec.structs.replace(ref, path="runs/acts/step_0.npz")),))
    (run / "legacy.json").write_bytes(legacy.to_json())
    monkeypatch.chdir(tmp_path)
    assert load_trace(run / "legacy.json").steps[0].activation.path == str(run / "acts" / "step_0.npz")
