"""Instruction-conflict probes: paired prompts (system rule vs contrary user / peer-agent instruction),
programmatic compliance checkers, a train/held-out split by template, and a first-answer-token metric.

>>> from attrib.probes import conflict_suite, pairs
>>> probes = conflict_suite(["secret"])
>>> plain, conflict = pairs(probes)[0]
"""

from __future__ import annotations

from attrib.probes.checkers import CHECKERS
from attrib.probes.suite import FAMILIES, FOCUS_FAMILIES, conflict_suite, pairs
from attrib.probes.types import Probe, Rendered, render_messages

__all__ = [
    "CHECKERS",
    "FAMILIES",
    "FOCUS_FAMILIES",
    "Probe",
    "Rendered",
    "conflict_suite",
    "pairs",
    "render_messages",
]
