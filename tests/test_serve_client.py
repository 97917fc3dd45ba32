"""``JudgeClient`` against a real server (mock judge), and its retries, timeouts and errors."""

from __future__ import annotations

import httpx
import pytest

from serve_util import SlowMock, pair, point, running
from srjudge.client import JudgeClient, JudgeClientError
from srjudge.records import example_from_dict


@pytest.fixture(scope="module")
def url():
    with running(SlowMock()) as base:
        yield base


def test_routes(url):
    with JudgeClient(url) as client:
        assert client.health()["status"] == "ok"
        assert client.models() == ["m"]
        record = example_from_dict(point(0, 5))  # records and plain dicts both go
        graded = client.grade([record, point(1, 2)], samples=2)
        assert [g["verdict"] for g in graded] == [5, 2]
        compared = client.compare([pair(0, 2)], both_orders=True)
        assert compared[0]["verdict"] == 2 and compared[0]["consistent"] is True
        rubric = record.rubric
        assert client.reward(["q", "q"], ["SCORE=3", "none"], rubric) == [0.5, None]
        details = client.reward_details(["q"], ["nothing"], rubric)
        assert details["reasons"][0].startswith("no judgment parsed")


def test_a_refused_request_raises_with_the_servers_message_and_is_not_retried(url):
    with JudgeClient(url, backoff=0.01) as client:
        with pytest.raises(JudgeClientError, match=r"HTTP 422: items\[0\]\.response") as e:
            client.grade([{**point(0), "response": ""}])
    assert e.value.status == 422 and e.value.body["error"]["index"] == 0


def scripted_transport(statuses, calls):
    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        status = statuses.pop(0) if statuses else 200
        if status == "refused":
            raise httpx.ConnectError("refused", request=request)
        if status != 200:
            return httpx.Response(status, json={"error": {"message": f"scripted {status}"}})
        return httpx.Response(200, json={"results": [{"verdict": 3}]})

    return httpx.MockTransport(handler)


@pytest.mark.parametrize("statuses", [[503, 502], ["refused", 429], [504]])
def test_transient_failures_are_retried(statuses):
    calls: list = []
    transport = scripted_transport(list(statuses), calls)
    with JudgeClient("http://judge", transport=transport, backoff=0.001) as client:
        assert client.grade([point(0)]) == [{"verdict": 3}]
    assert len(calls) == len(statuses) + 1


def test_retries_are_bounded_and_500_is_not_retried():
    calls: list = []
    transport = scripted_transport([503] * 10, calls)
    with JudgeClient("http://judge", transport=transport, backoff=0.001, max_retries=2) as c:
        with pytest.raises(JudgeClientError, match="HTTP 503 after 3 attempts"):
            c.grade([point(0)])
    assert len(calls) == 3
    calls.clear()
    with JudgeClient("http://judge", transport=scripted_transport([500], calls)) as c:
        with pytest.raises(JudgeClientError, match="HTTP 500: scripted 500"):
            c.grade([point(0)])
    assert len(calls) == 1
    calls.clear()
    transport = scripted_transport(["refused"] * 5, calls)
    with JudgeClient("http://judge", transport=transport, backoff=0.001, max_retries=1) as c:
        with pytest.raises(JudgeClientError, match="ConnectError.*2 attempts") as e:
            c.grade([point(0)])
    assert e.value.status is None


def test_timeout():
    with running(SlowMock(delay=2.0)) as url:
        with JudgeClient(url, timeout=0.3, max_retries=0) as client:
            with pytest.raises(JudgeClientError, match="ReadTimeout"):
                client.grade([point(0, 1)])
