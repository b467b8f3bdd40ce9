"""Activation files without a model config (no metadata, no --model-config): a hook's rank, fixed sizes, queries
against keys and the recorder's segment count are known from the hook name alone, and a file that breaks them is
refused at ingest with one line naming the file and the hook (they were ingested, and failed later, if at all, naming
no file)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from attrib.activations import ActivationFile, check_trace, save_step
from attrib.cli import app
from attrib.errors import InputError
from attrib.heads.drift import stats_from_segment_masses, step_drift
from attrib.readers import load_trace
from attrib.trace import Step

runner = CliRunner()


def _write(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``arrays`` in ``path``'s format, with no config in the file."""
    if path.suffix == ".pt":
        import torch

        torch.save({k: torch.from_numpy(np.asarray(v)) for k, v in arrays.items()}, path)
    elif path.suffix == ".npz":
        np.savez(path, **arrays)
    else:  # safetensors' own writer, no metadata (save_step makes a scalar [1], as np.ascontiguousarray does)
        from safetensors.numpy import save_file

        save_file({k: np.asarray(v) for k, v in arrays.items()}, str(path))


def _trace(tmp_path: Path, act: Path) -> Path:
    """A chat trace whose one step points at ``act`` (relative, beside the trace)."""
    p = tmp_path / "run.json"
    p.write_text(json.dumps([{"role": "user", "name": "u", "content": "hi"},
                             {"role": "assistant", "name": "a", "content": "x", "activation": {"path": act.name}}]))
    return p


def _recorded(n_layers: int = 3, heads: int = 9, q: int = 4, segments: int = 5) -> dict[str, np.ndarray]:
    """What the recorder writes for one step: per-layer :segment_mass [H, Q, S] and :entropy [H, Q], the positions."""
    arrays: dict[str, np.ndarray] = {"attrib.query_positions": np.arange(10, 10 + q, dtype=np.int32)}
    for la in range(n_layers):
        arrays[f"blocks.{la}.attn.hook_pattern:segment_mass"] = np.full((heads, q, segments), 1 / segments, np.float16)
        arrays[f"blocks.{la}.attn.hook_pattern:entropy"] = np.ones((heads, q), np.float16)
    return arrays


BAD = [
    ("step.safetensors", "blocks.0.attn.hook_pattern", (5,), "shape [5] has 1 axis: expected 3, [n_heads, pos, pos]"),
    ("step.safetensors", "blocks.0.hook_resid_post", (), "shape [] has 0 axes: expected 2, [pos, d_model]"),
    ("step.npz", "blocks.2.attn.hook_pattern", (4, 9, 3), "shape [4, 9, 3] has 9 queries but only 3 keys"),
    ("step.safetensors", "blocks.2.attn.hook_attn_scores", (1, 4, 9, 3), "has 9 queries but only 3 keys"),
    ("step.pt", "blocks.0.attn.hook_pattern:segment_mass", (2, 2),
     "shape [2, 2] has 2 axes: expected 3, [n_heads, query, segment]"),
    ("step.safetensors", "blocks.0.attn.hook_pattern:entropy", (1, 2, 3, 4), "has 4 axes: expected 2"),
    ("step.npz", "blocks.1.ln1.hook_scale", (7, 2), "shape [7, 2]: axis 1 must be 1, [pos, 1]"),
    ("step.safetensors", "attrib.query_positions", (3, 2), "has 2 axes: expected 1, [query]"),
    ("step.safetensors", "blocks.0.hook_resid_post", (2, 7, 576), "has 3 axes: expected 2"),  # batch 2: not one prompt
]


@pytest.mark.parametrize(("name", "hook", "shape", "says"), BAD)
def test_a_shape_of_the_wrong_rank_is_refused_without_a_config(
        tmp_path: Path, name: str, hook: str, shape: tuple[int, ...], says: str) -> None:
    p = tmp_path / name
    _write(p, {hook: np.zeros(shape, np.float32)})
    with ActivationFile(p) as f:
        assert f.config is None
        with pytest.raises(InputError) as e:
            f.check()
    assert str(e.value).startswith(f"{p}: {hook}: ") and says in e.value.message, str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(("name", "hook", "shape", "says"), BAD[:5])
def test_ingest_refuses_it_in_one_line_exit_3(
        tmp_path: Path, name: str, hook: str, shape: tuple[int, ...], says: str) -> None:
    p = tmp_path / name
    _write(p, {hook: np.zeros(shape, np.float32)})
    trace = _trace(tmp_path, p)
    r = runner.invoke(app, ["ingest", str(trace), "--store", str(tmp_path / "s.duckdb"), "-q"])
    assert r.exit_code == 3, r.output
    errors = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"{p}: {hook}: " in errors[0] and says in errors[0], r.output


def test_shapes_a_model_can_give_still_pass_without_a_config(tmp_path: Path) -> None:
    """What the recorder writes, a batch of one, more keys than queries (a key/value cache), a pattern hook kept
    in full: none of it is refused."""
    arrays = _recorded()
    arrays["blocks.0.attn.hook_pattern:segment_mass"] = arrays["blocks.0.attn.hook_pattern:segment_mass"][None]
    arrays["blocks.3.attn.hook_pattern"] = np.zeros((9, 6, 6), np.float16)
    arrays["blocks.4.attn.hook_attn_scores"] = np.zeros((1, 9, 2, 6), np.float16)
    arrays["blocks.3.hook_resid_post"] = np.zeros((1, 4, 576), np.float16)
    arrays["blocks.3.ln2.hook_scale"] = np.zeros((4, 1), np.float16)
    p = tmp_path / "ok.safetensors"
    save_step(p, arrays)
    with ActivationFile(p) as f:
        f.check()
    assert check_trace(load_trace(_trace(tmp_path, p))) == 1


def test_segment_masses_with_another_segment_count_are_refused_at_ingest(tmp_path: Path) -> None:
    """Four segments at every layer agree with each other, so the layer check passed them; drift then failed with
    "segment_mass: expected [layers, heads, Q, 5], got (3, 9, 4, 4)" and no file."""
    p = tmp_path / "step_1.safetensors"
    save_step(p, _recorded(segments=4))
    hook = "blocks.0.attn.hook_pattern:segment_mass"
    with ActivationFile(p) as f, pytest.raises(InputError) as e:
        f.check()
    assert str(e.value) == (f"{p}: {hook}: shape [9, 4, 4] has 4 segments: expected [n_heads, query, 5], the "
                            "recorder's segments (sink, rule, conflict, prompt, response)")
    r = runner.invoke(app, ["ingest", str(_trace(tmp_path, p)), "--store", str(tmp_path / "s.duckdb"), "-q"])
    assert r.exit_code == 3 and f"{p}: {hook}: shape [9, 4, 4] has 4 segments" in r.output, r.output
    step = Step(index=1, agent="a", content="x", activation=save_step(p, _recorded(segments=4)))
    with pytest.raises(InputError) as e:
        step_drift(step, step)
    assert e.value.path == str(p) and e.value.field == hook


def test_drift_names_the_file_its_masses_came_from() -> None:
    with pytest.raises(InputError) as e:
        stats_from_segment_masses(np.zeros((3, 9, 4, 4)), path="runs/step_1.safetensors")
    assert str(e.value).startswith("runs/step_1.safetensors: segment_mass: expected [layers, heads, Q, 5]")
