"""One JSON error shape for every answer that is not a success, and no stack traces.

    {"error": {"message": "items[3].rubric.score_descriptions: expected 5 descriptions, got 4",
               "type": "invalid_item", "field": "items[3].rubric.score_descriptions", "index": 3}}

It is the shape of OpenAI's errors, so OpenAI clients (srjudge's ``openai`` backend included)
show the message. ``limit`` is set when a limit was exceeded. Unexpected exceptions are logged
with their traceback on the server and answered with a generic 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

log = logging.getLogger("srjudge.serving")


def error_body(message: str, type_: str, **extra: Any) -> dict[str, Any]:
    fields = {k: v for k, v in extra.items() if v is not None}
    return {"error": {"message": message, "type": type_, **fields}}


class ApiError(HTTPException):
    """An error answer with a type and, where it applies, the field, item index and limit."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str,
        *,
        field: str | None = None,
        index: int | None = None,
        limit: int | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(status, message, headers=headers)
        self.body = error_body(message, type_, field=field, index=index, limit=limit)


_STATUS_TYPES = {401: "auth", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}


def _loc_path(loc: tuple[Any, ...]) -> str:
    """``("body", "items", 3, "id")`` -> ``items[3].id``."""
    path = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


def validation_error(exc: RequestValidationError) -> ApiError:
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    loc = tuple(first.get("loc", ()))
    if first.get("type") == "json_invalid":  # loc is ("body", <character offset>)
        error = (first.get("ctx") or {}).get("error", "")
        message = f"body: not valid JSON ({error} at character {loc[-1]})"
        return ApiError(422, message, "invalid_json", field="body")
    field = _loc_path(loc)
    index = loc[2] if len(loc) > 2 and loc[1] == "items" and isinstance(loc[2], int) else None
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    message = f"{field}: {first.get('msg', 'invalid')}{more}"
    return ApiError(422, message, "invalid_request", field=field, index=index)


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(validation_error(exc).body, status_code=422)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        if isinstance(exc, ApiError):
            body = exc.body
        else:
            type_ = _STATUS_TYPES.get(exc.status_code, "error")
            limit = getattr(exc, "limit", None)
            body = error_body(str(exc.detail), type_, limit=limit)
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        body = error_body("internal server error (details are in the server log)", "internal")
        return JSONResponse(body, status_code=500)
