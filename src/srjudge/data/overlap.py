"""Contamination check: evaluation items whose prompt equals or shares an n-gram with training.

report = find_overlap(train_examples, eval_examples, ngram=13)
report.overlapping_ids, report.matches
srjudge data overlap TRAIN EVAL
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from srjudge.data.fields import prompt_text
from srjudge.records import (
    Example,
)

# ---------------------------------------------------------------------------------------
# contamination


def normalize(text: str) -> str:
    """Lowercase, punctuation to spaces, whitespace collapsed.

    >>> normalize("  Hello,   World!\\n")
    'hello world'
    """
    return " ".join(re.sub(r"[^\w\s]|_", " ", text.lower()).split())


def _ngrams(tokens: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


@dataclass
class OverlapReport:
    """Evaluation items whose prompt equals, or shares an ``ngram``-gram with, a training prompt.

    ``matches`` maps each flagged eval id to one training id it overlaps with.
    """

    n_train: int
    n_eval: int
    ngram: int
    exact_ids: list[str]
    ngram_ids: list[str]
    matches: dict[str, str]

    @property
    def overlapping_ids(self) -> list[str]:
        return self.exact_ids + self.ngram_ids

    def summary(self) -> str:
        return (
            f"eval items: {self.n_eval}, train items: {self.n_train}, "
            f"exact prompt matches: {len(self.exact_ids)}, "
            f"shared {self.ngram}-gram: {len(self.ngram_ids)}, "
            f"overlapping: {len(self.overlapping_ids)}"
        )


def find_overlap(
    train_examples: Iterable[Example], eval_examples: Iterable[Example], ngram: int = 13
) -> OverlapReport:
    """Flag eval items whose prompt (``prompt_text``) overlaps a training prompt.

    Exact: equal after ``normalize``, where a multi-turn prompt also matches on any single user
    turn of at least ``_MIN_TURN_TOKENS`` tokens (so RewardBench's first-turn MT-Bench prompts
    match MT-Bench's two-turn ones). N-gram: at least one run of ``ngram`` word tokens in
    common (13 as in GPT-3's contamination analysis). System turns and the judged responses
    are not compared.
    """
    if ngram < 1:
        raise ValueError(f"ngram must be >= 1, got {ngram}")
    exact: dict[str, str] = {}
    grams: dict[tuple[str, ...], str] = {}
    n_train = 0
    for ex in train_examples:
        n_train += 1
        for text in _exact_keys(ex):
            exact.setdefault(text, ex.id)
        for g in _ngrams(normalize(prompt_text(ex)).split(), ngram):
            grams.setdefault(g, ex.id)
    report = OverlapReport(n_train, 0, ngram, [], [], {})
    for ex in eval_examples:
        report.n_eval += 1
        hit = next((exact[t] for t in _exact_keys(ex) if t in exact), None)
        if hit is not None:
            report.exact_ids.append(ex.id)
            report.matches[ex.id] = hit
            continue
        tokens = normalize(prompt_text(ex)).split()
        hit = next((grams[g] for g in _ngrams(tokens, ngram) if g in grams), None)
        if hit is not None:
            report.ngram_ids.append(ex.id)
            report.matches[ex.id] = hit
    return report


# Single user turns shorter than this ("Continue.", "Why?") are too common to mean contamination.
_MIN_TURN_TOKENS = 5


def _exact_keys(example: Example) -> set[str]:
    """The normalized whole prompt, plus each user turn long enough to be distinctive."""
    keys = {normalize(prompt_text(example))}
    turns = (normalize(m.content) for m in example.context if m.role == "user")
    keys.update(t for t in turns if len(t.split()) >= _MIN_TURN_TOKENS)
    return keys
