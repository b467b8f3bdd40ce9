"""Per-step activation files (safetensors, .npz, .pt), keyed by TransformerLens hook name.

A step's :class:`~attrib.trace.ActivationRef` points at a file whose keys are hook names
(``blocks.12.attn.hook_pattern``), or ``"<step>/<hook>"`` when one file holds several steps.
Files are opened lazily: safetensors through ``safe_open`` (memory-mapped), uncompressed ``.npz``
members as views into one ``numpy.memmap`` of the zip, ``.pt`` through ``torch.load(mmap=True)`` (torch is
imported only for ``.pt``). Keys must be TransformerLens hook names (:data:`BLOCK_HOOK_SHAPES`,
:data:`TOP_HOOK_SHAPES`, plus attrib's ``:segment_mass`` / ``:entropy`` statistics); an unknown one is refused
with the closest known name. Only
numeric data is read (object/structured ``.npz`` members and members whose size disagrees with their header are
refused when the file is opened); bfloat16 comes back as float32. Shapes are checked against a :class:`ModelConfig`
(positive integers), and, config or not, each hook's rank (the name says it: ``hook_pattern`` [heads, query, key]
with no more queries than keys), the recorder's segment count, and that one hook's shape agrees across the layers
of a step; a mismatch is an :class:`InputError` naming the file and the hook.

A file may describe its own model: safetensors ``__metadata__`` or an ``__config__`` entry (a JSON
string in ``.npz``, a dict in ``.pt``; anything but a JSON object is refused) with ``n_layers``, ``n_heads``,
``d_model``... is used when no config is passed.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from attrib.errors import InputError, is_whole_number
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
            key = next((k for k in alias[f.name] if get(k) is not None), None)
            vals[f.name] = None if key is None else _positive_int(key, get(key))
        missing = [k for k in ("n_layers", "n_heads", "d_model") if vals[k] is None]
        if missing:
            raise InputError(None, "model config", f"missing {', '.join(missing)}")
        return cls(**vals)  # type: ignore[arg-type]


def _positive_int(field: str, v: Any) -> int:
    """A config value as a positive integer: an int, an integral float (``30.0``) or a digit string (metadata)."""
    if isinstance(v, str) and v.strip().isdigit():
        v = int(v)
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if not is_whole_number(v):
        raise InputError(None, field, f"must be a positive integer, got {v!r}")
    return int(v)


#: A shape rule names each dimension of a hook's activation for one prompt (batch dropped): an int is that size, a
#: name a :class:`ModelConfig` size resolved by :data:`_DIMS`, or any length for the free axes ``"pos"`` (token
#: positions), ``"query"`` (the recorder's answer positions) and ``"segment"`` (its prompt segments). Messages show
#: a free axis by its name, so ``[9, query, segment]`` says what each axis is.
ShapeRule = tuple[str | int, ...]

#: TransformerLens hooks inside a block (``blocks.{l}.<name>``) and the shape of each, the one table of them:
#: adding a hook is one line here. It ends with attrib's per-segment statistics of a pattern hook, which
#: :mod:`attrib.record` writes as ``blocks.{l}.attn.hook_pattern:segment_mass`` [H, Q, S] and
#: ``:entropy`` [H, Q].
BLOCK_HOOK_SHAPES: dict[str, ShapeRule] = {
    "hook_resid_pre": ("pos", "d_model"),
    "hook_resid_mid": ("pos", "d_model"),
    "hook_resid_post": ("pos", "d_model"),
    "hook_attn_in": ("pos", "n_heads", "d_model"),
    "hook_q_input": ("pos", "n_heads", "d_model"),
    "hook_k_input": ("pos", "n_kv_heads", "d_model"),
    "hook_v_input": ("pos", "n_kv_heads", "d_model"),
    "hook_mlp_in": ("pos", "d_model"),
    "hook_attn_out": ("pos", "d_model"),
    "hook_mlp_out": ("pos", "d_model"),
    "attn.hook_q": ("pos", "n_heads", "d_head"),
    "attn.hook_k": ("pos", "n_kv_heads", "d_head"),
    "attn.hook_v": ("pos", "n_kv_heads", "d_head"),
    "attn.hook_z": ("pos", "n_heads", "d_head"),
    "attn.hook_pattern": ("n_heads", "pos", "pos"),
    "attn.hook_attn_scores": ("n_heads", "pos", "pos"),
    "attn.hook_result": ("pos", "n_heads", "d_model"),
    "attn.hook_rot_q": ("pos", "n_heads", "d_head"),
    "attn.hook_rot_k": ("pos", "n_kv_heads", "d_head"),
    "mlp.hook_pre": ("pos", "d_mlp"),
    "mlp.hook_post": ("pos", "d_mlp"),
    "mlp.hook_pre_linear": ("pos", "d_mlp"),
    "ln1.hook_scale": ("pos", 1),
    "ln1.hook_normalized": ("pos", "d_model"),
    "ln2.hook_scale": ("pos", 1),
    "ln2.hook_normalized": ("pos", "d_model"),
    "attn.hook_pattern:segment_mass": ("n_heads", "query", "segment"),
    "attn.hook_pattern:entropy": ("n_heads", "query"),
}
#: Hooks outside the blocks, and attrib's own non-hook keys (``attrib.query_positions``: the recorder's answer
#: positions), with their shapes.
TOP_HOOK_SHAPES: dict[str, ShapeRule] = {
    "hook_embed": ("pos", "d_model"),
    "hook_pos_embed": ("pos", "d_model"),
    "ln_final.hook_scale": ("pos", 1),
    "ln_final.hook_normalized": ("pos", "d_model"),
    "attrib.query_positions": ("query",),
}
#: The hook names alone (derived from the shape tables).
BLOCK_HOOKS: tuple[str, ...] = tuple(BLOCK_HOOK_SHAPES)
TOP_HOOKS: tuple[str, ...] = tuple(TOP_HOOK_SHAPES)

#: How a shape rule's named dimensions resolve against a config (None: any size, e.g. ``d_mlp`` left unset).
_DIMS: dict[str, Callable[[ModelConfig], int | None]] = {
    "pos": lambda c: None,
    "query": lambda c: None,
    "segment": lambda c: None,
    "d_model": lambda c: c.d_model,
    "n_heads": lambda c: c.n_heads,
    "n_kv_heads": lambda c: c.n_key_value_heads or c.n_heads,
    "d_head": lambda c: c.head_dim,
    "d_mlp": lambda c: c.d_mlp,
}


def _hook_rule(hook: str) -> ShapeRule | None:
    """The shape rule of a known hook name (``blocks.3.hook_resid_post``), None for an unknown one."""
    m = _HOOK.match(hook)
    return TOP_HOOK_SHAPES.get(hook) if m is None else BLOCK_HOOK_SHAPES.get(m.group(2))


def hook_layer(hook: str) -> int | None:
    """The block number of a ``blocks.{l}.<name>`` hook, None for a hook outside the blocks."""
    m = _HOOK.match(hook)
    return None if m is None else int(m.group(1))


def is_known_hook(hook: str) -> bool:
    """True for a TransformerLens hook name (``blocks.3.hook_resid_post``) or one of attrib's own keys."""
    return _hook_rule(hook) is not None


def closest_hook(hook: str, *, among: Iterable[str] | None = None) -> str | None:
    """The known hook name nearest to a misspelled one (same layer number), or None; never ``hook`` itself.

    ``among`` (e.g. the hooks one model has) replaces the known names."""
    import difflib

    if among is None:
        num = re.search(r"\d+", hook)
        layer = num.group(0) if num else "0"
        known = [*TOP_HOOKS, *(f"blocks.{layer}.{r}" for r in BLOCK_HOOKS)]
    else:
        known = list(among)
    best = difflib.get_close_matches(hook, [k for k in known if k != hook], n=1, cutoff=0.6)
    return best[0] if best else None


def check_hook_name(path: str | Path | None, hook: str, field: str | None = None) -> None:
    """Raise :class:`InputError` for a name that is no TransformerLens hook (nor attrib's), suggesting the closest."""
    if is_known_hook(hook):
        return
    near = closest_hook(hook)
    hint = f"; did you mean {near!r}?" if near else " (e.g. blocks.3.hook_resid_post, blocks.3.attn.hook_pattern)"
    raise InputError(path, field or hook, f"{hook!r} is not a TransformerLens hook name{hint}")


def check_hook(path: str | Path | None, hook: str, n_layers: int, field: str | None = None) -> None:
    """:func:`check_hook_name`, and :class:`InputError` for a ``blocks.{l}`` hook past the model's ``n_layers``."""
    check_hook_name(path, hook, field)
    layer = hook_layer(hook)
    if layer is not None and layer >= n_layers:
        named = f"{hook!r}: " if field else ""  # the field is the hook itself unless one is named
        raise InputError(path, field or hook, f"{named}layer {layer} does not exist (model has {n_layers} layers)")


def expected_shape(hook: str, cfg: ModelConfig) -> tuple[int | None, ...] | None:
    """The shape a hook's activation must have for one prompt (None = any length), without batch.

    None when the hook is unknown (:func:`check_hook_name` refuses those); the rules are :data:`BLOCK_HOOK_SHAPES`.
    """
    rule = _hook_rule(hook)
    if rule is None:
        return None
    return tuple(d if isinstance(d, int) else _DIMS[d](cfg) for d in rule)


#: Hooks laid out [H, Q, K] (query by key positions): a query attends to keys up to itself, so Q <= K (K > Q with a
#: key/value cache). Not ``:segment_mass`` [H, Q, S], whose last axis is the segments.
_QK_HOOKS = ("attn.hook_pattern", "attn.hook_attn_scores")


def check_shape(path: str | Path, hook: str, shape: tuple[int, ...], cfg: ModelConfig) -> None:
    """Raise :class:`InputError` (file, hook) if ``hook`` is no known hook name or ``shape`` does not fit ``cfg``
    (a leading batch of 1 is allowed)."""
    check_hook(path, hook, cfg.n_layers)
    want = expected_shape(hook, cfg)
    if want is None:
        return
    got = _unbatched(hook, tuple(shape))
    ok = len(got) == len(want) and all(w is None or w == g for w, g in zip(want, got, strict=False))
    if hook.endswith(_QK_HOOKS) and ok and len(got) == 3 and got[1] > got[2]:
        ok = False  # [H, Q, K]: queries can never see more keys than exist
    if not ok:
        rule = _hook_rule(hook) or ()
        shown = "[" + ", ".join(str(r) if w is None else str(w) for w, r in zip(want, rule, strict=True)) + "]"
        raise InputError(path, hook, f"shape {list(shape)} does not match the model config: expected {shown}")


def _axes(rule: ShapeRule) -> str:
    """A shape rule as the messages show it: ``[n_heads, pos, pos]``."""
    return "[" + ", ".join(map(str, rule)) + "]"


def check_rank(path: str | Path | None, hook: str, shape: tuple[int, ...], field: str | None = None) -> None:
    """Raise :class:`InputError` (file, ``field`` or the hook) for a shape no model gives ``hook``, config or not.

    The rank is known from the name alone (:data:`BLOCK_HOOK_SHAPES`: ``hook_pattern`` [n_heads, pos, pos],
    ``hook_resid_post`` [pos, d_model], ``:segment_mass`` [n_heads, query, segment]...; a leading batch of 1 is
    allowed), as are the fixed sizes (``ln1.hook_scale`` [pos, 1]) and, for [H, Q, K] hooks, that queries never
    outnumber keys. Without a config these were not checked: a [5] pattern or a scalar residual was ingested, and
    failed later naming neither file nor hook. Unknown names pass (:func:`check_hook_name` refuses them)."""
    rule = _hook_rule(hook)
    if rule is None:
        return
    got = _unbatched(hook, tuple(shape))
    where = field or hook
    if len(got) != len(rule):
        n = len(got)
        raise InputError(path, where, f"shape {list(shape)} has {n} ax{'is' if n == 1 else 'es'}: expected "
                                      f"{len(rule)}, {_axes(rule)} (a leading batch of 1 is allowed)")
    for axis, (want, size) in enumerate(zip(rule, got, strict=True)):
        if isinstance(want, int) and size != want:
            raise InputError(path, where, f"shape {list(shape)}: axis {axis} must be {want}, {_axes(rule)}")
    if hook.endswith(_QK_HOOKS) and got[1] > got[2]:
        raise InputError(path, where, f"shape {list(shape)} has {got[1]} queries but only {got[2]} keys: expected "
                                      f"{_axes(rule)} as [heads, query, key], with no more queries than keys")


#: The segments of a recorded ``:segment_mass`` statistic, in axis order: part of the stored format (the recorder
#: writes them, ingest checks them, drift reads them by position), so kept here rather than in ``attrib.heads``.
SEGMENTS: tuple[str, ...] = ("sink", "rule", "conflict", "prompt", "response")


def check_segments(path: str | Path | None, shapes: Mapping[str, tuple[int, ...]]) -> None:
    """Raise :class:`InputError` (file, key) for a ``:segment_mass`` [H, Q, S] whose S is not the recorder's
    segment count (:data:`SEGMENTS`), config or not: drift reads them by position, and such a file was ingested,
    then failed in drift naming no file. ``shapes`` maps hook names or ``"<step>/<hook>"`` keys."""
    masses = sorted((hook_layer(k.rpartition("/")[2]) or 0, k, _unbatched(k.rpartition("/")[2], tuple(s)))
                    for k, s in shapes.items() if k.endswith(":segment_mass"))
    for _, key, got in masses:
        if len(got) == 3 and got[2] != len(SEGMENTS):
            raise InputError(path, key, f"shape {list(shapes[key])} has {got[2]} segments: expected [n_heads, query, "
                                        f"{len(SEGMENTS)}], the recorder's segments ({', '.join(SEGMENTS)})")


def _unbatched(hook: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    """``shape`` without a leading batch of 1 (as :func:`check_shape` allows one), for comparing layers."""
    rule = _hook_rule(hook)
    if rule is not None and len(shape) == len(rule) + 1 and shape[0] == 1:
        return shape[1:]
    return shape


def check_layers_agree(path: str | Path, shapes: Mapping[str, tuple[int, ...]]) -> None:
    """Raise :class:`InputError` (file, hook) when one hook's shape differs between layers of one step.

    ``shapes`` maps one step's hook names, or its ``"<step>/<hook>"`` keys (the error then names the key), to
    shapes. Every layer of one forward pass gives a hook the same shape (the heads, positions, segments of
    ``blocks.4`` are those of ``blocks.0``), so this holds without a model config;
    the recorder's statistics are stacked across layers on reading, where a disagreeing layer failed in numpy naming
    neither file nor hook. ``:entropy`` [H, Q] must also match its layer's ``:segment_mass`` [H, Q, S]. The layer
    named is the one that differs from the most common shape.
    """
    from collections import Counter

    groups: dict[str, list[tuple[int, str, tuple[int, ...]]]] = {}
    for key, shape in shapes.items():
        hook = key.rpartition("/")[2]
        m = _HOOK.match(hook)
        if m is not None and m.group(2) in BLOCK_HOOK_SHAPES:
            groups.setdefault(m.group(2), []).append((int(m.group(1)), key, _unbatched(hook, tuple(shape))))
    for name, rows in groups.items():
        rows.sort()
        common, n = Counter(s for _, _, s in rows).most_common(1)[0]
        odd = next(((la, h, s) for la, h, s in rows if s != common), None)
        if odd is None:
            continue
        _, hook, got = odd
        axes = ", ".join(str(r) for r in BLOCK_HOOK_SHAPES[name])
        others = f"the other {n} layers'" if n > 1 else f"{next(h for _, h, s in rows if s == common)}'s"
        raise InputError(path, hook, f"shape {list(got)} disagrees with {others} {list(common)}: [{axes}] is the "
                                     "same at every layer of a step")
    mass, ent = "attn.hook_pattern:segment_mass", "attn.hook_pattern:entropy"
    masses = {la: s for la, _, s in groups.get(mass, [])}
    for la, hook, got in groups.get(ent, []):
        if la in masses and len(masses[la]) >= 2 and got != masses[la][:2]:
            raise InputError(path, hook, f"shape {list(got)} disagrees with the layer's :segment_mass "
                                         f"{list(masses[la])}: expected {list(masses[la][:2])} [n_heads, query]")


def _npy_header(f: Any) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype of a ``.npy`` stream, leaving it at the first data byte."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    return np.lib.format.read_array_header_2_0(f)


#: Other spellings of the activation formats, as file suffixes or in a reference's ``format`` field.
_FORMAT_ALIASES = {"pth": "pt", "bin": "pt", "st": "safetensors"}
#: safetensors dtypes numpy reads as they are; BF16 is read too, upcast to float32 (as ``.pt`` bfloat16 is).
_ST_DTYPES = frozenset({"BOOL", "U8", "I8", "U16", "I16", "U32", "I32", "U64", "I64", "F16", "F32", "F64", "BF16"})


def activation_format(path: str | Path, fmt: str | None = None) -> str:
    """``fmt`` as one of :data:`FORMATS` (``pth`` -> pt), or without one the format ``path``'s suffix implies.

    The one place a format is inferred from a file name; :class:`InputError` when it names no known format."""
    name = (fmt or Path(path).suffix.lstrip(".")).lower()
    found = _FORMAT_ALIASES.get(name, name)
    if found not in FORMATS:
        expected = ", ".join(FORMATS)
        raise InputError(path, None, f"unknown activation format {name!r} (expected one of: {expected})")
    return found


def format_from_suffix(path: str | Path) -> str | None:
    """The activation format a file name implies (``.npz`` -> npz, ``.pth`` -> pt), None when it implies none."""
    try:
        return activation_format(path)
    except InputError:
        return None


#: How a zip archive (``np.savez``, ``torch.save``) begins: a member's local header, or the end record of an empty one.
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def _starts_as_zip(path: str | Path) -> bool:
    """True when the file begins as a zip archive does (4 bytes read; a safetensors file begins with its header
    length). Unlike ``zipfile.is_zipfile`` it does not read the archive's end records, which opening reads anyway."""
    try:
        with open(path, "rb") as fh:
            return fh.read(4) in _ZIP_MAGIC
    except OSError:
        return False


def _config_object(path: Path, cfg: Any) -> dict[str, Any]:
    """A file's ``__config__`` entry, which must be a JSON object (a dict)."""
    if not isinstance(cfg, dict):
        raise InputError(path, "__config__", f"must be a JSON object with n_layers, n_heads, d_model..., got "
                                             f"{type(cfg).__name__}")
    return cfg


def _numeric(dtype: np.dtype) -> bool:
    return not dtype.hasobject and dtype.fields is None and dtype.kind in "biufc"


class ActivationFile:
    """A lazily opened activation file: ``keys()``, ``shape(key)`` without reading data, ``get(key)``.

    Only numeric arrays are accepted (object, string and structured ``.npz`` members are refused when the file is
    opened, as are members whose data is shorter or longer than their header says); bfloat16 data (safetensors or
    ``.pt``) is returned as float32. ``.pt`` keys are strings (an integer key ``3`` is read as ``"3"``).
    """

    def __init__(self, path: str | Path, format: str | None = None) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(self.path, None, "activation file not found")
        if self.path.is_dir():
            raise InputError(self.path, None, "is a folder, not an activation file (.safetensors, .npz or .pt)")
        self.format = activation_format(self.path, format)
        self._handle: Any = None
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._meta: dict[str, Any] = {}
        self._npz: dict[str, tuple[tuple[int, ...], bool, np.dtype, int | None]] = {}
        self._bf16: dict[str, int] = {}  # safetensors bfloat16 tensors: absolute data offset
        self._map: np.memmap | None = None  # .npz: the whole file mapped once; stored members are views into it
        try:
            getattr(self, f"_open_{self.format}")()
        except InputError:
            self.close()
            raise
        except Exception as e:  # corrupt headers surface as library-specific errors
            self.close()
            raise InputError(self.path, None, f"cannot read {self.format} activation file ({e})") from None
        # which hooks each step has, indexed once: plain keys are every step's, "<step>/<hook>" keys one step's
        self._plain = tuple(k for k in self._shapes if "/" not in k)
        by_step: dict[str, list[str]] = {}
        for k in self._shapes:
            step, sep, hook = k.partition("/")
            if sep:
                by_step.setdefault(step, []).append(hook)
        self._steps = {step: tuple(hooks) for step, hooks in by_step.items()}

    # -- opening
    def _open_safetensors(self) -> None:
        from safetensors import safe_open

        self._handle = safe_open(str(self.path), framework="numpy")
        for k in self._handle.keys():  # noqa: SIM118 (safe_open is not iterable)
            sl = self._handle.get_slice(k)
            dt = str(sl.get_dtype())
            if dt not in _ST_DTYPES:
                raise InputError(self.path, k, f"dtype {dt} is not supported (expected a float, integer or bool dtype)")
            self._shapes[k] = tuple(sl.get_shape())
            if dt == "BF16":
                self._bf16[k] = -1
        self._meta = dict(self._handle.metadata() or {})
        if self._bf16:  # numpy has no bfloat16: find the raw bytes, read them as uint16 and upcast on get()
            with open(self.path, "rb") as fh:
                n = int.from_bytes(fh.read(8), "little")
                header = json.loads(fh.read(n))
            for k in self._bf16:
                self._bf16[k] = 8 + n + int(header[k]["data_offsets"][0])

    def _open_npz(self) -> None:
        import math

        self._handle = zipfile.ZipFile(self.path)  # reads the archive's member index (central directory) once
        size = self.path.stat().st_size
        with open(self.path, "rb") as raw:  # one handle for every stored member's local header
            for info in self._handle.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                key = info.filename[:-4]
                if key == "__config__":
                    with self._handle.open(info) as f:
                        self._meta = self._npz_config(np.lib.format.read_array(f, allow_pickle=False))
                    continue
                with self._handle.open(info) as f:
                    shape, fortran, dtype = _npy_header(f)  # header only, no data
                    header_len = f.tell()
                if not _numeric(dtype):
                    raise InputError(
                        self.path,
                        key,
                        f"dtype {dtype} is not numeric (object, string and structured arrays are refused: "
                        "store float or integer arrays)",
                    )
                nbytes = math.prod(shape) * dtype.itemsize
                if info.file_size != header_len + nbytes:
                    raise InputError(
                        self.path,
                        key,
                        f"member holds {max(info.file_size - header_len, 0)} data bytes but its header declares "
                        f"{list(shape)} {dtype} ({nbytes} bytes): truncated or corrupt",
                    )
                offset = None
                if info.compress_type == zipfile.ZIP_STORED:
                    offset = self._stored_offset(raw, info) + header_len
                    if offset + nbytes > size:
                        raise InputError(self.path, key, "data runs past the end of the file (truncated)")
                self._npz[key] = (tuple(shape), bool(fortran), dtype, offset)
                self._shapes[key] = tuple(shape)
            if any(o is not None and s and 0 not in s for s, _, _, o in self._npz.values()):
                self._map = np.memmap(raw, dtype=np.uint8, mode="r")  # through the same handle; no data is read

    def _npz_config(self, arr: np.ndarray) -> dict[str, Any]:
        """The ``__config__`` member: a JSON object stored as a string."""
        if arr.ndim != 0 or arr.dtype.kind not in "US":
            raise InputError(self.path, "__config__", f"must be a JSON object stored as a string, got a {arr.dtype} "
                                                      f"array of shape {list(arr.shape)}")
        try:
            cfg = json.loads(str(arr))
        except ValueError as e:
            raise InputError(self.path, "__config__", f"is not valid JSON ({e})") from None
        return _config_object(self.path, cfg)

    def _stored_offset(self, raw: BinaryIO, info: zipfile.ZipInfo) -> int:
        """Where a stored member's bytes begin in the file (after its local header), read through ``raw``."""
        raw.seek(info.header_offset)
        local = raw.read(30)
        if len(local) < 30 or local[:4] != b"PK\x03\x04":
            raise InputError(self.path, info.filename[:-4], "corrupt zip member header")
        name_len = int.from_bytes(local[26:28], "little")
        extra_len = int.from_bytes(local[28:30], "little")
        return info.header_offset + 30 + name_len + extra_len

    def _open_pt(self) -> None:
        import torch

        if not _starts_as_zip(self.path):
            raise InputError(self.path, None, "not a readable .pt file: empty, or not written by torch.save's zip "
                                              "format (re-save it with a current torch.save)")
        try:
            obj = torch.load(self.path, map_location="cpu", mmap=True, weights_only=True)
        except Exception as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise InputError(self.path, None, f"not a readable .pt file ({first})") from None
        if not isinstance(obj, dict):
            raise InputError(self.path, None, f"expected a dict of tensors, got {type(obj).__name__}")
        if "__config__" in obj:
            self._meta = _config_object(self.path, obj.pop("__config__"))
        ok = {torch.float16, torch.float32, torch.float64, torch.bfloat16, torch.int8, torch.int16, torch.int32,
              torch.int64, torch.uint8, torch.bool}
        handle: dict[str, Any] = {}
        for k, v in obj.items():
            key = str(k)
            if not isinstance(v, torch.Tensor):
                raise InputError(self.path, key, f"expected a tensor, got {type(v).__name__}")
            if v.dtype not in ok:
                raise InputError(self.path, key, f"dtype {v.dtype} is not supported (expected a float, integer or "
                                                 "bool dtype)")
            if key in handle:
                raise InputError(self.path, key, "the key appears twice (as a number and as a string)")
            handle[key] = v
            self._shapes[key] = tuple(v.shape)
        self._handle = handle

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
        try:
            return ModelConfig.from_any(self._meta)
        except InputError as e:
            raise InputError(self.path, f"metadata {e.field}", e.message) from None

    def get(self, key: str) -> np.ndarray:
        """The array for ``key`` (memory-mapped where the format allows; bfloat16 comes back as float32)."""
        self.shape(key)
        if self._handle is None:
            raise InputError(self.path, key, "the activation file is closed")
        if self.format == "safetensors":
            if key in self._bf16:
                return self._bf16_tensor(key)
            return self._handle.get_tensor(key)
        if self.format == "npz":
            return self._npz_member(key)
        t = self._handle[key]
        return (t.float() if str(t.dtype) == "torch.bfloat16" else t).numpy()

    def _bf16_tensor(self, key: str) -> np.ndarray:
        shape = self._shapes[key]
        if 0 in shape:
            return np.zeros(shape, np.float32)
        raw = np.memmap(self.path, dtype="<u2", mode="r", offset=self._bf16[key], shape=shape)
        return (raw.astype(np.uint32) << 16).view(np.float32)

    def _npz_member(self, key: str) -> np.ndarray:
        shape, fortran, dtype, offset = self._npz[key]
        if offset is None or not shape or 0 in shape:  # compressed, or nothing (a scalar) to map: read it
            with self._handle.open(key + ".npy") as f:
                return np.lib.format.read_array(f, allow_pickle=False)
        nbytes = int(np.prod(shape)) * dtype.itemsize  # stored: a view into the file's one map, read-only
        assert self._map is not None  # opened with the file; an uncompressed member is read through it
        return self._map[offset:offset + nbytes].view(dtype).reshape(shape, order="F" if fortran else "C")

    def items(self) -> Iterator[tuple[str, np.ndarray]]:
        for k in self._shapes:
            yield k, self.get(k)

    def step_hooks(self, step: int) -> tuple[str, ...]:
        """The hook names this file holds for ``step``: its ``"<step>/<hook>"`` keys, or its plain keys."""
        hooks = self._plain + self._steps.get(str(step), ())
        if hooks:
            return hooks
        if not self._shapes:
            raise InputError(self.path, None, "the file holds no activations")
        steps = sorted(self._steps, key=lambda s: (not s.isdigit(), len(s), s))
        raise InputError(self.path, None, f"the file holds nothing for step {step} (it has steps {', '.join(steps[:8])})")

    def check(self, cfg: Any = None, hooks: tuple[str, ...] | None = None, step: int | None = None) -> None:
        """Check every (or the named, or ``step``'s) hook name, shapes against ``cfg`` (or the file's own config), and,
        with or without a config, each hook's rank (:func:`check_rank`), that one hook has the same shape at every
        layer of a step (:func:`check_layers_agree`) and the recorder's segment count (:func:`check_segments`)."""
        config = ModelConfig.from_any(cfg) if cfg is not None else self.config
        names = hooks if hooks else (self.step_hooks(step) if step is not None else tuple(self))
        by_step: dict[str, dict[str, tuple[int, ...]]] = {}  # layers agree within one step's hooks
        for h in names:
            key = self.step_key(h, step)
            prefix, _, hook = key.partition("/") if "/" in key else ("", "", key)
            check_hook_name(self.path, hook, key)
            shape = self.shape(key)
            if config is not None:
                check_shape(self.path, hook, shape, config)
            else:
                check_rank(self.path, hook, shape, key)
            by_step.setdefault(prefix, {})[key] = shape
        for shapes in by_step.values():
            check_layers_agree(self.path, shapes)  # before the segment count: one layer that differs is named
            check_segments(self.path, shapes)

    def step_key(self, hook: str, step: int | None) -> str:
        """The key ``hook`` has for ``step``: ``"<step>/<hook>"`` when the file holds one, else ``hook`` itself."""
        if step is not None and f"{step}/{hook}" in self._shapes:
            return f"{step}/{hook}"
        return hook

    def close(self) -> None:
        if self.format == "npz" and self._handle is not None:
            self._handle.close()
        self._handle = None
        # the file's map is released, not closed by force: arrays get() returned are views into it, and unmapping
        # under them would crash; it is unmapped when the last of them goes
        self._map = None

    def __enter__(self) -> ActivationFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_activations(ref: ActivationRef) -> ActivationFile:
    """Open the file a step's :class:`ActivationRef` points at, in its format (None: the one its suffix implies).

    Before ``format`` defaulted to None it defaulted to safetensors, and stores hold such references to ``.npz`` /
    ``.pt`` files: one that says safetensors but begins as a zip archive (which a safetensors file never does) is read
    by its suffix.
    """
    fmt = ref.format
    if fmt == "safetensors" and format_from_suffix(ref.path) in ("npz", "pt") and _starts_as_zip(ref.path):
        fmt = None
    return ActivationFile(ref.path, fmt)


def load_step(step: Step, hooks: tuple[str, ...] | None = None, config: Any = None) -> dict[str, np.ndarray]:
    """A step's activations as ``{hook: array}`` (shape-checked when a config is given or declared)."""
    if step.activation is None:
        raise InputError(None, f"steps[{step.index}].activation", "this step has no recorded activations")
    with open_activations(step.activation) as f:
        wanted = hooks or step.activation.hooks or f.step_hooks(step.index)
        f.check(config, wanted, step.index)
        return {h: np.asarray(f.get(f.step_key(h, step.index))) for h in wanted}


def check_trace(trace: Trace, config: Any = None, source: str | Path | None = None) -> int:
    """Open every activation file a trace references and check hooks and shapes; returns step files checked.

    With ``source`` (the trace's file), errors name it and the step before the activation file's own line.
    A file several steps share (``"<step>/<hook>"`` keys) is opened, and its index read, once per call.
    """
    by_file: dict[tuple[str, str | None], list[tuple[int, ActivationRef]]] = {}
    for s in trace.steps:
        if s.activation is not None:
            by_file.setdefault((s.activation.path, s.activation.format), []).append((s.index, s.activation))
    for refs in by_file.values():
        index = refs[0][0]  # the step an error names: the first one while opening, then the one checked
        try:
            with open_activations(refs[0][1]) as f:
                for index, ref in refs:
                    f.check(config, ref.hooks or None, index)
        except InputError as e:
            if source is None:
                raise
            raise InputError(source, f"steps[{index}].activation", e.one_line()) from None
    return sum(len(refs) for refs in by_file.values())


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
                with ActivationFile(p) as f:  # the format its suffix implies
                    ref = ActivationRef(path=str(p), hooks=tuple(f), format=f.format)
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
