"""The :class:`Probe` record and its rendering to token ids with exact span offsets.

A probe is one chat prompt: a system rule, optionally a conflicting instruction (from the user or from a peer
agent), and a question. Rendering uses the tokenizer's own chat template and maps the character spans of the
rule, the conflicting text and the question to token offsets through the fast tokenizer's offset mapping,
so drift and token weights index exactly the tokens the model sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from attrib.errors import InputError

Condition = Literal["plain", "user", "plain_peer", "peer"]
Split = Literal["train", "heldout"]

#: Conditions that carry a contrary instruction; their paired non-conflict condition.
CONFLICT_OF: dict[str, str] = {"user": "plain", "peer": "plain_peer"}

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class Rendered:
    """Token ids of a rendered probe and the half-open token spans ``name -> (start, end)``."""

    input_ids: list[int]
    spans: dict[str, tuple[int, int]]
    text: str

    @property
    def n_tokens(self) -> int:
        return len(self.input_ids)


@dataclass(frozen=True)
class Probe:
    """One instruction-conflict prompt with its programmatic checker and first-token metric.

    ``pair_id`` links a conflict probe to its non-conflict twin (same rule and question; the plain twin of a
    peer probe carries a neutral peer message so both prompts have the same structure).
    ``compliant_tokens``/``violating_tokens`` are strings whose first token scores the first answer token after
    ``answer_prefix``; an empty ``compliant_tokens`` means "anything but the violating tokens".
    """

    id: str
    family: str
    template: str
    split: Split
    condition: Condition
    pair_id: str
    intro: str
    rule: str
    question: str
    checker: str
    checker_args: dict[str, Any] = field(default_factory=dict)
    conflict: str | None = None
    peer_name: str = "Planner"
    answer_prefix: str = ""
    compliant_tokens: tuple[str, ...] = ()
    violating_tokens: tuple[str, ...] = ()

    @property
    def is_conflict(self) -> bool:
        return self.condition in CONFLICT_OF

    @property
    def system(self) -> str:
        return f"{self.intro} {self.rule}".strip()

    @property
    def has_logit_metric(self) -> bool:
        return bool(self.violating_tokens)

    def user_message(self) -> str:
        """The user turn: the conflicting text (if any) before the question; peers are quoted by name."""
        if self.conflict is None:
            return self.question
        if self.condition in ("peer", "plain_peer"):
            return f"[Message from agent {self.peer_name}]: {self.conflict}\n[User]: {self.question}"
        return f"{self.conflict} {self.question}"

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user_message()}]

    def check(self, response: str) -> bool:
        """True when ``response`` obeys the system rule (programmatic, no LLM)."""
        from attrib.probes.checkers import CHECKERS

        return CHECKERS[self.checker](response, **self.checker_args)

    def render(self, tokenizer: Any, *, with_prefix: bool = True) -> Rendered:
        """Chat-template the probe, tokenize once and locate rule/conflict/question spans in tokens."""
        return render_messages(
            tokenizer,
            self.messages(),
            marks={"system": self.system, "rule": self.rule, "conflict": self.conflict, "question": self.question},
            answer_prefix=self.answer_prefix if with_prefix else "",
            where=self.id,
        )


def chat_text(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """The prompt string from the tokenizer's chat template (ChatML when it has none)."""
    template = getattr(tokenizer, "chat_template", None) or CHATML
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True, chat_template=template
    )


def render_messages(
    tokenizer: Any,
    messages: list[dict[str, str]],
    *,
    marks: dict[str, str | None],
    answer_prefix: str = "",
    where: str = "prompt",
) -> Rendered:
    """Render chat ``messages`` and find each marked substring's token span (searched in order, left to right).

    ``marks['system']`` (or ``marks['rule']``) must be present: drift is measured against the system rule,
    so a prompt without one is rejected with an :class:`InputError`.
    """
    if not (marks.get("rule") or marks.get("system")):
        raise InputError(where, "system", "prompt has no system rule span; drift needs one")
    text = chat_text(tokenizer, messages) + answer_prefix
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), list(enc["offset_mapping"])
    spans: dict[str, tuple[int, int]] = {"sink": (0, 1)}
    cursor = 0
    for name in ("system", "rule", "conflict", "question"):
        sub = marks.get(name)
        if not sub:
            continue
        system = marks.get("system")
        start_from = text.find(system) if name == "rule" and system else cursor
        c0 = text.find(sub, max(start_from, 0))
        if c0 < 0:
            raise InputError(where, name, f"text {sub[:40]!r} not found in the rendered prompt")
        spans[name] = _char_to_token_span(offsets, c0, c0 + len(sub), where, name)
        if name != "system":
            cursor = c0 + len(sub)
    if answer_prefix:
        spans["prefix"] = _char_to_token_span(offsets, len(text) - len(answer_prefix), len(text), where,
                                              "answer_prefix")
    return Rendered(input_ids=ids, spans=spans, text=text)


def _char_to_token_span(offsets: list[tuple[int, int]], c0: int, c1: int, where: str = "prompt",
                        field: str | None = None) -> tuple[int, int]:
    """Half-open token span of the tokens overlapping characters [c0, c1); an :class:`InputError` naming the prompt
    (``where``) and the marked text (``field``) when no token does (a tokenizer whose offsets skip them)."""
    toks = [i for i, (a, b) in enumerate(offsets) if b > c0 and a < c1 and b > a]
    if not toks:
        raise InputError(where, field, f"no token covers characters {c0}:{c1} of the rendered prompt (the "
                         "tokenizer's offsets skip them, as whitespace it drops): mark text it keeps")
    return toks[0], toks[-1] + 1
