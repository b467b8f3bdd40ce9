"""Per-step activation files (safetensors, .npz, .pt), keyed by TransformerLens hook name.

A step's :class:`~attrib.trace.ActivationRef` points at a file whose keys are hook names
(``blocks.12.attn.hook_pattern``), or ``"<step>/<hook>"`` when one file holds several steps.
Files are opened lazily: safetensors through ``safe_open`` (memory-mapped), uncompressed ``.npz``
members as ``numpy.memmap`` views into the zip, ``.pt`` through ``torch.load(mmap=True)`` (torch is
imported only for ``.pt``). Shapes are checked against a :class:`ModelConfig`; a mismatch is an
:class:`InputError` naming the file and the hook.

A file may describe its own model: safetensors ``__metadata__`` or an ``__config__`` entry (a JSON
string in ``.npz``, a dict in ``.pt``) with ``n_layers``, ``n_heads``, ``d_model``... is used when no
config is passed.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from attrib.errors import InputError
from attrib.trace import ActivationRef, Step, Trace, with_activation_paths

FORMATS = ("safetensors", "npz", "pt")
_HOOK = re.compile(r"^blocks\.(\d+)\.(.+)$")


@dataclass(frozen=True)
class ModelConfig:
    """The dimensions activation shapes are checked against (TransformerLens names)."""

    n_layers: int
    n_heads: int
    d_model: int
    d_head: int | None = None
    d_mlp: int | None = None
    n_key_value_heads: int | None = None
    d_vocab: int | None = None

    @property
    def head_dim(self) -> int:
        return self.d_head if self.d_head is not None else self.d_model // self.n_heads

    @classmethod
    def from_any(cls, cfg: Any) -> ModelConfig:
        """From a ModelConfig, a dict, a TransformerLens ``HookedTransformerConfig`` or a HF config."""
        if isinstance(cfg, ModelConfig):
            return cfg
        get = cfg.get if isinstance(cfg, Mapping) else (lambda k, d=None: getattr(cfg, k, d))
        alias = {
            "n_layers": ("n_layers", "num_hidden_layers", "n_layer"),
            "n_heads": ("n_heads", "num_attention_heads", "n_head"),
            "d_model": ("d_model", "hidden_size", "n_embd"),
            "d_head": ("d_head", "head_dim"),
            "d_mlp": ("d_mlp", "intermediate_size"),
            "n_key_value_heads": ("n_key_value_heads", "num_key_value_heads"),
            "d_vocab": ("d_vocab", "vocab_size"),
        }
        vals: dict[str, int | None] = {}
        for f in fields(cls):
            v = next((get(k) for k in alias[f.name] if get(k) is not None), None)
            vals[f.name] = int(v) if v is not None else None
        missing = [k for k in ("n_layers", "n_heads", "d_model") if vals[k] is None]
        if missing:
            raise InputError(None, "model config", f"missing {', '.join(missing)}")
        return cls(**vals)  # type: ignore[arg-type]


def expected_shape(hook: str, cfg: ModelConfig) -> tuple[int | None, ...] | None:
    """The shape a hook's activation must have for one prompt (None = any length), without batch.

    None when the hook is unknown (custom hooks are accepted unchecked, but their layer is checked).
    """
    m = _HOOK.match(hook)
    d, h, dh = cfg.d_model, cfg.n_heads, cfg.head_dim
    if m is None:
        return {"hook_embed": (None, d), "hook_pos_embed": (None, d), "ln_final.hook_normalized": (None, d),
                "ln_final.hook_scale": (None, 1)}.get(hook)
    rest = m.group(2)
    table: dict[str, tuple[int | None, ...]] = {
        "hook_resid_pre": (None, d), "hook_resid_mid": (None, d), "hook_resid_post": (None, d),
        "hook_attn_out": (None, d), "hook_mlp_out": (None, d),
        "hook_attn_in": (None, h, d), "hook_q_input": (None, h, d),
        "attn.hook_pattern": (h, None, None), "attn.hook_attn_scores": (h, None, None),
        "attn.hook_q": (None, h, dh), "attn.hook_z": (None, h, dh), "attn.hook_result": (None, h, d),
        "ln1.hook_normalized": (None, d), "ln2.hook_normalized": (None, d),
        "ln1.hook_scale": (None, 1), "ln2.hook_scale": (None, 1),
    }
    if rest in ("attn.hook_k", "attn.hook_v", "attn.hook_rot_k", "attn.hook_rot_q"):
        kv = cfg.n_key_value_heads or h
        return (None, h if rest == "attn.hook_rot_q" else kv, dh)
    if rest in ("mlp.hook_pre", "mlp.hook_post", "mlp.hook_pre_linear"):
        return (None, cfg.d_mlp) if cfg.d_mlp is not None else (None, None)
    return table.get(rest)


def check_shape(path: str | Path, hook: str, shape: tuple[int, ...], cfg: ModelConfig) -> None:
    """Raise :class:`InputError` (file, hook) if ``shape`` does not fit ``cfg`` (a leading batch of 1 is allowed)."""
    m = _HOOK.match(hook)
    if m is not None and int(m.group(1)) >= cfg.n_layers:
        raise InputError(path, hook, f"layer {m.group(1)} does not exist (model has {cfg.n_layers} layers)")
    want = expected_shape(hook, cfg)
    if want is None:
        return
    got = tuple(shape)
    if len(got) == len(want) + 1 and got[0] == 1:
        got = got[1:]
    ok = len(got) == len(want) and all(w is None or w == g for w, g in zip(want, got, strict=False))
    if hook.endswith("hook_pattern") and ok and len(got) == 3 and got[1] > got[2]:
        ok = False  # queries can never see more keys than exist
    if not ok:
        shown = "[" + ", ".join("pos" if w is None else str(w) for w in want) + "]"
        raise InputError(path, hook, f"shape {list(shape)} does not match the model config: expected {shown}")


def _npy_header(f: Any) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype of a ``.npy`` stream, leaving it at the first data byte."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    return np.lib.format.read_array_header_2_0(f)


def _format_of(path: Path, fmt: str | None = None) -> str:
    f = (fmt or path.suffix.lstrip(".")).lower()
    f = {"pth": "pt", "bin": "pt", "st": "safetensors"}.get(f, f)
    if f not in FORMATS:
        raise InputError(path, None, f"unknown activation format {f!r} (expected one of: {', '.join(FORMATS)})")
    return f


class ActivationFile:
    """A lazily opened activation file: ``keys()``, ``shape(key)`` without reading data, ``get(key)``."""

    def __init__(self, path: str | Path, format: str | None = None) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(self.path, None, "activation file not found")
        self.format = _format_of(self.path, format)
        self._handle: Any = None
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._meta: dict[str, Any] = {}
        try:
            getattr(self, f"_open_{self.format}")()
        except InputError:
            raise
        except Exception as e:  # corrupt headers surface as library-specific errors
            raise InputError(self.path, None, f"cannot read {self.format} activation file ({e})") from None

    # -- opening
    def _open_safetensors(self) -> None:
        from safetensors import safe_open

        self._handle = safe_open(str(self.path), framework="numpy")
        for k in self._handle.keys():  # noqa: SIM118 (safe_open is not iterable)
            self._shapes[k] = tuple(self._handle.get_slice(k).get_shape())
        self._meta = dict(self._handle.metadata() or {})

    def _open_npz(self) -> None:
        self._handle = zipfile.ZipFile(self.path)
        for info in self._handle.infolist():
            if not info.filename.endswith(".npy"):
                continue
            key = info.filename[:-4]
            with self._handle.open(info) as f:
                shape, _, _ = _npy_header(f)  # header only, no data
            if key == "__config__":
                self._meta = json.loads(str(np.load(self.path, allow_pickle=False)["__config__"]))
                continue
            self._shapes[key] = tuple(shape)

    def _open_pt(self) -> None:
        import torch

        obj = torch.load(self.path, map_location="cpu", mmap=True, weights_only=True)
        if not isinstance(obj, dict):
            raise InputError(self.path, None, f"expected a dict of tensors, got {type(obj).__name__}")
        cfg = obj.pop("__config__", None)
        if isinstance(cfg, dict):
            self._meta = cfg
        for k, v in obj.items():
            if not isinstance(v, torch.Tensor):
                raise InputError(self.path, str(k), f"expected a tensor, got {type(v).__name__}")
            self._shapes[str(k)] = tuple(v.shape)
        self._handle = obj

    # -- reading
    def keys(self) -> list[str]:
        return list(self._shapes)

    def __iter__(self) -> Iterator[str]:
        return iter(self._shapes)

    def shape(self, key: str) -> tuple[int, ...]:
        if key not in self._shapes:
            raise InputError(self.path, key, f"no such activation (file has: {', '.join(sorted(self._shapes)[:8])})")
        return self._shapes[key]

    @property
    def config(self) -> ModelConfig | None:
        """The model config the file declares about itself, if any."""
        if not self._meta or not any(k in self._meta for k in ("n_layers", "num_hidden_layers")):
            return None
        return ModelConfig.from_any({k: int(v) for k, v in self._meta.items() if str(v).isdigit()})

    def get(self, key: str) -> np.ndarray:
        """The array for ``key`` (memory-mapped where the format allows)."""
        self.shape(key)
        if self.format == "safetensors":
            return self._handle.get_tensor(key)
        if self.format == "npz":
            return self._npz_member(key)
        t = self._handle[key]
        return (t.float() if str(t.dtype) == "torch.bfloat16" else t).numpy()

    def _npz_member(self, key: str) -> np.ndarray:
        info = self._handle.getinfo(key + ".npy")
        if info.compress_type != zipfile.ZIP_STORED:
            with self._handle.open(info) as f:
                return np.lib.format.read_array(f)
        with open(self.path, "rb") as raw:  # stored member: map the bytes in place
            raw.seek(info.header_offset)
            local = raw.read(30)
            name_len = int.from_bytes(local[26:28], "little")
            extra_len = int.from_bytes(local[28:30], "little")
            start = info.header_offset + 30 + name_len + extra_len
            raw.seek(start)
            shape, fortran, dtype = _npy_header(raw)
            offset = raw.tell()
        return np.memmap(self.path, dtype=dtype, mode="r", offset=offset, shape=shape,
                         order="F" if fortran else "C")

    def items(self) -> Iterator[tuple[str, np.ndarray]]:
        for k in self._shapes:
            yield k, self.get(k)

    def check(self, cfg: Any = None, hooks: tuple[str, ...] | None = None, step: int | None = None) -> None:
        """Check every (or the named) hook against ``cfg`` (or the file's own config)."""
        config = ModelConfig.from_any(cfg) if cfg is not None else self.config
        for h in hooks if hooks else tuple(self):
            key = self._key(h, step)
            hook = key.split("/", 1)[1] if "/" in key else key
            shape = self.shape(key)
            if config is not None:
                check_shape(self.path, hook, shape, config)

    def _key(self, hook: str, step: int | None) -> str:
        if step is not None and f"{step}/{hook}" in self._shapes:
            return f"{step}/{hook}"
        return hook

    def close(self) -> None:
        if self.format == "npz" and self._handle is not None:
            self._handle.close()
        self._handle = None

    def __enter__(self) -> ActivationFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_activations(ref: ActivationRef) -> ActivationFile:
    """Open the file a step's :class:`ActivationRef` points at."""
    return ActivationFile(ref.path, ref.format)


def load_step(step: Step, hooks: tuple[str, ...] | None = None, config: Any = None) -> dict[str, np.ndarray]:
    """A step's activations as ``{hook: array}`` (shape-checked when a config is given or declared)."""
    if step.activation is None:
        raise InputError(None, f"steps[{step.index}].activation", "this step has no recorded activations")
    with open_activations(step.activation) as f:
        wanted = hooks or step.activation.hooks or tuple(k.split("/", 1)[-1] for k in f
                                                          if "/" not in k or k.startswith(f"{step.index}/"))
        f.check(config, wanted, step.index)
        return {h: np.asarray(f.get(f._key(h, step.index))) for h in wanted}


def check_trace(trace: Trace, config: Any = None, source: str | Path | None = None) -> int:
    """Open every activation file a trace references and check hooks and shapes; returns files checked.

    With ``source`` (the trace's file), errors name it and the step before the activation file's own line.
    """
    n = 0
    for s in trace.steps:
        ref = s.activation
        if ref is None:
            continue
        try:
            with open_activations(ref) as f:
                f.check(config, ref.hooks or None, s.index)
        except InputError as e:
            if source is None:
                raise
            raise InputError(source, f"steps[{s.index}].activation", e.one_line()) from None
        n += 1
    return n


def link_activations(trace: Trace, directory: str | Path, pattern: str = "step_{index}") -> Trace:
    """Attach files named ``<pattern>.<safetensors|npz|pt>`` in ``directory`` to the matching steps."""
    import msgspec

    d = Path(directory)
    steps = []
    for s in trace.steps:
        ref = s.activation
        for fmt in FORMATS:
            p = d / f"{pattern.format(index=s.index)}.{fmt}"
            if p.exists():
                with ActivationFile(p, fmt) as f:
                    ref = ActivationRef(path=str(p), hooks=tuple(f), format=fmt)
                break
        steps.append(s if ref is s.activation else msgspec.structs.replace(s, activation=ref))
    return msgspec.structs.replace(trace, steps=tuple(steps))


def relative_activations(trace: Trace, base: str | Path) -> Trace:
    """The trace with activation paths relative to ``base`` (the folder its JSON will be written to), so the
    trace file and its activations can move together; readers resolve them beside the trace file."""
    import os

    return with_activation_paths(trace, lambda p: os.path.relpath(p, base))


def save_step(path: str | Path, tensors: Mapping[str, Any], config: ModelConfig | None = None) -> ActivationRef:
    """Write ``{hook: array}`` as safetensors (with the config in its metadata); returns the reference."""
    from safetensors.numpy import save_file

    meta = {f.name: str(getattr(config, f.name)) for f in fields(ModelConfig)
            if config is not None and getattr(config, f.name) is not None}
    arrays = {k: np.ascontiguousarray(np.asarray(v)) for k, v in tensors.items()}
    save_file(arrays, str(path), metadata=meta or None)
    return ActivationRef(path=str(path), hooks=tuple(arrays), format="safetensors")
