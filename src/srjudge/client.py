"""``JudgeClient``: a small Python client of ``srjudge serve`` (httpx), with retries and timeouts.

    from srjudge.client import JudgeClient
    with JudgeClient("http://127.0.0.1:8000", api_key=None) as client:
        results = client.grade([example], samples=5)          # dicts, as in /v1/grade "results"
        results = client.compare([pair], both_orders=True)
        rewards = client.reward(prompts, responses, rubric)    # floats in [0, 1] or None

Items may be srjudge records (``PointwiseExample`` ...) or plain dicts in the JSONL form.
Connection errors, timeouts and 429/502/503/504 answers are retried with exponential backoff
(``Retry-After`` honoured), at most ``max_retries`` times; any other error answer raises
``JudgeClientError`` with the status and the server's message (which names the bad field).
A 500 is not retried: it is a server bug, and the same request would hit it again.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass
from typing import Any

import httpx

RETRY_STATUSES = frozenset({429, 502, 503, 504})


def backoff_delay(attempt: int, retry_after: str | None, backoff: float, cap: float) -> float:
    """Seconds to wait before retry ``attempt``: ``backoff * 2**attempt``, or the server's
    ``Retry-After`` in seconds (an HTTP date is ignored), never more than ``cap``."""
    delay = min(cap, backoff * 2**attempt)
    if retry_after:
        try:
            delay = min(cap, float(retry_after))
        except ValueError:
            pass  # an HTTP date: keep our own backoff
    return delay


class JudgeClientError(RuntimeError):
    """The server refused the request, or retries ran out. ``status`` is None when no
    answer came (connection error)."""

    def __init__(self, message: str, status: int | None = None, body: Any = None):
        super().__init__(message)
        self.status = status
        self.body = body


def _as_dict(item: Any) -> dict[str, Any]:
    return asdict(item) if is_dataclass(item) and not isinstance(item, type) else dict(item)


class JudgeClient:
    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 600.0,
        connect_timeout: float = 10.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 20.0,
        transport: httpx.BaseTransport | None = None,
    ):
        """``base_url`` is the server root (``http://host:port``); ``timeout`` bounds one
        attempt (judging on a CPU takes a while), ``connect_timeout`` the connection."""
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            transport=transport,
        )

    # -- routes ----------------------------------------------------------------------------

    def grade(self, items: Sequence[Any], **options: Any) -> list[dict[str, Any]]:
        """Grade pointwise examples; ``options``: samples, temperature, top_p,
        max_new_tokens, seed, score_only, expected_score."""
        body = {"items": [_as_dict(i) for i in items], **options}
        return self.post("/v1/grade", body)["results"]

    def compare(self, items: Sequence[Any], **options: Any) -> list[dict[str, Any]]:
        """Compare pairwise examples; ``options`` as ``grade`` plus both_orders."""
        body = {"items": [_as_dict(i) for i in items], **options}
        return self.post("/v1/compare", body)["results"]

    def reward(
        self,
        prompts: Sequence[Any],
        responses: Sequence[str],
        rubric: Any,
        **options: Any,
    ) -> list[float | None]:
        """Rewards in [0, 1], None where no judgment parsed (``reward_details`` has why)."""
        return self.reward_details(prompts, responses, rubric, **options)["rewards"]

    def reward_details(
        self, prompts: Sequence[Any], responses: Sequence[str], rubric: Any, **options: Any
    ) -> dict[str, Any]:
        """The whole /v1/reward answer: rewards, scores, reasons, method, model."""
        rubrics = [_as_dict(r) for r in rubric] if isinstance(rubric, list) else _as_dict(rubric)
        body = {"prompts": list(prompts), "responses": list(responses), "rubric": rubrics}
        return self.post("/v1/reward", {**body, **options})

    def health(self) -> dict[str, Any]:
        return self.request("GET", "/health")

    def models(self) -> list[str]:
        return [m["id"] for m in self.request("GET", "/v1/models")["data"]]

    # -- transport -------------------------------------------------------------------------

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("POST", path, body)

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        url = f"{self.base_url}{path}"
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                response = self._client.request(method, path, json=body)
            except httpx.TransportError as e:
                if last:
                    raise JudgeClientError(
                        f"{method} {url}: {type(e).__name__}: {e} "
                        f"(gave up after {attempt + 1} attempts)"
                    ) from e
                self._sleep(attempt, None)
                continue
            if response.status_code == 200:
                return response.json()
            if response.status_code in RETRY_STATUSES and not last:
                self._sleep(attempt, response.headers.get("retry-after"))
                continue
            raise self._error(method, url, response, attempt + 1)
        raise AssertionError("unreachable")

    def _sleep(self, attempt: int, retry_after: str | None) -> None:
        time.sleep(backoff_delay(attempt, retry_after, self.backoff, self.max_backoff))

    @staticmethod
    def _error(method: str, url: str, response: httpx.Response, attempts: int) -> JudgeClientError:
        try:
            body = response.json()
            message = body["error"]["message"]
        except (ValueError, KeyError, TypeError):
            body, message = None, response.text[:300]
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        return JudgeClientError(
            f"{method} {url} -> HTTP {response.status_code}{tries}: {message}",
            response.status_code,
            body,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> JudgeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
