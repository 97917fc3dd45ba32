"""CLI verbs for the training stages and the loop: sft, merge, sample, curate, dpo, run, demo.

Each stage verb runs one stage on explicit inputs through the same functions the loop uses:

    srjudge sft --model smollm2-135m --data train.jsonl --out runs/x/sft_pointwise
    srjudge merge runs/x/sft_pointwise runs/x/sft_pairwise --out runs/x/j_sft --weight 0.5
    srjudge sample --model runs/x/j_sft --input train.jsonl --count 100 --n 10 --out j.jsonl
    srjudge curate --inputs train.jsonl --judgments j.jsonl --strategy correct_answer \
        --margin 2 --out pairs.jsonl
    srjudge dpo --model runs/x/j_sft --pairs pairs.jsonl --ref runs/x/j_sft --out runs/x/j1
    torchrun --nproc_per_node 2 -m srjudge.cli sft ...    (several processes; see docs/SCALING.md)
    srjudge run configs/demo.yaml iterations.0.dpo.beta=0.05
    srjudge run configs/demo.yaml --dry-run        # check the whole config, print the plan
    srjudge demo
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from functools import partial
from importlib import resources
from pathlib import Path

from srjudge.commands.argtypes import (
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    probability,
    unit_interval,
)
from srjudge.commands.options import (
    add_backend_arguments,
    add_worker_arguments,
    backend_options,
    check_model_arg,
    load_backend_from_args,
)
from srjudge.errors import UserError
from srjudge.paths import (
    looks_like,
    refuse_foreign_file,
    refuse_same_paths,
    refuse_special,
    require_file,
)


def _setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )


def _add_train_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="alias, directory or hub id to start from")
    p.add_argument("--out", required=True, help="output directory (a save_pretrained model)")
    p.add_argument("--epochs", type=positive_float, default=None, help="training epochs")
    p.add_argument("--lr", type=positive_float, default=None, help="learning rate")
    p.add_argument("--max-length", type=positive_int, default=None, help="max tokens per row")
    p.add_argument("--batch-size", type=positive_int, help="rows per forward, per process")
    p.add_argument("--grad-accum", type=positive_int, help="forwards per optimizer step")
    p.add_argument("--lora", action="store_true", help="train LoRA adapters (merged on save)")
    p.add_argument("--seed", type=non_negative_int, default=None, help="seed (default 0)")
    p.add_argument(
        "--settings",
        default=None,
        help="YAML/JSON mapping of every training setting (SFTSettings / DPOSettings fields); "
        "the flags above override it",
    )


def _settings(cls, args: argparse.Namespace, **extra):
    fields = _settings_file(cls, args.settings) if args.settings else {}
    flags = {
        "num_train_epochs": args.epochs,
        "learning_rate": args.lr,
        "max_length": args.max_length,
        "per_device_train_batch_size": args.batch_size,
        "gradient_accumulation_steps": args.grad_accum,
        "seed": args.seed,
        "lora": True if args.lora else None,
        **extra,
    }
    fields |= {k: v for k, v in flags.items() if v is not None}
    return cls(**fields)


def _settings_file(cls, path: str) -> dict:
    """The settings mapping in ``path``; unknown fields and wrong types name the file."""
    import dacite

    from srjudge.loop.config import parse_yaml  # YAML 1.2 floats: 5e-06 (JSON's way) is a number

    raw = parse_yaml(Path(path).read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise SystemExit(f"error: {path}: expected a mapping of settings")
    try:
        dacite.from_dict(cls, raw, config=dacite.Config(strict=True))
    except (dacite.DaciteError, ValueError) as e:
        raise SystemExit(f"error: {path}: {e}") from e
    return raw


# --- sft -------------------------------------------------------------------------------


def sft_add_arguments(p: argparse.ArgumentParser) -> None:
    _add_train_flags(p)
    p.add_argument(
        "--data", required=True, help="training examples (srjudge JSONL, or FILE with --format)"
    )
    p.add_argument("--format", default="srjudge", help="loader name (srjudge data --help)")
    p.add_argument("--score-only", action="store_true", help="completions without rationale")


def sft_run(args: argparse.Namespace) -> int:
    _setup_logging()
    from srjudge.data.sources import load
    from srjudge.training.settings import SFTSettings
    from srjudge.training.sft import run_sft

    settings = _settings(SFTSettings, args)  # a bad settings file is refused first
    loaded = load(args.data, args.format)
    for warning in loaded.warnings:
        print(warning, file=sys.stderr)
    for err in loaded.errors:
        print(f"skipped bad row {err}", file=sys.stderr)
    examples = loaded.examples
    if not examples:  # before a model is loaded
        bad = len(loaded.errors)
        raise UserError(f"{args.data}: no usable row ({loaded.rows} rows, {bad} bad)")
    result = run_sft(args.model, examples, Path(args.out), settings, score_only=args.score_only)
    print(json.dumps(result.counts, indent=2))
    print(f"model: {args.out}")
    return 0


# --- merge -----------------------------------------------------------------------------


def merge_add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model_a", help="first model directory (e.g. the pointwise judge)")
    p.add_argument("model_b", help="second model directory (e.g. the pairwise judge)")
    p.add_argument("--out", required=True)
    p.add_argument(
        "--weight", type=unit_interval, default=0.5, help="out = weight*A + (1-weight)*B"
    )


def merge_run(args: argparse.Namespace) -> int:
    from srjudge.training.merge import linear_merge

    out = linear_merge(args.model_a, args.model_b, Path(args.out), weight=args.weight)
    print(f"merged model: {out}")
    return 0


# --- sample ----------------------------------------------------------------------------


def sample_add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True)
    p.add_argument("--input", required=True, help="examples (srjudge JSONL)")
    p.add_argument("--out", required=True, help="judgments JSONL (appended; rerun resumes)")
    add_backend_arguments(p)
    add_worker_arguments(p)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--fraction", type=probability, help="share of inputs sampled (p%%)")
    group.add_argument("--count", type=positive_int, help="number of inputs sampled")
    p.add_argument("--n", type=positive_int, default=10, help="judgments per input (paper: 10)")
    p.add_argument("--temperature", type=non_negative_float, default=1.0)
    p.add_argument("--top-p", type=probability, default=1.0, help="in (0, 1]")
    p.add_argument("--max-new-tokens", type=positive_int, default=512)
    p.add_argument("--max-retries", type=non_negative_int, default=2)
    p.add_argument("--seed", type=non_negative_int, default=0)


def sample_run(args: argparse.Namespace) -> int:
    _setup_logging()
    from srjudge.data.sources import load
    from srjudge.judging.backends import SamplingParams, load_backend
    from srjudge.judging.sampling import sample_to_file, select_inputs
    from srjudge.loop.config import SampleConfig

    out = Path(args.out)
    inputs_path = out.with_suffix(".inputs.jsonl")
    try:  # before any work: the paths, and a stray flag
        _check_sample_paths(args.input, out, inputs_path)
        backend_options(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    check_model_arg(args, args.model)  # before the inputs file and the output are written
    examples = load(args.input, "srjudge").strict()
    if args.fraction is not None or args.count is not None:
        sample = SampleConfig(fraction=args.fraction, count=args.count)  # checks them
        examples = select_inputs(examples, args.seed, fraction=sample.fraction, count=sample.count)
    params = SamplingParams(
        n=args.n,
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
    )
    make_backend = (
        partial(load_backend, args.backend, args.model, **backend_options(args))
        if args.workers > 1  # each worker builds its own: a picklable factory
        else lambda: load_backend_from_args(args, args.model)
    )
    counts = sample_to_file(
        make_backend,
        examples,
        params,
        out,
        max_retries=args.max_retries,
        model=f"{args.backend}:{args.model}",
        inputs_path=inputs_path,
        workers=args.workers,
        devices_per_worker=args.devices_per_worker,
    )
    print(json.dumps(counts, indent=2))
    print(f"judgments: {out}\ninputs: {inputs_path}")
    return 0


def _check_sample_paths(input_path: str, out: Path, inputs_path: Path) -> None:
    from srjudge.data.validate import EXAMPLE_KEYS

    require_file(input_path, "--input")
    outputs = {
        "--out": out,
        "its inputs file": inputs_path,
        "its settings file": out.with_suffix(".settings.json"),
    }
    refuse_same_paths({"--input": input_path}, outputs)
    is_examples = looks_like(EXAMPLE_KEYS)
    refuse_foreign_file(inputs_path, "inputs file", "an srjudge examples file", is_examples)
    refuse_special(out, "--out")


# --- curate ----------------------------------------------------------------------------


def curate_add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--inputs", required=True, help="examples judged (srjudge JSONL)")
    p.add_argument("--judgments", required=True, help="output of 'srjudge sample'")
    p.add_argument(
        "--out",
        required=True,
        help="preference pairs JSONL; meta-judge answers go to OUT.meta.jsonl (rerun resumes)",
    )
    p.add_argument("--strategy", default="correct_answer")
    p.add_argument(
        "--margin", type=non_negative_int, default=2, help="min score gap (correct_answer)"
    )
    p.add_argument("--max-pairs-per-input", type=positive_int, default=None)
    p.add_argument(
        "--meta-model",
        default=None,
        help="model for meta_judge / rationale_meta / preference_reversal",
    )
    p.add_argument(
        "--max-new-tokens",
        type=positive_int,
        default=512,
        help="meta-judge answers: most new tokens",
    )
    add_backend_arguments(p)
    p.add_argument("--seed", type=non_negative_int, default=0)


def curate_run(args: argparse.Namespace) -> int:
    _setup_logging()
    from srjudge.data.sources import load
    from srjudge.judging.sampling import load_judgments
    from srjudge.records import to_dict, write_jsonl
    from srjudge.training.curate import STRATEGIES, CurationConfig, curate_all
    from srjudge.training.metajudge import meta_judge_inputs, meta_params, needs_meta_judge

    if args.strategy not in STRATEGIES:
        print(
            f"unknown strategy {args.strategy!r}; choose from {sorted(STRATEGIES)}", file=sys.stderr
        )
        return 2
    if needs_meta_judge(args.strategy) and not args.meta_model:
        print(f"error: strategy {args.strategy} needs --meta-model", file=sys.stderr)
        return 2
    meta_path = Path(args.out).with_suffix(".meta.jsonl")
    try:  # before any work: the paths, and a stray flag
        _check_curate_paths(args, meta_path)
        backend_options(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.meta_model:
        check_model_arg(args, args.meta_model)  # before any file is read or written
    cfg = CurationConfig(
        strategy=args.strategy,
        margin=args.margin,
        seed=args.seed,
        max_pairs_per_input=args.max_pairs_per_input,
    )
    examples = {ex.id: ex for ex in load(args.inputs, "srjudge").strict()}
    judged = dict(load_judgments(Path(args.judgments)))
    extras = meta_judge_inputs(
        cfg.strategy,
        lambda: load_backend_from_args(args, args.meta_model),
        examples,
        judged,
        meta_params(args.max_new_tokens, args.seed),
        meta_path,
        model=f"{args.backend}:{args.meta_model}",
    )
    items = [(examples[i], js, extras.get(i, {})) for i, js in judged.items() if i in examples]
    pairs, stats = curate_all(items, cfg)
    write_jsonl(args.out, pairs)
    print(json.dumps(to_dict(stats), indent=2))
    print(f"pairs: {args.out}" + (f"\nmeta-judge answers: {meta_path}" if extras else ""))
    return 0


PAIR_KEYS = ("example_id", "prompt", "chosen", "rejected")


def _check_curate_paths(args: argparse.Namespace, meta_path: Path) -> None:
    inputs = {"--inputs": args.inputs, "--judgments": args.judgments}
    for flag, path in inputs.items():
        require_file(path, flag)
    outputs = {
        "--out": args.out,
        "its meta-judge file": meta_path,
        "its meta-judge settings": meta_path.with_suffix(".settings.json"),
    }
    refuse_same_paths(inputs, outputs)
    refuse_foreign_file(args.out, "--out", "a preference pairs file", looks_like(PAIR_KEYS))
    refuse_special(meta_path, "meta-judge file")


# --- dpo -------------------------------------------------------------------------------


def dpo_add_arguments(p: argparse.ArgumentParser) -> None:
    _add_train_flags(p)
    p.add_argument("--pairs", required=True, help="preference pairs JSONL ('srjudge curate')")
    p.add_argument(
        "--ref",
        default=None,
        help="reference model (default: the starting model; with --lora the adapter-disabled base)",
    )
    p.add_argument("--beta", type=positive_float, default=None, help="DPO beta")


def dpo_run(args: argparse.Namespace) -> int:
    _setup_logging()
    from srjudge.records import load_pairs
    from srjudge.training.dpo import run_dpo
    from srjudge.training.settings import DPOSettings

    settings = _settings(DPOSettings, args, **({"beta": args.beta} if args.beta else {}))
    pairs = load_pairs(require_file(args.pairs, "--pairs"))
    if not pairs:
        print(f"{args.pairs}: no preference pairs", file=sys.stderr)
        return 1
    result = run_dpo(args.model, pairs, Path(args.out), settings, ref_model=args.ref)
    print(json.dumps(result.counts, indent=2))
    print(f"model: {args.out}")
    return 0


# --- run / demo ------------------------------------------------------------------------


def run_add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="run config YAML (see configs/)")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. iterations.0.dpo.beta=0.05")
    p.add_argument(
        "--allow-config-change",
        action="store_true",
        help="resume a run folder whose saved config differs",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="check the whole config (and that its models exist), print the stage plan, stop",
    )


def _checked_config(path, overrides: list[str]):
    """The run config, or None after printing every problem (no traceback): bad settings,
    then models that cannot be found (``loop.config.model_problems``)."""
    from srjudge.loop.config import ConfigError, load_config, model_problems

    try:
        cfg = load_config(path, overrides)
        problems = model_problems(cfg)
        if problems:
            raise ConfigError(problems, str(path))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return None
    return cfg


def run_run(args: argparse.Namespace) -> int:
    cfg = _checked_config(args.config, args.overrides)
    if cfg is None:
        return 2
    if args.dry_run:
        from srjudge.loop.run import plan_text

        print(plan_text(cfg))
        return 0
    _setup_logging()
    return _run_and_summarise(cfg, args.allow_config_change)


def _run_and_summarise(cfg, allow_config_change: bool = False) -> int:
    from srjudge.loop.run import run
    from srjudge.loop.rundir import config_changes

    changed = config_changes(cfg, cfg.directory)
    if changed and not allow_config_change:  # the message run() would raise, without a traceback
        print(
            f"error: {cfg.directory / 'config.yaml'} holds a different config (changed: "
            f"{', '.join(changed)}); use a new run_dir, or --allow-config-change to resume anyway",
            file=sys.stderr,
        )
        return 2
    started = time.time()
    state = run(cfg, allow_config_change=allow_config_change)
    print(summary_text(state, time.time() - started))
    return 0


def summary_text(state, seconds: float) -> str:
    lines = [f"\nrun '{state.cfg.name}' finished in {seconds / 60:.1f} min: {state.run_dir}"]
    for stage in state.stages:
        name, rec = stage.name, state.outputs[stage.name]
        what = rec.get("model", "") if stage.produces_model else ""
        if what and rec.get("trained") is False:
            what += f"  (NOT trained: {rec.get('reason')}; the previous judge carried over)"
        counts = rec.get("counts") or _flat_metrics(rec.get("metrics") or {})
        brief = ", ".join(
            f"{k}={v}" for k, v in list(counts.items())[:6] if not isinstance(v, dict)
        )
        lines.append(
            f"  {rec.get('dir', name):<28} {brief}" + (f"\n      model: {what}" if what else "")
        )
    for f in ("report.md", "report.html"):
        if (state.run_dir / f).exists():
            lines.append(f"  {f}: {state.run_dir / f}")
    return "\n".join(lines)


def _flat_metrics(summary: dict) -> dict:
    """``{bench: {metric: value}}`` -> ``{bench.metric: value}`` for the one-line summary."""
    out = {}
    for bench, metrics in summary.items():
        for k, v in metrics.items() if isinstance(metrics, dict) else []:
            out[f"{bench}.{k}"] = v if not isinstance(v, float) else round(v, 3)
    return out


def demo_add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run-dir", default="runs/demo", help="where the demo run is written")
    p.add_argument("overrides", nargs="*", help="dotted overrides of the demo config")


def demo_config_path() -> Path:
    return Path(str(resources.files("srjudge") / "configs" / "demo.yaml"))


def demo_run(args: argparse.Namespace) -> int:
    cfg = _checked_config(demo_config_path(), [f"run_dir={args.run_dir}", *args.overrides])
    if cfg is None:
        return 2
    _setup_logging()
    return _run_and_summarise(cfg)
