"""Settings checks of ``srjudge serve`` (pure), as a table."""

from __future__ import annotations

import pytest

from srjudge.serving.jobs import _reward_field
from srjudge.serving.settings import ServeSettings, SettingsError

OK = dict(model_name="m")


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"host": "0.0.0.0"}, "needs an API key"),
        ({"host": "192.168.1.5"}, "needs an API key"),
        ({"host": "judge.example.com"}, "needs an API key"),
        ({"api_key": "short"}, "at least 16"),
        ({"max_batch": 0}, "max_batch"),
        ({"max_wait_ms": -1}, "max_wait_ms"),
        ({"default_max_new_tokens": 2048}, "default_max_new_tokens"),
        ({"max_queue_items": 10}, "max_queue_items"),
        ({"model_name": "runs/x/model"}, "plain name"),
    ],
)
def test_refused(changes, message):
    with pytest.raises(SettingsError, match=message):
        ServeSettings(**{**OK, **changes}).check()


@pytest.mark.parametrize(
    "changes",
    [{}, {"host": "localhost"}, {"host": "::1"}, {"host": "0.0.0.0", "api_key": "k" * 16}],
)
def test_accepted(changes):
    ServeSettings(**{**OK, **changes}).check()


@pytest.mark.parametrize(
    "record_field, index, rubric_list, request_field",
    [
        ("context", 2, False, "prompts[2]"),
        ("context[0].role", 2, False, "prompts[2][0].role"),
        ("response", 0, False, "responses[0]"),
        ("rubric.criteria", 1, False, "rubric.criteria"),
        ("rubric.criteria", 1, True, "rubric[1].criteria"),
        ("reference_answer", 3, False, "reference_answers[3]"),
    ],
)
def test_reward_fields_name_the_request_field(record_field, index, rubric_list, request_field):
    assert _reward_field(record_field, index, rubric_list) == request_field
