"""Reduced precision check: do a judge's verdicts survive bf16 inference in the vLLM engine?

Judges K held-out BiGGen Bench human-eval items (pointwise, 1-5; the 16 prompts of
``bench/sampling.py`` are left out) greedily with ``VLLMBackend`` at float32 and at each
reduced precision, then compares, per item: the greedy judgment's verdict (an unparseable
judgment counts as its own verdict) and text, and the verdict-token probabilities right after
"[RESULT] " at the start of the answer (``option_probs``; the same context at every
precision, so every item gets a score even when its judgment does not parse): their argmax
(the score-probability verdict) and expected score. Pass: both kinds of verdict agree on
>= 95% of items, the greedy verdict distributions differ by at most 0.05 in total variation
(half the summed absolute differences of the shares) and expected scores by at most 0.05 on
average. Writes ``bench/results/precision.{md,json}``.

    python bench/precision.py                       # 120 items, 256 new tokens, float32 vs bf16
    python bench/precision.py --items 8 --max-new-tokens 64 --output precision_smoke
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "biggen-bench"
RESULTS = REPO / "bench" / "results"
AGREEMENT_TARGET = 0.95
TV_TOLERANCE = 0.05
EXPECTED_SCORE_TOLERANCE = 0.05
MIN_PARSED_SHARE = 0.5
"""Below this share of parseable float32 judgments the greedy-verdict check says nothing (an
untrained model that never writes "[RESULT] n" agrees with itself trivially): no pass."""
SAMPLING_BENCH_PROMPTS = 16
OPTIONS = ["1", "2", "3", "4", "5"]


def held_out_items(k: int, data: Path):
    """``k`` items spread over BiGGen human-eval, none of those ``bench/sampling.py`` times."""
    from srjudge.data.sources import load_biggen_human

    paths = sorted(data.glob("human_eval_*.jsonl"))
    if not paths:
        raise SystemExit(f"no BiGGen Bench human_eval_*.jsonl files in {data} (see --data)")
    examples = [e for p in paths for e in load_biggen_human(p).examples]
    step = max(1, len(examples) // SAMPLING_BENCH_PROMPTS)
    timed = {e.id for e in examples[::step][:SAMPLING_BENCH_PROMPTS]}
    rest = [e for e in examples if e.id not in timed]
    return rest[:: max(1, len(rest) // k)][:k]


def judge_all(model: str, dtype: str, examples, max_new_tokens: int) -> dict:
    """Greedy judgments, verdicts and expected scores of every item at one precision."""
    from srjudge.judging.backends import SamplingParams
    from srjudge.judging.backends.vllm import VLLMBackend
    from srjudge.judging.judge import RESULT_PREFIX
    from srjudge.judging.parsing import Parsed, parse_judgment
    from srjudge.judging.prompts import judge_prompt

    start = time.perf_counter()
    backend = VLLMBackend(model, dtype=dtype)
    load = time.perf_counter() - start
    prompts = [judge_prompt(e) for e in examples]
    start = time.perf_counter()
    greedy = SamplingParams(n=1, temperature=0, max_new_tokens=max_new_tokens)
    texts = [samples[0] for samples in backend.generate(prompts, greedy)]
    generate_seconds = time.perf_counter() - start
    verdicts = []
    for text in texts:
        parsed = parse_judgment(text, "pointwise")
        verdicts.append(parsed.verdict if isinstance(parsed, Parsed) else None)
    probs = backend.option_probs_many([(p, RESULT_PREFIX) for p in prompts], OPTIONS)
    backend.close()
    return {
        "dtype": dtype,
        "load_seconds": load,
        "generate_seconds": generate_seconds,
        "texts": texts,
        "verdicts": verdicts,
        "probability_verdicts": [1 + max(range(len(p)), key=p.__getitem__) for p in probs],
        "expected_scores": [sum((i + 1) * x for i, x in enumerate(p)) for p in probs],
    }


def compare(reference: dict, other: dict) -> dict:
    """Agreement of ``other`` with ``reference`` (pure; lists aligned by item)."""
    pairs = list(zip(reference["verdicts"], other["verdicts"], strict=True))
    n = len(pairs)
    shares = [Counter(v for v, _ in pairs), Counter(v for _, v in pairs)]
    keys = set(shares[0]) | set(shares[1])
    tv = sum(abs(shares[0][k] - shares[1][k]) for k in keys) / (2 * n)
    expected = list(zip(reference["expected_scores"], other["expected_scores"], strict=True))
    diff = sum(abs(a - b) for a, b in expected) / n
    same_text = sum(a == b for a, b in zip(reference["texts"], other["texts"], strict=True))
    agreement = sum(a == b for a, b in pairs) / n
    by_probs = zip(reference["probability_verdicts"], other["probability_verdicts"], strict=True)
    probability_agreement = sum(a == b for a, b in by_probs) / n
    parsed_share = sum(v is not None for v in reference["verdicts"]) / n
    # A judge that mostly writes one verdict agrees with itself easily: also report the
    # agreement on the items whose float32 verdict is not its most common one.
    modal = shares[0].most_common(1)[0][0]
    rest = [(a, b) for a, b in pairs if a != modal]
    return {
        "dtype": other["dtype"],
        "items": n,
        "parsed_share_reference": parsed_share,
        "verdict_agreement": agreement,
        "identical_text": same_text / n,
        "verdict_distribution_reference": {str(k): shares[0][k] for k in sorted(keys, key=str)},
        "verdict_distribution": {str(k): shares[1][k] for k in sorted(keys, key=str)},
        "total_variation": tv,
        "modal_verdict_reference": str(modal),
        "items_other_verdicts": len(rest),
        "verdict_agreement_other_verdicts": (sum(a == b for a, b in rest) / len(rest))
        if rest
        else None,
        "probability_verdict_agreement": probability_agreement,
        "expected_score_mean_abs_diff": diff,
        "expected_score_max_abs_diff": max(abs(a - b) for a, b in expected),
        "expected_score_mean_reference": sum(a for a, _ in expected) / n,
        "expected_score_mean": sum(b for _, b in expected) / n,
        "passed": parsed_share >= MIN_PARSED_SHARE
        and min(agreement, probability_agreement) >= AGREEMENT_TARGET
        and tv <= TV_TOLERANCE
        and diff <= EXPECTED_SCORE_TOLERANCE,
    }


def write(report: dict, stem: Path) -> None:
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    rows = "\n".join(
        f"| {c['dtype']} | {c['items']} | {c['verdict_agreement']:.1%} | {c['identical_text']:.1%} "
        f"| {_share(c.get('verdict_agreement_other_verdicts'))} of "
        f"{c.get('items_other_verdicts', '-')} (modal: {c.get('modal_verdict_reference', '-')}) "
        f"| {c['total_variation']:.3f} | {c['verdict_distribution_reference']} "
        f"| {c['verdict_distribution']} | {c['probability_verdict_agreement']:.1%} "
        f"| {c['expected_score_mean_reference']:.3f} / {c['expected_score_mean']:.3f} "
        f"| {c['expected_score_mean_abs_diff']:.4f} ({c['expected_score_max_abs_diff']:.4f}) "
        f"| {'yes' if c['passed'] else 'NO'} |"
        for c in report["comparisons"]
    )
    stem.with_suffix(
        ".md"
    ).write_text(f"""# Reduced precision check (vLLM engine, greedy verdicts vs float32)

Command: `{report["command"]}`
Date: {report["date"]}; conditions: {report["conditions"]}

{report["items"]} held-out BiGGen Bench human-eval items (pointwise 1-5, none of the sampling
benchmark's prompts), model `{report["model"]}`, greedy, up to {report["max_new_tokens"]} new
tokens. Greedy verdicts: from the judgment text (None = unparseable). Score-probability
verdicts and expected scores: from P(1..5) right after "[RESULT] " at the start of the answer.
Pass: both verdict agreements >= {AGREEMENT_TARGET:.0%}, total variation distance of the greedy
verdict distributions <= {TV_TOLERANCE}, mean |expected score difference| <=
{EXPECTED_SCORE_TOLERANCE}, and at least {MIN_PARSED_SHARE:.0%} of the float32 judgments parse (else
the greedy-verdict check is vacuous: run it on a trained judge, e.g. a run's SFT model).

| precision | items | greedy verdicts agree | identical text | agree where float32's verdict is not its modal one | TV distance | float32 verdicts | its verdicts | score-probability verdicts agree | mean expected score float32 / it | mean (max) abs diff of expected score | pass |
|---|---|---|---|---|---|---|---|---|---|---|---|
{rows}
""")  # noqa: E501


def _share(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def rerender(stem: Path) -> None:
    """Recompute the comparisons of a saved report (after a change to ``compare``)."""
    report = json.loads(stem.with_suffix(".json").read_text())
    reference, *others = report["runs"]
    report["comparisons"] = [compare(reference, o) for o in others]
    write(report, stem)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--items", type=int, default=120)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--dtypes", default="bfloat16", help="compared against float32")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--output", default="precision")
    parser.add_argument("--note", default="")
    args = parser.parse_args(argv)
    examples = held_out_items(args.items, args.data)
    reference = judge_all(args.model, "float32", examples, args.max_new_tokens)
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    others = [judge_all(args.model, d, examples, args.max_new_tokens) for d in dtypes]
    report = {
        "command": "python bench/precision.py " + " ".join(argv or sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "conditions": f"load average at end {os.getloadavg()}; {args.note}",
        "model": args.model,
        "items": len(examples),
        "max_new_tokens": args.max_new_tokens,
        "example_ids": [e.id for e in examples],
        "comparisons": [compare(reference, o) for o in others],
        "runs": [reference, *others],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    write(report, RESULTS / args.output)
    print(json.dumps(report["comparisons"], indent=2))


if __name__ == "__main__":
    main()
