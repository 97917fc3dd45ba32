"""Helpers shared by the tests of ``srjudge.annotation`` (tests/test_annotate_*.py).

* ``FIXTURES``: hand-made inputs. ``demo_run/`` is laid out like a demo run (held-out data and
  the ``srjudge eval`` folders of J_SFT and J_2, six MT-Bench items); ``judge/`` holds two
  ``srjudge judge`` outputs (models ``secret-model-alpha`` / ``-beta``) whose item ``q3``
  carries ``<script>`` in a rationale and in the response.
* ``write_judge_pair``: two synthetic ``srjudge judge`` outputs of n items, for larger studies.
* ``LiveServer``: the real app under uvicorn in a thread, on a free loopback port.
* ``login``: an httpx client holding an annotator's cookie.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from srjudge.annotation import store
from srjudge.annotation.app import make_app
from srjudge.annotation.study import create_study

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "annotate"
DEMO = FIXTURES / "demo_run" / "stages"
JUDGE = FIXTURES / "judge"
MODEL_WORDS = ("secret-model-alpha", "secret-model-beta", "iter2_dpo", "eval_sft", "a.jsonl")

RUBRIC = {"criteria": "Is it right?", "score_descriptions": ["1", "2", "3", "4", "5"]}


def demo_study(path: Path, **kw) -> Path:
    create_study(DEMO / "13_eval_iter2_dpo", DEMO / "11_eval_sft", path, **kw)
    return path


def judge_study(path: Path, **kw) -> Path:
    kw = {"label_a": "alpha-judge", "label_b": "beta-judge", **kw}
    create_study(
        JUDGE / "a.jsonl", JUDGE / "b.jsonl", path, examples=[JUDGE / "examples.jsonl"], **kw
    )
    return path


def write_judge_pair(folder: Path, n: int) -> tuple[Path, Path, Path]:
    """(examples, a, b): n pointwise items, both models give score 3 with distinct texts."""
    folder.mkdir(parents=True, exist_ok=True)
    ex, a, b = folder / "examples.jsonl", folder / "a.jsonl", folder / "b.jsonl"
    with open(ex, "w") as fe, open(a, "w") as fa, open(b, "w") as fb:
        for i in range(n):
            ctx = [{"role": "user", "content": f"question {i}"}]
            row = {"kind": "pointwise", "id": f"x{i}", "context": ctx, "response": f"answer {i}"}
            fe.write(json.dumps(row | {"rubric": RUBRIC}) + "\n")
            for f, who in ((fa, "A"), (fb, "B")):
                rec = {"id": f"x{i}", "kind": "pointwise", "verdict": 3, "rationale": f"{who}{i}"}
                f.write(json.dumps(rec | {"counts": {"judgments": 1}}) + "\n")
    return ex, a, b


def add(db: Path, name: str) -> str:
    with store.opened(db) as conn:
        return store.add_annotator(conn, name)


class LiveServer:
    """``make_app(db)`` served by uvicorn in a background thread (``with LiveServer(db) as s``)."""

    def __init__(self, db: Path):
        config = uvicorn.Config(
            make_app(db), host="127.0.0.1", port=0, log_level="warning", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = ""

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def login(base_url: str, token: str) -> httpx.Client:
    client = httpx.Client(base_url=base_url, timeout=30)
    r = client.get(f"/t/{token}")
    assert r.status_code == 303 and "srjudge_annotator" in client.cookies, r.status_code
    return client


def post_label(client, n: int, choice: str, reasons=(), comment: str = ""):
    data = {"choice": choice, "reason": list(reasons), "comment": comment}
    return client.post(f"/item/{n}", data=data, follow_redirects=False)


def db_labels(db: Path) -> dict[tuple[str, int], tuple[str, tuple[str, ...], str]]:
    """{(annotator, position): (choice, reasons, comment)} as stored."""
    with store.opened(db) as conn:
        return {
            (r.annotator, r.position): (r.choice, r.reasons, r.comment)
            for r in store.all_labels(conn)
        }
