"""OpenAIBackend against a small fake OpenAI-compatible server (http.server on 127.0.0.1).

The server answers ``POST /v1/chat/completions`` with one choice per requested ``n`` (text
``"<seed>/<i> [RESULT] 3"``), and can be scripted to fail first (500, 429), to ignore ``n``
like some local servers do, or to reject the request.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from srjudge import cli
from srjudge.judging.backends import SamplingParams, load_backend
from srjudge.judging.backends.openai import OpenAIBackend, OpenAIError
from srjudge.judging.judge import Judge
from srjudge.records import Message, PointwiseExample, Rubric, to_dict

PROMPT = [Message("system", "You judge."), Message("user", "Rate this.")]


class FakeServer:
    def __init__(self, *, ignore_n=False, failures=(), status_body=None):
        self.ignore_n = ignore_n
        self.failures = list(failures)  # statuses to answer before succeeding
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(body)
                    server.headers.append(dict(self.headers))
                    failure = server.failures.pop(0) if server.failures else None
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                if failure is not None:
                    return self._send(failure, {"error": {"message": f"scripted {failure}"}})
                n = 1 if server.ignore_n else body.get("n", 1)
                choices = [
                    {
                        "index": i,
                        "message": {
                            "role": "assistant",
                            "content": f"{body['seed']}/{i} [RESULT] 3",
                        },
                        "finish_reason": "stop",
                    }
                    for i in reversed(range(n))  # out of order on purpose
                ]
                self._send(200, {"object": "chat.completion", "choices": choices})

            def _send(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def backend(server, **kw):
    return OpenAIBackend("judge-model", base_url=server.url, backoff=0.01, **kw)


def test_request_body_and_n_choices_in_order():
    with FakeServer() as server:
        b = backend(server, api_key="sk-test")
        params = SamplingParams(n=3, temperature=0.7, top_p=0.9, max_new_tokens=64, seed=5)
        assert b.generate([PROMPT], params) == [[f"5/{i} [RESULT] 3" for i in range(3)]]
        assert b.n_supported is True
    [body] = server.requests
    assert body == {
        "model": "judge-model",
        "messages": [
            {"role": "system", "content": "You judge."},
            {"role": "user", "content": "Rate this."},
        ],
        "n": 3,
        "temperature": 0.7,
        "top_p": 0.9,
        "max_tokens": 64,
        "seed": 5,
    }
    assert server.headers[0]["Authorization"] == "Bearer sk-test"
    assert b.name == "openai:judge-model"


def test_many_prompts_keep_their_order():
    with FakeServer() as server:
        b = backend(server, concurrency=4)
        prompts = [[Message("user", f"prompt {i}")] for i in range(10)]
        out = b.generate(prompts, SamplingParams(seed=1))
    assert out == [["1/0 [RESULT] 3"]] * 10
    sent = sorted(r["messages"][0]["content"] for r in server.requests)
    assert sent == sorted(f"prompt {i}" for i in range(10))


def test_500_then_200_is_retried():
    with FakeServer(failures=[500]) as server:
        assert backend(server).generate([PROMPT], SamplingParams()) == [["0/0 [RESULT] 3"]]
    assert len(server.requests) == 2


def test_429_and_503_are_retried_with_retry_after():
    with FakeServer(failures=[429, 503, 502]) as server:
        assert backend(server, max_retries=3).generate([PROMPT], SamplingParams()) == [
            ["0/0 [RESULT] 3"]
        ]
    assert len(server.requests) == 4


def test_retries_are_bounded():
    with FakeServer(failures=[500] * 10) as server:
        with pytest.raises(OpenAIError, match=r"HTTP 500 after 3 attempts: scripted 500"):
            backend(server, max_retries=2).generate([PROMPT], SamplingParams())
    assert len(server.requests) == 3


def test_client_error_is_not_retried_and_says_why():
    with FakeServer(failures=[400]) as server:
        with pytest.raises(OpenAIError, match=r"HTTP 400: scripted 400"):
            backend(server).generate([PROMPT], SamplingParams())
    assert len(server.requests) == 1
    with FakeServer(failures=[401]) as server:
        with pytest.raises(OpenAIError, match="OPENAI_API_KEY"):
            backend(server).generate([PROMPT], SamplingParams())


def test_wrong_base_url_hints_at_v1():
    with FakeServer() as server:
        b = OpenAIBackend("m", base_url=server.url.removesuffix("/v1"), backoff=0.01)
        with pytest.raises(OpenAIError, match=r"HTTP 404.*/v1"):
            b.generate([PROMPT], SamplingParams())


def test_server_ignoring_n_falls_back_to_one_request_per_sample():
    with FakeServer(ignore_n=True) as server:
        b = backend(server)
        out = b.generate([PROMPT], SamplingParams(n=3, temperature=1.0, seed=10))
        # distinct seeds, so a seed-honouring server does not repeat one sample
        assert out == [["10/0 [RESULT] 3", "11/0 [RESULT] 3", "12/0 [RESULT] 3"]]
        assert b.n_supported is False
        assert [(r["n"], r["seed"]) for r in server.requests] == [(3, 10), (1, 11), (1, 12)]
        server.requests.clear()
        out = b.generate([PROMPT], SamplingParams(n=2, seed=0))  # straight to n=1 requests
        assert out == [["0/0 [RESULT] 3", "1/0 [RESULT] 3"]]
        assert [(r["n"], r["seed"]) for r in server.requests] == [(1, 0), (1, 1)]


def test_connection_refused_is_retried_then_reported():
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    b = OpenAIBackend("m", base_url=f"http://127.0.0.1:{port}/v1", backoff=0.01, max_retries=1)
    with pytest.raises(OpenAIError, match="ConnectError.*2 attempts"):
        b.generate([PROMPT], SamplingParams())


def test_env_base_url_and_key(monkeypatch):
    with FakeServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/")
        monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
        b = load_backend("openai", "m", backoff=0.01)
        assert b.base_url == server.url
        b.generate([PROMPT], SamplingParams())
    assert server.headers[0]["Authorization"] == "Bearer sk-env"


def test_hosted_openai_without_key_fails_early(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(OpenAIError, match="OPENAI_API_KEY"):
        OpenAIBackend("gpt-4o-mini")


def example(i=0):
    rubric = Rubric("Helpful?", ("1", "2", "3", "4", "5"))
    return PointwiseExample(f"p{i}", [Message("user", "Hi")], "Hello", rubric)


def test_judge_over_openai_with_a_server_ignoring_n():
    with FakeServer(ignore_n=True, failures=[500]) as server:
        grade = Judge(backend(server)).grade(example(), samples=3, seed=3)
    assert [j.verdict for j in grade.judgments] == [3, 3, 3]
    assert [j.raw for j in grade.judgments] == [
        "3/0 [RESULT] 3",
        "4/0 [RESULT] 3",
        "5/0 [RESULT] 3",
    ]
    assert grade.judgments[0].model == "openai:judge-model"


def test_cli_judge_with_openai_backend(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(to_dict(example(i))) + "\n" for i in range(3)))
    out = tmp_path / "out.jsonl"
    with FakeServer(failures=[500]) as server:
        args = ["judge", "--backend", "openai", "--base-url", server.url, "--model", "m"]
        rc = cli.main([*args, "--input", str(src), "--output", str(out), "--no-progress"])
    assert rc == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["id"], r["verdict"]) for r in rows] == [("p0", 3), ("p1", 3), ("p2", 3)]
    assert "parse failures: 0" in capsys.readouterr().out
