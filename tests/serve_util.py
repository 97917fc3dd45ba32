"""Helpers of the serving tests: a real uvicorn server in a thread, test items, mock backends."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import uvicorn

from srjudge.judging.backends import MockBackend, SamplingParams
from srjudge.records import Message
from srjudge.serving import ServeSettings, create_app

FIXTURES = Path(__file__).parent / "fixtures" / "data"
RUBRIC = {
    "criteria": "Is the answer correct?",
    "score_descriptions": ["wrong", "mostly wrong", "partly right", "right, gaps", "right"],
}


def point(i: int, score: int | None = None, **extra) -> dict:
    """A pointwise item; the scripted mock judge gives it ``score`` (none: an unparseable one)."""
    response = f"answer {i} SCORE={score}" if score else f"answer {i} without a score"
    return {
        "kind": "pointwise",
        "id": f"p{i}",
        "context": [{"role": "user", "content": f"q{i}"}],
        "response": response,
        "rubric": RUBRIC,
        **extra,
    }


def pair(i: int, winner: int) -> dict:
    good, bad = f"WINNER {i}", f"LOSER {i}"
    r1, r2 = (good, bad) if winner == 1 else (bad, good)
    return {
        "kind": "pairwise",
        "id": f"c{i}",
        "context": [{"role": "user", "content": f"q{i}"}],
        "response_1": r1,
        "response_2": r2,
        "rubric": RUBRIC,
    }


def scripted(prompt: Sequence[Message], index: int) -> str:
    """A judge that reads its verdict from the text: ``SCORE=k`` -> k; of two responses the
    one saying WINNER; otherwise text without a verdict. Same answer for every sample."""
    text = prompt[-1].content
    if "EXPLODE" in text:
        raise RuntimeError("/secret/path/model.safetensors: scripted failure")
    if "WINNER" in text:
        return f"It is right. [RESULT] {1 if text.index('WINNER') < text.index('LOSER') else 2}"
    m = re.search(r"SCORE=(\d)", text)
    return f"Reasons. [RESULT] {m.group(1)}" if m else "I cannot decide."


class SlowMock(MockBackend):
    """The scripted mock, sleeping ``delay`` seconds per call and recording each call's size."""

    def __init__(self, delay: float = 0.0, name: str = "mock:test"):
        super().__init__(scripted, name=name)
        self.delay = delay
        self.sizes: list[int] = []

    def generate(self, prompts, params: SamplingParams):
        self.sizes.append(len(prompts))
        time.sleep(self.delay)
        return super().generate(prompts, params)


@contextlib.contextmanager
def running(backend, **settings) -> Iterator[str]:
    """Serve ``create_app(backend, ServeSettings(model_name="m", **settings))`` on a free
    loopback port in a thread; yields the base URL."""
    app = create_app(backend, ServeSettings(model_name="m", **settings))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fixture_items(kind: str) -> list[dict]:
    lines = (FIXTURES / "srjudge_good.jsonl").read_text().splitlines()
    return [row for row in map(json.loads, lines) if row["kind"] == kind]


def metric(text: str, name: str) -> float:
    """The value of an unlabelled sample ``name`` in Prometheus text."""
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    if m is None:
        raise KeyError(name)
    return float(m.group(1))
