"""Prometheus metrics of one server (own registry, so several apps in one process don't clash).

    GET /metrics      # Prometheus text format

* ``srjudge_requests_total``: requests by ``route`` and HTTP ``status``
* ``srjudge_request_seconds``: request latency histogram by ``route``
* ``srjudge_items_total``: items judged (grade/compare/reward) or prompts (chat) by route
* ``srjudge_parse_failures_total``: judgments that did not parse after their retries, by route
* ``srjudge_batch_items``: items per backend call (the dynamic batch size)
* ``srjudge_batch_requests``: requests sharing one backend call
* ``srjudge_batch_seconds``: time of one backend call
* ``srjudge_backend_errors_total``: backend calls that raised
* ``srjudge_client_disconnects_total``: requests whose client left first (queued items dropped)
* ``srjudge_queued_items``: items waiting for the model now
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from srjudge.serving.batcher import BatchStats

ROUTES = (
    "/health",
    "/metrics",
    "/v1/models",
    "/v1/grade",
    "/v1/compare",
    "/v1/reward",
    "/v1/chat/completions",
)
LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def route_label(path: str) -> str:
    """Known routes as themselves, anything else as ``other`` (bounded label values)."""
    return path if path in ROUTES else "other"


class Metrics:
    def __init__(self, queued_items: Callable[[], int]):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "srjudge_requests", "HTTP requests", ["route", "status"], registry=r
        )
        self.latency = Histogram(
            "srjudge_request_seconds",
            "request latency",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.items = Counter("srjudge_items", "items judged or prompts", ["route"], registry=r)
        self.parse_failures = Counter(
            "srjudge_parse_failures", "unparseable judgments after retries", ["route"], registry=r
        )
        self.batch_items = Histogram(
            "srjudge_batch_items", "items per backend call", buckets=BATCH_BUCKETS, registry=r
        )
        self.batch_requests = Histogram(
            "srjudge_batch_requests",
            "requests per backend call",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.batch_seconds = Histogram(
            "srjudge_batch_seconds", "backend call time", buckets=LATENCY_BUCKETS, registry=r
        )
        self.disconnects = Counter(
            "srjudge_client_disconnects",
            "requests whose client left before the answer",
            registry=r,
        )
        self.backend_errors = Counter(
            "srjudge_backend_errors", "backend calls that raised", registry=r
        )
        queued = Gauge("srjudge_queued_items", "items waiting for the model", registry=r)
        queued.set_function(queued_items)

    def observe_request(self, path: str, status: int, seconds: float) -> None:
        route = route_label(path)
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def observe_items(self, route: str, items: int, parse_failures: int = 0) -> None:
        self.items.labels(route).inc(items)
        if parse_failures:
            self.parse_failures.labels(route).inc(parse_failures)

    def observe_batch(self, stats: BatchStats) -> None:
        self.batch_items.observe(stats.items)
        self.batch_requests.observe(stats.jobs)
        self.batch_seconds.observe(stats.seconds)
        if not stats.ok:
            self.backend_errors.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
