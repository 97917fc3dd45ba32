"""Chat prompts as a local model receives them: the one path for sampling, training and
``srjudge prompt``.

    text = chat_text(tokenizer, messages)     # the model's chat template applied
    ids = chat_ids(tokenizer, messages)       # its token ids, checked

``chat_messages`` neutralises each message's content against the tokenizer's own control
strings (``neutralize.control_strings``: special tokens such as ``<|im_end|>``,
``<repo_name>``, ``</s>``) before the chat template sees it, so text under judgment is always
tokenized as plain text. The transformers backend samples from ``chat_ids``; SFT and DPO rows
go through ``chat_messages`` before TRL applies the same chat template
(``training.common.neutralize_rows``), so training and sampling see the same tokens.
``chat_ids`` also counts the control tokens of the result against the template's own (the
same chat with placeholder contents) and refuses a prompt that has more.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from srjudge.judging.neutralize import control_strings, neutralize_special
from srjudge.records import Message


class ControlTokenError(ValueError):
    """Text inside a prompt became control tokens (a tokenizer that neutralising missed)."""


def _as_pairs(messages: Sequence[Message] | Sequence[dict[str, str]]) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) if isinstance(m, dict) else (m.role, m.content)
            for m in messages]  # fmt: skip


def chat_messages(
    tokenizer: Any, messages: Sequence[Message] | Sequence[dict[str, str]]
) -> list[dict[str, str]]:
    """``[{"role", "content"}]`` with each content neutralised for ``tokenizer``."""
    strings = control_strings(tokenizer)
    return [
        {"role": role, "content": neutralize_special(content, strings)}
        for role, content in _as_pairs(messages)
    ]


def chat_text(tokenizer: Any, messages: Sequence[Message] | Sequence[dict[str, str]]) -> str:
    """The chat template applied to the neutralised messages, ending with the assistant
    turn's opening (``add_generation_prompt``)."""
    return tokenizer.apply_chat_template(
        chat_messages(tokenizer, messages), add_generation_prompt=True, tokenize=False
    )


def _control_ids(tokenizer: Any) -> set[int]:
    strings = control_strings(tokenizer)
    ids = tokenizer.convert_tokens_to_ids(list(strings)) if strings else []
    return {i for i in ids if i is not None and i != tokenizer.unk_token_id}


def chat_ids(tokenizer: Any, messages: Sequence[Message] | Sequence[dict[str, str]]) -> list[int]:
    """Token ids of ``chat_text``; raises ``ControlTokenError`` when the ids hold any control
    token more often than the template alone puts it there."""
    ids = tokenizer(chat_text(tokenizer, messages), add_special_tokens=False).input_ids
    placeholder = [{"role": role, "content": "x"} for role, _ in _as_pairs(messages)]
    expected = tokenizer(chat_text(tokenizer, placeholder), add_special_tokens=False).input_ids
    control = _control_ids(tokenizer)
    got = Counter(i for i in ids if i in control)
    want = Counter(i for i in expected if i in control)
    extra = {tokenizer.convert_ids_to_tokens(i): n - want[i] for i, n in got.items() if n > want[i]}
    if extra:
        raise ControlTokenError(
            f"prompt text became control tokens {extra} (more than the chat template puts "
            "there); this tokenizer needs another neutralising rule in srjudge.judging.neutralize"
        )
    return list(ids)


def option_context(
    tokenizer: Any, messages: Sequence[Message], prefix: str, options: Sequence[str]
) -> tuple[list[int], list[int]]:
    """(context ids, one token id per option) for reading P(option | chat + assistant
    ``prefix``): ``prefix`` is neutralised like message text, and each option must add
    exactly one token after the longest token prefix all ``prefix + option`` encodings share
    (e.g. prefix "... [RESULT] " and "1".."5"). Used by every backend that reads log-probs."""
    text = chat_text(tokenizer, messages) + neutralize_special(prefix, control_strings(tokenizer))
    encoded = [tokenizer(text + o, add_special_tokens=False).input_ids for o in options]
    common = _common_prefix_length(encoded)
    option_ids = []
    for option, ids in zip(options, encoded, strict=True):
        if len(ids) != common + 1:
            raise ValueError(
                f"option {option!r} is not a single token after the prefix "
                f"({len(ids) - common} tokens); adjust the prefix's trailing whitespace"
            )
        option_ids.append(ids[common])
    return encoded[0][:common], option_ids


def _common_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    """
    >>> _common_prefix_length([[1, 2, 3], [1, 2, 4], [1, 2]])
    2
    """
    length = min(len(s) for s in sequences)
    for i in range(length):
        if len({s[i] for s in sequences}) > 1:
            return i
    return length
