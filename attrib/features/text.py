"""Cheap text primitives shared by the step features and the information-flow graph.

Pure functions over strings: salient-token extraction (numbers, URLs, code identifiers, rare
words), answer extraction, agent-kind detection. Regexes are compiled once; everything here is
linear in the text length so a 130-step trace is featurised in milliseconds.
"""

from __future__ import annotations

import re
from decimal import Decimal
from functools import lru_cache

# the test of a tool step lives in the numpy-free trace model (the label check uses it too); re-exported here
from attrib.trace import is_human_agent as is_human_agent
from attrib.trace import is_tool_agent as is_tool_agent

_NUM = re.compile(r"(?<![\w.])[-+]?\d[\d,]*(?:\.\d+)?(?![\w])")
#: a number followed by a magnitude word ("12 million"), so it matches the same value written out ("12,000,000")
#: or an amount of money with a suffix ("$3.08M", "€2bn")
_SCALED = re.compile(r"(?<![\w.])(\d[\d,]*(?:\.\d+)?)\s*(thousand|million|billion|trillion|bn)\b"
                     r"|(?<=[$€£¥])(\d[\d,]*(?:\.\d+)?)([kmb]|bn|mn)\b", re.IGNORECASE)
_SCALE = {"thousand": 3, "k": 3, "million": 6, "m": 6, "mn": 6, "billion": 9, "b": 9, "bn": 9, "trillion": 12}
_URL = re.compile(r"https?://[^\s)\]>'\"`]+")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_'-]{2,}")
_IDENT = re.compile(r"\b[a-z]+_[a-z0-9_]+\b|\b[a-z]+[A-Z][A-Za-z0-9]+\b")
_FINAL = re.compile(r"final answer\s*[:\-]\s*(.+)", re.IGNORECASE)

STOPWORDS = frozenset(
    ["the", "and", "for", "that", "this", "with", "from", "have", "has", "are", "was", "were", "will", "would", "should", "could", "can", "not", "but", "you", "your", "our", "their", "they", "them", "then", "than", "there", "here", "what", "which", "who", "whom", "when", "where", "why", "how", "into", "onto", "over", "under", "about", "above", "below", "after", "before", "again", "also", "only", "just", "more", "most", "some", "such", "very", "each", "other", "any", "all", "both", "few", "many", "much", "own", "same", "too", "its", "it's", "let's", "lets", "let", "now", "use", "used", "using", "based", "please", "task", "answer", "step", "steps", "provide", "provided", "need", "needs", "make", "made", "sure", "following", "follow", "given", "check", "result", "results", "data", "information", "expert", "experts", "manager", "plan", "code", "output", "find", "found", "get", "got", "one", "two", "three", "first", "second", "next", "last", "new", "may", "might", "must", "shall", "being", "been", "does", "did", "doing", "done", "able", "within", "without", "through"]
)


def normalize_number(s: str) -> str:
    """'1,234.50' -> '1234.5'; '+7' -> '7' (so the same value matches however it was written)."""
    s = s.replace(",", "").lstrip("+")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s or "0"


@lru_cache(maxsize=4096)
def numbers(text: str) -> frozenset[str]:
    """Salient numbers in ``text``: two or more digits, or any decimal (single digits are too common); a number
    with a magnitude word also counts as its value ("2.1 million" adds "2100000")."""
    out = set()
    for m in _NUM.finditer(text):
        n = normalize_number(m.group())
        digits = n.lstrip("-").replace(".", "")
        if len(digits) >= 2 or "." in n:
            out.add(n)
    for m in _SCALED.finditer(text):
        digits, scale = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        value = Decimal(digits.replace(",", "")).scaleb(_SCALE[scale.lower()])
        out.add(normalize_number(f"{value:f}"))
    return frozenset(out)


@lru_cache(maxsize=4096)
def words(text: str) -> frozenset[str]:
    """Lower-cased content words (no stopwords, >= 3 letters)."""
    return frozenset(w for w in (m.group().lower() for m in _WORD.finditer(text)) if w not in STOPWORDS)


@lru_cache(maxsize=4096)
def salient_tokens(text: str) -> frozenset[str]:
    """Tokens whose reuse signals that one step consumed another's output: numbers, URLs, identifiers."""
    toks = {"#" + n for n in numbers(text)}
    toks.update("u:" + u.rstrip(".,;").lower() for u in _URL.findall(text))
    toks.update("i:" + m.group() for m in _IDENT.finditer(text))
    return frozenset(toks)


def urls(text: str) -> list[str]:
    return _URL.findall(text)


def final_answer_text(contents: list[str], skip: list[bool]) -> tuple[int | None, str]:
    """The run's final answer: an explicit 'FINAL ANSWER:' line, else the last substantive decision step.

    Returns (step index or None, answer text). ``skip`` marks steps that cannot hold the answer
    (tool output); a bare 'TERMINATE' is not an answer.
    """
    for i in range(len(contents) - 1, -1, -1):
        m = _FINAL.search(contents[i])
        if m:
            return i, m.group(1).strip().splitlines()[0] if m.group(1).strip() else ""
    for i in range(len(contents) - 1, -1, -1):
        if skip[i]:
            continue
        c = contents[i].replace("TERMINATE", "").strip()
        if len(c) >= 3:
            return i, c
    return None, ""


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def contains_normalized(haystack: str, needle: str) -> bool:
    """Case/space/comma-insensitive substring test (for ground-truth strings)."""
    n = _squash(needle)
    return bool(n) and n in _squash(haystack)


@lru_cache(maxsize=8192)
def _squash(s: str) -> str:
    return re.sub(r"[\s,$*`\"']+", "", s.lower())
