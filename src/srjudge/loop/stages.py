"""The stages of a run, one function each, and ``plan``: the ordered stages of a config.

A stage function is ``(RunState, stage folder) -> dict`` (outputs and counts for its
``stage.json``); ``loop.run.run`` calls them in order and skips finished ones. Each stage calls
the same library functions as its CLI verb: data (``srjudge.data``), SFT and DPO
(``srjudge.training``), sampling (``srjudge.judging.sampling``), curation
(``srjudge.training.curate``), evaluation (``srjudge.evaluation``).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

from srjudge.judging.backends import Backend, SamplingParams
from srjudge.judging.sampling import load_judgments, sample_to_file, select_inputs
from srjudge.loop.config import DataSource, IterationConfig, RunConfig
from srjudge.loop.rundir import DATA_STAGE, STAGES, eval_stage_name
from srjudge.records import (
    Example,
    Judgment,
    example_from_dict,
    pair_from_dict,
    read_jsonl,
    to_dict,
    write_jsonl,
)
from srjudge.training.settings import SFTSettings

log = logging.getLogger("srjudge.loop")

BackendFactory = Callable[[str], Backend]
"""model directory -> backend; tests inject a mock here. With ``launch.sample_workers`` > 1 it
must pickle (a module-level function, or a ``functools.partial`` of one)."""


@dataclass
class Stage:
    name: str
    fn: Callable[[RunState, Path], dict[str, Any]]
    """Does the work in the stage folder; returns outputs/counts for stage.json."""
    config: Any = None
    """The config section the stage runs with (snapshotted into its stage.json)."""
    produces_model: bool = False
    """The stage writes a model (``"model"`` in its record): SFT, merge, iteration training."""
    becomes: Literal["sft", "current"] | None = None
    """What its model becomes: ``"sft"`` = J_SFT, also the current judge; ``"current"`` = the
    judge J_t the next stages start from; None = neither (an SFT stage before the merge)."""
    launched: bool = False
    """It trains (SFT, DPO): with a ``launch`` section it runs under ``accelerate launch``,
    which the other machines join (``srjudge.loop.launch``)."""


@dataclass
class RunState:
    cfg: RunConfig
    run_dir: Path
    backend_factory: BackendFactory
    stages: list[Stage] = field(default_factory=list)
    """The plan being run."""
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """stage name -> the dict its stage.json recorded (read back for finished stages)."""
    current_model: str = ""
    """The judge J_t that the next stage starts from."""
    sft_model: str = ""

    def stage_path(self, name: str) -> Path:
        """The folder of stage ``name``, which has run (or been found finished) already."""
        return self.run_dir / STAGES / self.outputs[name]["dir"]

    def adopt(self, stage: Stage, record: dict[str, Any]) -> None:
        """Record a finished stage; its model becomes J_SFT or J_t as the stage declares."""
        self.outputs[stage.name] = record
        if stage.becomes is not None:
            self.current_model = record["model"]
        if stage.becomes == "sft":
            self.sft_model = record["model"]


# ---------------------------------------------------------------------------------------
# stage functions


def load_source(src: DataSource, quarantine: Path | None = None) -> tuple[list[Example], int]:
    """Examples of one configured source (``bundled:<name>`` resolves to a shipped slice) and
    the number of bad rows, which are logged with file, line and field and quarantined."""
    from srjudge import data

    path = (
        data.bundled_path(src.path.removeprefix("bundled:"))
        if src.path.startswith("bundled:")
        else src.path
    )
    result = data.load(path, src.format)
    for err in result.errors:
        log.warning("skipped bad row %s", err)
    if result.errors and quarantine is not None:
        write_jsonl(quarantine, [data.quarantine_record(e) for e in result.errors])
    examples = result.examples[: src.limit] if src.limit is not None else result.examples
    return examples, len(result.errors)


def stage_data(state: RunState, out: Path) -> dict[str, Any]:
    from srjudge import data

    cfg = state.cfg.data
    bad = 0
    pointwise: list[Example] = []
    pairwise: list[Example] = []
    for i, src in enumerate([*cfg.pointwise, *cfg.pairwise]):
        examples, n_bad = load_source(src, out / f"quarantine_{i}.jsonl")
        bad += n_bad
        (pointwise if i < len(cfg.pointwise) else pairwise).extend(examples)
    heldout: list[Example] = []
    if cfg.heldout_fraction > 0:
        pointwise, heldout = data.split_by_question(pointwise, cfg.heldout_fraction, state.cfg.seed)
    derived = []
    if cfg.derive_pairwise:
        derived = data.derive_pairwise(pointwise, min_gap=cfg.derive_min_gap, seed=state.cfg.seed)
    n_before = len(pointwise) + len(pairwise) + len(derived)
    pointwise, pairwise, derived = (
        _short(xs, cfg.max_prompt_chars) for xs in (pointwise, pairwise, derived)
    )
    too_long = n_before - len(pointwise) - len(pairwise) - len(derived)
    write_jsonl(out / "pointwise.jsonl", pointwise)
    write_jsonl(out / "pairwise.jsonl", pairwise + derived)
    write_jsonl(out / "heldout.jsonl", heldout)
    return {
        "counts": {
            "pointwise": len(pointwise),
            "pairwise": len(pairwise),
            "bad_rows": bad,
            "dropped_prompt_too_long": too_long,
            "pairwise_derived": len(derived),
            "heldout": len(heldout),
        }
    }


def _short(examples: list[Example], max_chars: int | None) -> list[Example]:
    """Examples whose judge prompt (system + user text) has at most ``max_chars`` characters."""
    if max_chars is None:
        return examples
    from srjudge.judging.prompts import judge_prompt

    return [ex for ex in examples if sum(len(m.content) for m in judge_prompt(ex)) <= max_chars]


def _examples(state: RunState, kind: str) -> list[Example]:
    path = state.stage_path(DATA_STAGE) / f"{kind}.jsonl"
    return [example_from_dict(d) for d in read_jsonl(path)]


def _cap(examples: list[Example], cap: int | None, seed: int) -> list[Example]:
    if cap is None or len(examples) <= cap:
        return examples
    return random.Random(seed).sample(examples, cap)


def _train_sft(
    state: RunState,
    out: Path,
    model: str,
    examples: list[Example],
    settings: SFTSettings,
    *,
    score_only: bool = False,
) -> dict[str, int]:
    """SFT into ``out/model``, in this process or under ``accelerate launch``; the counts."""
    if state.cfg.launch is not None:
        from srjudge.loop.launch import sft_launched

        launched = sft_launched(
            state.cfg.launch, out, model, examples, settings, score_only=score_only
        )
        return launched["counts"]
    from srjudge.training.sft import run_sft

    return run_sft(model, examples, out / "model", settings, score_only=score_only).counts


def _sft_stage(kind: str) -> Callable[[RunState, Path], dict[str, Any]]:
    def stage(state: RunState, out: Path) -> dict[str, Any]:
        stage_cfg = getattr(state.cfg, f"sft_{kind}")
        examples = _cap(_examples(state, kind), stage_cfg.max_examples, state.cfg.seed)
        counts = _train_sft(
            state, out, state.cfg.model, examples, stage_cfg.settings,
            score_only=stage_cfg.score_only,
        )  # fmt: skip
        return {"model": str(out / "model"), "input_model": state.cfg.model, "counts": counts}

    return stage


def stage_merge(state: RunState, out: Path) -> dict[str, Any]:
    from srjudge.training.merge import linear_merge

    a = state.outputs["sft_pointwise"]["model"]
    b = state.outputs["sft_pairwise"]["model"]
    linear_merge(a, b, out / "model", weight=state.cfg.merge.weight)
    return {"model": str(out / "model"), "inputs": [a, b], "weight": state.cfg.merge.weight}


def _sample_stage(t: int, it: IterationConfig) -> Callable[[RunState, Path], dict[str, Any]]:
    def stage(state: RunState, out: Path) -> dict[str, Any]:
        pool = [ex for kind in it.sample.modes for ex in _examples(state, kind)]
        inputs = select_inputs(
            pool, state.cfg.seed + t, fraction=it.sample.fraction, count=it.sample.count
        )
        write_jsonl(out / "inputs.jsonl", inputs)
        params = SamplingParams(
            n=it.sample.n,
            temperature=it.sample.temperature,
            top_p=it.sample.top_p,
            max_new_tokens=it.sample.max_new_tokens,
            seed=state.cfg.seed + 1000 * t,
        )
        counts = sample_to_file(
            partial(state.backend_factory, state.current_model),
            inputs,
            params,
            out / "judgments.jsonl",
            max_retries=it.sample.max_retries,
            **_workers(state.cfg),
        )
        return {"model": state.current_model, "counts": counts, "params": to_dict(params)}

    return stage


def _curate_stage(
    t: int, it: IterationConfig, sample_name: str
) -> Callable[[RunState, Path], dict[str, Any]]:
    def stage(state: RunState, out: Path) -> dict[str, Any]:
        from srjudge.training.curate import curate_all
        from srjudge.training.metajudge import meta_judge_inputs, meta_params

        sample_dir = state.stage_path(sample_name)
        examples = {d["id"]: example_from_dict(d) for d in read_jsonl(sample_dir / "inputs.jsonl")}
        judged = dict(load_judgments(sample_dir / "judgments.jsonl"))
        extras = meta_judge_inputs(
            it.curation.strategy,
            lambda: state.backend_factory(it.meta_judge or state.current_model),
            examples,
            judged,
            meta_params(it.sample.max_new_tokens, state.cfg.seed),
            out / "meta.jsonl",
        )
        items = [(examples[i], judged[i], extras.get(i, {})) for i in examples if i in judged]
        pairs, stats = curate_all(items, it.curation)
        write_jsonl(out / "pairs.jsonl", pairs)
        return {
            "counts": to_dict(stats),
            "strategy": it.curation.strategy,
            "curation": to_dict(it.curation),
        }

    return stage


def _train_stage(
    t: int, it: IterationConfig, curate_name: str, sample_name: str
) -> Callable[[RunState, Path], dict[str, Any]]:
    def stage(state: RunState, out: Path) -> dict[str, Any]:
        if it.method == "best_of_n_sft":
            return _best_of_n(state, it, sample_name, out)
        curate_dir = state.stage_path(curate_name)
        pairs = [pair_from_dict(d) for d in read_jsonl(curate_dir / "pairs.jsonl")]
        if not pairs:
            # Nothing to learn from: J_t carries over unchanged, and says so loudly.
            log.warning(
                "iteration %d: curation kept no pairs; J_%d = J_%d (not trained)", t, t, t - 1
            )
            return {
                "model": state.current_model,
                "trained": False,
                "reason": "no preference pairs",
                "counts": {"pairs": 0},
            }
        ref = state.sft_model if state.cfg.reference == "sft" else state.current_model
        if state.cfg.launch is not None:
            from srjudge.loop.launch import dpo_launched

            launched = dpo_launched(state.cfg.launch, out, state.current_model,
                                    curate_dir / "pairs.jsonl", it.dpo, ref_model=ref)  # fmt: skip
            counts = launched["counts"]
        else:
            from srjudge.training.dpo import run_dpo

            counts = run_dpo(
                state.current_model, pairs, out / "model", it.dpo, ref_model=ref
            ).counts
        return {
            "model": str(out / "model"),
            "input_model": state.current_model,
            "ref_model": ref,
            "trained": True,
            "counts": counts,
        }

    return stage


def _best_of_n(state: RunState, it: IterationConfig, sample_name: str, out: Path) -> dict[str, Any]:
    """Best-of-N baseline: SFT on the sampled judgments whose verdict equals the gold."""
    from srjudge.training.curate import gold_verdict

    sample_dir = state.stage_path(sample_name)
    examples = {d["id"]: example_from_dict(d) for d in read_jsonl(sample_dir / "inputs.jsonl")}
    rows: list[Example] = []
    for ex_id, judgments in load_judgments(sample_dir / "judgments.jsonl"):
        ex = examples[ex_id]
        seen: set[str] = set()
        for j in judgments:
            if j.ok and j.verdict == gold_verdict(ex) and j.rationale and j.rationale not in seen:
                seen.add(j.rationale)
                rows.append(_with_rationale(ex, j, len(seen)))
    counts = _train_sft(state, out, state.current_model, rows, it.sft)
    return {
        "model": str(out / "model"),
        "input_model": state.current_model,
        "trained": True,
        "counts": {"best_of_n_examples": len(rows), **counts},
    }


def _with_rationale(ex: Example, j: Judgment, k: int) -> Example:
    fields = {**to_dict(ex), "id": f"{ex.id}#bon{k}", "gold_rationale": j.rationale}
    return example_from_dict(fields)


def _eval_stage(label: str) -> Callable[[RunState, Path], dict[str, Any]]:
    def stage(state: RunState, out: Path) -> dict[str, Any]:
        from srjudge.evaluation.evaluate import evaluate

        model = _model_for(state, label)
        ev = state.cfg.eval
        heldout = state.stage_path(DATA_STAGE) / "heldout.jsonl"
        train = [*_examples(state, "pointwise"), *_examples(state, "pairwise")]
        result = evaluate(
            state.backend_factory(model),
            ev.benchmarks,
            backend_factory=partial(state.backend_factory, model),
            **_workers(state.cfg),
            limit=ev.limit,
            samples=ev.samples,
            out_dir=out,
            seed=state.cfg.seed,
            max_new_tokens=ev.max_new_tokens,
            paths={"in-domain": str(heldout)},
            train_examples=train,
            model_label=label,
            max_retries=ev.max_retries,
            score_only=ev.score_only,
        )
        return {"model": model, "label": label, "metrics": result.summary()}

    return stage


def _workers(cfg: RunConfig) -> dict[str, int]:
    """``sample_to_file`` / ``evaluate`` keyword arguments from ``cfg.launch``."""
    if cfg.launch is None:
        return {}
    return {
        "workers": cfg.launch.sample_workers,
        "devices_per_worker": cfg.launch.devices_per_worker,
    }


def _model_for(state: RunState, label: str) -> str:
    if label == "seed":
        return state.cfg.model
    if label == "sft":
        return state.sft_model
    return state.outputs[label]["model"]  # an iteration's training stage


# ---------------------------------------------------------------------------------------
# planning and running


def plan(cfg: RunConfig) -> list[Stage]:
    """The ordered stages of a run; names are stable, so a rerun finds its finished stages."""
    stages = [Stage(DATA_STAGE, stage_data, cfg.data)]
    merges = cfg.sft_pointwise.enabled and cfg.sft_pairwise.enabled
    for kind in ("pointwise", "pairwise"):
        sft = getattr(cfg, f"sft_{kind}")
        if sft.enabled:
            stage = Stage(f"sft_{kind}", _sft_stage(kind), sft, produces_model=True, launched=True)
            stage.becomes = None if merges else "sft"
            stages.append(stage)
    if merges:
        stages.append(Stage("merge", stage_merge, cfg.merge, produces_model=True, becomes="sft"))
    for t, it in enumerate(cfg.iterations, 1):
        sample, curate, train = f"iter{t}_sample", f"iter{t}_curate", training_stage_name(t, it)
        stages.append(Stage(sample, _sample_stage(t, it), it.sample))
        if it.method == "dpo":
            stages.append(Stage(curate, _curate_stage(t, it, sample), it.curation))
        train_fn = _train_stage(t, it, curate, sample)
        stages.append(
            Stage(train, train_fn, it, produces_model=True, becomes="current", launched=True)
        )
    for label in eval_labels(cfg):
        stages.append(Stage(eval_stage_name(label), _eval_stage(label), cfg.eval))
    return stages


def training_stage_name(t: int, it: IterationConfig) -> str:
    """``iter<t>_<method>``: the stage that trains J_t (also its label in evaluations)."""
    return f"iter{t}_{it.method}"


def eval_labels(cfg: RunConfig) -> list[str]:
    """Model labels to evaluate: 'seed', 'sft', and each iteration's training stage name."""
    if not cfg.eval.benchmarks:
        return []
    iters = [training_stage_name(t, it) for t, it in enumerate(cfg.iterations, 1)]
    labels: list[str] = []
    for m in cfg.eval.models:
        if m == "seed":
            labels.append("seed")
        elif m == "sft" and (cfg.sft_pointwise.enabled or cfg.sft_pairwise.enabled):
            labels.append("sft")
        elif m == "iterations":
            labels.extend(iters)
        elif m == "final" and iters and iters[-1] not in labels:
            labels.append(iters[-1])
    return list(dict.fromkeys(labels))
