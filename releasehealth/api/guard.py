"""What the API refuses before it reads a body: a request to record a deploy without the token, and any
body larger than MAX_BODY_BYTES. FastAPI reads and parses a body before its dependencies run, so a token
checked there would let anyone make the server read and decode 200 MB; this ASGI middleware answers first."""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY_BYTES = 64 * 1024  # a deploy record is a few hundred bytes; Flagger's webhook payload a few KB
GUARDED = ("/api/v1/deploys",)  # the routes that need the token


def token_problem(header: str | None, token: str | None, variable: str) -> str:
    """Why an `Authorization` header value does not let a request record deploys ("" when it does)."""
    if token is None:
        return f"recording deploys is disabled: set the environment variable {variable}, restart the API"
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(_bytes(given.strip()), _bytes(token)):
        return "a valid token is required: Authorization: Bearer <token>"
    return ""


def _bytes(text: str) -> bytes:
    # surrogateescape: os.environ keeps undecodable bytes as surrogates; they compare as the bytes they were.
    return text.encode("utf-8", "surrogateescape")


class Guard:
    """ASGI middleware: 401 for a guarded route without the token, 413 for a body over MAX_BODY_BYTES
    (told by Content-Length, or counted as it arrives), before the application reads it."""

    def __init__(self, app: ASGIApp, token: str | None, variable: str) -> None:
        self.app, self.token, self.variable = app, token, variable

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        length = headers.get("content-length", "")
        if length and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            await _answer(send, 413, f"the body is larger than {MAX_BODY_BYTES} bytes")
            return
        if scope["path"] in GUARDED and (problem := token_problem(headers.get("authorization"), self.token, self.variable)):
            await _answer(send, 401, problem, {"www-authenticate": "Bearer"})
            return
        await self.app(scope, _bounded(receive), send)


def _bounded(receive: Receive) -> Receive:
    """`receive` that ends the request (a disconnect) once the body it passed exceeds MAX_BODY_BYTES."""
    received = 0

    async def bounded() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > MAX_BODY_BYTES:
                return {"type": "http.disconnect"}
        return message

    return bounded


async def _answer(send: Send, status: int, detail: str, extra: dict[str, str] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(name.encode(), value.encode()) for name, value in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
