"""One vLLM engine setting on ``bench/sampling.py``'s workload (16 BiGGen prompts x N=8 x 150
tokens, float32): tokens/s, load time, CPU seconds and prefix-cache counters, as one JSON line.
For comparing settings quickly (one run ~2.5 min on 2 cores); the reference numbers are
``bench/sampling.py``'s. Run in the environment that has vLLM, from the repository root.

    python bench/engine_settings.py --tag base                      # VLLMBackend's defaults
    python bench/engine_settings.py --tag noseed --seed off         # no per-request seeds
    python bench/engine_settings.py --tag chunked --opts '{"enable_chunked_prefill": true}'
    python bench/engine_settings.py --tag tc --env '{"LD_PRELOAD": "libtcmalloc_minimal.so.4"}'

``--opts``: extra ``vllm.LLM`` options (JSON); ``--env``: environment set before the engine
starts (JSON); ``SRJUDGE_TCMALLOC=0`` there runs without the tcmalloc that ``VLLMBackend``
preloads where installed. Results of 2026-11-27: ``bench/results/engine_settings.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", choices=["on", "off"], default="on", help="per-request seeds")
    p.add_argument("--opts", default="{}", help="vllm.LLM options, JSON")
    p.add_argument("--env", default="{}", help="environment for the engine, JSON")
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--new", type=int, default=150, help="new tokens per sample (forced)")
    p.add_argument("--tag", default="")
    args = p.parse_args()
    env, opts = json.loads(args.env), json.loads(args.opts)
    os.environ.update(env)
    import psutil
    from sampling import load_prompts, tree_cpu_seconds

    from srjudge.judging.backends.vllm import VLLMBackend

    _, prompts = load_prompts(args.prompts)
    started = time.perf_counter()
    backend = VLLMBackend("smollm2-135m", disable_log_stats=False, **opts)
    load = time.perf_counter() - started
    import vllm

    ids = [backend.prompt_ids(x) for x in prompts]

    def params(seed: int, new: int):
        return vllm.SamplingParams(
            n=8, temperature=1.0, top_p=1.0, max_tokens=new, min_tokens=new,
            seed=seed if args.seed == "on" else None, stop_token_ids=list(backend.stop_ids),
            detokenize=False,
        )  # fmt: skip

    backend.llm.generate([{"prompt_token_ids": ids[0]}], [params(99, 4)], use_tqdm=False)
    cpu_start, own_start = tree_cpu_seconds(), resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    outputs = backend.llm.generate(
        [{"prompt_token_ids": x} for x in ids],
        [params(i, args.new) for i in range(len(ids))],
        use_tqdm=False,
    )
    seconds = time.perf_counter() - started
    own = resource.getrusage(resource.RUSAGE_SELF)
    per_process = {}
    for child in psutil.Process().children(recursive=True):
        try:
            per_process[f"{child.pid}:{child.name()}"] = round(sum(child.cpu_times()[:2]), 1)
        except psutil.Error:
            pass
    tokens = sum(len(c.token_ids) for o in outputs for c in o.outputs)
    counters = {
        m.name: getattr(m, "value", None)
        for m in backend.llm.get_metrics()
        if any(k in m.name for k in ("prefix_cache", "prompt_tokens", "num_preempt"))
    }
    print("RESULT", json.dumps({
        "tag": args.tag, "seed": args.seed, "opts": opts, "env": env, "tokens": tokens,
        "seconds": round(seconds, 2), "tok_s": round(tokens / seconds, 1),
        "load_s": round(load, 1), "cpu_tree": round(tree_cpu_seconds() - cpu_start, 1),
        "cpu_main": round(own.ru_utime + own.ru_stime - own_start.ru_utime - own_start.ru_stime, 1),
        "metrics": counters, "per_process_total_cpu": per_process,
    }), flush=True)  # fmt: skip
    backend.close()


if __name__ == "__main__":
    main()
