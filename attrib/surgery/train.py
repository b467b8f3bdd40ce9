"""``train_sail``: LoRA on the focal layers, trained with the token-weighted DPO loss, checkpointed and resumable.

The loop is hand-written (not TRL's DPOTrainer) because SAIL needs per-token weights and per-token reference log-probs
that TRL does not expose; it is short: reference pass once (cached on disk), then AdamW over the LoRA parameters with
gradient accumulation, gradient clipping, a deterministic data order derived from ``random_state`` (so a resumed
run sees the same batches as an uninterrupted one), and a checkpoint (peft adapter + optimizer state) every
``save_every`` steps.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import orjson

from attrib.errors import AttribError, InputError, NotFoundError, whole_number
from attrib.models import check_model, pad_id
from attrib.surgery.lora import (
    ParamShare,
    check_lora_params,
    focal_lora_config,
    trainable_share,
    validate_layers,
)
from attrib.surgery.pairs import PreferencePair, validate_pair

#: ``token_weight_fn(batch, spans, attentions) -> [B, T]`` weights in [0, 1] on response tokens (0 elsewhere).
TokenWeightFn = Callable[[dict[str, Any], Sequence[tuple[int, int]], Sequence[Any] | None], Any]

ADAPTER_DIR = "adapter"
STATE_FILE = "trainer_state.pt"
REF_FILE = "reference.pt"
META_FILE = "sail.json"

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a SAIL run produced: the adapted model, where the adapter lies, and how training went."""

    model: Any
    adapter_dir: Path
    layers: list[int]
    steps: int
    losses: list[float]
    reward_accuracies: list[float]
    step_seconds: list[float]
    reference_seconds: float
    share: ParamShare
    resumed_from: int = 0
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def resumed(self) -> str | None:
        """``resumed from step N in OUT`` when the run continued a checkpoint (None for a fresh run), OUT the run's
        folder (``adapter_dir``'s parent): derived, so it cannot disagree with ``resumed_from``."""
        if not self.resumed_from:
            return None
        return f"resumed from step {self.resumed_from} in {self.adapter_dir.parent}"

    @property
    def mean_step_seconds(self) -> float:
        """Mean wall time of an optimizer step in this process (resumed steps excluded)."""
        return sum(self.step_seconds) / len(self.step_seconds) if self.step_seconds else 0.0


def uniform_weights(value: float = 1.0) -> TokenWeightFn:
    """A weight function giving every response token ``value`` (``alpha=0`` is plain DPO whatever the weights)."""

    def fn(batch: dict[str, Any], spans: Sequence[tuple[int, int]], attentions: Sequence[Any] | None) -> Any:
        return batch["response_mask"].float() * value

    fn.__name__ = f"uniform_{value:g}"
    fn.needs_attentions = False  # type: ignore[attr-defined]
    return fn


def attention_weights(heads: Sequence[tuple[int, int]]) -> TokenWeightFn:
    """The default SAIL weights: focal heads' attention onto the system rule (see :mod:`attrib.surgery.weights`)."""
    from attrib.surgery.weights import focal_rule_weights

    heads = [cast(tuple[int, int], tuple(h)) for h in heads]  # as given: focal_rule_weights checks each

    def fn(batch: dict[str, Any], spans: Sequence[tuple[int, int]], attentions: Sequence[Any] | None) -> Any:
        if attentions is None:
            from attrib.surgery.loss import LossInputError

            raise LossInputError(None, "attentions", "attention weights need the reference model's attentions: "
                                 "run it with output_attentions=True (under attrib.surgery.weights.eager_attention)")
        return focal_rule_weights(attentions, batch["response_mask"], spans, heads)

    fn.__name__ = "attention_" + hashlib.sha1(repr(heads).encode()).hexdigest()[:8]
    fn.needs_attentions = True  # type: ignore[attr-defined]
    return fn


# ----------------------------------------------------------------------------------------------------------------------
# Encoding and the reference pass


def encode_pairs(tokenizer: Any, pairs: Sequence[PreferencePair], max_response_tokens: int = 48) -> list[dict[str, Any]]:
    """Token ids, masks and the rule span for both sides of every pair."""
    from attrib.surgery.loss import encode_prompt_response
    from attrib.surgery.weights import rule_token_span

    rows = []
    for i, p in enumerate(pairs):
        validate_pair(p, "pairs", i + 1)
        span = rule_token_span(tokenizer, p.messages, p.rule)
        rows.append({
            "chosen": encode_prompt_response(tokenizer, p.messages, p.chosen, max_response_tokens=max_response_tokens),
            "rejected": encode_prompt_response(tokenizer, p.messages, p.rejected,
                                               max_response_tokens=max_response_tokens),
            "span": span,
        })
    return rows


def reference_pass(
    model: Any,
    rows: list[dict[str, Any]],
    token_weight_fn: TokenWeightFn,
    *,
    pad_id: int,
    start_layer: int = 0,
    batch_size: int = 8,
    progress: bool = False,
) -> None:
    """Fill ``ref_logps`` and ``weights`` (lists per side) into ``rows`` with the frozen model, no gradients.

    With ``start_layer`` > 0 the residual stream entering that layer is kept too (``h``), for frozen-prefix caching.
    """
    import contextlib

    import torch
    from tqdm.auto import tqdm

    from attrib.surgery.loss import check_weights, collate, response_logps
    from attrib.surgery.prefix import capture_layer_input
    from attrib.surgery.weights import eager_attention

    needs_att = getattr(token_weight_fn, "needs_attentions", True)
    items = [(r, side) for r in rows for side in ("chosen", "rejected")]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), eager_attention(model):
            for i in tqdm(range(0, len(items), batch_size), desc="reference pass", disable=not progress):
                chunk = items[i:i + batch_size]
                batch = collate([r[side] for r, side in chunk], pad_id)
                cap: AbstractContextManager[list[Any]] = (capture_layer_input(model, start_layer) if start_layer > 0
                                                          else contextlib.nullcontext([]))
                with cap as captured:
                    logps, out = response_logps(model, batch, return_output=True, output_attentions=needs_att)
                w = token_weight_fn(batch, [r["span"] for r, _ in chunk], out.attentions if needs_att else None)
                _check_weight_shape(w, batch["response_mask"])
                w = w.detach().float() * batch["response_mask"].float()
                check_weights("token_weight_fn", w, batch["response_mask"])  # once here, not at every step
                for j, (r, side) in enumerate(chunk):
                    n = len(r[side]["input_ids"])
                    r[side]["ref_logps"] = logps[j, :n].tolist()
                    r[side]["weights"] = w[j, :n].tolist()
                    if start_layer > 0:
                        r[side]["h"] = captured[-1][j, :n].clone()
    finally:
        model.train(was_training)


def _check_weight_shape(w: Any, mask: Any) -> None:
    """What ``token_weight_fn`` returns is a tensor shaped like the batch's ``response_mask`` (a wrong one was a raw
    broadcasting RuntimeError, or silently broadcast)."""
    import torch

    from attrib.surgery.loss import LossInputError

    want = tuple(mask.shape)
    if not isinstance(w, torch.Tensor) or tuple(w.shape) != want:
        got = f"shape {tuple(w.shape)}" if isinstance(w, torch.Tensor) else type(w).__name__
        raise LossInputError(None, "token_weight_fn", f"must return a [batch, tokens] tensor shaped like the batch's "
                                                      f"response_mask {list(want)}, got {got}")


# ----------------------------------------------------------------------------------------------------------------------
# Training


def _batch_indices(k: int, batch_size: int, n: int, random_state: int) -> list[int]:
    """Micro-batch ``k`` of a deterministic stream of epoch permutations (``random_state`` and the epoch)."""
    import numpy as np

    out = []
    perms: dict[int, Any] = {}
    for pos in range(k * batch_size, (k + 1) * batch_size):
        epoch = pos // n
        if epoch not in perms:
            perms[epoch] = np.random.default_rng(random_state * 100_003 + epoch).permutation(n)
        out.append(int(perms[epoch][pos % n]))
    return out


def _hash(obj: Any) -> str:
    return hashlib.sha1(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def pairs_key(pairs: Sequence[PreferencePair]) -> str:
    """A hash of what the run trains on, in order: each pair's messages, rule, chosen and rejected text. Not the
    ids: a pairs file keeps the ids its author gave ("p1"), so fixing a pair's labels under the same id must
    still give a fresh reference pass and a fresh run, not the old checkpoint."""
    return _hash([[p.messages, p.rule, p.chosen, p.rejected] for p in pairs])


@contextlib.contextmanager
def quiet_peft_wrap() -> Iterator[None]:
    """Silence the one transformers FutureWarning peft triggers when it wraps a model (it reads the deprecated
    ``is_gradient_checkpointing``): printed on every ``attrib sail`` / ``attrib compliance`` run, and nothing the
    user can act on. Every other warning still shows."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`?is_gradient_checkpointing`? is deprecated", category=FutureWarning)
        yield


def train_sail(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[PreferencePair],
    focal_layers: Sequence[int],
    token_weight_fn: TokenWeightFn | None = None,
    *,
    steps: int,
    lr: float = 1e-5,
    beta: float = 0.1,
    alpha: float = 0.5,
    grad_accum: int = 1,
    batch_size: int = 2,
    random_state: int = 0,
    out_dir: str | Path,
    resume: bool = True,
    r: int = 8,
    lora_alpha: int = 16,
    dropout: float = 0.0,
    focal_heads: Sequence[tuple[int, int]] | None = None,
    max_response_tokens: int = 48,
    max_grad_norm: float = 1.0,
    save_every: int | None = None,
    copy_model: bool = True,
    prefix_cache: bool = True,
    reference_cache: str | Path | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train LoRA on q/k/v/o of ``focal_layers`` with the SAIL loss; return the adapted model and the run's record.

    ``token_weight_fn`` defaults to the frozen model's attention of ``focal_heads`` (default: every head of the focal
    layers) onto the system rule; ``alpha=0`` is the plain-DPO ablation. ``lr=1e-5`` is the paper's value for full
    multi-GPU epochs; short CPU runs need a larger one (the benchmark picks 1e-3 × 16 steps on a validation split). The model is deep-copied
    first (``copy_model``) because peft injects LoRA layers in place. With ``resume``, a run finds its checkpoint in
    ``out_dir`` (same pairs, by content, and same config) and continues from the saved step, logging "resumed from
    step N in OUT" (also in ``TrainResult.resumed``); a checkpoint of other pairs or settings is replaced. ``prefix_cache`` runs the frozen layers
    below the lowest focal layer once, in the reference pass, instead of at every step (exact; see
    :mod:`attrib.surgery.prefix`). ``reference_cache``: a folder shared by several runs on the same pairs (e.g. seeds
    of a benchmark); the reference pass is then done once per (pairs, weights, lowest layer) instead of once per run.
    """
    import torch
    from peft import get_peft_model, set_peft_model_state_dict
    from safetensors.torch import load_file
    from tqdm.auto import tqdm

    from attrib.surgery.loss import check_loss_params, collate, response_logps, sail_loss, weighted_margin
    from attrib.surgery.prefix import decoder_of, start_at_layer

    for name, value in (("steps", steps), ("grad_accum", grad_accum), ("batch_size", batch_size)):
        whole_number(name, value)
    check_lora_params(r, lora_alpha, dropout, alpha_field="lora_alpha")  # before the reference pass
    check_loss_params(beta, alpha)  # before the reference pass, not at the first step
    if not pairs:
        raise InputError(None, "pairs", "no preference pairs to train on")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise AttribError(f"{out}: a file is in the way; out_dir must be a folder")
    check_model(model)  # before out_dir is made: a name or a base model failed at the first forward pass
    layers = validate_layers(model, focal_layers)
    if focal_heads:  # against the model's shape before the reference pass, not as a bare IndexError inside it
        from attrib.heads.weights import check_focal_heads
        from attrib.models import model_dims

        focal_heads = check_focal_heads(focal_heads, *model_dims(model))
    if any("lora_" in n for n, _ in model.named_parameters()):
        raise InputError(None, "model", "the model already carries LoRA adapters; pass the base model (peft wraps in place)")
    out.mkdir(parents=True, exist_ok=True)
    if token_weight_fn is None:
        from attrib.surgery.weights import heads_for_layers

        token_weight_fn = attention_weights(focal_heads or heads_for_layers(model, layers))
    pad = pad_id(tokenizer)
    start_layer = min(layers) if prefix_cache and decoder_of(model) is not None else 0

    # the key stays "seed": it is hashed into the checkpoint's run key and written to the saved config,
    # so renaming it would stop older checkpoints from resuming
    config = {
        "layers": layers, "steps": steps, "lr": lr, "beta": beta, "alpha": alpha, "grad_accum": grad_accum,
        "batch_size": batch_size, "seed": random_state, "r": r, "lora_alpha": lora_alpha, "dropout": dropout,
        "max_response_tokens": max_response_tokens, "max_grad_norm": max_grad_norm,
        "weights": getattr(token_weight_fn, "__name__", "custom"),
        "base_model": str(getattr(model.config, "attrib_source", "") or getattr(model.config, "_name_or_path", "")),
        "pairs": pairs_key(pairs), "n_pairs": len(pairs),
    }
    data_key = _hash({k: config[k] for k in ("base_model", "pairs", "max_response_tokens", "weights")}
                     | {"start_layer": start_layer})

    # 1. reference log-probs and token weights, once (cached on disk next to the checkpoint)
    t0 = time.perf_counter()
    ref_path = Path(reference_cache) / f"reference-{data_key}.pt" if reference_cache else out / REF_FILE
    ref_path.parent.mkdir(parents=True, exist_ok=True)
    rows = None
    if ref_path.is_file():
        cached = torch.load(ref_path, weights_only=False)
        if cached.get("key") == data_key:
            rows = cached["rows"]
    if rows is None:
        rows = encode_pairs(tokenizer, pairs, max_response_tokens)
        reference_pass(model, rows, token_weight_fn, pad_id=pad, start_layer=start_layer, progress=progress)
        torch.save({"key": data_key, "rows": rows}, ref_path)
    ref_seconds = time.perf_counter() - t0

    # 2. LoRA on exactly the focal layers
    torch.manual_seed(random_state)
    base = copy.deepcopy(model) if copy_model else model
    with quiet_peft_wrap():
        peft_model = get_peft_model(base, focal_lora_config(base, layers, r=r, alpha=lora_alpha, dropout=dropout))
    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)

    # 3. resume
    state_path, adapter_dir = out / STATE_FILE, out / ADAPTER_DIR
    start, losses, accs = 0, [], []
    run_key = _hash(config | {"steps": 0})
    if resume and state_path.is_file() and (adapter_dir / "adapter_model.safetensors").is_file():
        st = torch.load(state_path, weights_only=False)
        if st.get("run_key") == run_key and st["step"] <= steps:
            set_peft_model_state_dict(peft_model, load_file(str(adapter_dir / "adapter_model.safetensors")))
            opt.load_state_dict(st["optimizer"])
            start, losses, accs = st["step"], list(st["losses"]), list(st["reward_accuracies"])
            torch.set_rng_state(st["torch_rng"])
            log.warning("attrib: resumed from step %d in %s (same pairs and settings; resume=False or "
                        "--no-resume starts afresh)", start, out)
        else:
            why = "more steps than asked" if st.get("run_key") == run_key else "other pairs or settings"
            log.warning("attrib: the checkpoint in %s is for %s: starting afresh (it will be replaced)", out, why)

    def save(step: int) -> None:
        peft_model.save_pretrained(str(adapter_dir))
        torch.save({"run_key": run_key, "step": step, "optimizer": opt.state_dict(), "losses": losses,
                    "reward_accuracies": accs, "torch_rng": torch.get_rng_state()}, state_path)
        (out / META_FILE).write_text(json.dumps(config | {"completed_steps": step}, indent=2))

    # 4. the loop
    peft_model.train()
    step_seconds: list[float] = []
    bar = tqdm(range(start, steps), desc="SAIL", disable=not progress, initial=start, total=steps)
    for step in bar:
        ts = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        step_loss = step_acc = 0.0
        for micro in range(grad_accum):
            idx = _batch_indices(step * grad_accum + micro, batch_size, len(rows), random_state)
            sides = [rows[i]["chosen"] for i in idx] + [rows[i]["rejected"] for i in idx]
            batch = collate(sides, pad, extra=("ref_logps", "weights"))
            if start_layer > 0:
                h = torch.nn.utils.rnn.pad_sequence([sd["h"] for sd in sides], batch_first=True)
                with start_at_layer(peft_model, start_layer):
                    logps = response_logps(peft_model, batch, inputs_embeds=h)
            else:
                logps = response_logps(peft_model, batch)
            b = len(idx)
            c, rj = slice(0, b), slice(b, 2 * b)
            loss = sail_loss(logps[c], logps[rj], batch["ref_logps"][c], batch["ref_logps"][rj],
                             batch["weights"][c], batch["weights"][rj], batch["response_mask"][c],
                             batch["response_mask"][rj], beta=beta, alpha=alpha, check=False)  # checked up front
            (loss / grad_accum).backward()
            with torch.no_grad():
                margin = weighted_margin(logps[c], batch["ref_logps"][c], batch["weights"][c],
                                         batch["response_mask"][c], beta=beta, alpha=alpha, sign=1.0) - \
                    weighted_margin(logps[rj], batch["ref_logps"][rj], batch["weights"][rj],
                                    batch["response_mask"][rj], beta=beta, alpha=alpha, sign=-1.0)
            step_loss += loss.item() / grad_accum
            step_acc += (margin > 0).float().mean().item() / grad_accum
        if max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        opt.step()
        losses.append(step_loss)
        accs.append(step_acc)
        step_seconds.append(time.perf_counter() - ts)
        bar.set_postfix(loss=f"{step_loss:.4f}", acc=f"{step_acc:.2f}")
        if save_every and (step + 1) % save_every == 0 and step + 1 < steps:
            save(step + 1)
    save(steps)
    peft_model.eval()
    return TrainResult(
        model=peft_model, adapter_dir=adapter_dir, layers=layers, steps=steps, losses=losses,
        reward_accuracies=accs, step_seconds=step_seconds, reference_seconds=ref_seconds,
        share=trainable_share(peft_model), resumed_from=start, config=config,
    )


def adapter_path(adapter_dir: str | Path) -> Path:
    """The folder holding a saved SAIL adapter (``out_dir/adapter`` or that folder itself), checked before any
    model is loaded: it exists, is a folder, and its ``adapter_config.json`` is a JSON object."""
    path = Path(adapter_dir)
    if not path.exists():
        raise NotFoundError(f"{path}: no such adapter folder (train_sail or `attrib sail` writes one)")
    if (path / ADAPTER_DIR / "adapter_config.json").is_file():
        path = path / ADAPTER_DIR
    if not path.is_dir():
        raise InputError(path, None, "is a file, not a saved adapter folder (the folder holding adapter_config.json)")
    config = path / "adapter_config.json"
    if not config.is_file():
        raise InputError(path, "adapter_config.json", "not a saved adapter folder (no adapter_config.json)")
    try:
        ok = isinstance(json.loads(config.read_bytes()), dict)
    except (OSError, ValueError):
        ok = False
    if not ok:
        raise InputError(config, None, "not a JSON object: a damaged adapter (train it again)")
    return path


def load_adapter(model: Any, adapter_dir: str | Path, *, copy_model: bool = True) -> Any:
    """The base ``model`` with a saved SAIL adapter (``out_dir/adapter`` or that folder itself), in eval mode."""
    from peft import PeftModel

    path = adapter_path(adapter_dir)
    base = copy.deepcopy(model) if copy_model else model
    with quiet_peft_wrap():
        peft_model = PeftModel.from_pretrained(base, str(path))
    peft_model.eval()
    return peft_model


def config_dict(result: TrainResult) -> dict[str, Any]:
    """A JSON-able summary of a run (for the CLI and the benchmark)."""
    return {
        "adapter_dir": str(result.adapter_dir), "layers": result.layers, "steps": result.steps,
        "final_loss": result.losses[-1] if result.losses else None, "losses": result.losses,
        "reward_accuracies": result.reward_accuracies, "mean_step_seconds": result.mean_step_seconds,
        "reference_seconds": result.reference_seconds, "trainable": asdict(result.share) | {
            "share": result.share.share}, "resumed_from": result.resumed_from, "resumed": result.resumed,
        "config": result.config,
    }
