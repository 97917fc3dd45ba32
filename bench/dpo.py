"""DPO cost: TRL's reference set-ups vs ours (reference log-probs precomputed, prompts shared).

One DPO epoch with LoRA on SmolLM2-135M (``resolve_model("smollm2-135m")``, float32, CPU) over
K real preference pairs, through ``srjudge.training.dpo.run_dpo``; each variant in its own
subprocess so that peak RSS is per variant:

* ``trl_ref_copy``: TRL's default when a reference model is given: a separate frozen copy of the
  reference (here a byte copy of the SmolLM2 directory, so it is loaded as its own model) and
  a reference forward pass at every training step (``precompute_ref_log_probs=False``).
* ``trl_adapter_disabled``: TRL's LoRA default without a reference model: reference forward
  passes at every step through the adapter-disabled policy.
* ``precompute_only`` (ablation): ``precompute_ref_log_probs=True``, TRL's plain forward.
* ``ours`` (``run_dpo``'s defaults): ``precompute_ref_log_probs=True``, the reference being the
  adapter-disabled policy (no second model copy), and ``share_prompt=True``
  (``srjudge.training.shared_prompt``: each pair's prompt runs through the model once, not twice, in
  the reference pass and in the policy's forward and backward).

Everything else is equal (LoRA r=16 on all linear layers, batch 1 x grad-accumulation 8,
float32, no gradient checkpointing, same seed and pair order). Seconds per pair = the whole
``run_dpo`` call (load, reference pass, training, merge and save) / pairs.

Pairs (real, not synthetic): MT-Bench in Prometheus format
(``../shared/data/mt-bench-prometheus/mt_bench_raw_data.jsonl``, ``srjudge.data.load_mt_bench``)
gives three GPT-4 feedbacks + scores per item. For the first K items (file order) whose three
scores are not all equal, chosen = the feedback whose score is closest to the item's mean
(ties: the first), rejected = the one farthest from it; each judgment is written
``"<feedback> [RESULT] <score>"`` and the prompt is ``judge_prompt(example)`` (A.1.1 pointwise).

    python bench/dpo.py                                  # 32 pairs, max length 2048
    python bench/dpo.py --pairs 2 --max-length 512 --output smoke   # smoke run
    python bench/dpo.py --pairs 16 --variants trl_adapter_disabled,ours,ours_bf16
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SRJUDGE_DATA", REPO.parent / "shared" / "data"))  # as tests/conftest
DATA = SHARED / "mt-bench-prometheus" / "mt_bench_raw_data.jsonl"
RESULTS = REPO / "bench" / "results"
VARIANTS = ("trl_ref_copy", "trl_adapter_disabled", "precompute_only", "ours", "ours_bf16")
OURS = ("ours", "ours_bf16")
BASELINES = ("trl_ref_copy", "trl_adapter_disabled")


def load_pairs(k: int):
    """K preference pairs from disagreeing GPT-4 feedbacks (see the module docstring)."""
    from srjudge.data.sources import load_mt_bench
    from srjudge.judging.prompts import judge_prompt
    from srjudge.records import PreferencePair

    pairs = []
    for ex in load_mt_bench(DATA).examples:
        scores, feedbacks = ex.meta["gpt4_scores"], ex.meta["gpt4_feedbacks"]
        if len(set(scores)) == 1:
            continue
        mean = sum(scores) / len(scores)
        order = sorted(range(len(scores)), key=lambda i: (abs(scores[i] - mean), i))
        c, r = order[0], order[-1]
        pairs.append(
            PreferencePair(
                example_id=ex.id,
                prompt=judge_prompt(ex),
                chosen=f"{feedbacks[c].strip()} [RESULT] {int(scores[c])}",
                rejected=f"{feedbacks[r].strip()} [RESULT] {int(scores[r])}",
                chosen_verdict=int(scores[c]),
                rejected_verdict=int(scores[r]),
                strategy="bench_gpt4_disagreement",
                reason=f"GPT-4 scores {scores}, mean {mean:.2f}",
            )
        )
        if len(pairs) == k:
            break
    return pairs


def run_variant(variant: str, args: argparse.Namespace) -> dict:
    """Runs in the child process: one DPO epoch, returns timings and peak RSS."""
    from srjudge.models import resolve_model
    from srjudge.training.dpo import run_dpo
    from srjudge.training.settings import DPOSettings

    model = resolve_model("smollm2-135m")
    pairs = load_pairs(args.pairs)
    work = Path(tempfile.mkdtemp(prefix=f"bench-dpo-{variant}-"))
    ref = None
    if variant == "trl_ref_copy":
        ref = str(shutil.copytree(model, work / "ref"))  # distinct files: a real second model
    settings = DPOSettings(
        lora=True,
        num_train_epochs=1,
        per_device_train_batch_size=1,
        gradient_accumulation_steps=8,
        max_length=args.max_length,
        precompute_ref_log_probs=variant in ("precompute_only", *OURS),
        share_prompt=variant in OURS,
        precision="bf16" if variant == "ours_bf16" else "fp32",
        save_steps=10_000,
        disable_tqdm=True,
        seed=0,
    )
    rss_before = psutil.Process().memory_info().rss
    started = time.perf_counter()
    result = run_dpo(model, pairs, work / "out", settings, ref_model=ref)
    wall = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    shutil.rmtree(work, ignore_errors=True)
    return {
        "variant": variant,
        "pairs": len(pairs),
        "rows": result.counts["rows"],
        "counts": result.counts,
        "seconds": wall,
        "seconds_per_pair": wall / result.counts["rows"],
        "breakdown": result.seconds,
        "peak_rss_mib": peak_kib / 1024,
        "rss_before_mib": rss_before / 2**20,
        "losses": [e["loss"] for e in result.loss_history],
    }


def conditions() -> dict:
    """Load average and the busiest processes over half a second (psutil's first
    ``cpu_percent`` call per process always reads 0.0, so it is primed first)."""
    procs = list(psutil.process_iter(["name"]))
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.cpu_percent(None)
    time.sleep(0.5)
    busy = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            busy.append((proc.cpu_percent(None), proc.info["name"]))
    return {"loadavg": os.getloadavg(), "top_processes": sorted(busy, reverse=True)[:5]}


def token_stats(pairs, max_length: int) -> dict:
    from transformers import AutoTokenizer

    from srjudge.models import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m"))
    lengths = []
    for p in pairs:
        msgs = [{"role": m.role, "content": m.content} for m in p.prompt]
        prompt = len(tok.apply_chat_template(msgs, add_generation_prompt=True)["input_ids"])
        full = [
            len(tok.apply_chat_template(msgs + [{"role": "assistant", "content": t}])["input_ids"])
            for t in (p.chosen, p.rejected)
        ]
        lengths.append((prompt, *full))
    n = len(lengths)
    return {
        "prompt_mean": sum(x[0] for x in lengths) / n,
        "pair_tokens_mean": sum(x[1] + x[2] for x in lengths) / n,
        "longest": max(max(x[1], x[2]) for x in lengths),
        "truncated_rows": sum(1 for x in lengths if max(x[1], x[2]) > max_length),
    }


def write_results(report: dict, args: argparse.Namespace) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.output}.json").write_text(json.dumps(report, indent=2) + "\n")
    rows = report["variants"]
    lines = [
        "# DPO benchmark: TRL's reference set-ups vs ours (precomputed reference, shared prompts)",
        "",
        f"Command: `{report['command']}`",
        f"Date: {report['date']}; machine: {report['machine']}.",
        f"Conditions: before {report['before']}; after {report['after']}.",
        "",
        "Workload: SmolLM2-135M-Instruct (float32 weights; ours_bf16: bf16 autocast; CPU), "
        f"LoRA r=16 all-linear, one epoch over "
        f"{report['pairs']} MT-Bench GPT-4-disagreement pairs (see `bench/dpo.py`), batch 1 x "
        f"grad-accumulation 8, max_length {args.max_length}; prompt mean "
        f"{report['tokens']['prompt_mean']:.0f} tokens, chosen+rejected sequences mean "
        f"{report['tokens']['pair_tokens_mean']:.0f} tokens per pair, longest sequence "
        f"{report['tokens']['longest']}, rows truncated {report['tokens']['truncated_rows']}.",
        "Each variant ran once, in its own subprocess, one after the other.",
        "",
        "| variant | pairs given / trained | seconds | s/trained pair "
        "| setup s (load + ref pass) | train s | save s | peak RSS MiB | first/last loss |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        b = r["breakdown"]
        losses = f"{r['losses'][0]:.4f} / {r['losses'][-1]:.4f}" if r["losses"] else "-"
        lines.append(
            f"| {r['variant']} | {r['pairs']} / {r['rows']} | {r['seconds']:.1f} "
            f"| {r['seconds_per_pair']:.2f} "
            f"| {b['setup']:.1f} | {b['train']:.1f} | {b['save']:.1f} | {r['peak_rss_mib']:.0f} "
            f"| {losses} |"
        )
    by = {r["variant"]: r for r in rows}
    lines += [
        "",
        "Pairs whose prompt alone reaches max_length are skipped by `run_dpo` (counted); "
        "seconds per pair divide by the pairs trained. Speed-ups compare whole `run_dpo` calls.",
    ]
    for ours in [by[v] for v in OURS if v in by]:
        for name in [v for v in VARIANTS if v not in OURS and v in by]:
            base = by[name]
            lines += [
                "",
                f"**Speed-up ({name} / {ours['variant']}): "
                f"{base['seconds_per_pair'] / ours['seconds_per_pair']:.2f}x**"
                + (" (baseline)" if name in BASELINES else " (ablation)")
                + f". Peak RSS: {ours['peak_rss_mib']:.0f} MiB ({ours['variant']}) vs "
                f"{base['peak_rss_mib']:.0f} MiB ({name}).",
            ]
    if "speedup_vs_trl_lora" in report:
        lines += ["", f"**speedup_vs_trl_lora: {report['speedup_vs_trl_lora']:.2f}x** "
                  f"({report['speedup_vs_trl_lora_variant']}; target >= 2.5)."]  # fmt: skip
    (RESULTS / f"{args.output}.md").write_text("\n".join(lines) + "\n")


def speedups(rows: list[dict]) -> dict:
    """Every baseline-over-ours s/pair ratio, and ``speedup_vs_trl_lora`` for the fastest ours."""
    by = {r["variant"]: r for r in rows}
    out: dict = {"speedups": {
        f"{base}/{ours}": by[base]["seconds_per_pair"] / by[ours]["seconds_per_pair"]
        for ours in OURS if ours in by for base in VARIANTS if base not in OURS and base in by
    }}  # fmt: skip
    fastest = min(
        (by[v] for v in OURS if v in by), key=lambda r: r["seconds_per_pair"], default=None
    )
    if fastest and "trl_adapter_disabled" in by:
        base = by["trl_adapter_disabled"]["seconds_per_pair"]
        out["speedup_vs_trl_lora"] = base / fastest["seconds_per_pair"]
        out["speedup_vs_trl_lora_variant"] = fastest["variant"]
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--pairs", type=int, default=32)
    p.add_argument("--max-length", type=int, default=2048)
    p.add_argument(
        "--variants",
        default="trl_ref_copy,trl_adapter_disabled,ours",
        help=f"comma-separated, from {VARIANTS}",
    )
    p.add_argument("--output", default="dpo", help="bench/results/<output>.{md,json}")
    p.add_argument("--variant", help=argparse.SUPPRESS)  # child process
    args = p.parse_args()

    if args.variant:
        print("RESULT " + json.dumps(run_variant(args.variant, args)), flush=True)
        return 0

    import torch
    import transformers

    pairs = load_pairs(args.pairs)
    report = {
        "command": "python bench/dpo.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} CPUs ({platform.machine()}), torch {torch.__version__}, "
        f"transformers {transformers.__version__}",
        "before": conditions(),
        "pairs": len(pairs),
        "tokens": token_stats(pairs, args.max_length),
        "variants": [],
    }
    for variant in args.variants.split(","):
        if variant not in VARIANTS:
            raise SystemExit(f"unknown variant {variant!r}; choose from {VARIANTS}")
        cmd = [sys.executable, __file__, "--variant", variant, "--pairs", str(args.pairs),
               "--max-length", str(args.max_length)]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if proc.returncode != 0 or line is None:
            sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
            raise SystemExit(f"variant {variant} failed")
        result = json.loads(line.removeprefix("RESULT "))
        print(json.dumps(result), flush=True)
        report["variants"].append(result)
    report["after"] = conditions()
    report.update(speedups(report["variants"]))
    write_results(report, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
