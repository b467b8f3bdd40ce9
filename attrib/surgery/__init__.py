"""SAIL surgical repair: LoRA on the focal layers only, trained with a token-weighted DPO loss.

>>> from attrib.surgery import sail_loss, focal_lora_config, train_sail   # doctest: +SKIP

For a custom loop, the token weights come from ``rule_token_span`` (the system rule's tokens), a forward pass under
``eager_attention`` with ``output_attentions=True``, and ``focal_rule_weights``; ``rank_layers_by_repair`` is the
default layer choice and ``heldout_probes`` the evaluation prompts.

Everything is re-exported lazily so ``import attrib.surgery`` does not import torch or peft.
"""

from __future__ import annotations

from attrib._lazy import lazy_exports

_LAZY = {
    "sail_loss": "attrib.surgery.loss",
    "dpo_loss": "attrib.surgery.loss",
    "token_logps": "attrib.surgery.loss",
    "response_logps": "attrib.surgery.loss",
    "encode_prompt_response": "attrib.surgery.loss",
    "collate": "attrib.surgery.loss",
    "focal_lora_config": "attrib.surgery.lora",
    "trainable_share": "attrib.surgery.lora",
    "parse_layers": "attrib.surgery.lora",
    "PreferencePair": "attrib.surgery.pairs",
    "build_pairs": "attrib.surgery.pairs",
    "read_pairs": "attrib.surgery.pairs",
    "write_pairs": "attrib.surgery.pairs",
    "split_pairs": "attrib.surgery.pairs",
    "train_sail": "attrib.surgery.train",
    "load_adapter": "attrib.surgery.train",
    "TrainResult": "attrib.surgery.train",
    "uniform_weights": "attrib.surgery.train",
    "attention_weights": "attrib.surgery.train",
    "focal_rule_weights": "attrib.surgery.weights",
    "rule_token_span": "attrib.surgery.weights",
    "eager_attention": "attrib.surgery.weights",
    "heads_for_layers": "attrib.surgery.weights",
    "compliance": "attrib.surgery.evaluate",
    "perplexity": "attrib.surgery.evaluate",
    "wilson": "attrib.surgery.evaluate",
    "suite_pairs": "attrib.surgery.api",
    "resolve_layers": "attrib.surgery.api",
    "LayerChoice": "attrib.surgery.api",
    "heldout_probes": "attrib.surgery.api",
    "rank_layers": "attrib.surgery.layers",
    "rank_layers_by_repair": "attrib.surgery.layers",
}


__getattr__, __all__, __dir__ = lazy_exports(__name__, _LAZY)
