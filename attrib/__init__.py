"""attrib: failure attribution for LLM multi-agent systems.

Which agent made a multi-agent run fail, at which step, and why::

    import attrib

    trace = attrib.load_trace("my_run.json")  # Who&When, OTLP, chat logs, attrib JSON (a checkout: traces/)
    verdict = attrib.analyze(trace)                         # an Attribution
    verdict.agent, verdict.step, verdict.confidence
    print(verdict.to_markdown(trace))                       # also .to_rich(trace), .to_json(), .to_otlp(trace), .plot()

The main names:

* reading: :func:`load_trace` (one run), :func:`read_path` / :func:`read_paths` (files, folders, globs);
* the trace model: :class:`Trace`, :class:`Step`, :class:`ToolCall`, :class:`ToolResult`, :class:`Label`, to build a
  run by hand (:func:`analyze` checks it first and names the broken field);
* attribution: :func:`analyze` (one trace, any method of ``attrib.methods.METHODS``) returning an
  :class:`Attribution` (with :class:`AgentBlame` / :class:`StepBlame` rows); :class:`LearnedRanker`, the default
  method's estimator, to fit on your own labelled runs (``analyze(trace, model=ranker)``);
* the store and batches: :func:`ingest`, :func:`open_store`, :func:`analyze_many`;
* errors: :class:`AttribError`, and :class:`InputError` for unreadable input (it names the file and field).

Inside the model and repair live in their own packages (they import torch and transformers when used):

* :mod:`attrib.models` (``load_model("smollm2-135m")``, offline), :mod:`attrib.record` (``Recorder``: per-step
  activations named by TransformerLens hook path), :mod:`attrib.heads` (``localize``: the attention heads behind an
  instruction-conflict failure; drift, patching, captum attributions), :mod:`attrib.kernels`
  (``segment_attention_stats``: per-head attention mass and entropy per segment, CUDA or an exact CPU path);
* :mod:`attrib.surgery` (``train_sail``, ``sail_loss``, ``focal_lora_config``: SAIL LoRA on the localized layers,
  callable from your own training loop).

The names are re-exported lazily, so ``import attrib`` stays light (no numpy, torch or dask until first use).
"""

from typing import TYPE_CHECKING

from attrib._lazy import lazy_exports

if TYPE_CHECKING:  # the lazy names, typed for mypy and IDEs (``X as X``: an explicit re-export under --strict)
    from attrib.engine import analyze_many as analyze_many
    from attrib.errors import AttribError as AttribError
    from attrib.errors import InputError as InputError
    from attrib.methods import analyze as analyze
    from attrib.methods.ranker import LearnedRanker as LearnedRanker
    from attrib.readers import load_trace as load_trace
    from attrib.readers import read_path as read_path
    from attrib.readers import read_paths as read_paths
    from attrib.store import open_store as open_store
    from attrib.store.api import ingest as ingest
    from attrib.trace import AgentBlame as AgentBlame
    from attrib.trace import Attribution as Attribution
    from attrib.trace import Label as Label
    from attrib.trace import Step as Step
    from attrib.trace import StepBlame as StepBlame
    from attrib.trace import ToolCall as ToolCall
    from attrib.trace import ToolResult as ToolResult
    from attrib.trace import Trace as Trace

__version__ = "0.1.0"

_LAZY = {
    "Trace": "attrib.trace",
    "Step": "attrib.trace",
    "ToolCall": "attrib.trace",
    "ToolResult": "attrib.trace",
    "Label": "attrib.trace",
    "Attribution": "attrib.trace",
    "AgentBlame": "attrib.trace",
    "StepBlame": "attrib.trace",
    "read_path": "attrib.readers",
    "read_paths": "attrib.readers",
    "load_trace": "attrib.readers",
    "ingest": "attrib.store.api",
    "open_store": "attrib.store",
    "analyze": "attrib.methods",
    "analyze_many": "attrib.engine",
    "LearnedRanker": "attrib.methods.ranker",
    "AttribError": "attrib.errors",
    "InputError": "attrib.errors",
}


__getattr__, __all__, __dir__ = lazy_exports(__name__, _LAZY)
