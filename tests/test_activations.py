"""Activation files: three formats, lazy/memory-mapped reads, shape checks against a model config, linking."""

from __future__ import annotations

import json
import re
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
from attrib.trace import ActivationRef

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
    ("blocks.12.attn.hook_attn_scores", (9, POS + 1, POS), "expected [9, pos, pos]"),  # [H, Q, K]: Q <= K too
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


# -- bad files are refused by name when opened or checked, never at read time with a raw error -------------------------


def _npz_member(path: Path, key: str, header_shape: tuple[int, ...], data: bytes, compress: bool = False) -> None:
    """A hand-made .npz whose member's .npy header declares ``header_shape`` float32 but holds ``data``."""
    import io
    import zipfile

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": header_shape})
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as z:
        z.writestr(f"{key}.npy", buf.getvalue() + data)


@pytest.mark.parametrize("array", [
    np.array([{"a": 1}], dtype=object),
    np.zeros(2, dtype=[("a", "f4"), ("b", "i4")]),
    np.array(["x", "y"]),
])
def test_npz_with_non_numeric_member_is_refused_when_opened(tmp_path: Path, array: np.ndarray) -> None:
    p = tmp_path / "obj.npz"
    np.savez(p, **{"blocks.3.hook_resid_post": array})
    with pytest.raises(InputError) as e:
        ActivationFile(p)  # memory-mapping pickled bytes as objects used to crash the process on get()
    assert str(p) in str(e.value) and "blocks.3.hook_resid_post" in str(e.value) and "not numeric" in str(e.value)


@pytest.mark.parametrize(("n_bytes", "compress"), [(40, False), (404, False), (40, True)])
def test_npz_member_size_must_match_its_header(tmp_path: Path, n_bytes: int, compress: bool) -> None:
    p = tmp_path / "bad.npz"
    _npz_member(p, "blocks.0.hook_resid_post", (100,), b"\0" * n_bytes, compress)
    with pytest.raises(InputError) as e:
        ActivationFile(p)
    assert str(p) in str(e.value) and "blocks.0.hook_resid_post" in str(e.value) and "400 bytes" in str(e.value)
    _npz_member(p, "blocks.0.hook_resid_post", (100,), b"\0" * 400, compress)  # the right size reads
    with ActivationFile(p) as f:
        assert f.get("blocks.0.hook_resid_post").shape == (100,)


def test_bfloat16_safetensors_and_pt_read_as_float32(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    t = torch.tensor([[1.5, -2.0, 0.1]], dtype=torch.bfloat16)
    save_file({"blocks.0.hook_resid_post": t}, str(tmp_path / "a.safetensors"))
    torch.save({"blocks.0.hook_resid_post": t}, tmp_path / "a.pt")
    for name in ("a.safetensors", "a.pt"):
        with ActivationFile(tmp_path / name) as f:
            got = f.get("blocks.0.hook_resid_post")
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, t.float().numpy())


def test_misspelled_hook_names_are_refused_with_a_suggestion(tmp_path: Path) -> None:
    p = tmp_path / "typo.npz"
    np.savez(p, **{"blocks.12.attn.hook_patern": np.zeros((9, POS, POS), np.float32)})
    with ActivationFile(p) as f, pytest.raises(InputError) as e:
        f.check()  # without a config too
    assert str(p) in str(e.value) and "did you mean 'blocks.12.attn.hook_pattern'" in str(e.value)
    with pytest.raises(InputError, match="hook_resid_post"):
        check_shape(p, "blocks.3.hook_resid_postt", (POS, 576), CFG)
    # every name the recorder writes is known
    for key in ("blocks.3.attn.hook_pattern:segment_mass", "blocks.3.attn.hook_pattern:entropy",
                "attrib.query_positions", "hook_embed", "ln_final.hook_scale", "blocks.0.mlp.hook_pre"):
        check_shape(p, key, {"attrib.query_positions": (4,), "hook_embed": (4, 576), "ln_final.hook_scale": (4, 1),
                             "blocks.0.mlp.hook_pre": (4, 1536)}.get(key, (9, 4, 5) if "mass" in key else (9, 4)),
                    CFG)


def test_segment_statistics_are_shape_checked(tmp_path: Path) -> None:
    assert expected_shape("blocks.0.attn.hook_pattern:segment_mass", CFG) == (9, None, None)
    assert expected_shape("blocks.0.attn.hook_pattern:entropy", CFG) == (9, None)
    p = tmp_path / "stats.safetensors"
    save_step(p, {"blocks.1.attn.hook_pattern:segment_mass": np.zeros((9, 3, 5), np.float16),
                  "blocks.1.attn.hook_pattern:entropy": np.zeros((9, 3), np.float16)})
    with ActivationFile(p) as f:
        f.check(CFG)
        wrong = ModelConfig(n_layers=30, n_heads=8, d_model=576)
        with pytest.raises(InputError, match="shape \\[9, 3.*expected \\[8, query"):
            f.check(wrong)
    with pytest.raises(InputError, match="expected \\[9, query\\]"):
        check_shape(p, "blocks.1.attn.hook_pattern:entropy", (9, 3, 5), CFG)  # rank too


@pytest.mark.parametrize(("hook", "shape", "shown"), [
    ("blocks.4.attn.hook_pattern:segment_mass", (7, 3, 5), "expected [9, query, segment]"),  # was [9, pos, pos]
    ("blocks.4.attn.hook_pattern:entropy", (7, 3), "expected [9, query]"),
    ("attrib.query_positions", (3, 2), "expected [query]"),
    ("blocks.4.attn.hook_pattern", (7, POS, POS), "expected [9, pos, pos]"),  # [H, T, T]: token positions
    ("blocks.0.mlp.hook_post", (POS, 4, 2), "expected [pos, d_mlp]"),  # d_mlp not in the config: named, not "pos"
])
def test_shape_messages_name_each_free_axis(hook: str, shape: tuple[int, ...], shown: str) -> None:
    """A free axis is shown by its name: the statistics' last axis is the segments, not positions."""
    cfg = ModelConfig(n_layers=30, n_heads=9, d_model=576)  # no d_mlp
    with pytest.raises(InputError) as e:
        check_shape("f.safetensors", hook, shape, cfg)
    assert str(e.value).endswith(shown), str(e.value)


def _stats_by_layer(n_layers: int = 3, n_q: int = 4) -> dict[str, np.ndarray]:
    arrays = {}
    for la in range(n_layers):
        arrays[f"blocks.{la}.attn.hook_pattern:segment_mass"] = np.full((9, n_q, 5), 0.2, np.float16)
        arrays[f"blocks.{la}.attn.hook_pattern:entropy"] = np.ones((9, n_q), np.float16)
    return arrays


@pytest.mark.parametrize(("hook", "bad", "says"), [
    ("blocks.1.attn.hook_pattern:segment_mass", (7, 3, 5), "shape [7, 3, 5] disagrees with the other 2 layers' "
                                                           "[9, 4, 5]: [n_heads, query, segment] is the same"),
    ("blocks.2.attn.hook_pattern:segment_mass", (9, 4, 6), "[9, 4, 6] disagrees with the other 2 layers' [9, 4, 5]"),
    ("blocks.0.attn.hook_pattern:entropy", (9, 5), "shape [9, 5] disagrees with the other 2 layers' [9, 4]"),
])
def test_layers_of_one_statistic_must_agree_without_a_config(
        tmp_path: Path, hook: str, bad: tuple[int, ...], says: str) -> None:
    """A file without config metadata whose statistics differ between layers (heads, queries, segments) passed the
    check, was ingested, and then failed in np.stack naming neither file nor hook."""
    arrays = _stats_by_layer()
    arrays[hook] = np.zeros(bad, np.float16)
    p = tmp_path / "step_1.safetensors"
    save_step(p, arrays)  # no config: nothing to check the heads against
    with ActivationFile(p) as f:
        assert f.config is None
        with pytest.raises(InputError) as e:
            f.check()
    assert str(e.value) == f"{p}: {hook}: {e.value.message}" and says in e.value.message, str(e.value)
    (tmp_path / "t.json").write_text(json.dumps([{"role": "assistant", "name": "a", "content": "x",
                                                  "activation": {"path": p.name}}]))
    with pytest.raises(InputError, match=re.escape(f"steps[0].activation: {p}: {hook}: shape")):
        check_trace(load_trace(tmp_path / "t.json"), source=tmp_path / "t.json")


def test_layer_agreement_allows_a_batch_of_one_and_checks_entropy_against_mass(tmp_path: Path) -> None:
    arrays = _stats_by_layer(2)
    arrays["blocks.1.attn.hook_pattern:segment_mass"] = arrays["blocks.1.attn.hook_pattern:segment_mass"][None]
    arrays["blocks.0.hook_resid_post"] = np.zeros((4, 576), np.float32)
    arrays["blocks.1.hook_resid_post"] = np.zeros((1, 4, 576), np.float32)
    p = tmp_path / "ok.safetensors"
    save_step(p, arrays)
    with ActivationFile(p) as f:
        f.check()  # [1, 9, 4, 5] is [9, 4, 5] with a batch of one
    one = {"blocks.0.attn.hook_pattern:segment_mass": np.zeros((9, 4, 5)),
           "blocks.0.attn.hook_pattern:entropy": np.zeros((9, 3))}
    save_step(p, one)
    with ActivationFile(p) as f, pytest.raises(InputError, match="entropy: shape \\[9, 3\\] disagrees with the "
                                                                 "layer's :segment_mass \\[9, 4, 5\\]"):
        f.check()


def test_layers_agree_within_each_step_of_a_multi_step_file(tmp_path: Path) -> None:
    """Steps may differ (their own answer lengths); the layers of one step may not, and the error names the key."""
    arrays = {f"{step}/{k}": v for step, n_q in ((0, 3), (1, 6)) for k, v in _stats_by_layer(2, n_q).items()}
    p = tmp_path / "all.npz"
    np.savez(p, **arrays)
    with ActivationFile(p) as f:
        f.check()
        f.check(step=1)
    arrays["1/blocks.1.attn.hook_pattern:entropy"] = np.zeros((9, 2), np.float16)
    np.savez(p, **arrays)
    with ActivationFile(p) as f:
        f.check(step=0)
        with pytest.raises(InputError, match="all.npz: 1/blocks.1.attn.hook_pattern:entropy: shape \\[9, 2\\]"):
            f.check(step=1)


@pytest.mark.parametrize(("cfg", "field", "got"), [
    ({"n_layers": 30, "n_heads": 0, "d_model": 576}, "n_heads", "0"),
    ({"n_layers": -2, "n_heads": 9, "d_model": 576}, "n_layers", "-2"),
    ({"n_layers": 30.7, "n_heads": 9, "d_model": 576}, "n_layers", "30.7"),
    ({"n_layers": "abc", "n_heads": 9, "d_model": 576}, "n_layers", "'abc'"),
    ({"num_hidden_layers": 30, "n_heads": 9, "d_model": 576, "head_dim": True}, "head_dim", "True"),
])
def test_model_config_values_must_be_positive_integers(cfg: dict, field: str, got: str) -> None:
    with pytest.raises(InputError) as e:
        ModelConfig.from_any(cfg)
    assert e.value.field == field and got in str(e.value)
    assert ModelConfig.from_any({"n_layers": 30.0, "n_heads": "9", "d_model": 576}).n_heads == 9


def test_a_reference_without_a_format_is_read_by_its_suffix(tmp_path: Path) -> None:
    """``ActivationRef.format`` None means "the suffix says" (it defaulted to safetensors, which the native reader
    then had to undo by decoding the file a second time)."""
    np.savez(tmp_path / "step_0.npz", **{"blocks.1.hook_resid_post": np.ones((3, 576), np.float32)})
    doc = {"id": "t", "source_format": "attrib", "steps": [
        {"index": 0, "agent": "a", "activation": {"path": "step_0.npz"}},
        {"index": 1, "agent": "b", "activation": {"path": "step_0.npz", "format": "npz"}}]}
    (tmp_path / "t.json").write_text(json.dumps(doc))
    trace = load_trace(tmp_path / "t.json")
    assert [s.activation.format for s in trace.steps] == [None, "npz"]  # as written
    assert load_step(trace.steps[0], config=CFG)["blocks.1.hook_resid_post"].shape == (3, 576)
    assert ActivationRef(path="x.npz").format is None


def test_a_step_missing_from_a_multi_step_file_is_an_error(tmp_path: Path) -> None:
    p = tmp_path / "all.npz"
    np.savez(p, **{"0/blocks.1.hook_resid_post": np.zeros((3, 576), np.float32),
                   "1/blocks.1.hook_resid_post": np.zeros((5, 576), np.float32)})
    msgs = [{"role": "user", "name": f"a{i}", "content": "x", "activation": {"path": "all.npz"}} for i in range(3)]
    (tmp_path / "chat.json").write_text(json.dumps(msgs))
    trace = load_trace(tmp_path / "chat.json")
    assert load_step(trace.steps[1])["blocks.1.hook_resid_post"].shape == (5, 576)
    with pytest.raises(InputError, match="holds nothing for step 2 \\(it has steps 0, 1\\)"):
        load_step(trace.steps[2])
    with pytest.raises(InputError, match="chat.json: steps\\[2\\].activation: .*holds nothing for step 2"):
        check_trace(trace, CFG, source=tmp_path / "chat.json")


def test_folders_and_unreadable_pt_files_are_named(tmp_path: Path) -> None:
    import torch

    (tmp_path / "acts.npz").mkdir()
    with pytest.raises(InputError, match="is a folder"):
        ActivationFile(tmp_path / "acts.npz")
    (tmp_path / "empty.pt").write_bytes(b"")
    torch.save({"blocks.0.hook_resid_post": torch.zeros(2, 576)}, tmp_path / "legacy.pt",
               _use_new_zipfile_serialization=False)
    for name in ("empty.pt", "legacy.pt"):
        with pytest.raises(InputError, match=f"{name}: not a readable .pt file"):
            ActivationFile(tmp_path / name)


def test_pt_integer_keys_read_as_strings(tmp_path: Path) -> None:
    import torch

    torch.save({3: torch.ones(2)}, tmp_path / "int.pt")
    with ActivationFile(tmp_path / "int.pt") as f:
        assert f.keys() == ["3"]
        np.testing.assert_array_equal(f.get("3"), np.ones(2, np.float32))


def test_every_known_hook_has_a_shape_rule() -> None:
    """One table names the hooks and their shapes: every name resolves against a config, with no unknown size."""
    from attrib.activations import BLOCK_HOOKS, TOP_HOOKS, is_known_hook

    for hook in (*(f"blocks.2.{h}" for h in BLOCK_HOOKS), *TOP_HOOKS):
        assert is_known_hook(hook)
        want = expected_shape(hook, CFG)
        assert want is not None and all(d is None or (isinstance(d, int) and d > 0) for d in want), hook
    no_mlp = ModelConfig(n_layers=2, n_heads=4, d_model=32)
    assert expected_shape("blocks.0.mlp.hook_post", no_mlp) == (None, None)  # d_mlp unknown: any size
    assert expected_shape("blocks.0.attn.hook_rot_q", CFG) == (None, 9, 64)
    assert expected_shape("blocks.0.attn.hook_rot_k", CFG) == (None, 3, 64)


@pytest.mark.parametrize(
    ("name", "fmt", "want"),
    [
        ("a.npz", None, "npz"),
        ("a.NPZ", None, "npz"),
        ("a.pth", None, "pt"),
        ("a.bin", None, "pt"),
        ("a.st", None, "safetensors"),
        ("a.safetensors", None, "safetensors"),
        ("a.npz", "PT", "pt"),
        ("a", "pth", "pt"),
        ("a.h5", None, None),
        ("a", None, None),
        ("a.npz", "h5", None),
    ],
)
def test_the_format_is_inferred_in_one_place(name: str, fmt: str | None, want: str | None) -> None:
    from attrib.activations import activation_format, format_from_suffix

    if want is None:
        with pytest.raises(InputError, match="unknown activation format"):
            activation_format(name, fmt)
    else:
        assert activation_format(name, fmt) == want
    if fmt is None:
        assert format_from_suffix(name) == want


def _count_opens(monkeypatch: pytest.MonkeyPatch, path: Path) -> list[str]:
    """From now on, every builtins.open of ``path`` is appended to the returned list."""
    import builtins

    opened: list[str] = []
    real_open = builtins.open

    def counting_open(file: object, *args: object, **kwargs: object) -> object:
        if str(file) == str(path):
            opened.append(str(file))
        return real_open(file, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(builtins, "open", counting_open)
    return opened


def test_npz_index_and_config_are_read_through_one_handle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening an .npz reads its members' offsets through one file handle (it reopened the file per member)."""

    p = tmp_path / "many.npz"
    arrays = {f"blocks.{i}.hook_resid_post": np.full((POS, 576), i, np.float32) for i in range(6)}
    np.savez(p, __config__=json.dumps({"n_layers": 30, "n_heads": 9, "d_model": 576}), **arrays)
    opened = _count_opens(monkeypatch, p)
    f = ActivationFile(p)
    monkeypatch.undo()
    with f:
        assert len(opened) == 1
        assert f.config == ModelConfig(n_layers=30, n_heads=9, d_model=576)
        assert "__config__" not in f
        for k, v in arrays.items():
            got = f.get(k)
            assert isinstance(got, np.memmap)
            np.testing.assert_array_equal(got, v)


def test_pt_declares_its_config(tmp_path: Path) -> None:
    import torch

    torch.save(
        {
            "__config__": {"n_layers": 30, "n_heads": 9, "d_model": 576},
            "blocks.0.hook_resid_post": torch.zeros(POS, 576),
        },
        tmp_path / "a.pth",
    )
    with ActivationFile(tmp_path / "a.pth") as f:
        assert f.format == "pt" and f.keys() == ["blocks.0.hook_resid_post"]
        assert f.config == ModelConfig(n_layers=30, n_heads=9, d_model=576)
        f.check()


def test_check_trace_opens_a_shared_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Steps sharing one multi-step file: it is opened (and its index read) once per check, then closed."""
    import attrib.activations as acts

    p = tmp_path / "all.npz"
    np.savez(p, **{f"{i}/blocks.1.hook_resid_post": np.zeros((i + 1, 576), np.float32) for i in range(4)})
    msgs = [
        {"role": "user", "name": f"a{i}", "content": "x", "activation": {"path": "all.npz"}} for i in range(4)
    ]
    (tmp_path / "chat.json").write_text(json.dumps(msgs))
    trace = load_trace(tmp_path / "chat.json")
    files: list[ActivationFile] = []
    real = acts.open_activations

    def counting(ref: object) -> ActivationFile:
        files.append(real(ref))  # type: ignore[arg-type]
        return files[-1]

    monkeypatch.setattr(acts, "open_activations", counting)
    assert check_trace(trace, CFG) == 4
    assert len(files) == 1 and files[0]._handle is None  # closed after its last step


def test_attention_scores_may_have_more_keys_than_queries() -> None:
    """[H, Q, K] with a key/value cache: fewer queries than keys is fine (for patterns and scores alike)."""
    for hook in ("blocks.1.attn.hook_pattern", "blocks.1.attn.hook_attn_scores"):
        check_shape("f.npz", hook, (9, 1, POS), CFG)
        check_shape("f.npz", hook, (1, 9, POS, POS), CFG)
    check_shape("f.npz", "blocks.1.attn.hook_pattern:segment_mass", (9, POS, 5), CFG)  # [H, Q, S]: S is segments


def test_npz_members_are_views_into_one_map_of_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading several stored members opens the file once in all (each get() opened it again for a new memmap)."""

    p = tmp_path / "many.npz"
    arrays = {f"blocks.{i}.hook_resid_post": np.full((POS, 576), i, np.float32) for i in range(6)}
    arrays["blocks.0.attn.hook_pattern"] = np.asfortranarray(np.random.default_rng(1).random((9, POS, POS)))
    np.savez(p, **arrays)
    opened = _count_opens(monkeypatch, p)
    with ActivationFile(p) as f:
        got = {k: f.get(k) for k in arrays}
        got2 = f.get("blocks.3.hook_resid_post")
    monkeypatch.undo()
    assert len(opened) == 1
    for k, v in arrays.items():
        assert isinstance(got[k], np.memmap) and not got[k].flags.writeable
        np.testing.assert_array_equal(got[k], v)  # still readable after the file is closed
    assert np.shares_memory(got["blocks.3.hook_resid_post"], got2)
    assert got["blocks.0.attn.hook_pattern"].flags.f_contiguous
    with pytest.raises(InputError, match="many.npz: blocks.1.hook_resid_post: the activation file is closed"):
        f.get("blocks.1.hook_resid_post")


def test_open_activations_reads_a_defaulted_npz_without_is_zipfile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reference that says safetensors (the default before it was None, so stores hold such references) to a
    ``.npz``/``.pt`` zip is sniffed from its first bytes, not by a second read of the archive's end records
    (zipfile.is_zipfile) before ZipFile reads them again; a file that really holds safetensors stays so."""
    import zipfile

    import torch

    from attrib.activations import open_activations
    from attrib.trace import ActivationRef

    np.savez(tmp_path / "a.npz", **{"blocks.1.hook_resid_post": np.ones((3, 576), np.float32)})
    torch.save({"blocks.1.hook_resid_post": torch.ones(3, 576)}, tmp_path / "a.pt")
    save_step(tmp_path / "s.npz", {"blocks.1.hook_resid_post": np.ones((3, 576), np.float32)})  # safetensors bytes

    def no_is_zipfile(_: object) -> bool:
        raise AssertionError("zipfile.is_zipfile read the archive a second time")

    monkeypatch.setattr(zipfile, "is_zipfile", no_is_zipfile)
    for name, fmt in (("a.npz", "npz"), ("a.pt", "pt"), ("s.npz", "safetensors")):
        with open_activations(ActivationRef(path=str(tmp_path / name), format="safetensors")) as f:
            assert f.format == fmt and f.shape("blocks.1.hook_resid_post") == (3, 576)
    with open_activations(ActivationRef(path=str(tmp_path / "a.pt"))) as f:  # no format: the suffix's
        assert f.format == "pt"


@pytest.mark.parametrize(("config", "why"), [
    ('["n_layers", 30]', "__config__: must be a JSON object with n_layers, n_heads, d_model..., got list"),
    ("30", "__config__: must be a JSON object with n_layers, n_heads, d_model..., got int"),
    ('"n_layers=30"', "__config__: must be a JSON object with n_layers, n_heads, d_model..., got str"),
    ("{n_layers: 30}", "__config__: is not valid JSON"),
    (np.arange(3), "__config__: must be a JSON object stored as a string, got a int64 array of shape [3]"),
])
def test_npz_config_must_be_a_json_object(tmp_path: Path, config: object, why: str) -> None:
    p = tmp_path / "cfg.npz"
    np.savez(p, __config__=config, **{"blocks.0.hook_resid_post": np.zeros((POS, 576), np.float32)})
    with pytest.raises(InputError) as e:
        ActivationFile(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}: ") and why in msg and "\n" not in msg


def test_pt_config_must_be_a_dict(tmp_path: Path) -> None:
    import torch

    p = tmp_path / "cfg.pt"
    torch.save({"__config__": [30, 9, 576], "blocks.0.hook_resid_post": torch.zeros(POS, 576)}, p)
    with pytest.raises(InputError, match="cfg.pt: __config__: must be a JSON object .*got list"):
        ActivationFile(p)  # was ignored without a word: no config, shapes left unchecked


def test_save_step_replaces_a_file_a_reader_has_mapped(tmp_path) -> None:
    """A reader that has a step file memory-mapped (the inspector while a demo re-records) must never see it
    rewritten in place, which could kill it with a bus error: save_step (safetensors' save_file) puts a new file in
    its place, and this pins that."""
    import os

    from attrib.activations import ActivationFile, save_step

    path = tmp_path / "step_0.safetensors"
    save_step(path, {"blocks.0.attn.hook_pattern": np.ones((2, 3, 3), np.float32)})
    inode = os.stat(path).st_ino
    with ActivationFile(path) as f:
        old = f.get("blocks.0.attn.hook_pattern")
        save_step(path, {"blocks.0.attn.hook_pattern": np.zeros((2, 3, 3), np.float32)})
        assert float(np.asarray(old).sum()) == 18.0  # the open reader still sees the file it opened
    assert os.stat(path).st_ino != inode and list(tmp_path.iterdir()) == [path]  # renamed over, nothing left over
    with ActivationFile(path) as f:
        assert float(np.asarray(f.get("blocks.0.attn.hook_pattern")).sum()) == 0.0
