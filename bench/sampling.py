"""Sampling throughput: shared-prefix KV expansion vs ``generate(num_return_sequences=N)``.

Both variants sample N judgments per BiGGen Bench judge prompt with SmolLM2-135M, forced to
exactly ``--max-new-tokens`` new tokens each (end tokens masked), each in its own subprocess so
that peak RSS is per variant. Also times dense matmuls and a memory copy on this machine to
give a roofline-style bound on decode throughput. Writes ``bench/results/sampling.{md,json}``.

    python bench/sampling.py                                   # full: 16 prompts, N=8, 150 tokens
    python bench/sampling.py --prompts 2 --max-new-tokens 20   # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import torch

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "biggen-bench"
RESULTS = REPO / "bench" / "results"
VARIANTS = ("naive", "shared_prefix")


def load_prompts(k: int):
    """``k`` BiGGen Bench human-eval examples spread evenly over all files, as judge chats."""
    from srjudge.data.sources import load_biggen_human
    from srjudge.judging.prompts import judge_prompt

    examples = []
    for path in sorted(DATA.glob("human_eval_*.jsonl")):
        examples.extend(load_biggen_human(path).examples)
    step = max(1, len(examples) // k)
    chosen = examples[::step][:k]
    return [e.id for e in chosen], [judge_prompt(e) for e in chosen]


class PeakRSS:
    """Samples this process's RSS every 20 ms in a thread; ``peak`` in bytes."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        proc = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, proc.memory_info().rss)
            time.sleep(0.02)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_variant(variant: str, args: argparse.Namespace) -> dict:
    """One variant, in this process: load, warm up, time every prompt."""
    from srjudge.judging.backends import SamplingParams
    from srjudge.judging.backends.transformers import TransformersBackend

    torch.set_num_threads(args.threads)
    backend = TransformersBackend(
        args.model, device="cpu", naive=variant == "naive", min_new_tokens=args.max_new_tokens
    )
    ids, prompts = load_prompts(args.prompts)
    first = args.first
    ids, prompts = ids[first : first + args.chunk], prompts[first : first + args.chunk]
    prompt_tokens = [len(backend.prompt_ids(p)) for p in prompts]
    rss_loaded = psutil.Process().memory_info().rss
    warm = SamplingParams(n=args.n, temperature=1.0, max_new_tokens=4, seed=999)
    backend.generate_ids(prompts[:1], warm)
    per_prompt = []
    cpu_start = time.process_time()
    with PeakRSS() as peak:
        for i, prompt in enumerate(prompts, start=first):
            params = SamplingParams(
                n=args.n, temperature=1.0, max_new_tokens=args.max_new_tokens, seed=i
            )
            start = time.perf_counter()
            samples = backend.generate_ids([prompt], params)[0]
            seconds = time.perf_counter() - start
            per_prompt.append(
                {
                    "index": i,
                    "seconds": seconds,
                    "new_tokens": sum(map(len, samples)),
                    "load_average_1min": os.getloadavg()[0],
                }
            )
            print(f"{variant} prompt {i}: {per_prompt[-1]}", file=sys.stderr, flush=True)
    return {
        "variant": variant,
        "example_ids": ids,
        "prompt_tokens": prompt_tokens,
        "per_prompt": per_prompt,
        "cpu_seconds": time.process_time() - cpu_start,
        "rss_after_load_mib": rss_loaded / 2**20,
        "peak_rss_sampling_mib": peak.peak / 2**20,
        "peak_rss_process_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _combine(variant: str, chunks: list[dict]) -> dict:
    """Totals over a variant's chunk subprocesses; peak RSS is the maximum over them."""
    per_prompt = [p for c in chunks for p in c["per_prompt"]]
    seconds = sum(p["seconds"] for p in per_prompt)
    tokens = sum(p["new_tokens"] for p in per_prompt)
    cpu = sum(c["cpu_seconds"] for c in chunks)
    return {
        "variant": variant,
        "example_ids": [i for c in chunks for i in c["example_ids"]],
        "prompt_tokens": [t for c in chunks for t in c["prompt_tokens"]],
        "per_prompt": per_prompt,
        "seconds": seconds,
        "new_tokens": tokens,
        "tokens_per_second": tokens / seconds,
        "cpu_seconds": cpu,
        "tokens_per_cpu_second": tokens / cpu,
        **{
            key: max(c[key] for c in chunks)
            for key in ("rss_after_load_mib", "peak_rss_sampling_mib", "peak_rss_process_mib")
        },
    }


def _time(fn, repeats: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def machine_peaks(threads: int, hidden: int, intermediate: int, n: int) -> dict:
    """Dense matmul GFLOP/s (prefill-like and decode-like shapes) and copy bandwidth."""
    torch.set_num_threads(threads)
    out = {}
    for name, rows in (("prefill_like", 512), ("decode_like", n)):
        a, b = torch.randn(rows, hidden), torch.randn(hidden, intermediate)
        seconds = _time(lambda a=a, b=b: torch.matmul(a, b), 20 if rows > n else 500)
        out[f"matmul_{name}_gflops"] = 2 * rows * hidden * intermediate / seconds / 1e9
        out[f"matmul_{name}_shape"] = f"[{rows},{hidden}]x[{hidden},{intermediate}]"
    src = torch.randn(64 * 2**20 // 4)  # 64 MiB, beyond cache
    dst = torch.empty_like(src)
    seconds = _time(lambda: dst.copy_(src), 20)
    out["copy_gb_per_s"] = 2 * src.numel() * 4 / seconds / 1e9  # read + write
    return out


def bounds(config, peaks: dict, prompt_tokens: list[int], n: int, new: int) -> dict:
    """Per-token FLOPs and bytes at the mean context, and the throughput each allows.

    FLOPs per generated token = 2 * (non-embedding params + lm_head params)
    + 4 * layers * heads * head_dim * context (QK^T and AV); context = prompt + half the new
    tokens. Bytes per decode step (all n rows) = fp32 weights once + the n rows' KV cache.
    """
    h, layers = config.hidden_size, config.num_hidden_layers
    head_dim = getattr(config, "head_dim", h // config.num_attention_heads)
    q_dim, kv_dim = config.num_attention_heads * head_dim, config.num_key_value_heads * head_dim
    per_layer = h * q_dim + 2 * h * kv_dim + q_dim * h + 3 * h * config.intermediate_size + 2 * h
    non_embedding = layers * per_layer + h
    lm_head = h * config.vocab_size
    context = sum(prompt_tokens) / len(prompt_tokens) + new / 2
    flops = 2 * (non_embedding + lm_head) + 4 * layers * q_dim * context
    weight_bytes = 4 * (non_embedding + lm_head)
    kv_bytes = n * layers * 2 * kv_dim * context * 4
    gflops = peaks["matmul_prefill_like_gflops"]
    return {
        "non_embedding_params": non_embedding,
        "lm_head_params": lm_head,
        "mean_context": context,
        "flops_per_token": flops,
        "compute_bound_tokens_per_s": gflops * 1e9 / flops,
        "bytes_per_decode_step": weight_bytes + kv_bytes,
        "bandwidth_bound_tokens_per_s": n
        * peaks["copy_gb_per_s"]
        * 1e9
        / (weight_bytes + kv_bytes),
    }


def other_load() -> str:
    """Load average and the other processes using CPU over one second."""
    procs = [p for p in psutil.process_iter(["name", "cmdline"]) if p.pid != os.getpid()]
    for p in procs:
        try:
            p.cpu_percent(None)  # the first call only starts the measurement
        except psutil.Error:
            pass
    time.sleep(1.0)
    busy = []
    for p in procs:
        try:
            percent = p.cpu_percent(None)
        except psutil.Error:
            continue
        if percent > 10:
            command = " ".join(p.info["cmdline"] or [p.info["name"] or "?"])
            busy.append(f"{command[:80]} ({percent:.0f}%)")
    return f"load average {os.getloadavg()}; other busy processes at start: {busy}"


TABLE_HEADER = (
    "| variant | new tokens | wall s | tokens/s (wall) | CPU s | tokens/CPU-s | of compute bound "
    "| of bandwidth bound | RSS after load MiB | peak RSS sampling MiB | peak RSS process MiB |\n"
    + "|---" * 11
    + "|"
)


def write_results(report: dict, args: argparse.Namespace) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / args.output
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    naive, ours = report["variants"]["naive"], report["variants"]["shared_prefix"]
    b, p = report["bounds"], report["machine"]
    rows = "\n".join(
        f"| {v['variant']} | {v['new_tokens']} | {v['seconds']:.1f} | {v['tokens_per_second']:.1f} "
        f"| {v['cpu_seconds']:.1f} | {v['tokens_per_cpu_second']:.1f} "
        f"| {v['tokens_per_second'] / b['compute_bound_tokens_per_s']:.1%} "
        f"| {v['tokens_per_second'] / b['bandwidth_bound_tokens_per_s']:.1%} "
        f"| {v['rss_after_load_mib']:.0f} | {v['peak_rss_sampling_mib']:.0f} "
        f"| {v['peak_rss_process_mib']:.0f} |"
        for v in (naive, ours)
    )
    text = f"""# Sampling benchmark: shared-prefix KV expansion vs naive `generate`

Command: `{report["command"]}`
Date: {report["date"]}; machine: {p["nproc"]} CPUs ({p["processor"]}), torch {p["torch"]},
transformers {p["transformers"]}, `torch.set_num_threads({args.threads})`.
Conditions: {report["conditions"]}

Workload: model `{args.model}` (float32, CPU), {args.prompts} BiGGen Bench human-eval judge prompts
(`srjudge.data.load_biggen_human` + `srjudge.judging.prompts.judge_prompt`, the A.1.1 pointwise
template, SmolLM2 chat template; prompt length mean {report["mean_prompt_tokens"]:.0f} tokens,
min {min(report["prompt_tokens"])}, max {max(report["prompt_tokens"])}),
N={args.n} samples per prompt, temperature 1.0, top-p 1.0,
exactly {args.max_new_tokens} new tokens per sample (end tokens masked).
Prompts run in chunks of {args.chunk}, each chunk a fresh subprocess per variant,
variants alternating ABBA so drifting machine load hits both alike; one untimed warm-up call
per subprocess. "of ... bound" uses wall-clock tokens/s. CPU s = process CPU time (user+sys)
during sampling, which is less sensitive to other processes than wall time.

{TABLE_HEADER}
{rows}

**Speed-up (shared prefix / naive), wall-clock tokens/s: {report["speedup"]:.2f}x**
(target >= 1.8x); per CPU second: {report["speedup_cpu"]:.2f}x.
Peak RSS while sampling: {ours["peak_rss_sampling_mib"]:.0f} MiB (shared prefix) vs
{naive["peak_rss_sampling_mib"]:.0f} MiB (naive).

## Bound for this machine

* FLOPs per generated token = 2 x (non-embedding params {b["non_embedding_params"] / 1e6:.1f}M
  + lm_head {b["lm_head_params"] / 1e6:.1f}M) + 4 x layers x heads x head_dim x context
  (context = mean prompt + half the new tokens = {b["mean_context"]:.0f})
  = {b["flops_per_token"] / 1e6:.0f} MFLOP (prefill of the prompt not counted).
* Dense matmul throughput: {p["matmul_prefill_like_gflops"]:.1f} GFLOP/s at
  {p["matmul_prefill_like_shape"]} (decode-shaped {p["matmul_decode_like_shape"]}:
  {p["matmul_decode_like_gflops"]:.1f} GFLOP/s).
  Compute bound: {b["compute_bound_tokens_per_s"]:.0f} tokens/s.
* Memory: one decode step of all N rows reads the fp32 weights once plus the N rows' KV cache,
  {b["bytes_per_decode_step"] / 1e6:.0f} MB; copy bandwidth {p["copy_gb_per_s"]:.1f} GB/s
  gives a bandwidth bound of {b["bandwidth_bound_tokens_per_s"]:.0f} tokens/s at N={args.n}.

Per-prompt timings and example ids are in `{args.output}.json`.
"""
    stem.with_suffix(".md").write_text(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=150)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default="sampling", help="file stem under bench/results")
    parser.add_argument("--chunk", type=int, default=1, help="prompts per worker subprocess")
    parser.add_argument("--note", default="", help="added to the conditions in the report")
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(run_variant(args.worker, args)))
        return

    import transformers

    from srjudge.models import load_model_and_tokenizer

    conditions = other_load() + (f"; {args.note}" if args.note else "")
    runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    partial = RESULTS / f"{args.output}.partial.jsonl"  # finished chunks, kept if a run dies
    RESULTS.mkdir(parents=True, exist_ok=True)
    partial.write_text("")
    passthrough = argv if argv is not None else sys.argv[1:]
    # Chunks of prompts alternate between variants (ABBA order) so that drifting load from
    # other processes on a shared machine hits both alike; each chunk is a fresh subprocess.
    for c, first in enumerate(range(0, args.prompts, args.chunk)):
        for variant in VARIANTS if c % 2 == 0 else VARIANTS[::-1]:
            cmd = [sys.executable, __file__, *passthrough]
            cmd += ["--worker", variant, "--first", str(first)]
            done = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
            runs[variant].append(json.loads(done.stdout.strip().splitlines()[-1]))
            with partial.open("a") as f:
                f.write(json.dumps(runs[variant][-1]) + "\n")
    variants = {v: _combine(v, chunks) for v, chunks in runs.items()}
    config = load_model_and_tokenizer(args.model)[0].config
    peaks = machine_peaks(args.threads, config.hidden_size, config.intermediate_size, args.n)
    prompt_tokens = variants["shared_prefix"]["prompt_tokens"]
    report = {
        "command": "python bench/sampling.py " + " ".join(passthrough),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "conditions": conditions + f"; load average at end {os.getloadavg()}",
        "machine": {
            "nproc": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            **peaks,
        },
        "args": vars(args),
        "prompt_tokens": prompt_tokens,
        "mean_prompt_tokens": sum(prompt_tokens) / len(prompt_tokens),
        "variants": variants,
        "speedup": variants["shared_prefix"]["tokens_per_second"]
        / variants["naive"]["tokens_per_second"],
        "speedup_cpu": variants["shared_prefix"]["tokens_per_cpu_second"]
        / variants["naive"]["tokens_per_cpu_second"],
        "bounds": bounds(config, peaks, prompt_tokens, args.n, args.max_new_tokens),
    }
    write_results(report, args)
    partial.unlink()  # its chunks are all in the report now
    print(json.dumps({k: report[k] for k in ("speedup", "speedup_cpu", "bounds")}, indent=2))


if __name__ == "__main__":
    main()
