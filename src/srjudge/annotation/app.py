"""The annotation web page: a Starlette app served by uvicorn (``srjudge annotate serve``).

    srjudge annotate add-annotator study.db alice      # prints alice's personal URL
    srjudge annotate serve study.db [--host 127.0.0.1] [--port 8080] [--public]

    from srjudge.annotation.app import make_app        # an ASGI app, e.g. for tests
    app = make_app("study.db")

Routes (every page but ``/t/<token>`` and ``/static`` needs the annotator's token, from the
``srjudge_annotator`` cookie that ``/t/<token>`` sets, or an ``Authorization: Bearer`` header;
none gives 401, a wrong one 403)::

    GET  /t/<token>      check the token, set the cookie, go to the first unlabelled item
    GET  /item/<n>       item n (1-based): criteria, conversation, response(s), the shared
                         score, "Rationale 1" and "Rationale 2" side by side, the form
    POST /item/<n>       save this annotator's label of item n, go to item n+1
    GET  /done           how many items this annotator has labelled

Blindness: pages, URLs and form fields carry only positions and the words "Rationale 1/2";
which model wrote which rationale never leaves the database. Model text is untrusted: Jinja2
autoescaping shows it as text, and the Content-Security-Policy allows no inline script at all.
Requests are small (``MAX_BODY`` bytes); errors are short pages, never a stack trace.
"""

from __future__ import annotations

import ipaddress
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from srjudge.annotation import store

HERE = Path(__file__).resolve().parent
COOKIE = "srjudge_annotator"
MAX_BODY = 16 * 1024
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}
KEYS = {"1": "1", "2": "2", "tie_good": "3", "tie_poor": "4"}
REASON_KEYS = {"accurate": "a", "specific": "s", "rubric": "r", "grounded": "f", "clear": "c"}


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.1``, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_host(host: str, public: bool) -> None:
    """Refuse a non-loopback ``host`` unless ``public`` (``--public``)."""
    if not is_loopback(host) and not public:
        raise store.StudyError(
            f"--host {host} is not a loopback address: add --public to serve other machines "
            "(each annotator still needs their token; put TLS in front of it)"
        )


class SecurityHeaders:
    """Adds ``SECURITY_HEADERS`` to every response (pure ASGI middleware)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])]
                present = {k.lower() for k, _ in headers}
                for k, v in SECURITY_HEADERS.items():
                    if k.encode() not in present:
                        headers.append((k.encode(), v.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _templates() -> Jinja2Templates:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every template: model text is untrusted
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return Jinja2Templates(env=env)


class Annotate:
    """The route handlers, bound to one study file."""

    def __init__(self, db_path: str | Path):
        self.db = Path(db_path)
        with store.opened(self.db) as conn:  # fail now, not on the first request
            self.total = store.item_count(conn)
        self.templates = _templates()

    # -- helpers ------------------------------------------------------------------------

    @staticmethod
    def _token(request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return request.cookies.get(COOKIE)

    def _annotator(self, request: Request, conn: sqlite3.Connection) -> store.Annotator:
        token = self._token(request)
        if not token:
            raise HTTPException(
                401,
                "Open your personal link to start.",
                headers={"WWW-Authenticate": 'Bearer realm="srjudge-annotate"'},
            )
        annotator = store.annotator_for_token(conn, token)
        if annotator is None:
            raise HTTPException(403, "This link is not valid for this study.")
        return annotator

    def _position(self, request: Request) -> int:
        n = request.path_params["n"]
        if not 1 <= n <= self.total:
            raise HTTPException(404, f"There is no item {n}; items run from 1 to {self.total}.")
        return n

    def _next_url(self, done: set[int], after: int = 0) -> str:
        """The first unlabelled item after ``after`` (wrapping round), else the done page."""
        order = [*range(after + 1, self.total + 1), *range(1, after + 1)]
        todo = [p for p in order if p not in done]
        return f"/item/{todo[0]}" if todo else "/done"

    # -- routes -------------------------------------------------------------------------

    def login(self, request: Request) -> Response:
        token = request.path_params["token"]
        with store.opened(self.db) as conn:
            annotator = store.annotator_for_token(conn, token)
            if annotator is None:
                raise HTTPException(403, "This link is not valid for this study.")
            target = self._next_url(store.labelled_positions(conn, annotator.id))
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            max_age=60 * 60 * 24 * 90,
        )
        return response

    def home(self, request: Request) -> Response:
        with store.opened(self.db) as conn:
            annotator = self._annotator(request, conn)
            target = self._next_url(store.labelled_positions(conn, annotator.id))
        return RedirectResponse(target, status_code=303)

    def show(self, request: Request) -> Response:
        position = self._position(request)
        with store.opened(self.db) as conn:
            annotator = self._annotator(request, conn)
            return self._page(request, conn, annotator, position, None, 200)

    def _page(
        self,
        request: Request,
        conn: sqlite3.Connection,
        annotator: store.Annotator,
        position: int,
        error: str | None,
        status: int,
    ) -> Response:
        item = store.shown_item(conn, position)
        if item is None:
            raise HTTPException(404, f"There is no item {position}.")
        done = store.labelled_positions(conn, annotator.id)
        context: dict[str, Any] = {
            "annotator": annotator.name,
            "item": item,
            "p": item.payload,
            "total": self.total,
            "labelled": len(done),
            "label": store.label_of(conn, annotator.id, item.id),
            "choices": [(k, v, KEYS[k]) for k, v in store.CHOICES.items()],
            "reasons": [(k, v, REASON_KEYS[k]) for k, v in store.REASONS.items()],
            "prev_url": f"/item/{position - 1}" if position > 1 else None,
            "next_url": f"/item/{position + 1}" if position < self.total else "/done",
            "todo_url": self._next_url(done, position),
            "error": error,
            "saved": _saved(request),
            "max_comment": store.MAX_COMMENT,
        }
        return self.templates.TemplateResponse(request, "item.html.j2", context, status_code=status)

    async def submit(self, request: Request) -> Response:
        position = self._position(request)
        _check_origin(request)
        fields = await _read_form(request)
        return await run_in_threadpool(self._save, request, position, fields)

    def _save(self, request: Request, position: int, fields: list[tuple[str, str]]) -> Response:
        with store.opened(self.db) as conn:
            annotator = self._annotator(request, conn)
            item = store.shown_item(conn, position)
            if item is None:
                raise HTTPException(404, f"There is no item {position}.")
            values: dict[str, list[str]] = {}
            for k, v in fields:
                values.setdefault(k, []).append(v)
            try:
                choice = _one(values, "choice")
                label = store.check_label(
                    choice, values.get("reason", []), _one(values, "comment", "")
                )
            except store.StudyError as e:
                return self._page(request, conn, annotator, position, str(e), 400)
            store.save_label(conn, annotator.id, item.id, label)
            done = store.labelled_positions(conn, annotator.id)
        target = f"/item/{position + 1}" if position < self.total else "/done"
        if _one(values, "go", "next") == "todo":
            target = self._next_url(done, position)
        sep = "&" if "?" in target else "?"
        return RedirectResponse(f"{target}{sep}saved={position}", status_code=303)

    def done(self, request: Request) -> Response:
        with store.opened(self.db) as conn:
            annotator = self._annotator(request, conn)
            done = store.labelled_positions(conn, annotator.id)
        context = {
            "annotator": annotator.name,
            "labelled": len(done),
            "total": self.total,
            "todo_url": self._next_url(done),
        }
        return self.templates.TemplateResponse(request, "done.html.j2", context)

    def error_page(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else "Something went wrong."
        headers = getattr(exc, "headers", None)
        html = self.templates.get_template("message.html.j2").render(
            title=f"Error {status}", message=detail
        )
        return HTMLResponse(html, status_code=status, headers=headers)


def _saved(request: Request) -> int | None:
    """The item just saved (``?saved=n``), shown as a notice; anything but a number is ignored."""
    value = request.query_params.get("saved", "")
    return int(value) if value.isdigit() and len(value) < 7 else None


def _one(values: dict[str, list[str]], key: str, default: str | None = None) -> str:
    got = values.get(key)
    if not got:
        if default is None:
            raise store.StudyError(f"{key}: missing (choose which rationale is better)")
        return default
    if len(got) > 1:
        raise store.StudyError(f"{key}: given {len(got)} times")
    return got[0]


def _check_origin(request: Request) -> None:
    """Refuse a cross-site form post (the cookie is SameSite=Strict as well)."""
    origin = request.headers.get("origin")
    if origin and origin != "null":
        own = f"{request.url.scheme}://{request.headers.get('host', '')}"
        if origin != own:
            raise HTTPException(403, "Cross-site request refused.")


async def _read_form(request: Request) -> list[tuple[str, str]]:
    """The urlencoded body, at most ``MAX_BODY`` bytes (413 beyond), parsed with the stdlib."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise HTTPException(415, "Send the form as application/x-www-form-urlencoded.")
    declared = request.headers.get("content-length")
    if declared and (not declared.isdigit() or int(declared) > MAX_BODY):
        raise HTTPException(413, f"Request too large (limit {MAX_BODY} bytes).")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise HTTPException(413, f"Request too large (limit {MAX_BODY} bytes).")
    try:
        return parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=32
        )
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(400, "Malformed form.") from None


def make_app(db_path: str | Path) -> Starlette:
    """The ASGI app serving one study (opened once here to check it)."""
    h = Annotate(db_path)
    routes = [
        Route("/", h.home),
        Route("/t/{token}", h.login),
        Route("/item/{n:int}", h.show, methods=["GET"]),
        Route("/item/{n:int}", h.submit, methods=["POST"]),
        Route("/done", h.done),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(
        debug=False,
        routes=routes,
        exception_handlers={HTTPException: h.error_page, Exception: h.error_page},
    )
    app.add_middleware(SecurityHeaders)
    return app


def serve(
    db_path: str | Path, *, host: str = "127.0.0.1", port: int = 8080, public: bool = False
) -> None:
    """Run the app under uvicorn until interrupted; non-loopback hosts need ``public``."""
    import uvicorn

    check_host(host, public)
    app = make_app(db_path)
    uvicorn.run(
        app,
        host=host,
        port=port,
        access_log=False,  # the log would print personal tokens (/t/<token>)
        log_level="warning",
        server_header=False,
        limit_concurrency=64,
        timeout_keep_alive=5,
    )
