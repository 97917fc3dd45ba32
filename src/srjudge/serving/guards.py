"""ASGI middleware around the app: metrics of every request, the API key, the body size limit.

Pure ASGI (not ``BaseHTTPMiddleware``) so that a body is counted as it streams in and an
unauthenticated or oversized request is answered before any of its body is parsed. Each
answers with the same JSON error shape as the routes: ``{"error": {"message", "type", ...}}``.

Order, outermost first: ``ObserveRequests`` -> ``RequireApiKey`` -> ``LimitBody`` -> the app.
"""

from __future__ import annotations

import hmac
import json
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from srjudge.serving.errors import ApiError, error_body
from srjudge.serving.metrics import Metrics

PUBLIC_PATHS = frozenset({"/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})


async def send_json(send: Send, status: int, body: dict[str, Any], headers=()) -> None:
    data = json.dumps(body).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(data)).encode()),
        *((k.encode(), v.encode()) for k, v in headers),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": data})


class ObserveRequests:
    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.monotonic()
        status = 500  # what the client gets if the app raises before answering

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            self.metrics.observe_request(scope["path"], status, time.monotonic() - started)


class RequireApiKey:
    """``Authorization: Bearer <key>`` on every path but ``PUBLIC_PATHS``; constant-time."""

    def __init__(self, app: ASGIApp, api_key: str | None):
        self.app = app
        self.key = None if api_key is None else api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.key is None or scope["path"] in PUBLIC_PATHS:
            return await self.app(scope, receive, send)
        if not self._authorized(scope):
            body = error_body("missing or wrong API key (Authorization: Bearer ...)", "auth")
            return await send_json(send, 401, body, [("www-authenticate", "Bearer")])
        return await self.app(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        assert self.key is not None
        value = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = value.partition(b" ")
        # compare_digest on the token even when the scheme is wrong: same time either way
        ok = hmac.compare_digest(token.strip(), self.key)
        return ok and scheme.lower() == b"bearer"


class LimitBody:
    """413 when ``content-length`` or the streamed body exceeds ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    def _error(self) -> ApiError:
        message = f"request body exceeds the limit of {self.max_bytes} bytes (--max-body-bytes)"
        return ApiError(413, message, "too_large", limit=self.max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await send_json(send, 413, self._error().body)
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:  # a chunked body without content-length
                    raise self._error()
            return message

        await self.app(scope, limited_receive, send)
