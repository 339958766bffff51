"""Request limits and clean error bodies for ``mlflow models serve``, at the HTTP edge.

MLflow's scoring server (``mlflow/pyfunc/scoring_server``) reads any body whole, echoes a
body that is not JSON back in its 400 message, prefixes a model's own error with
``Failed to predict data '<the input frame>'``, and answers its own timeout
(``--timeout`` / ``MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT``) and wrong content types in
plain text.  :class:`RequestLimits` wraps the scoring app (outside MLflow's middleware):

- a body over ``SER_MAX_REQUEST_MB`` (default 8 MiB) is drained, never kept, and answered
  HTTP 413 before MLflow parses anything;
- a JSON body that does not parse gets HTTP 400 naming the parse error, without the body
  (MLflow's own parse finds it; its message, which echoes the body, is rewritten);
- every error answer becomes MLflow-style JSON (``error_code``, ``message``) carrying only
  the message that names the problem (MLflow's timeout becomes a 504 with the limit).

``mlflow models serve`` starts ``uvicorn``, which takes ``UVICORN_*`` environment variables
for its options; ``UVICORN_HTTP`` names :class:`LimitedH11Protocol` (uvicorn's h11 protocol
with the app wrapped), so the server is still started by ``mlflow models serve`` unchanged.
:func:`experiments.serving.command.serving_environment` sets it.

Example
-------
>>> RequestLimits(app, max_bytes=8 * 2**20, timeout_s=60)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_REQUEST_MB_ENV = "SER_MAX_REQUEST_MB"
TIMEOUT_ENV = "MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT"
DEFAULT_MAX_REQUEST_MB = 8.0
DEFAULT_TIMEOUT_S = 60.0
#: How MLflow 3.x echoes the input frame in front of a model's or its schema check's message.
_MLFLOW_ECHOES = (
    (re.compile(r"^Failed to predict data '.*'\. \nError: ", re.DOTALL), ""),
    (
        re.compile(
            r"^Failed to enforce schema of data '.*' with schema '(.*?)'\. Error: ", re.DOTALL
        ),
        r"input does not match the model's columns \1: ",
    ),
)
#: MLflow 3.x's answer to a body that does not parse; the body it echoes follows it.
_MLFLOW_NOT_JSON = re.compile(
    r"Ensure that input is a valid JSON formatted string\. Error: '(.*?)'\nInput: ", re.DOTALL
)
_JSON_DECODE_ERROR = re.compile(r"JSONDecodeError\((['\"])(.*)\1\)", re.DOTALL)
_ERROR_CODES = {400: "BAD_REQUEST", 413: "REQUEST_LIMIT_EXCEEDED", 415: "BAD_REQUEST"}
_ERROR_CODES |= {503: "TEMPORARILY_UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


def max_request_bytes() -> int:
    """The body-size limit in bytes, from ``SER_MAX_REQUEST_MB`` (MiB, default 8)."""
    return int(float(os.environ.get(MAX_REQUEST_MB_ENV) or DEFAULT_MAX_REQUEST_MB) * 2**20)


def request_timeout_s() -> float:
    """MLflow's per-request timeout in seconds (``MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT``)."""
    return float(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT_S)


def error_body(status: int, message: str, error_code: str | None = None) -> bytes:
    """An MLflow-style JSON error body; ``error_code`` defaults to one fitting ``status``."""
    default = _ERROR_CODES.get(status, "INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST")
    return json.dumps({"error_code": error_code or default, "message": message}).encode()


class RequestLimits:
    """ASGI wrapper: body-size limit, JSON check, and clean JSON error bodies."""

    def __init__(self, app: App, *, max_bytes: int, timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the body of an ``/invocations`` request, then let the app answer it."""
        if scope["type"] != "http" or scope.get("path") != "/invocations":
            await self.app(scope, receive, send)
            return
        body, size, connected = await self._read_body(receive)
        if not connected:
            return
        if body is None:
            await _answer(
                send,
                413,
                f"request body is {size / 2**20:.1f} MiB; the limit is {self.max_bytes / 2**20:g}"
                f" MiB ({MAX_REQUEST_MB_ENV}); send fewer or shorter clips per request",
            )
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, _CleanErrors(send, self.timeout_s))

    async def _read_body(self, receive: Receive) -> tuple[bytes | None, int, bool]:
        """(body, size, still connected); body is ``None``, drained, if over the limit."""
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None, size, False
            chunk = message.get("body", b"")
            size += len(chunk)
            if size <= self.max_bytes:
                chunks.append(chunk)
            else:
                chunks.clear()
            more = message.get("more_body", False)
        return (b"".join(chunks) if size <= self.max_bytes else None), size, True


class _CleanErrors:
    """A ``send`` that rewrites error answers into MLflow-style JSON with a clear message."""

    def __init__(self, send: Send, timeout_s: float) -> None:
        self.send = send
        self.timeout_s = timeout_s
        self.status = 200
        self.chunks: list[bytes] = []

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            if self.status < 400:
                await self.send(message)
            return
        if self.status < 400 or message["type"] != "http.response.body":
            await self.send(message)
            return
        self.chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            code, text = self._error(b"".join(self.chunks))
            await _answer(self.send, self.status, text, code)

    def _error(self, body: bytes) -> tuple[str | None, str]:
        """(error code if the app gave one, message without MLflow's echo of the input)."""
        if self.status == 504:
            return None, (
                f"the request took longer than the {self.timeout_s:g} s limit ({TIMEOUT_ENV}); "
                "send fewer or shorter clips per request"
            )
        text = body.decode("utf-8", errors="replace").strip()
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        code = None
        if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
            code, text = parsed.get("error_code"), parsed["message"]
        not_json = _MLFLOW_NOT_JSON.search(text)
        if not_json:
            return code, _not_json_message(not_json.group(1))
        for echo, replacement in _MLFLOW_ECHOES:
            text = echo.sub(replacement, text, count=1)
        return code, text or f"HTTP {self.status}"


def _not_json_message(error: str) -> str:
    """Our message for a body that is not JSON, from the repr of MLflow's parse error."""
    parse_error = _JSON_DECODE_ERROR.fullmatch(error)
    reason = parse_error.group(2) if parse_error else "it is not UTF-8 text"
    return f"request body is not valid JSON ({reason})"


async def _answer(send: Send, status: int, message: str, error_code: str | None = None) -> None:
    body = error_body(status, message, error_code)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class LimitedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol serving the app behind :class:`RequestLimits` (``UVICORN_HTTP``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.app = RequestLimits(
            self.app, max_bytes=max_request_bytes(), timeout_s=request_timeout_s()
        )
