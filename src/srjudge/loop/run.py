"""``run``: the self-rationalization loop, resumable by stage.

    from srjudge.loop.config import load_config
    from srjudge.loop.run import run
    run(load_config("configs/demo.yaml"))

    srjudge run configs/demo.yaml
    srjudge run configs/demo.yaml --dry-run       # check the config, print the plan (plan_text)

data -> SFT (pointwise, pairwise) -> merge -> for each iteration (sample -> curate -> DPO) ->
evaluation -> report, each stage in its own folder of the run folder (``loop.rundir`` has the
layout). A rerun skips every stage whose ``stage.json`` exists and continues an interrupted
one: sampling and meta-judging append to resumable JSONL files keyed by example id; training
resumes from its last checkpoint (``srjudge.training.common``). Which model each stage leaves
as J_SFT or the current judge J_t is declared on the stage (``Stage.becomes``). A ``launch``
section runs the training stages under ``accelerate launch`` and splits sampling and
evaluation over worker processes (``srjudge.loop.launch``, ``srjudge.judging.shards``;
docs/SCALING.md).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from functools import partial

from srjudge.judging.backends import load_backend
from srjudge.loop.config import RunConfig
from srjudge.loop.launch import follow
from srjudge.loop.rundir import (
    check_config,
    config_changes,
    read_stage,
    run_report,
    stage_dir,
    template_provenance,
    write_stage,
)
from srjudge.loop.stages import BackendFactory, RunState, plan

log = logging.getLogger("srjudge.loop")


def default_backend_factory(cfg: RunConfig) -> BackendFactory:
    """``load_backend(cfg.backend, model, **launch.engine_options)``; picklable, so that
    sampling workers build their own."""
    options = cfg.launch.engine_options if cfg.launch is not None else {}
    return partial(load_backend, cfg.backend, **options)


def run(
    cfg: RunConfig,
    *,
    backend_factory: BackendFactory | None = None,
    allow_config_change: bool = False,
) -> RunState:
    """Run (or resume) every stage of ``cfg``; returns the state with each stage's outputs.

    With ``launch.machine_rank`` > 0 this machine only joins machine 0's training launches
    (``srjudge.loop.launch.follow``) and the state has no outputs."""
    run_dir = cfg.directory
    factory = backend_factory or default_backend_factory(cfg)
    if cfg.launch is not None and cfg.launch.machine_rank > 0:
        stages = plan(cfg)
        follow(cfg, [stage_dir(run_dir, i, s.name) for i, s in enumerate(stages) if s.launched])
        return RunState(cfg, run_dir, factory, stages)
    check_config(cfg, run_dir, allow_config_change)
    state = RunState(cfg, run_dir, factory, plan(cfg))
    state.current_model = state.sft_model = cfg.model
    templates = template_provenance()
    for i, stage in enumerate(state.stages):
        d = stage_dir(run_dir, i, stage.name)
        record = read_stage(d)
        if record is not None:
            log.info("stage %s: done, skipped", stage.name)
        else:
            d.mkdir(parents=True, exist_ok=True)
            log.info("stage %s: running in %s", stage.name, d)
            started = time.time()
            outputs = stage.fn(state, d)
            if cfg.launch is not None:
                outputs["launch"] = asdict(cfg.launch)
            record = write_stage(
                d,
                stage.name,
                outputs,
                seed=cfg.seed,
                config=stage.config,
                started=started,
                templates=templates,
            )
        record["dir"] = d.name
        state.adopt(stage, record)
    if cfg.report and cfg.eval.benchmarks:
        run_report(run_dir, run_dir)
    return state


def plan_text(cfg: RunConfig) -> str:
    """What ``run(cfg)`` would do, for ``srjudge run --dry-run``: the run folder, each stage's
    folder and whether it is done (its ``stage.json`` exists) or would run. Reads only."""
    run_dir = cfg.directory
    stages = plan(cfg)
    lines = [
        f"config OK: run '{cfg.name}' in {run_dir} (model {cfg.model}, backend {cfg.backend}, "
        f"seed {cfg.seed})",
        f"{len(stages)} stages (dry run: nothing was loaded or written):",
    ]
    for i, stage in enumerate(stages):
        folder = stage_dir(run_dir, i, stage.name)
        state = "done" if read_stage(folder) is not None else "to run"
        model = "  -> a model" if stage.produces_model else ""
        lines.append(f"  {folder.name:<28} {state}{model}")
    changed = config_changes(cfg, run_dir)
    if changed:
        lines.append(
            f"note: {run_dir / 'config.yaml'} holds a different config (changed: "
            f"{', '.join(changed)}); the run would refuse it without --allow-config-change"
        )
    return "\n".join(lines)
