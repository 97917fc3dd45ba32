"""The FastAPI app of ``srjudge serve``: routes, limits and the batcher, over one backend.

    from srjudge.judging.backends import load_backend
    from srjudge.serving import ServeSettings, create_app
    app = create_app(load_backend("mock", "m"), ServeSettings(model_name="m"))
    # uvicorn.run(app, host="127.0.0.1", port=8000)   -- what `srjudge serve` does

Routes (JSON; README "Serving a judge" has a curl example of each):

* ``POST /v1/grade``, ``POST /v1/compare``: srjudge examples in, one result per item, in order.
* ``POST /v1/reward``: prompts + responses + rubric -> rewards in [0, 1] (null + reason when no
  judgment parsed, never 0).
* ``POST /v1/chat/completions``: OpenAI-compatible pass-through to the judge model.
* ``GET /health`` (no key needed), ``GET /v1/models``, ``GET /metrics`` (Prometheus text),
  ``GET /docs`` and ``/openapi.json`` (the typed contract).

Bad requests are refused whole: the first invalid item gives 422 naming its index and field,
and nothing of the request is judged. Model work runs in the batcher's worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Hashable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from srjudge import __version__
from srjudge.serving import jobs, schemas
from srjudge.serving.batcher import Batcher, BatcherStopped, BatchStats, QueueFull
from srjudge.serving.errors import ApiError, install_handlers
from srjudge.serving.guards import LimitBody, ObserveRequests, RequireApiKey
from srjudge.serving.metrics import Metrics
from srjudge.serving.settings import ServeSettings

log = logging.getLogger("srjudge.serving")

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": schemas.ErrorBody, "description": text}
    for code, text in {
        401: "missing or wrong API key",
        413: "request body too large",
        422: "invalid request or item (field and index named)",
        502: "the judge backend failed",
        503: "queue full or shutting down (retry)",
        504: "timed out waiting for the model",
    }.items()
}
CHAT_IGNORED = frozenset(
    {"user", "metadata", "store", "service_tier", "parallel_tool_calls", "stream_options"}
)
"""OpenAI request keys that do not change the output; other unknown keys are refused."""


class Server:
    """What the routes share: settings, the model work, the batcher and the metrics."""

    def __init__(self, backend: jobs.Backend, settings: ServeSettings):
        settings.check()
        self.settings = settings
        self.work = jobs.ModelWork(
            backend,
            max_retries=settings.max_retries,
            batch_size=2 * (settings.max_batch + settings.max_items),  # one call per group
        )
        self.tokens = jobs.control_tokens(backend)
        self.backend_kind = backend.name.split(":", 1)[0]  # the name holds the model's path
        self.batcher = Batcher(
            self.work,
            max_batch=settings.max_batch,
            max_wait_s=settings.max_wait_ms / 1000,
            max_queue_items=settings.max_queue_items,
            on_batch=self._on_batch,
        )
        self.metrics = Metrics(lambda: self.batcher.queued_items)
        self.started = time.monotonic()
        self.created = int(time.time())

    def _on_batch(self, stats: BatchStats) -> None:
        self.metrics.observe_batch(stats)

    async def submit(self, request: Request, key: Hashable, items: Sequence[Any]) -> list[Any]:
        """Run items through the batcher. Batcher and backend failures become error answers;
        when the client disconnects first, its items are withdrawn (skipped if not started)."""
        work = asyncio.ensure_future(self.batcher.submit(key, items))
        gone = asyncio.ensure_future(_disconnected(request))
        try:
            done, _ = await asyncio.wait(
                {work, gone},
                timeout=self.settings.request_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            gone.cancel()
            if not work.done():
                work.cancel()
        if work not in done:
            if gone in done:
                self.metrics.disconnects.inc()
                raise ApiError(499, "the client closed the request", "client_closed")
            limit = int(self.settings.request_timeout_s)
            raise ApiError(504, f"no answer from the model within {limit}s", "timeout")
        try:
            return work.result()
        except QueueFull as e:
            raise ApiError(503, str(e), "overloaded", headers={"Retry-After": "1"}) from None
        except BatcherStopped as e:
            raise ApiError(503, str(e), "unavailable", headers={"Retry-After": "1"}) from None
        except Exception:
            log.exception("backend call failed")
            raise ApiError(
                502, "the judge backend failed (details are in the server log)", "backend_error"
            ) from None

    # -- checks shared by the judging routes ------------------------------------------------

    def check_count(self, field: str, count: int) -> None:
        if count > self.settings.max_items:
            raise ApiError(
                422,
                f"{field}: {count} exceeds the limit of {self.settings.max_items}"
                " per request (--max-items)",
                "too_many_items",
                field=field,
                limit=self.settings.max_items,
            )

    def params(
        self,
        samples: int,
        temperature: float | None,
        top_p: float,
        max_new_tokens: int | None,
        seed: int,
        *,
        names: tuple[str, str] = ("samples", "max_new_tokens"),
    ) -> jobs.SamplingParams:
        """Sampling parameters within the server's limits (``names``: the request's fields)."""
        s = self.settings
        if samples > s.max_samples:
            raise ApiError(
                422,
                f"{names[0]}: {samples} exceeds the limit of {s.max_samples} (--max-samples)",
                "limit",
                field=names[0],
                limit=s.max_samples,
            )
        tokens = s.default_max_new_tokens if max_new_tokens is None else max_new_tokens
        if tokens > s.max_new_tokens:
            raise ApiError(
                422,
                f"{names[1]}: {tokens} exceeds the limit of {s.max_new_tokens} (--max-new-tokens)",
                "limit",
                field=names[1],
                limit=s.max_new_tokens,
            )
        return jobs.sampling_params(samples, temperature, top_p, tokens, seed)


async def _disconnected(request: Request) -> None:
    """Returns when the client goes away. The body has been read by then, so the next ASGI
    message is ``http.disconnect``."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def item_error(e: jobs.ItemError) -> ApiError:
    return ApiError(422, str(e), "invalid_item", field=e.field, index=e.index)


def create_app(
    backend: jobs.Backend, settings: ServeSettings, *, close_backend: bool = False
) -> FastAPI:
    """The app over ``backend``; the batcher runs while the app's lifespan does.

    ``close_backend``: the app owns the backend and calls its ``close()`` (the vLLM engine's
    processes) when its lifespan ends. That is the place: after a SIGTERM, uvicorn finishes its
    shutdown and then re-raises the signal, so code after ``uvicorn.run`` never runs.
    """
    server = Server(backend, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await server.batcher.start()
        try:
            yield
        finally:
            await server.batcher.stop()
            close = getattr(backend, "close", None)
            if close_backend and close is not None:
                close()

    app = FastAPI(
        title="srjudge",
        version=__version__,
        description="A self-rationalizing LLM judge as a service (arXiv 2410.05495).",
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
    )
    app.state.server = server
    install_handlers(app)
    app.add_middleware(LimitBody, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequireApiKey, api_key=settings.api_key)
    app.add_middleware(ObserveRequests, metrics=server.metrics)
    _add_info_routes(app, server)
    _add_judge_routes(app, server)
    _add_openai_routes(app, server)
    return app


def _add_info_routes(app: FastAPI, server: Server) -> None:
    @app.get("/health", response_model=schemas.Health)
    async def health() -> schemas.Health:
        return schemas.Health(
            status="ok",
            model=server.settings.model_name,
            backend=server.backend_kind,
            queued_items=server.batcher.queued_items,
            uptime_s=round(time.monotonic() - server.started, 1),
        )

    @app.get("/metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(server.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models", response_model=schemas.ModelList)
    async def models() -> schemas.ModelList:
        card = schemas.ModelCard(id=server.settings.model_name, created=server.created)
        return schemas.ModelList(data=[card])


def _add_judge_routes(app: FastAPI, server: Server) -> None:
    name = server.settings.model_name

    @app.post("/v1/grade", response_model=schemas.GradeResponse)
    async def grade(body: schemas.GradeRequest, request: Request) -> schemas.GradeResponse:
        server.check_count("items", len(body.items))
        params = server.params(
            body.samples, body.temperature, body.top_p, body.max_new_tokens, body.seed
        )
        try:
            examples = jobs.parse_items(body.items, "pointwise")
            jobs.check_control_tokens(examples, server.tokens, "items")
        except jobs.ItemError as e:
            raise item_error(e) from None
        if body.expected_score and not server.work.reads_probabilities:
            raise ApiError(
                422,
                f"expected_score: the {server.backend_kind} backend "
                "cannot read token probabilities",
                "unsupported",
                field="expected_score",
            )
        key = jobs.GradeKey(params, body.score_only, body.expected_score)
        grades = await server.submit(request, key, examples)
        server.metrics.observe_items("/v1/grade", len(grades), jobs.parse_failures(grades))
        return schemas.GradeResponse(model=name, results=[jobs.grade_result(g) for g in grades])

    @app.post("/v1/compare", response_model=schemas.CompareResponse)
    async def compare(body: schemas.CompareRequest, request: Request) -> schemas.CompareResponse:
        server.check_count("items", len(body.items))
        params = server.params(
            body.samples, body.temperature, body.top_p, body.max_new_tokens, body.seed
        )
        try:
            examples = jobs.parse_items(body.items, "pairwise")
            jobs.check_control_tokens(examples, server.tokens, "items")
        except jobs.ItemError as e:
            raise item_error(e) from None
        key = jobs.CompareKey(params, body.score_only, body.both_orders)
        results = await server.submit(request, key, examples)
        server.metrics.observe_items("/v1/compare", len(results), jobs.parse_failures(results))
        return schemas.CompareResponse(
            model=name, results=[jobs.compare_result(c) for c in results]
        )

    @app.post("/v1/reward", response_model=schemas.RewardResponse)
    async def reward(body: schemas.RewardRequest, request: Request) -> schemas.RewardResponse:
        server.check_count("prompts", len(body.prompts))
        params = server.params(body.samples, body.temperature, 1.0, body.max_new_tokens, body.seed)
        try:
            examples = jobs.reward_examples(body)
            jobs.check_control_tokens(examples, server.tokens, "prompts")
        except jobs.ItemError as e:
            raise item_error(e) from None
        scorer = server.work.reads_probabilities
        method = "expected_score" if scorer else "sampled_mean"
        grades = await server.submit(request, jobs.GradeKey(params, False, scorer), examples)
        server.metrics.observe_items("/v1/reward", len(grades), jobs.parse_failures(grades))
        rows = [jobs.reward_of(g, method) for g in grades]
        return schemas.RewardResponse(
            model=name,
            method=method,
            scores=[r[0] for r in rows],
            rewards=[r[1] for r in rows],
            reasons=[r[2] for r in rows],
        )


def _check_chat(body: schemas.ChatRequest, server: Server) -> None:
    served = server.settings.model_name
    if body.model != served:
        raise ApiError(
            404,
            f"model {body.model!r} is not served here; this server serves {served!r}",
            "model_not_found",
            field="model",
        )
    if body.stream:
        raise ApiError(422, "stream: streaming is not supported", "unsupported", field="stream")
    for key, value in (body.model_extra or {}).items():
        if key not in CHAT_IGNORED and value not in (None, False, 0, [], {}):
            raise ApiError(422, f"{key}: this parameter is not supported", "unsupported", field=key)
    try:
        jobs.check_messages(body.messages, server.tokens)
    except jobs.ItemError as e:
        raise item_error(e) from None


def _add_openai_routes(app: FastAPI, server: Server) -> None:
    @app.post("/v1/chat/completions", response_model=schemas.ChatResponse)
    async def chat(body: schemas.ChatRequest, request: Request) -> schemas.ChatResponse:
        _check_chat(body, server)
        tokens = body.max_completion_tokens or body.max_tokens
        field = "max_completion_tokens" if body.max_completion_tokens else "max_tokens"
        params = server.params(
            body.n, body.temperature, body.top_p, tokens, body.seed or 0, names=("n", field)
        )
        (texts,) = await server.submit(
            request, jobs.ChatKey(params), [jobs.chat_prompt(body.messages)]
        )
        server.metrics.observe_items("/v1/chat/completions", 1)
        choices = [
            schemas.ChatChoice(index=i, message=schemas.ChatMessage(role="assistant", content=t))
            for i, t in enumerate(texts)
        ]
        return schemas.ChatResponse(
            id=f"chatcmpl-{uuid.uuid4().hex}",
            created=int(time.time()),
            model=server.settings.model_name,
            choices=choices,
        )
