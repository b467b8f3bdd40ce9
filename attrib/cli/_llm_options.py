"""The ``--llm-base-url / --llm-model / --llm-api-key-env`` options, shared by every command that can call a judge.

Two settings have no flag, only an environment variable (named in ``--llm-base-url``'s help):
``ATTRIB_LLM_TIMEOUT_S`` (seconds one request may take, default 180; a timed-out request is retried once)
and ``ATTRIB_LLM_MAX_RETRIES`` (retries on HTTP 429/5xx and connection errors, default 3).

Two ways to use them in a Typer command:

- one line: decorate the command with :func:`with_llm_options`; it adds the three options to the
  command's signature and passes ``llm=LLMConfig | None`` to the function (None when no endpoint
  was given on the command line or in ``ATTRIB_LLM_BASE_URL``), e.g.::

      @app.command()
      @with_llm_options
      def analyze(path: str, llm: LLMConfig | None = None) -> None: ...

- by hand: declare parameters with the :data:`LLMBaseUrl`, :data:`LLMModel`, :data:`LLMApiKeyEnv`
  types and call :func:`llm_config_from_options`.

The flags' names come from :data:`attrib.llm.LLM_FLAGS`, the table the LLM client's error lines name them from.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from attrib.llm import DEFAULT_API_KEY_ENV, LLM_ENV, LLM_FLAGS, LLMConfig

F = TypeVar("F", bound=Callable[..., Any])

_PANEL = "LLM judge (optional)"

LLMBaseUrl = Annotated[
    str | None,
    typer.Option(
        LLM_FLAGS["base_url"],
        envvar=LLM_ENV["base_url"],
        help="OpenAI-compatible endpoint for the judge methods, up to /v1 (vLLM, llama.cpp server, OpenAI), "
        "e.g. http://127.0.0.1:8080/v1. Each request waits up to ATTRIB_LLM_TIMEOUT_S seconds (default 180; raise "
        "it for a slow server or a long prompt); a request that timed out is retried once, so one call waits at "
        "most twice that. HTTP 429/5xx and connection errors are retried ATTRIB_LLM_MAX_RETRIES times (default 3). "
        "Without this flag or ATTRIB_LLM_BASE_URL, OPENAI_BASE_URL is used, and OPENAI_API_KEY alone means OpenAI's "
        "hosted API.",
        rich_help_panel=_PANEL,
        show_default=False,
    ),
]
LLMModel = Annotated[
    str | None,
    typer.Option(
        LLM_FLAGS["model"],
        envvar=LLM_ENV["model"],
        help="Model name at that endpoint (default: the first model the server lists).",
        rich_help_panel=_PANEL,
        show_default=False,
    ),
]
LLMApiKeyEnv = Annotated[
    str | None,
    typer.Option(
        LLM_FLAGS["api_key_env"],
        help=f"Name of the environment variable that holds the API key (default {DEFAULT_API_KEY_ENV}, "
        "or OPENAI_API_KEY when only that is set), e.g. MY_KEY after export MY_KEY=...; the key itself is never "
        "passed on the command line, and one given here is refused (exit 2) without being echoed.",
        rich_help_panel=_PANEL,
        show_default=False,
    ),
]


def llm_config_from_options(
    base_url: str | None, model: str | None = None, api_key_env: str | None = None
) -> LLMConfig | None:
    """An :class:`LLMConfig` from the CLI options and the environment, or None when no endpoint is set.

    Raises :class:`~attrib.errors.AttribError` for a malformed URL (the CLI prints it as one line).
    """
    if not (base_url or os.environ.get("ATTRIB_LLM_BASE_URL") or os.environ.get("OPENAI_BASE_URL")
            or os.environ.get("OPENAI_API_KEY")):  # fmt: skip
        return None
    return LLMConfig.from_env(base_url=base_url, model=model, api_key_env=api_key_env)


def with_llm_options(fn: F) -> F:
    """Add the three ``--llm-*`` options to a Typer command and pass ``llm=`` (LLMConfig or None) to it."""
    sig = inspect.signature(fn)
    if "llm" not in sig.parameters:
        raise TypeError(f"{fn.__name__} needs an 'llm' parameter to use with_llm_options")
    extra = [
        inspect.Parameter("llm_base_url", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=LLMBaseUrl),
        inspect.Parameter("llm_model", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=LLMModel),
        inspect.Parameter("llm_api_key_env", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=LLMApiKeyEnv),
    ]
    params = [p for name, p in sig.parameters.items() if name != "llm"]
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    keyword = [p for p in params if p not in positional]
    new_sig = sig.replace(parameters=[*positional, *keyword, *extra])

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from attrib.cli._common import handle_errors

        base_url = kwargs.pop("llm_base_url", None)
        model = kwargs.pop("llm_model", None)
        key_env = kwargs.pop("llm_api_key_env", None)
        with handle_errors():
            kwargs["llm"] = llm_config_from_options(base_url, model, key_env)
        return fn(*args, **kwargs)

    wrapper.__signature__ = new_sig  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
