"""LoRA on the attention projections of exactly the focal layers (peft), and how much of the model that trains.

The anchor recipe (DLA) puts rank-8, alpha-16, dropout-0 LoRA on q/k/v/o of the chosen layers only. We name the target
modules explicitly (``model.layers.12.self_attn.q_proj`` ...) instead of relying on peft's ``layers_to_transform``
pattern guessing, so the config says in plain text which weights can move, for any HF decoder layout.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from attrib.errors import InputError, UsageError, is_real, layer_indices, whole_number

#: Attention projections LoRA is put on, in the order they appear in the config.
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")
_LAYER_RE = re.compile(r"^(?P<prefix>.*?)(?P<stack>layers|h|blocks)\.(?P<idx>\d+)\.(?P<attn>self_attn|attn|attention)\."
                       r"(?P<proj>q_proj|k_proj|v_proj|o_proj)$")


def num_layers(model: Any) -> int:
    """Number of decoder layers (``config.num_hidden_layers``, else counted from module names)."""
    n = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    if isinstance(n, int):
        return n
    idx = {int(m["idx"]) for name, _ in model.named_modules() if (m := _LAYER_RE.match(name))}
    return max(idx) + 1 if idx else 0


def attention_projections(model: Any, projections: Sequence[str] = PROJECTIONS) -> list[tuple[int, str, Any]]:
    """``(layer, full module name, module)`` of every attention projection in ``projections``, by layer then q/k/v/o."""
    found = []
    for name, module in model.named_modules():
        m = _LAYER_RE.match(name)
        if m and m["proj"] in projections:
            found.append((int(m["idx"]), projections.index(m["proj"]), name, module))
    return [(layer, name, module) for layer, _, name, module in sorted(found, key=lambda t: (t[0], t[1]))]


def attention_module_names(model: Any, layers: Iterable[int], projections: Sequence[str] = PROJECTIONS) -> list[str]:
    """Full module names of the attention projections of ``layers`` (raises InputError for layers out of range)."""
    wanted = validate_layers(model, layers)
    hits = [(layer, name) for layer, name, _ in attention_projections(model, projections) if layer in wanted]
    missing = sorted(set(wanted) - {layer for layer, _ in hits})
    if missing:
        raise InputError(None, "layers", f"no attention projections {list(projections)} found for layers {missing}")
    return [name for _, name in hits]


def validate_layers(model: Any, layers: Iterable[int]) -> list[int]:
    """Sorted unique decoder layer indices of ``model`` (:func:`attrib.errors.layer_indices`)."""
    return layer_indices(layers, num_layers(model))


def parse_layers(spec: str, n_layers: int | None = None) -> list[int]:
    """Parse ``"12-15"``, ``"3,7,9"`` or ``"12-15,20"`` into sorted layer indices (checked against ``n_layers``)."""
    if not isinstance(spec, str):
        raise UsageError(None, "layers", f"expected text such as 12-15 or 3,7,9, got {type(spec).__name__} {spec!r}")
    out: set[int] = set()
    try:
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            if "-" in part:
                a, b = (int(x) for x in part.split("-", 1))
                if b < a:
                    raise ValueError(part)
                out.update(range(a, b + 1))
            else:
                out.add(int(part))
    except ValueError:
        raise UsageError(None, "layers", f"cannot parse {spec!r}; use a list such as 12-15 or 3,7,9, or one of "
                         "repair, auto, heads") from None
    if not out:
        raise UsageError(None, "layers", f"{spec!r} names no layers")
    if n_layers is not None:
        bad = sorted(x for x in out if x < 0 or x >= n_layers)
        if bad:
            raise UsageError(None, "layers", f"layers {bad} are out of range: the model has {n_layers} layers")
    return sorted(out)


def check_lora_params(r: object, alpha: object, dropout: object, *, alpha_field: str = "alpha") -> None:
    """``r`` a whole number >= 1, LoRA ``alpha`` a number above 0, ``dropout`` in [0, 1): a UsageError naming each."""
    whole_number("r", r)
    if not (is_real(alpha) and alpha > 0):  # type: ignore[operator]
        raise UsageError(None, alpha_field, f"LoRA alpha must be a number above 0, got {alpha!r}")
    if not (is_real(dropout) and 0 <= dropout < 1):  # type: ignore[operator]
        raise UsageError(None, "dropout", f"must lie in [0, 1), got {dropout!r}")


def focal_lora_config(model: Any, layers: Iterable[int], r: int = 8, alpha: int = 16, dropout: float = 0.0) -> Any:
    """A peft ``LoraConfig`` with LoRA on q/k/v/o of exactly ``layers`` (full module names as targets). ``r`` a whole
    number >= 1, ``alpha`` a number above 0, ``dropout`` in [0, 1) (UsageError naming each; r=0 and dropout=2 were
    accepted)."""
    from peft import LoraConfig, TaskType

    from attrib.models import check_model

    check_model(model)  # a name or an nn.Linear read as "the model has 0 layers"
    check_lora_params(r, alpha, dropout)
    targets = attention_module_names(model, layers)
    return LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=targets,
        bias="none",
    )


@dataclass(frozen=True)
class ParamShare:
    """Trainable vs total parameters of a (peft-wrapped) model."""

    trainable: int
    total: int

    @property
    def share(self) -> float:
        return self.trainable / self.total if self.total else 0.0

    def __str__(self) -> str:
        return f"{self.trainable:,} of {self.total:,} parameters trainable ({100 * self.share:.3f} %)"


def trainable_share(model: Any) -> ParamShare:
    """Count parameters that require grad against all parameters (shared tensors counted once)."""
    seen: set[int] = set()
    trainable = total = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return ParamShare(trainable, total)
