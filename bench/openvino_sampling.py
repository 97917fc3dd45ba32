"""OpenVINO GenAI on the sampling benchmark's workload, for the engine comparison in issue 10.

Not a srjudge backend: the engine chosen is vLLM (``srjudge.judging.backends.vllm``); this script
measures the main alternative on the same prompts so the choice rests on numbers. It runs in
a side environment, because the exporter (optimum-intel 2.2) needs transformers < 5.6:

    python3 -m venv /tmp/ov && /tmp/ov/bin/pip install -c constraints.txt torch==2.13.0 \\
        openvino-genai==2026.4.1.0 "optimum-intel[openvino]==2.2.0" "transformers<5.6"
    /tmp/ov/bin/pip uninstall -y torchvision          # a build for another torch; breaks imports
    .venv/bin/python bench/openvino_sampling.py dump --out /tmp/ov/prompts.json   # srjudge env
    /tmp/ov/bin/python bench/openvino_sampling.py run --prompts-file /tmp/ov/prompts.json \\
        --model ~/.cache/srjudge/smollm2-135m --export-dir /tmp/ov/export --precision f32

``dump`` writes the chat-templated token ids of ``bench/sampling.py``'s prompts; ``run``
exports the model (timed; ``--weight-format``), loads a ``ContinuousBatchingPipeline``, submits
every prompt at once with N samples of exactly ``--max-new-tokens`` tokens, and prints one
JSON line: tokens/s, export and load seconds, peak RSS.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def dump(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(BENCH))
    from sampling import DATA, load_prompts

    from srjudge.judging.backends.transformers import TransformersBackend

    ids, prompts = load_prompts(args.prompts, args.data or DATA)
    backend = TransformersBackend(args.model, device="cpu")
    rows = [backend.prompt_ids(p).tolist() for p in prompts]
    Path(args.out).write_text(json.dumps({"example_ids": ids, "prompt_ids": rows}))


def run(args: argparse.Namespace) -> None:
    import numpy as np
    import openvino as ov
    import openvino_genai as genai
    import psutil

    prompt_ids = json.loads(Path(args.prompts_file).read_text())["prompt_ids"]
    export = Path(args.export_dir)
    start = time.perf_counter()
    if not (export / "openvino_model.xml").is_file():
        subprocess.run(
            [str(Path(sys.executable).parent / "optimum-cli"), "export", "openvino", "--model",
             args.model, "--task", "text-generation-with-past", "--weight-format",
             args.weight_format, str(export)],
            check=True,
        )  # fmt: skip
    export_seconds = time.perf_counter() - start
    scheduler = genai.SchedulerConfig()
    scheduler.cache_size = 3  # GB of KV cache, as VLLMBackend's default
    scheduler.enable_prefix_caching = True
    config = {} if args.precision == "default" else {"INFERENCE_PRECISION_HINT": args.precision}
    start = time.perf_counter()
    pipe = genai.ContinuousBatchingPipeline(str(export), scheduler, "CPU", config)
    load_seconds = time.perf_counter() - start

    def settings(seed: int, new: int) -> genai.GenerationConfig:
        g = genai.GenerationConfig()
        g.do_sample, g.temperature, g.top_p, g.top_k = True, 1.0, 1.0, 0
        g.num_return_sequences, g.max_new_tokens, g.min_new_tokens = args.n, new, new
        g.rng_seed = seed
        return g

    tensors = [ov.Tensor(np.array([p], dtype=np.int64)) for p in prompt_ids]
    pipe.generate(tensors[:1], [settings(999, 4)])  # warm-up
    start = time.perf_counter()
    results = pipe.generate(
        tensors, [settings(i, args.max_new_tokens) for i in range(len(tensors))]
    )
    seconds = time.perf_counter() - start
    tokens = sum(len(s) for r in results for s in r.m_generation_ids)
    rss = psutil.Process().memory_info().rss / 2**20
    print(json.dumps({
        "engine": f"openvino-genai {genai.__version__}", "weight_format": args.weight_format,
        "precision": args.precision, "prompts": len(tensors), "n": args.n,
        "new_tokens": tokens, "seconds": seconds, "tokens_per_second": tokens / seconds,
        "export_seconds": export_seconds, "load_seconds": load_seconds, "rss_mib": rss,
    }))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump")
    d.add_argument("--out", required=True)
    d.add_argument("--model", default="smollm2-135m")
    d.add_argument("--prompts", type=int, default=16)
    d.add_argument("--data", type=Path)
    r = sub.add_parser("run")
    r.add_argument("--prompts-file", required=True)
    r.add_argument("--model", required=True, help="a save_pretrained directory")
    r.add_argument("--export-dir", required=True)
    r.add_argument("--weight-format", default="fp32", choices=["fp32", "fp16", "int8", "int4"])
    r.add_argument("--precision", default="f32", help="f32, bf16 or default (the CPU's)")
    r.add_argument("--n", type=int, default=8)
    r.add_argument("--max-new-tokens", type=int, default=150)
    args = parser.parse_args()
    dump(args) if args.cmd == "dump" else run(args)


if __name__ == "__main__":
    main()
