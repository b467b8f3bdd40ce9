"""Record per-step activations while user code runs an HF or TransformerLens model as an agent.

>>> with Recorder(model, tokenizer, out_dir="traces/recorded/run1", trace_id="run1") as rec:
...     with rec.step("solver", messages, rule="Never reveal the code.") as step:
...         step.response = my_generate(messages)            # any generation code
...     trace = rec.trace(task="...", outcome="failed")       # Step.activation -> safetensors per step (absolute)
...     rec.save(task="...", outcome="failed")                # run1/run1.json, its paths relative to it

How: when a step closes, the recorder replays ``prompt + response`` once, teacher-forced, under hooks, and saves
what the model computed at the answer-generating positions. Why a replay rather than hooks live inside
``generate``: KV-cached decoding splits attention into one call per token and fused SDPA/flash kernels return no
weights, while a single replay is cheap and gives the identical activations for the tokens actually produced. The replay
hands post-rotary queries and keys to :mod:`attrib.heads.long_context` (the CUDA kernel on a GPU, the exact chunked
PyTorch path elsewhere), so no [H, T, T] pattern exists and long transcripts fit in memory; only
``full_patterns=True`` or extra ``hooks`` take the cached-pattern path (a TransformerBridge ``run_with_cache``, or
an HF model loaded with ``attn_implementation='eager'``).

File layout (one safetensors file per step, written through :func:`attrib.activations.save_step`, keys named by
TransformerLens hook path, batch dimension dropped, float16 unless asked otherwise):

* ``blocks.{l}.attn.hook_pattern:segment_mass`` [H, Q, S]: attention of each answer position (Q of them) on each
  segment ``attrib.activations.SEGMENTS`` = (sink, rule, conflict, prompt, response);
* ``blocks.{l}.attn.hook_pattern:entropy`` [H, Q]: attention entropy (nats) of those rows;
* ``blocks.{l}.attn.hook_pattern`` [H, T, T] only with ``full_patterns=True`` (large), or for a layer whose
  pattern hook is named in ``hooks``;
* any other extra hook in ``hooks`` (e.g. ``blocks.{l}.hook_resid_post``) at the answer positions, [Q, ...];
* ``attrib.query_positions`` [Q] (int32): the positions, ``n_prompt - 1 .. T - 2``.
The step's ``metadata["activation_layout"]`` names the segments and their token spans. Per-segment statistics keep
files small (a 30-layer, 32-token step is ~100 KB) and are exactly what drift and the long-context kernel
(``attrib.kernels.segment_attention_stats``, same [H, Q, S] layout) produce.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from attrib.activations import (
    ModelConfig,
    check_hook,
    closest_hook,
    hook_layer,
    is_known_hook,
    load_step,
    open_activations,
    save_step,
)
from attrib.errors import InputError, is_whole_number, layers_or_all
from attrib.trace import Label, Step, Trace, parse_outcome

PATTERN = "blocks.{l}.attn.hook_pattern"
#: Storage dtypes the recorder accepts (floats numpy can write; bfloat16 is not one of them).
DTYPES: tuple[str, ...] = ("float16", "float32", "float64")


class StepHandle:
    """What user code fills in inside ``with recorder.step(...)``: the response text (or its token ids)."""

    def __init__(self) -> None:
        self.response: str | None = None
        self.response_ids: list[int] | None = None
        self.metadata: dict[str, Any] = {}
        self.step: Step | None = None


class Recorder:
    """Collects steps of an agent run and writes each step's activations next to the trace.

    ``model``: an HF causal LM (eager attention) or a TransformerLens ``TransformerBridge``. ``hooks``: extra hook
    names to save, checked against the TransformerLens names (the bridge's own ``hook_dict`` with a bridge) before
    anything runs (a TransformerBridge is needed for hooks other than attention patterns); every hook named is saved:
    ``blocks.{l}.attn.hook_pattern`` in full [H, T, T], even for a layer outside ``layers`` and without
    ``full_patterns``. ``layers``: which layers' attention statistics to keep (default all). ``dtype``: float16
    (default), float32 or float64; anything else (bfloat16, integers) is refused. ``out_dir`` is created on the
    first write, with or without ``with``.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        *,
        out_dir: str | Path,
        trace_id: str = "recorded",
        hooks: Sequence[str] = (),
        layers: Sequence[int] | None = None,
        full_patterns: bool = False,
        dtype: str = "float16",
    ) -> None:
        from attrib.models import check_model, is_bridge

        check_model(model, bridge=True)  # a name string failed with "'str' object has no attribute 'config'"
        self.model = model
        self.is_bridge = is_bridge(model)
        tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
        if tokenizer is None:
            raise InputError(None, "tokenizer", "the recorder needs the model's tokenizer")
        self.tokenizer: Any = tokenizer
        cfg = model.cfg if self.is_bridge else model.config
        self.n_layers = int(getattr(cfg, "n_layers", None) or cfg.num_hidden_layers)
        self.layers = layers_or_all(layers, self.n_layers)
        if isinstance(hooks, str):
            hooks = (hooks,)
        for h in hooks:
            self._check_hook(h)
        self.hooks = tuple(dict.fromkeys(hooks))
        self.full_patterns = full_patterns
        if dtype not in DTYPES:
            raise InputError(None, "dtype", f"{dtype!r} is not supported: the recorder stores {', '.join(DTYPES)} "
                                            "(numpy has no bfloat16; use float16 or float32)")
        self.dtype = np.dtype(dtype)
        self.out_dir = Path(out_dir)
        self.trace_id = trace_id
        self.steps: list[Step] = []
        self._t0 = time.time()

    def _check_hook(self, h: Any) -> None:
        """Refuse, before any replay, a hook name this model cannot give (misspelled, wrong layer, HF-only)."""
        if not isinstance(h, str):
            raise InputError(None, "hooks", f"expected hook names (strings), got {type(h).__name__}")
        if h.endswith((":segment_mass", ":entropy")) or h == "attrib.query_positions":
            raise InputError(None, "hooks", f"{h!r} is written for every recorded layer already (choose them with "
                                            "layers=[...]); hooks names extra TransformerLens hooks")
        names: dict[str, Any] = {}
        if self.is_bridge:
            try:
                names = dict(self.model.hook_dict)
            except Exception:  # an object that only looks like a bridge: fall back to the TransformerLens names
                names = {}
        if h in names and not is_known_hook(h):
            # a bridge alias (blocks.3.hook_out) is the same hook point as a TransformerLens name (hook_resid_post):
            # suggest that one, not the nearest spelling (hook_mlp_out)
            point = names[h]
            same = sorted(n for n, v in names.items() if point is not None and v is point and is_known_hook(n))
            if same:
                raise InputError(None, "hooks", f"{h!r} is not a TransformerLens hook name: it is the bridge's own "
                                                f"name for {same[0]!r}, which the activation files keep; did you mean "
                                                f"{same[0]!r}?")
        check_hook(None, h, self.n_layers, "hooks")  # the names the activation files accept back (attrib.activations)
        # the bridge's own aliases (e.g. blocks.0.hook_out) are not promised by the file format: suggest only
        # TransformerLens names this model has
        if names and h not in names:
            near = closest_hook(h, among=(n for n in names if is_known_hook(n)))
            hint = f"; did you mean {near!r}?" if near else ""
            raise InputError(None, "hooks", f"{h!r} is a TransformerLens hook this model does not have{hint}")
        if not self.is_bridge and not h.endswith("attn.hook_pattern"):
            raise InputError(None, "hooks", f"{h!r} needs a TransformerBridge (attrib.models.load_bridge); an HF "
                                            "model gives only blocks.{l}.attn.hook_pattern")

    def __enter__(self) -> Recorder:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    # -- recording ------------------------------------------------------------------------------------------
    def step(
        self,
        agent: str,
        messages: Sequence[dict[str, str]],
        *,
        rule: str | None = None,
        conflict: str | None = None,
        parents: Sequence[int] = (),
    ) -> _StepContext:
        """Context manager for one agent turn; set ``handle.response`` inside. ``rule`` (default: the whole system
        message) and ``conflict`` (e.g. a peer agent's instruction) are substrings whose token spans are segments."""
        return _StepContext(self, agent, list(messages), rule, conflict, tuple(parents))

    def add_step(
        self,
        agent: str,
        messages: Sequence[dict[str, str]],
        response: str | Sequence[int],
        *,
        rule: str | None = None,
        conflict: str | None = None,
        parents: Sequence[int] = (),
        metadata: dict[str, Any] | None = None,
    ) -> Step:
        """Record a finished turn: replay ``messages`` + ``response`` under hooks, save, append the Step."""
        from attrib.probes.types import render_messages

        where = f"steps[{len(self.steps)}].messages"
        if isinstance(messages, str | bytes | dict) or not isinstance(messages, Sequence):
            raise InputError(None, where, f"expected a list of {{role, content}} messages, got {type(messages).__name__}")
        for i, m in enumerate(messages):
            if not isinstance(m, dict):
                raise InputError(None, f"{where}[{i}]", f"expected a {{role, content}} dict, got {type(m).__name__}")
            if not isinstance(m.get("content"), str):
                got = "missing" if "content" not in m else f"not a string ({type(m['content']).__name__})"
                raise InputError(None, f"{where}[{i}].content", f"{got}: every message needs its text as content")
        system = next((m["content"] for m in messages if m.get("role") == "system"), None)
        if not system:
            raise InputError(None, where, "no system message: nothing to measure drift against")
        if conflict is not None and conflict not in "\n".join(m["content"] for m in messages):
            raise InputError(None, f"steps[{len(self.steps)}].conflict", "conflict text not found in the messages")
        rendered = render_messages(
            self.tokenizer, list(messages), marks={"system": system, "rule": rule or system, "conflict": conflict},
            where=f"steps[{len(self.steps)}]",
        )
        index = len(self.steps)
        parents = self._check_parents(parents, index)
        if isinstance(response, str):
            resp_ids = self.tokenizer(response, add_special_tokens=False)["input_ids"]
            text = response
        else:
            resp_ids = self._check_token_ids(response, index)
            text = self.tokenizer.decode(resp_ids, skip_special_tokens=True)
        if not resp_ids:
            resp_ids = [self.tokenizer.eos_token_id]
        tensors, layout = self._capture(rendered.input_ids, resp_ids, rendered.spans)
        self.out_dir.mkdir(parents=True, exist_ok=True)  # also without ``with``: created on the first write
        # absolute: the trace in memory works from any working directory; save() writes them relative to the JSON
        path = (self.out_dir / f"step_{index}.safetensors").absolute()
        hf_cfg = self.model.original_model.config if self.is_bridge else self.model.config
        ref = save_step(path, tensors, ModelConfig.from_any(hf_cfg))  # format="safetensors", the path as given
        meta = {"activation_layout": layout, "messages": list(messages), **(metadata or {})}
        step = Step(
            index=index, agent=agent, content=text, role="assistant", parents=tuple(parents),
            tokens_in=rendered.n_tokens, tokens_out=len(resp_ids), activation=ref, metadata=meta,
            start_time=self._t0, end_time=time.time(),
        )
        self.steps.append(step)
        return step

    @staticmethod
    def _check_parents(parents: Sequence[int], index: int) -> tuple[int, ...]:
        """Parents are earlier steps of this run (``0..index-1``), checked as the step is recorded: a parent 5 on
        the first step was accepted and failed only when the trace was analyzed or loaded."""
        where = f"steps[{index}].parents"
        if isinstance(parents, str | bytes) or not isinstance(parents, Sequence):
            raise InputError(None, where, f"expected a list of earlier step indices, got {type(parents).__name__}")
        bad = [p for p in parents if not is_whole_number(p, 0, index - 1)]
        if bad:
            earlier = f"earlier steps: 0..{index - 1}" if index else "this is its first step"
            raise InputError(None, where, f"{bad[0]!r} is not an earlier step of this run ({earlier})")
        return tuple(int(p) for p in parents)

    def _check_token_ids(self, response: Sequence[int], index: int) -> list[int]:
        """Token ids are whole numbers inside the tokenizer's vocabulary (a negative one was an OverflowError)."""
        vocab = len(self.tokenizer) if hasattr(self.tokenizer, "__len__") else None
        ids = list(response)
        for i, t in enumerate(ids):
            if not is_whole_number(t, 0, None if vocab is None else vocab - 1):
                upto = f" in 0..{vocab - 1}" if vocab is not None else " >= 0"
                raise InputError(None, f"steps[{index}].response[{i}]", f"token ids must be whole numbers{upto}, "
                                                                        f"got {t!r}")
        return [int(t) for t in ids]

    def _capture(self, prompt_ids: list[int], resp_ids: list[int], spans: dict[str, tuple[int, int]]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """One teacher-forced replay: per-segment attention statistics (and extra hooks) at the answer positions."""
        import torch

        from attrib.heads import drift

        ids = list(prompt_ids) + list(resp_ids)
        n_prompt, t = len(prompt_ids), len(ids)
        q = np.arange(n_prompt - 1, t - 1)
        seg = drift.segment_ids(t, spans, n_prompt)
        x = torch.tensor([ids])
        tensors: dict[str, np.ndarray] = {}
        if self.full_patterns or self.hooks:
            self._capture_patterns(x, q, seg, tensors)
        else:
            self._capture_stats(x, q, seg, tensors)
        tensors["attrib.query_positions"] = q.astype(np.int32)
        layout = {
            "segments": list(drift.SEGMENTS), "spans": {k: list(v) for k, v in spans.items()},
            "n_prompt": n_prompt, "n_tokens": t, "layers": self.layers, "dtype": str(self.dtype),
        }
        return tensors, layout

    def _capture_stats(self, x: Any, q: np.ndarray, seg: np.ndarray, tensors: dict[str, np.ndarray]) -> None:
        """Segment masses and entropy from post-rotary q/k (``attrib.heads.long_context``): no [H, T, T] tensor
        is ever formed, so memory stays O(T) on long agent transcripts (the CUDA kernel on a GPU)."""
        from attrib.heads import drift
        from attrib.heads.long_context import layer_segment_stats

        model = self.model if self.is_bridge else (self.model, self.tokenizer)
        stats = layer_segment_stats(model, x[0], seg, query_positions=q, layers=self.layers,
                                    n_segments=len(drift.SEGMENTS))
        for la in self.layers:
            key = PATTERN.format(l=la)
            tensors[f"{key}:segment_mass"] = stats[la].mass[0].float().cpu().numpy().astype(self.dtype)
            tensors[f"{key}:entropy"] = stats[la].entropy[0].float().cpu().numpy().astype(self.dtype)

    def _capture_patterns(self, x: Any, q: np.ndarray, seg: np.ndarray, tensors: dict[str, np.ndarray]) -> None:
        """The same statistics from full attention patterns (kept when ``full_patterns`` or extra hooks are asked)."""
        import torch

        from attrib.heads import drift

        # pattern hooks asked for by name are saved in full, whatever ``layers`` and ``full_patterns`` say
        pattern_layers = (hook_layer(h) for h in self.hooks if h.endswith("attn.hook_pattern"))
        asked = {la for la in pattern_layers if la is not None}
        want = sorted(set(self.layers) | asked)
        names = {PATTERN.format(l=la) for la in want} | set(self.hooks)
        with torch.no_grad():
            if self.is_bridge:
                _, cache = self.model.run_with_cache(x, names_filter=lambda n: n in names)
                missing = sorted(n for n in names if n not in cache)
                if missing:
                    raise InputError(None, "hooks", f"the model produced no {', '.join(missing)} in its cache")
                pats = {la: cache[PATTERN.format(l=la)][0] for la in want}
                extra = {h: cache[h][0] for h in self.hooks if not h.endswith("attn.hook_pattern")}
            else:
                out = self.model(input_ids=x, output_attentions=True)
                if not out.attentions or any(a is None for a in out.attentions):
                    raise InputError(None, "model", "the model returned no attention weights (load it with attn_implementation='eager')")
                pats = {la: out.attentions[la][0] for la in want}
                extra = {}
        for la, p in pats.items():
            key = PATTERN.format(l=la)
            full = p.float().cpu().numpy()  # [H, T, T], off the device once
            if la in self.layers:
                rows = full[:, q, :]  # [H, Q, T]
                tensors[f"{key}:segment_mass"] = drift.segment_masses(rows, seg).astype(self.dtype)
                with np.errstate(divide="ignore", invalid="ignore"):
                    ent = -np.where(rows > 0, rows * np.log(np.maximum(rows, 1e-30)), 0.0).sum(-1)
                tensors[f"{key}:entropy"] = ent.astype(self.dtype)
            if (self.full_patterns and la in self.layers) or la in asked:
                tensors[key] = full.astype(self.dtype)
        for h, v in extra.items():
            a = v.float().cpu().numpy()
            tensors[h] = (a[q] if a.ndim >= 1 and a.shape[0] == len(x[0]) else a).astype(self.dtype)

    # -- output ---------------------------------------------------------------------------------------------
    def trace(
        self,
        *,
        task: str = "",
        outcome: str = "unknown",
        final_answer: str | None = None,
        label: Label | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Trace:
        """The recorded run as a :class:`~attrib.trace.Trace` (steps in order, activations referenced by absolute
        path, so it works in memory from any working directory; :meth:`save` writes a file that can move).
        ``outcome``: succeeded, failed or unknown (or a word :func:`attrib.trace.parse_outcome` reads, such as
        "success" or True), checked here: another one failed only when the trace was analyzed or loaded."""
        return Trace(
            id=self.trace_id, source_format="attrib", steps=tuple(self.steps), task=task,
            outcome=parse_outcome(outcome) or "unknown",
            final_answer=final_answer, label=label, metadata={"recorded_by": "attrib.record", **(metadata or {})},
        )

    def save(
        self,
        path: str | Path | None = None,
        *,
        task: str = "",
        outcome: str = "unknown",
        final_answer: str | None = None,
        label: Label | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Path:
        """Write :meth:`trace` as attrib JSON (default ``out_dir/<trace_id>.json``) with each activation path
        relative to the JSON's folder, as readers resolve them: the file and its activation folder can move or be
        copied together and still point at each other. Returns the path written."""
        from attrib.activations import relative_activations

        p = Path(path) if path is not None else self.out_dir / f"{self.trace_id}.json"
        trace = self.trace(task=task, outcome=outcome, final_answer=final_answer, label=label, metadata=metadata)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(relative_activations(trace, p.parent.absolute()).to_json())
        return p


class _StepContext:
    def __init__(self, rec: Recorder, agent: str, messages: list[dict[str, str]], rule: str | None,
                 conflict: str | None, parents: tuple[int, ...]) -> None:
        self.rec, self.agent, self.messages = rec, agent, messages
        self.rule, self.conflict, self.parents = rule, conflict, parents
        self.handle = StepHandle()

    def __enter__(self) -> StepHandle:
        return self.handle

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            return
        h = self.handle
        resp = h.response_ids if h.response_ids is not None else h.response
        if resp is None:
            raise InputError(None, f"steps[{len(self.rec.steps)}].response", "step closed without a response")
        h.step = self.rec.add_step(self.agent, self.messages, resp, rule=self.rule, conflict=self.conflict,
                                   parents=self.parents, metadata=h.metadata)


def load_segment_stats(step: Step) -> dict[str, np.ndarray]:
    """A recorded step's per-layer segment masses ``[L, H, Q, S]`` and entropies ``[L, H, Q]`` (float32).

    The step's file holds them under hook names, or under ``"<step>/<hook>"`` keys when one file holds several
    steps (the layout :mod:`attrib.activations` reads); a file with nothing for this step, or whose statistics
    differ in shape between layers (or from the file's own config), is an :class:`InputError` naming file and hook.
    """
    if step.activation is None:
        raise InputError(None, f"steps[{step.index}].activation", "this step has no recorded activations")
    layout = step.metadata.get("activation_layout") or {}
    layers = layout.get("layers")
    with open_activations(step.activation) as f:
        hooks = set(f.step_hooks(step.index))  # this step's keys, the "<step>/" prefix dropped
    if layers is None:
        layers = sorted({la for k in hooks if k.endswith(":segment_mass") and (la := hook_layer(k)) is not None})
    wanted = [f"{PATTERN.format(l=la)}:{stat}" for la in layers for stat in ("segment_mass", "entropy")]
    missing = [k for k in wanted if k not in hooks]
    if not layers or missing:  # checked up front: load_step would only say "no such activation"
        raise InputError(step.activation.path, missing[0] if missing else None,
                         "segment statistics missing from the activation file (is it a recorded step?)")
    # load_step checks names, the file's own config and shapes that agree across layers: a layer that disagrees
    # failed in np.stack ("all input arrays must have the same shape"), naming neither the file nor the hook
    arrays = load_step(step, tuple(wanted))

    def stack(stat: str) -> np.ndarray:
        return np.stack([np.asarray(arrays[f"{PATTERN.format(l=la)}:{stat}"], dtype=np.float32) for la in layers])

    mass, ent = stack("segment_mass"), stack("entropy")
    return {"segment_mass": mass, "entropy": ent, "layers": np.asarray(layers)}
