"""Inside the model: which attention heads let a conflicting instruction override the system rule.

``localize(model, probes) -> HeadLocalization`` scans every (layer, head) for attention drift between paired
non-conflict / conflict prompts, ranks heads by the combined score S(l, h), and checks causally (activation
patching vs random head sets) whether the focal heads carry the failure. Submodules: ``drift`` (pure math),
``patching``, ``attributions`` (captum), ``cras`` (role-adherence score). Heavy imports happen lazily.
"""

from __future__ import annotations

from attrib._lazy import lazy_exports

_LAZY = {
    "localize": "attrib.heads.localization",
    "HeadLocalization": "attrib.heads.localization",
    "PatchingResult": "attrib.heads.patching",
    "patching_check": "attrib.heads.patching",
    "focal_token_weights": "attrib.heads.weights",
    "cras_score": "attrib.heads.cras",
    "CRASScore": "attrib.heads.cras",
}


__getattr__, __all__, __dir__ = lazy_exports(__name__, _LAZY)
