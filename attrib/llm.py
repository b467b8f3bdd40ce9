"""The one OpenAI-compatible chat client of attrib: config, retries with backoff, tolerant JSON answers.

Works against any server that speaks ``POST {base_url}/chat/completions`` (OpenAI, vLLM, llama.cpp's
``llama-server`` and llama-cpp-python's server, Ollama's /v1, LM Studio ...). The API key is never
stored in the config: the config names the environment variable that holds it.

Why hand-written rather than the ``openai`` SDK: one dependency less (httpx is already required), and
the behaviour the judges need is small and must be exact: retry on 429/5xx/connection errors only
(a timed-out request only once: a slow server stays slow), honour ``Retry-After``, fall back when a
server rejects ``response_format``, and turn every failure into one clear :class:`LLMError` line
whose exit code says what happened: 4 when there is no usable endpoint (unreachable, timed out, key
refused, unknown model), 5 when it answered nothing usable (no verdict), 2 for a bad setting. A line that names
a setting to change holds it as a :class:`Hint`, not as text: :func:`hint_text` spells it for the interface that
shows the error (a ``--llm-*`` flag on the command line, an environment variable in ``attrib app``), and
``str(error)`` is the command line's spelling.
:func:`parse_json_answer` is hand-written too (instead of e.g. json-repair) because the repairs a
judge needs are few: code fences, prose around the object, single quotes / Python literals, trailing
commas.

httpx is imported inside :class:`LLMClient` so that ``import attrib.llm`` (done by the CLI at start)
stays cheap.
"""

from __future__ import annotations

import ast
import json
import os
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from attrib.errors import (
    EXIT_NO_VERDICT,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    AttribError,
    NotFoundError,
    NoVerdictError,
    is_real,
    is_whole_number,
)

DEFAULT_API_KEY_ENV = "ATTRIB_LLM_API_KEY"
OPENAI_BASE_URL = "https://api.openai.com/v1"

JsonMode = Literal["auto", "schema", "object", "off"]

MAX_TIMEOUT_S = 86_400.0  # a day: beyond, sockets overflow (1e12 s) and nobody waits that long anyway
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ENDPOINT_SUFFIX = re.compile(r"/chat/completions$")
_VERSIONED = re.compile(r"/v\d+(?:beta\d*|alpha\d*)?(?:/|$)")  # /v1, /v1beta/openai (Gemini), /api/v1 ...


# ---------------------------------------------------------------------------------------------
# Hints: the setting an error line tells to change, spelled for the interface that shows the line
# ---------------------------------------------------------------------------------------------

#: ``base_url``, ``model``, ``api_key_env``: a setting with a flag and an environment variable; ``context_chars``:
#: the judges' transcript budget, a flag only; ``endpoint``: where the endpoint is set at all (none was).
Setting = Literal["base_url", "model", "api_key_env", "context_chars", "endpoint"]
#: ``cli``: the ``--llm-*`` flags (what ``str(error)`` says; library callers read it too); ``app``: ``attrib
#: app``, which has no flags and reads the environment variables of :meth:`LLMConfig.from_env` when it starts;
#: ``env``: a command without ``--llm-*`` flags (``attrib eval who-and-when``), which reads the same variables and
#: ``ATTRIB_LLM_CONTEXT_CHARS``.
Interface = Literal["cli", "app", "env"]

#: Each setting's command-line flag.
LLM_FLAGS: dict[str, str] = {"base_url": "--llm-base-url", "model": "--llm-model",
                             "api_key_env": "--llm-api-key-env", "context_chars": "--llm-context-chars"}
#: The environment variable :meth:`LLMConfig.from_env` reads for a setting (``context_chars``: see
#: :data:`CONTEXT_CHARS_ENV`).
LLM_ENV: dict[str, str] = {"base_url": "ATTRIB_LLM_BASE_URL", "model": "ATTRIB_LLM_MODEL",
                           "api_key_env": "ATTRIB_LLM_API_KEY_ENV"}
#: The judges' transcript budget when no ``context_chars`` is passed (the flag wins; default 48,000).
CONTEXT_CHARS_ENV = "ATTRIB_LLM_CONTEXT_CHARS"
EXAMPLE_BASE_URL = "http://127.0.0.1:8080/v1"
_APP_READS_ENV = " (`attrib app` reads these environment variables when it starts)"


@dataclass(frozen=True)
class Hint:
    """A setting named inside an error line. ``value``: the value to give or an example of one (``""``: none);
    ``give``: the line tells to give it ("pass --llm-model X" / "set ATTRIB_LLM_MODEL=X") rather than only naming
    it ("--llm-model" / "ATTRIB_LLM_MODEL"; with a value "--llm-base-url URL" / "ATTRIB_LLM_BASE_URL=URL")."""

    setting: Setting
    value: str = ""
    give: bool = False


def hint_text(hint: Hint, interface: Interface = "cli") -> str:
    """``hint`` as the ``interface`` spells it: the one place an LLM setting's flag or variable is written in an
    error line."""
    if hint.setting == "endpoint":
        if interface != "cli":
            return (f"set {LLM_ENV['base_url']} (e.g. {EXAMPLE_BASE_URL}), {LLM_ENV['model']} and the key in "
                    f"{DEFAULT_API_KEY_ENV} (or name its variable in {LLM_ENV['api_key_env']})" +
                    (f" before starting the app, e.g. `{LLM_ENV['base_url']}={EXAMPLE_BASE_URL} attrib app`"
                     if interface == "app" else ""))
        return f"pass {LLM_FLAGS['base_url']} (e.g. {EXAMPLE_BASE_URL}) or set {LLM_ENV['base_url']}"
    flag, value = LLM_FLAGS[hint.setting], hint.value
    if hint.setting == "context_chars":  # a flag of `attrib analyze`, else the variable
        if interface == "app":
            return f"`attrib analyze --method M {flag} {value}` (the app uses the default budget)"
        if interface == "env":
            return f"set {CONTEXT_CHARS_ENV}={value}"
        return f"{flag} {value} (library: context_chars={value})"
    if interface != "cli":
        return ("set " if hint.give else "") + LLM_ENV[hint.setting] + (f"={value}" if value else "")
    return ("pass " if hint.give else "") + flag + (f" {value}" if value else "")


def message_text(parts: Sequence[str | Hint], interface: Interface = "cli") -> str:
    """An error line made of text and :class:`Hint` parts, for ``interface``; in the app a line that names an
    environment variable says when the app reads it."""
    text = "".join(p if isinstance(p, str) else hint_text(p, interface) for p in parts)
    if interface == "app" and any(isinstance(p, Hint) and p.setting in LLM_ENV for p in parts):
        text += _APP_READS_ENV
    return text


class LLMError(AttribError):
    """The endpoint failed. Every failure is one of the subclasses below, each with its exit code; none is exit
    code 1, which the CLI keeps for an output file that could not be written.

    Built from text and :class:`Hint` parts (``LLMError("refused: ", Hint("model"), " is unknown")``);
    ``str(error)`` is the command line's line, :meth:`line` the line for another interface."""

    exit_code = EXIT_NO_VERDICT

    def __init__(self, *parts: str | Hint) -> None:
        self.parts: tuple[str | Hint, ...] = parts
        super().__init__(message_text(parts))

    def __reduce__(self) -> tuple[Any, ...]:
        # rebuilt from its parts (Exception pickles ``args``, the CLI's line): errors cross process boundaries
        return (type(self), self.parts, self.__dict__)

    def line(self, interface: Interface = "cli") -> str:
        """The error's one line with its hints spelled for ``interface``."""
        return message_text(self.parts, interface)


class LLMConfigError(LLMError):
    """No endpoint configured, or a malformed setting: a usage error (exit code 2)."""

    exit_code = EXIT_USAGE


class LLMUnavailableError(LLMError, NotFoundError):
    """No usable endpoint there: it could not be reached (wrong URL, server not running, DNS) or did not answer in
    time (exit code 4)."""

    exit_code = EXIT_NOT_FOUND


class LLMTimeoutError(LLMUnavailableError):
    """The endpoint took longer than ``timeout_s`` (``ATTRIB_LLM_TIMEOUT_S``) to answer, twice (exit code 4)."""


class LLMAuthError(LLMError, NotFoundError):
    """The endpoint refused the API key (HTTP 401/403): exit code 4, as for an endpoint that is not there."""

    exit_code = EXIT_NOT_FOUND


class LLMModelNotFoundError(LLMError, NotFoundError):
    """The endpoint does not serve the asked model (HTTP 404, a name its ``/models`` list lacks, or an empty
    list): exit code 4."""

    exit_code = EXIT_NOT_FOUND


class LLMBadResponseError(LLMError, NoVerdictError):
    """The endpoint answered, but nothing usable: HTTP 5xx/429 after every retry, another refusal, a body that is
    not JSON, no choices (exit code 5, no verdict)."""

    exit_code = EXIT_NO_VERDICT


class LLMContextError(LLMError, NoVerdictError):
    """The prompt is longer than the model's context: no verdict until the transcript is cut shorter."""

    exit_code = EXIT_NO_VERDICT


class AnswerParseError(ValueError):
    """A model answer that holds no JSON object we could read (the judges retry on it)."""


@dataclass(frozen=True)
class LLMConfig:
    """Where and how to call an OpenAI-compatible chat endpoint.

    ``base_url`` ends before ``/chat/completions`` (e.g. ``http://127.0.0.1:8080/v1``). ``model`` may be
    empty: the first id listed by ``GET {base_url}/models`` is used (handy for local single-model
    servers). ``api_key_env`` names the environment variable holding the key; an unset variable
    means no ``Authorization`` header (local servers need none). ``json_mode`` picks how a JSON
    answer is requested: ``auto`` tries a JSON schema, then a plain JSON object, then nothing,
    remembering what the server accepted; ``schema``/``object``/``off`` force one.
    """

    base_url: str
    model: str = ""
    api_key_env: str = DEFAULT_API_KEY_ENV
    timeout_s: float = 180.0  # a long prompt on a busy CPU server can take minutes; a timeout is retried once only
    max_retries: int = 3
    temperature: float = 0.0
    max_tokens: int = 256
    backoff_s: float = 0.5
    json_mode: JsonMode = "auto"
    extra_headers: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.base_url or not re.match(r"^https?://", self.base_url):
            raise LLMConfigError(f"LLM base URL {self.base_url!r} is not an http(s) URL (e.g. ",
                                 Hint("base_url", EXAMPLE_BASE_URL), ")")
        # the endpoint's own URL pasted whole (".../v1/chat/completions"): the base is what comes before it
        base = _ENDPOINT_SUFFIX.sub("", self.base_url.rstrip("/")).rstrip("/")
        object.__setattr__(self, "base_url", base)
        if not _ENV_NAME.fullmatch(self.api_key_env or ""):
            # most likely the key itself was passed: never echo it (it would land in error lines and reports)
            raise LLMConfigError(
                Hint("api_key_env"), " takes the NAME of the environment variable that holds the key, not the key "
                f"({len(self.api_key_env or '')} characters given, not shown): export MY_KEY=... and ",
                Hint("api_key_env", "MY_KEY", give=True), " (library: api_key_env='MY_KEY')",
            )
        if not (is_real(self.timeout_s) and 0 < self.timeout_s <= MAX_TIMEOUT_S):
            raise LLMConfigError(f"LLM timeout {self.timeout_s!r} (ATTRIB_LLM_TIMEOUT_S, timeout_s=) must be a number "
                                 f"of seconds above 0 and at most {MAX_TIMEOUT_S:g}")
        if not is_whole_number(self.max_retries, minimum=0):
            raise LLMConfigError(f"LLM retries {self.max_retries!r} (ATTRIB_LLM_MAX_RETRIES, max_retries=) must be a "
                                 "whole number >= 0")

    @property
    def api_key(self) -> str | None:
        """The key read from ``api_key_env`` now (never cached in the config)."""
        return os.environ.get(self.api_key_env) or None

    @classmethod
    def from_env(cls, **overrides: Any) -> LLMConfig:
        """Build a config from the environment; keyword ``overrides`` that are not None win.

        ``ATTRIB_LLM_BASE_URL`` (else ``OPENAI_BASE_URL``; else api.openai.com when ``OPENAI_API_KEY``
        is set), ``ATTRIB_LLM_MODEL`` (else ``OPENAI_MODEL``), ``ATTRIB_LLM_API_KEY_ENV`` (else
        ``ATTRIB_LLM_API_KEY`` if set, else ``OPENAI_API_KEY`` if set), ``ATTRIB_LLM_TIMEOUT_S``,
        ``ATTRIB_LLM_MAX_RETRIES``.
        """
        env = os.environ
        given = {k: v for k, v in overrides.items() if v is not None}
        base_url = given.pop("base_url", None) or env.get(LLM_ENV["base_url"]) or env.get("OPENAI_BASE_URL")
        if not base_url and env.get("OPENAI_API_KEY"):
            base_url = OPENAI_BASE_URL
        if not base_url:
            raise LLMConfigError("no LLM endpoint configured: ", Hint("endpoint"))
        key_env = given.pop("api_key_env", None) or env.get(LLM_ENV["api_key_env"])
        if not key_env:
            key_env = "OPENAI_API_KEY" if env.get("OPENAI_API_KEY") and not env.get(DEFAULT_API_KEY_ENV) else DEFAULT_API_KEY_ENV
        kw: dict[str, Any] = {
            "base_url": base_url,
            "model": given.pop("model", None) or env.get(LLM_ENV["model"]) or env.get("OPENAI_MODEL") or "",
            "api_key_env": key_env,
        }
        for name, var, conv in (("timeout_s", "ATTRIB_LLM_TIMEOUT_S", float), ("max_retries", "ATTRIB_LLM_MAX_RETRIES", int)):
            if var in env:
                try:
                    kw[name] = conv(env[var])
                except ValueError:
                    what = "a whole number" if conv is int else "a number"
                    raise LLMConfigError(f"{var}={env[var]!r} is not {what}") from None
        kw.update(given)
        return cls(**kw)

    def redacted(self) -> dict[str, Any]:
        """The config as plain data for evidence/logs (no key, only the variable's name)."""
        return {"base_url": self.base_url, "model": self.model, "api_key_env": self.api_key_env}


# ---------------------------------------------------------------------------------------------
# Tolerant JSON answers
# ---------------------------------------------------------------------------------------------

_FENCE = re.compile(r"```(?:json|JSON|javascript|python)?\s*(.*?)```", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")


def _balanced_objects(text: str) -> list[str]:
    """Every top-level ``{...}`` span in ``text``, braces counted outside of quoted strings."""
    spans, depth, start, quote, escape = [], 0, -1, "", False
    for i, ch in enumerate(text):
        if quote:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == quote:
                quote = ""
            continue
        if ch in "\"'" and depth > 0:
            # an apostrophe inside prose (depth 0) must not open a string
            quote = ch
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                spans.append(text[start : i + 1])
    return spans


def _loads_lenient(candidate: str) -> Any:
    # strict=False: a raw newline or tab inside a string, which small models write (and grammars let through)
    try:
        return json.loads(candidate, strict=False)
    except ValueError:
        pass
    fixed = _TRAILING_COMMA.sub(r"\1", candidate)
    try:
        return json.loads(fixed, strict=False)
    except ValueError:
        pass
    # single quotes, True/False/None: a Python literal (ast.literal_eval evaluates no code)
    pyish = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", re.sub(r"\bnull\b", "None", fixed)))
    try:
        return ast.literal_eval(pyish)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise AnswerParseError(f"not valid JSON: {candidate[:120]!r}") from None


def parse_json_answer(text: str) -> dict[str, Any]:
    """The JSON object in a model's answer, tolerating code fences, prose around it, single quotes,
    Python literals, trailing commas and raw control characters (a newline) inside strings. The first object that
    parses wins (:func:`parse_json_answers` gives them all).

    Raises :class:`AnswerParseError` when there is none.
    """
    return parse_json_answers(text)[0]


def parse_json_answers(text: str) -> list[dict[str, Any]]:
    """Every JSON object in a model's answer that parses, in order (at least one), read as
    :func:`parse_json_answer` reads one: a caller takes the first that fits what it asked.

    Raises :class:`AnswerParseError` when there is none.
    """
    if text is None or not text.strip():
        raise AnswerParseError("empty answer")
    candidates: list[str] = []
    for body in _FENCE.findall(text):
        candidates.extend(_balanced_objects(body) or [body.strip()])
    candidates.extend(_balanced_objects(text))
    if not candidates:
        raise AnswerParseError(f"no JSON object in the answer: {text.strip()[:120]!r}")
    last: AnswerParseError | None = None
    found: list[dict[str, Any]] = []
    for cand in candidates:
        try:
            obj = _loads_lenient(cand)
        except AnswerParseError as e:
            last = e
            continue
        if isinstance(obj, dict) and obj not in found:  # a fenced object is also found in the whole text
            found.append(obj)
    if found:
        return found
    raise last or AnswerParseError(f"no JSON object in the answer: {text.strip()[:120]!r}")


# ---------------------------------------------------------------------------------------------
# The client
# ---------------------------------------------------------------------------------------------

_RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
MAX_TIMEOUT_RETRIES = 1  # a request that timed out is sent once more, not max_retries times: at most 2 x timeout_s


@dataclass
class ChatResult:
    """One completed chat call: the text and how much it cost to get it."""

    text: str
    attempts: int
    elapsed_s: float
    finish_reason: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)


class LLMClient:
    """A small synchronous client over httpx for ``/chat/completions`` and ``/models``.

    ``calls`` and ``retries`` count HTTP requests made and transport/server retries taken, so that
    methods can report their cost. ``sleep`` is injectable so tests of the backoff run fast.
    """

    def __init__(self, config: LLMConfig, *, sleep: Callable[[float], None] = time.sleep) -> None:
        import httpx

        self.config = config
        self._sleep = sleep
        headers = {"Content-Type": "application/json", **dict(config.extra_headers)}
        key = config.api_key
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._http = httpx.Client(
            base_url=config.base_url,
            headers=headers,
            timeout=httpx.Timeout(config.timeout_s, connect=min(10.0, config.timeout_s)),
        )
        self._model = config.model
        self._model_checked = False
        self._json_modes: list[str] = {
            "auto": ["schema", "object", "off"],
            "schema": ["schema"],
            "object": ["object"],
            "off": ["off"],
        }[config.json_mode]
        self.calls = 0
        self.retries = 0
        # of ``calls`` and ``retries``: GET /models, made once per client (a judge's evidence counts its own asks)
        self.lookups = self.lookup_retries = 0

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport --------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None, accept: Callable[[Any], bool] | None = None
    ) -> Any:
        """Send one request with retries; returns the httpx response (status < 400, a 4xx, or one that
        ``accept`` takes as final without retrying)."""
        import httpx

        cfg = self.config
        url = f"{cfg.base_url}{path}"
        last_problem = ""
        timeouts = tries = 0
        for attempt in range(cfg.max_retries + 1):
            if attempt:
                self.retries += 1
            self.calls += 1
            tries += 1
            try:
                resp = self._http.request(method, path, json=body)
            except httpx.ConnectTimeout:  # nothing answered the connection: as unreachable as a refusal
                last_problem = f"cannot connect (no connection within {min(10.0, cfg.timeout_s):g} s)"
                delay = self._backoff(attempt, None)
            except httpx.TimeoutException as e:
                timeouts += 1
                last_problem = f"timed out after {cfg.timeout_s:g} s ({type(e).__name__})"
                if timeouts > MAX_TIMEOUT_RETRIES:  # a slow server stays slow: do not wait timeout_s x max_retries
                    break
                delay = self._backoff(attempt, None)
            except httpx.TransportError as e:
                last_problem = f"cannot connect ({e or type(e).__name__})"
                delay = self._backoff(attempt, None)
            else:
                if resp.status_code < 400 or resp.status_code not in _RETRY_STATUS or (accept and accept(resp)):
                    return resp
                last_problem = f"HTTP {resp.status_code}: {_excerpt(resp.text)}"
                delay = self._backoff(attempt, resp.headers.get("retry-after"))
            if attempt < cfg.max_retries:
                self._sleep(delay)
        msg = f"LLM endpoint {url} failed after {tries} attempt{'s' * (tries > 1)}: {last_problem}"
        if last_problem.startswith("timed out"):
            raise_s = f"raise ATTRIB_LLM_TIMEOUT_S (seconds per request, now {cfg.timeout_s:g})"
            if body is None:  # GET /models: no prompt involved
                raise LLMTimeoutError(f"{msg}; the server is slow or overloaded: {raise_s}")
            raise LLMTimeoutError(f"{msg}; the server is slow or the prompt long: {raise_s} or cut the transcript "
                                  "with ", Hint("context_chars", "N"))
        if last_problem.startswith("cannot connect"):
            raise LLMUnavailableError(msg + "; is the server running and ", Hint("base_url"), " right?")
        raise LLMBadResponseError(msg)

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(60.0, max(0.0, float(retry_after)))
            except ValueError:
                pass
        base = self.config.backoff_s * (2**attempt)
        return min(30.0, base) * (0.5 + random.random() / 2)

    def _check(self, resp: Any, what: str) -> Any:
        if resp.status_code >= 400:
            head = f"LLM endpoint {self.config.base_url} refused {what}: HTTP {resp.status_code}"
            if _too_long(resp):
                raise LLMContextError(f"{head}: the prompt is longer than the model's context; cut the transcript "
                                      "with ", Hint("context_chars", "N"), f": {_excerpt(resp.text)}")
            if resp.status_code in (405, 501):  # chat not a method there: a plain web server, not an OpenAI API
                raise LLMModelNotFoundError(f"{head}: no OpenAI-compatible API there; ", *self._url_hint(),
                                            f": {_excerpt(resp.text)}")
            if resp.status_code == 404:
                if what.startswith("GET /models") or not _VERSIONED.search(self.config.base_url):
                    # no OpenAI API at that URL at all: almost always a base URL without its /v1
                    raise LLMModelNotFoundError(f"{head}: no OpenAI-compatible API there; ", *self._url_hint(),
                                                f": {_excerpt(resp.text)}")
                raise LLMModelNotFoundError(f"{head} (check the model name, ", Hint("model"), ", against GET "
                                            f"/models): {_excerpt(resp.text)}")
            if resp.status_code in (401, 403):
                var = self.config.api_key_env
                why: tuple[str | Hint, ...] = (
                    (f"check the key in ${var}",) if self.config.api_key else
                    (f"no key was sent: ${var} is not set; export it, or ", Hint("api_key_env", "NAME", give=True),
                     " with the name of the variable that holds the key"))
                raise LLMAuthError(f"{head} (", *why, f"): {_excerpt(resp.text)}")
            raise LLMBadResponseError(f"{head}: {_excerpt(resp.text)}")
        try:
            data = resp.json()
        except ValueError:
            raise LLMBadResponseError(f"LLM endpoint {self.config.base_url} answered {what} with non-JSON: "
                                      f"{_excerpt(resp.text)}") from None
        if not isinstance(data, dict):
            raise LLMBadResponseError(f"LLM endpoint {self.config.base_url} answered {what} with a JSON "
                                      f"{type(data).__name__}, not an object: {_excerpt(resp.text)}")
        return data

    def _url_hint(self) -> tuple[str | Hint, ...]:
        base = self.config.base_url
        if _VERSIONED.search(base):
            model: tuple[str | Hint, ...] = (
                () if self.config.model else
                (", or ", Hint("model", "NAME", give=True), " if the server lists no models"))
            return ("check that ", Hint("base_url"), f" ({base}) is the API's base URL, the part before "
                    "/chat/completions", *model)
        return (Hint("base_url"), f" usually ends in /v1: try {base}/v1")

    # -- API ----------------------------------------------------------------------------------

    def models(self) -> list[str]:
        """Model ids the server lists at ``GET /models``."""
        calls0, retries0 = self.calls, self.retries
        try:
            data = self._check(self._request("GET", "/models"), "GET /models")
        finally:
            self.lookups += self.calls - calls0
            self.lookup_retries += self.retries - retries0
        return [str(m.get("id")) for m in (data.get("data") or []) if isinstance(m, dict) and m.get("id")]

    @property
    def model(self) -> str:
        """The configured model, or the server's first listed model when none was configured.

        A configured name is checked once against a server that lists a single model: llama.cpp's servers answer
        with it under any name, and the verdict would record a model that never ran. Servers that list several
        (OpenAI, vLLM) refuse an unknown name themselves (HTTP 404), and may serve names they do not list (Azure
        deployments), so their list is not held against the name."""
        if not self._model:
            ids = self.models()
            if not ids:
                raise LLMModelNotFoundError(f"LLM endpoint {self.config.base_url} lists no models at GET /models; ",
                                            Hint("model", give=True))
            self._model = ids[0]
        elif not self._model_checked:
            try:
                ids = self.models()
            except (LLMUnavailableError, LLMAuthError):
                raise
            except LLMError:  # a server without GET /models: nothing to check against
                ids = []
            if len(ids) == 1 and self._model != ids[0]:
                raise LLMModelNotFoundError(f"LLM endpoint {self.config.base_url} does not serve {self._model!r}; it "
                                            f"serves only {ids[0]!r} (and would answer as it under any name): ",
                                            Hint("model", ids[0], give=True))
        self._model_checked = True
        return self._model

    def chat(
        self,
        messages: Sequence[dict[str, str]],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> ChatResult:
        """One chat completion; with ``json_schema`` the server is asked for JSON (see ``json_mode``).

        A server that refuses ``response_format`` is asked again with the next weaker mode, and the client
        remembers the mode that worked. A refusal is taken to be about ``response_format`` when its body says so
        (names response_format, json_schema, json_object or a grammar), or, for a bare HTTP 400/422, when the same
        request without ``response_format`` is then answered; otherwise (a bad model name, parameter or message)
        it is the refusal's error line, and JSON mode stays as it was.
        """
        model = self.model  # may ask GET /models first: not an attempt at this chat
        t0 = time.perf_counter()
        calls0 = self.calls
        body: dict[str, Any] = {
            "model": model,
            "messages": list(messages),
            "temperature": self.config.temperature,
            "max_tokens": max_tokens or self.config.max_tokens,
        }
        while True:
            mode = self._json_modes[0] if json_schema is not None else "off"
            req = dict(body)
            if mode == "schema":
                req["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "answer", "schema": json_schema, "strict": False},
                }
            elif mode == "object":
                # llama-cpp-python and llama.cpp's server constrain the output to this schema
                req["response_format"] = {"type": "json_object", "schema": json_schema}
            resp = self._request("POST", "/chat/completions", req, accept=_may_reject_response_format if mode != "off" else None)
            if mode != "off" and len(self._json_modes) > 1 and _may_reject_response_format(resp):
                if _names_response_format(resp):
                    self._json_modes.pop(0)  # the server does not take this response_format: step down
                    continue
                # a refusal that does not say why: the same request without response_format tells, asked for one
                # token (a probe, not a second full generation)
                bare = self._request("POST", "/chat/completions", {**body, "max_tokens": 1})
                if bare.status_code < 400:  # answered without it: it was the response_format, step down for good
                    self._json_modes.pop(0)
                    continue
                # else: refused without it too, so about something else: that refusal's error, JSON mode kept
            data = self._check(resp, "POST /chat/completions")
            break
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise LLMBadResponseError(f"LLM endpoint {self.config.base_url} returned no choices: "
                                      f"{_excerpt(json.dumps(data))}") from None
        return ChatResult(
            text=text,
            attempts=self.calls - calls0,
            elapsed_s=time.perf_counter() - t0,
            finish_reason=choice.get("finish_reason"),
            usage=dict(data.get("usage") or {}),
        )


# what a refusal of response_format names: the field, its types, or the grammar a server builds from the schema
_RESPONSE_FORMAT = re.compile(r"response_format|json_schema|json_object|grammar", re.IGNORECASE)


def _may_reject_response_format(resp: Any) -> bool:
    """A refusal that may be of the request's ``response_format``: 400/422 (a too-long prompt is not one), or the
    500 that llama-cpp-python's server sends for a request-validation error naming it."""
    code = resp.status_code
    return not _too_long(resp) and (code in (400, 422) or (code == 500 and "response_format" in resp.text))


def _names_response_format(resp: Any) -> bool:
    """Whether a refusal (one :func:`_may_reject_response_format` let through) says it is about ``response_format``
    (e.g. llama-cpp-python's "response_format.type: input should be 'text' or 'json_object'")."""
    return bool(_RESPONSE_FORMAT.search(resp.text or ""))


# what servers say when the prompt does not fit: OpenAI and llama-cpp-python ("maximum context length is 4096
# tokens"), llama.cpp's llama-server ("the request exceeds the available context size", exceed_context_size_error),
# vLLM ("longer than the maximum model length of 4096", max_model_len), and "prompt/input is too long"
_TOO_LONG = re.compile(
    r"context[ _](?:length|window|size)|maximum context|exceed_context|context_length_exceeded|maximum model length"
    r"|max_model_len|(?:prompt|input) is too long|too many tokens",
    re.IGNORECASE,
)


def _too_long(resp: Any) -> bool:
    """An HTTP 400 (413: too large) saying the prompt exceeds the model's context."""
    return resp.status_code in (400, 413) and bool(_TOO_LONG.search(resp.text or ""))


def _excerpt(text: str, n: int = 200) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[:n] + "..."


_CLIENTS: dict[LLMConfig, LLMClient] = {}


def get_client(llm: LLMConfig | LLMClient | None = None) -> LLMClient:
    """A client for ``llm`` (a config, a client, or None for :meth:`LLMConfig.from_env`), pooled per
    config so that evaluating many traces reuses connections."""
    if isinstance(llm, LLMClient):
        return llm
    cfg = llm if llm is not None else LLMConfig.from_env()
    client = _CLIENTS.get(cfg)
    if client is None:
        client = _CLIENTS[cfg] = LLMClient(cfg)
    return client


def context_chars_from_env(default: int, minimum: int) -> int:
    """``$ATTRIB_LLM_CONTEXT_CHARS``, else ``default``: the judges' transcript budget where no ``context_chars`` is
    passed (commands without ``--llm-context-chars``, such as ``attrib eval who-and-when``); read here with the other
    ``ATTRIB_LLM_*`` settings."""
    raw = os.environ.get(CONTEXT_CHARS_ENV, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise LLMConfigError(f"{CONTEXT_CHARS_ENV}={raw!r} is not a whole number of characters") from None
    if value < minimum:
        raise LLMConfigError(f"{CONTEXT_CHARS_ENV}={raw!r} is below {minimum} characters (the least "
                             "--llm-context-chars takes)")
    return value


__all__ = [
    "AnswerParseError",
    "context_chars_from_env",
    "ChatResult",
    "Hint",
    "LLMAuthError",
    "LLMBadResponseError",
    "LLMClient",
    "LLMConfig",
    "LLMConfigError",
    "LLMContextError",
    "LLMError",
    "LLMModelNotFoundError",
    "LLMTimeoutError",
    "LLMUnavailableError",
    "get_client",
    "hint_text",
    "message_text",
    "parse_json_answer",
    "parse_json_answers",
]

