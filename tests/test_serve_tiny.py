"""``srjudge serve`` over the tiny random Llama (``tiny-random``): the real transformers backend
behind every judging route, the expected-score reward, and the tokenizer's control tokens."""

from __future__ import annotations

import httpx
import pytest

from serve_util import pair, point, running, scripted
from srjudge.judging.backends import SamplingParams, load_backend
from srjudge.judging.judge import score_prefix
from srjudge.judging.prompts import judge_prompt
from srjudge.records import example_from_dict


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_backend("transformers", tiny_model_dir, device="cpu")


class ScriptedScorer:
    """Judgments from the scripted mock, verdict probabilities from the tiny model: a
    ``VerdictScorer`` whose judgments parse, so the expected-score path is exercised."""

    def __init__(self, tiny):
        self.tiny = tiny
        self.name = "scripted+tiny"

    def generate(self, prompts, params: SamplingParams):
        return [[scripted(p, i) for i in range(params.n)] for p in prompts]

    def option_probs(self, prompt, prefix, options):
        return self.tiny.option_probs(prompt, prefix, options)


def test_routes_over_the_tiny_model(tiny):
    with running(tiny) as url:
        body = {"items": [point(0), point(1)], "max_new_tokens": 6}
        r = httpx.post(url + "/v1/grade", json=body, timeout=120)
        assert r.status_code == 200, r.text
        res = r.json()["results"]
        assert [x["id"] for x in res] == ["p0", "p1"]
        for x in res:  # random weights: whatever it wrote is reported, parsed or not
            assert x["raw"] == x["samples"][0]["raw"]
            assert (x["verdict"] is None) == (x["parse_error"] is not None)
        r = httpx.post(
            url + "/v1/compare",
            json={"items": [pair(0, 1)], "max_new_tokens": 4, "both_orders": True},
            timeout=120,
        )
        assert r.status_code == 200 and len(r.json()["results"][0]["swapped_samples"]) == 1
        chat = {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "n": 2,
            "max_tokens": 5,
            "temperature": 1.0,
            "seed": 3,
        }
        r = httpx.post(url + "/v1/chat/completions", json=chat, timeout=120)
        assert r.status_code == 200 and len(r.json()["choices"]) == 2
        reward = {
            "prompts": ["q"],
            "responses": ["a"],
            "rubric": point(0)["rubric"],
            "max_new_tokens": 4,
        }
        r = httpx.post(url + "/v1/reward", json=reward, timeout=120).json()
        assert r["method"] == "expected_score"
        assert r["rewards"][0] is None or 0 <= r["rewards"][0] <= 1
        # the tokenizer's own special tokens are refused in judged text, not just <|im_end|>
        bad = {"items": [{**point(0), "response": "see <filename>x"}]}
        r = httpx.post(url + "/v1/grade", json=bad, timeout=30)
        assert r.status_code == 422 and "<filename>" in r.json()["error"]["message"]


def test_reward_is_the_rescaled_expected_score(tiny):
    with running(ScriptedScorer(tiny)) as url:
        body = {
            "prompts": ["q0", "q1"],
            "responses": ["SCORE=2", "no score"],
            "rubric": point(0)["rubric"],
        }
        r = httpx.post(url + "/v1/reward", json=body, timeout=120).json()
        graded = httpx.post(
            url + "/v1/grade", timeout=120, json={"items": [point(0, 2)], "expected_score": True}
        ).json()
    example = example_from_dict(
        {**point(0), "id": "reward-0", "context": "q0", "response": "SCORE=2"}
    )
    probs = tiny.option_probs(
        judge_prompt(example), score_prefix("Reasons. [RESULT] 2"), ["1", "2", "3", "4", "5"]
    )
    expected = sum((k + 1) * p for k, p in enumerate(probs))
    assert r["method"] == "expected_score"
    assert r["scores"][0] == pytest.approx(expected)
    assert r["rewards"][0] == pytest.approx((expected - 1) / 4)
    assert r["rewards"][1] is None and "no judgment parsed" in r["reasons"][1]
    result = graded["results"][0]
    assert result["verdict"] == 2 and len(result["score_probs"]) == 5
    assert sum(result["score_probs"]) == pytest.approx(1.0)
