"""Sampling through any OpenAI-compatible chat endpoint (OpenAI, a local vLLM or llama.cpp
server, ...), over plain httpx.

    backend = OpenAIBackend("gpt-4o-mini")                       # OPENAI_API_KEY from the env
    backend = OpenAIBackend("judge", base_url="http://127.0.0.1:8000/v1")   # no key needed
    backend.generate([messages], SamplingParams(n=4, temperature=1.0))

Each prompt is one ``POST {base_url}/chat/completions`` with ``messages, n, temperature,
top_p, max_tokens, seed``; prompts of a batch are sent ``concurrency`` at a time. The server
applies the model's chat template. Some servers (llama.cpp's among them) ignore ``n`` and
answer with one choice: the missing completions are then asked for one request each, with
seeds ``seed + i`` so that a seed-honouring server does not return the same text n times,
and later calls go straight to one request per completion.

429 and 5xx answers and transport errors (refused connection, timeout) are retried with
exponential backoff (``Retry-After`` honoured), at most ``max_retries`` times; any other
error raises ``OpenAIError`` with the status and the server's message.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from srjudge.client import backoff_delay
from srjudge.judging.backends import SamplingParams
from srjudge.records import Message

DEFAULT_BASE_URL = "https://api.openai.com/v1"
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


class OpenAIError(RuntimeError):
    """The endpoint answered with an error that retrying will not fix (or retries ran out)."""


class OpenAIBackend:
    """A ``Backend`` over an OpenAI-compatible ``/chat/completions`` endpoint."""

    inputs_per_call = 32
    """Requests run ``concurrency`` at a time; 32 inputs per call (and per resume step)."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        concurrency: int = 8,
        extra_body: dict[str, Any] | None = None,
    ):
        """``base_url`` defaults to ``$OPENAI_BASE_URL``, then OpenAI's; ``api_key`` to
        ``$OPENAI_API_KEY`` (a local server usually needs none). ``extra_body`` is merged
        into every request (e.g. vLLM's ``{"top_k": 20}``)."""
        if max_retries < 0 or concurrency < 1:
            raise ValueError("max_retries must be >= 0 and concurrency >= 1")
        self.model = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip(
            "/"
        )
        api_key = api_key or os.environ.get("OPENAI_API_KEY")
        if not api_key and self.base_url == DEFAULT_BASE_URL:
            raise OpenAIError(
                "no API key for api.openai.com: set OPENAI_API_KEY, or point --base-url / "
                "OPENAI_BASE_URL at a local OpenAI-compatible server"
            )
        self.name = f"openai:{model}"
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.concurrency = concurrency
        self.extra_body = dict(extra_body or {})
        self.n_supported: bool | None = None
        """None until a call with n > 1 shows whether the server honours ``n``."""
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout,
            limits=httpx.Limits(max_connections=concurrency),
        )

    def generate(
        self, prompts: Sequence[Sequence[Message]], params: SamplingParams
    ) -> list[list[str]]:
        if len(prompts) <= 1 or self.concurrency == 1:
            return [self._complete(p, params) for p in prompts]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(prompts))) as pool:
            return list(pool.map(lambda p: self._complete(p, params), prompts))

    def _complete(self, prompt: Sequence[Message], params: SamplingParams) -> list[str]:
        """``params.n`` completions of one prompt."""
        if params.n == 1 or self.n_supported is not False:
            texts = self._request(prompt, params, params.n, params.seed)
            if params.n > 1:
                self.n_supported = len(texts) >= params.n
            if len(texts) >= params.n:
                return texts[: params.n]
        else:
            texts = []
        for i in range(len(texts), params.n):  # the server ignores n: one request each
            texts += self._request(prompt, params, 1, params.seed + i)[:1]
        return texts

    def _request(self, prompt: Sequence[Message], params: SamplingParams, n: int, seed: int):
        body = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in prompt],
            "n": n,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_new_tokens,
            "seed": seed,
            **self.extra_body,
        }
        data = self._post("/chat/completions", body)
        try:
            choices = sorted(data["choices"], key=lambda c: c.get("index", 0))
            texts = [c["message"].get("content") or "" for c in choices]
        except (KeyError, TypeError, AttributeError) as e:
            raise OpenAIError(
                f"{self.base_url}/chat/completions: unexpected answer {str(data)[:300]!r}"
            ) from e
        if not texts:
            raise OpenAIError(f"{self.base_url}/chat/completions: answer has no choices")
        return texts

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        url = f"{self.base_url}{path}"
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                response = self._client.post(path, json=body)
            except httpx.TransportError as e:
                if last:
                    raise OpenAIError(
                        f"POST {url}: {type(e).__name__}: {e} "
                        f"(gave up after {attempt + 1} attempts)"
                    ) from e
                self._sleep(attempt, None)
                continue
            if response.status_code == 200:
                try:
                    return response.json()
                except ValueError as e:
                    raise OpenAIError(
                        f"POST {url}: answer is not JSON: {response.text[:300]!r}"
                    ) from e
            if response.status_code in RETRY_STATUSES and not last:
                self._sleep(attempt, response.headers.get("retry-after"))
                continue
            raise OpenAIError(self._describe(url, response, attempt + 1))
        raise AssertionError("unreachable")

    def _sleep(self, attempt: int, retry_after: str | None) -> None:
        time.sleep(backoff_delay(attempt, retry_after, self.backoff, self.max_backoff))

    @staticmethod
    def _describe(url: str, response: httpx.Response, attempts: int) -> str:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:300]
        hint = {
            401: " -- check OPENAI_API_KEY / --api-key",
            403: " -- check OPENAI_API_KEY / --api-key",
            404: " -- check the base URL (it usually ends in /v1) and the model name",
        }.get(response.status_code, "")
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        return f"POST {url} -> HTTP {response.status_code}{tries}: {message}{hint}"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> OpenAIBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
