"""Helpers every JSON reader shares: encoding checks, JSON decoding with one-line errors, small coercions.

Decoders (orjson, msgspec) report byte offsets; users need line:column and a hint about what was
expected, so errors are translated here once instead of in each reader.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import orjson

from attrib.errors import InputError
from attrib.trace import validation_field

_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32-LE"),
    (b"\x00\x00\xfe\xff", "UTF-32-BE"),
    (b"\xff\xfe", "UTF-16-LE"),
    (b"\xfe\xff", "UTF-16-BE"),
)
_BYTE = re.compile(r"\(byte (\d+)\)|char (\d+)")


def check_encoding(data: bytes, path: Path) -> bytes:
    """Refuse UTF-16/32 input with a clear line; strip a UTF-8 byte-order mark."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            raise InputError(path, "encoding", f"file is {name} (byte-order mark); expected UTF-8 JSON "
                             f"(convert with: iconv -f {name} -t UTF-8)")
    head = data[:64]
    if len(head) >= 4 and head.count(b"\x00") >= len(head) // 4:
        raise InputError(path, "encoding", "file looks UTF-16/32 (NUL bytes between characters); expected UTF-8 JSON")
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:]
    return data


def line_col(data: bytes, pos: int) -> tuple[int, int]:
    """1-based line and column of byte offset ``pos``."""
    pos = max(0, min(pos, len(data)))
    line = data.count(b"\n", 0, pos) + 1
    col = pos - (data.rfind(b"\n", 0, pos) + 1) + 1
    return line, col


def _bad_utf8_at(data: bytes) -> int | None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start
    return None


#: What a value cut off at the end of the bytes decoded means: the file's end, or (JSON Lines) a line's
_CUT = {"file": "file ends in the middle of a JSON value (truncated?)",
        "line": "line ends in the middle of a JSON value (a truncated line, or one value spread over several lines?)"}


def decode_error(e: Exception, data: bytes, path: Path, line_offset: int = 0, unit: str = "file") -> InputError:
    """Turn an orjson/msgspec decode error into an :class:`InputError` with line:column. ``unit``: what ``data``
    is, ``file`` or (one line of JSON Lines, not the file's last) ``line``, for a value that ``data`` cuts off."""
    msg = str(e)
    cut = _CUT[unit]
    bad = _bad_utf8_at(data) if ("utf-8" in msg.lower() or "utf8" in msg.lower() or "malformed" in msg) else None
    if bad is not None:
        line, col = line_col(data, bad)
        return InputError(path, f"line {line + line_offset} col {col}",
                          f"byte 0x{data[bad]:02x} is not valid UTF-8 (latin-1/cp1252 file?); expected UTF-8 JSON")
    if "truncated" in msg.lower() or ("unexpected end" in msg.lower()):
        line, col = line_col(data, len(data))
        return InputError(path, f"line {line + line_offset} col {col}", cut)
    pos = getattr(e, "pos", None)
    if pos is None:
        m = _BYTE.search(msg)
        if m:
            pos = int(m.group(1) or m.group(2))
    if isinstance(e, msgspec.ValidationError):
        return InputError(path, *validation_field(msg))
    if pos is not None:
        line, col = line_col(data, pos)
        if pos >= len(data.rstrip()):
            return InputError(path, f"line {line + line_offset} col {col}", cut)
        return InputError(path, f"line {line + line_offset} col {col}", f"malformed JSON ({msg.split(':')[0]})")
    return InputError(path, None, f"malformed JSON ({msg})")


def loads(data: bytes, path: Path, line_offset: int = 0) -> Any:
    """``orjson.loads`` with errors as :class:`InputError` (file, line:col, what went wrong)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise decode_error(e, data, path, line_offset) from None


def iter_jsonl(data: bytes, path: Path) -> list[tuple[int, Any]]:
    """Decode JSON Lines: ``[(line_number, value)]`` for every non-blank line."""
    out = []
    lines = data.split(b"\n")
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            out.append((n, orjson.loads(line)))
        except orjson.JSONDecodeError as e:
            err = decode_error(e, line, path, line_offset=n - 1, unit=jsonl_unit(lines, n))
            raise InputError(path, err.field or f"line {n}", err.message) from None
    return out


def jsonl_unit(lines: list[bytes], n: int) -> str:
    """``line`` when a later line of JSON Lines holds more (a value cut off at line ``n``, 1-based, is that line's
    end, not the file's), else ``file``."""
    return "line" if any(ln.strip() for ln in lines[n:]) else "file"


def looks_jsonl(data: bytes) -> bool:
    """A first line that is a whole JSON object with more after it: JSON Lines rather than one document (whatever a
    later line holds, an array or a number too, so the error names that line as no object; one document would have
    ended at the first line's close)."""
    first_nl = data.find(b"\n", 0, 1 << 20)
    if first_nl < 0:
        return False
    first = data[:first_nl].strip()
    return first.startswith(b"{") and first.endswith(b"}") and bool(data[first_nl:].strip())


_IMAGE_PARTS = frozenset({"image", "image_url", "input_image", "image_file"})


def part_text(part: Any) -> str | None:
    """One content part as text: a string; a text part (``text``: OpenAI, Anthropic, LangChain; ``content``);
    Anthropic ``thinking``; a refusal; an image part as ``<image>`` (its bytes are no text). None for any other
    part (a ``tool_use`` block, a file)."""
    if isinstance(part, str):
        return part
    if not isinstance(part, dict):
        return None
    for key in ("text", "content", "thinking", "refusal"):
        x = part.get(key)
        if isinstance(x, str):
            return x
    if part.get("type") in _IMAGE_PARTS or "image_url" in part:
        return "<image>"
    if isinstance(part.get("content"), list):  # Anthropic tool_result: {"type": "tool_result", "content": [parts]}
        inner = [part_text(x) for x in part["content"]]
        if any(t is not None for t in inner):
            return as_text(part["content"])
    return None


def as_text(value: Any) -> str:
    """Message content as text: strings as-is; a list of content parts (strings, OpenAI / Anthropic / LangChain
    blocks) joined line by line, a part with no text (a ``tool_use`` block) as compact JSON so nothing is lost;
    anything else (no text part at all) as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value:
        texts = [part_text(p) for p in value]
        if any(t is not None for t in texts):
            return "\n".join(t if t is not None else as_text(p) for t, p in zip(texts, value, strict=True))
    return json_text(value)


def json_text(value: Any) -> str:
    """``value`` as compact JSON text. An integer past 64 bits (which JSON files may hold and the standard library
    reads, but orjson does not write) goes through the standard library; anything JSON cannot hold, as ``str``."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        import json

        try:
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError):
            return str(value)


#: A JSON value's kind, as an error names it ("expected a JSON object, got a list").
_JSON_KIND = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean",
              type(None): "null"}


def json_kind(value: Any) -> str:
    """``value``'s JSON kind in words, for an error message."""
    return _JSON_KIND.get(type(value), type(value).__name__)


def json_of(value: Any, kind: type[dict] | type[list]) -> Any:
    """``value`` as a JSON object (``kind`` dict) or array (list): itself, or a string of one decoded (attributes
    that carry messages as JSON text); None for anything else, or text that decodes to another kind."""
    if isinstance(value, kind):
        return value
    if isinstance(value, str) and value[:1] == ("{" if kind is dict else "["):
        try:
            got = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
        return got if isinstance(got, kind) else None
    return None


def as_int(value: Any, floats: bool = True) -> int | None:
    """An int from an int, a numeric string (surrounding spaces allowed) or, with ``floats``, a whole float (OTLP's
    ``doubleValue`` 3.0); None otherwise (2.7 is no step index or token count: it used to be cut to 2)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if floats and isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def as_time(value: Any) -> float | None:
    """Seconds since the epoch from a number (s, ms or ns, guessed by magnitude) or an ISO-8601 string."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        v = float(value)
        if v != v:
            return None
        if v > 1e17:
            return v / 1e9
        if v > 1e14:
            return v / 1e6
        if v > 1e11:
            return v / 1e3
        return v
    if isinstance(value, str) and value:
        try:
            return as_time(float(value))
        except ValueError:
            pass
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


#: The latest time a step may have (the year 3000, in nanoseconds since 1970): a later one is no time (a value in
#: the wrong unit, a corrupt field), and would sort its step after every other
MAX_NANOS = 32_503_680_000 * 10**9


def checked_time(value: Any, path: Path, field: str) -> float | None:
    """:func:`as_time` of a trace's time field, None where it reads as no time; one before 1970 or after the year
    3000 is an :class:`InputError` at ``field`` (chat and flat-span readers share this range with OTLP)."""
    t = as_time(value)
    if t is not None and not 0 <= t <= MAX_NANOS / 1e9:
        raise InputError(path, field, f"{value!r:.40} is not a time: {'before 1970' if t < 0 else 'after the year 3000'}")
    return t


def activation_path(p: str, base: Path, source: Path | None = None, field: str = "activation.path") -> str:
    """Where a relative activation path in a trace file points: beside that file (``base``, its folder).

    Files written relative to the working directory instead (as attrib's recorder first wrote them) still work
    when that path exists and the one beside the file does not. Absolute paths are kept. A path that is no UTF-8
    text (the folder's name has other bytes) cannot be stored: an :class:`InputError` naming ``source`` (the trace
    file) and ``field``.
    """
    import os

    q = Path(p)
    if q.is_absolute():
        return p
    beside = base / q
    # absolute, so a store filled from one working directory still finds the files from another
    out = os.path.abspath(p if not beside.exists() and q.exists() else beside)
    if not out.isascii():
        try:
            out.encode("utf-8")
        except UnicodeEncodeError:
            raise InputError(source or base, field, f"{utf8_text(out)} is not UTF-8 text (the folder's name has other "
                             "bytes), so it cannot be stored: rename the folder, or give an absolute path") from None
    return out


def utf8_text(name: str) -> str:
    """A file name (or path) as valid UTF-8 text: bytes that are not UTF-8 (``os.fsdecode`` keeps them as lone
    surrogates, which no encoder writes) shown as ``\\xe9``, so two such names stay apart."""
    if name.isascii():
        return name
    import os

    return os.fsencode(name).decode("utf-8", "backslashreplace")


def file_stem(path: Path) -> str:
    """The stem of ``path`` as the readers put it in a trace id (:func:`utf8_text`): the one place an id is made
    from a file name, so every id can be stored and written as JSON whatever bytes the name has."""
    return utf8_text(path.stem)


def ref_format(declared: Any, path: str) -> str:
    """An activation reference's format, as :func:`attrib.activations.activation_format` reads it (the one the log
    declares, else the one its file's suffix implies; ``pth`` -> pt either way); a format it does not know is kept
    as written, so opening the file names it, and no suffix means safetensors."""
    from attrib.activations import activation_format

    try:
        return activation_format(path, str(declared) if declared else None)
    except InputError:
        return str(declared) if declared else Path(path).suffix.lstrip(".") or "safetensors"
