"""``srjudge serve`` as a real process (mock backend), and ``srjudge judge --backend openai``
pointed at it: the OpenAI-compatible route works for srjudge's own client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from serve_util import free_port, point
from srjudge import cli
from srjudge.records import read_jsonl

KEY = "s3cret-key-0123456789"


def serve(tmp_path, *args: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "srjudge.cli",
        "serve",
        "--backend",
        "mock",
        "--model",
        "m",
        "--port",
        str(port),
        "--mock-output",
        "Well argued. [RESULT] 4",
        *args,
    ]
    log = open(tmp_path / f"serve-{port}.log", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((tmp_path / f"serve-{port}.log").read_text())
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("srjudge serve did not start in 60 s")


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "key"
    path.write_text(KEY + "\n")
    path.chmod(0o600)
    return path


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_srjudge_judge_with_the_openai_backend_against_srjudge_serve(
    tmp_path, key_file, monkeypatch
):
    proc, url = serve(tmp_path, "--api-key-file", str(key_file))
    try:
        items = tmp_path / "in.jsonl"
        items.write_text("".join(json.dumps(point(i)) + "\n" for i in range(3)))
        out = tmp_path / "out.jsonl"
        args = [
            "judge",
            "--backend",
            "openai",
            "--base-url",
            f"{url}/v1",
            "--model",
            "m",
            "--input",
            str(items),
            "--output",
            str(out),
            "--samples",
            "2",
            "--no-progress",
        ]
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        assert cli.main(args) == 0
        rows = list(read_jsonl(out))
        assert [r["id"] for r in rows] == ["p0", "p1", "p2"]
        assert all(r["verdict"] == 4 and len(r["samples"]) == 2 for r in rows)
        metrics = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {KEY}"}).text
        assert 'srjudge_requests_total{route="/v1/chat/completions",status="200"} 3.0' in metrics
        # a wrong key is refused, and srjudge judge says so
        monkeypatch.setenv("OPENAI_API_KEY", "wrong-key-wrong-key")
        args[args.index("--output") + 1] = str(tmp_path / "refused.jsonl")
        assert cli.main(args) == 1
    finally:
        stop(proc)


def test_grade_through_the_cli_server(tmp_path):
    proc, url = serve(tmp_path)
    try:
        r = httpx.post(url + "/v1/grade", json={"items": [point(0)]}, timeout=10)
        assert r.status_code == 200 and r.json()["results"][0]["verdict"] == 4
        assert httpx.get(url + "/v1/models").json()["data"][0]["id"] == "m"
    finally:
        stop(proc)


def run_serve(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "srjudge.cli", "serve", "--backend", "mock", "--model", "m", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_a_public_host_needs_an_api_key(tmp_path, key_file):
    r = run_serve("--host", "0.0.0.0")
    assert r.returncode == 2 and "needs an API key" in r.stderr
    key_file.chmod(0o644)
    r = run_serve("--host", "0.0.0.0", "--api-key-file", str(key_file))
    assert r.returncode == 2 and "readable by other users" in r.stderr
    empty = tmp_path / "empty"
    empty.write_text("\n")
    empty.chmod(0o600)
    r = run_serve("--api-key-file", str(empty))
    assert r.returncode == 2 and "empty" in r.stderr
    r = run_serve("--max-batch", "0")
    assert r.returncode == 2 and "max_batch" in r.stderr


CLOSING_SERVER = """
import sys, uvicorn
from srjudge.judging.backends import MockBackend
from srjudge.serving import ServeSettings, create_app

class Closing(MockBackend):
    def close(self):
        open(sys.argv[2], "w").write("closed")

port = int(sys.argv[1])
app = create_app(Closing(["[RESULT] 3"]), ServeSettings(model_name="m", port=port),
                 close_backend=True)
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
print("after uvicorn.run")  # never printed after SIGTERM: uvicorn re-raises it
"""


def test_sigterm_closes_the_backend(tmp_path):
    """uvicorn re-raises SIGTERM after its shutdown, so ``srjudge serve`` closes the backend (the
    vLLM engine's processes) in the app's lifespan, not after ``uvicorn.run``: else the engine
    was left running (found by bench/serve.py: 11 GB of orphaned engine processes)."""
    port, marker = free_port(), tmp_path / "closed"
    proc = subprocess.Popen(
        [sys.executable, "-c", CLOSING_SERVER, str(port), str(marker)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    proc.terminate()  # SIGTERM, as bench/serve.py, systemd and docker stop send
    out, _ = proc.communicate(timeout=60)
    assert marker.read_text() == "closed", out
    assert "after uvicorn.run" not in out
