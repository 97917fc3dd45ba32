"""``run``: the self-rationalization loop, resumable by stage.

    from srjudge.loop.config import load_config
    from srjudge.loop.run import run
    run(load_config("configs/demo.yaml"))

    srjudge run configs/demo.yaml

data -> SFT (pointwise, pairwise) -> merge -> for each iteration (sample -> curate -> DPO) ->
evaluation -> report, each stage in its own folder of the run folder (``loop.rundir`` has the
layout). A rerun skips every stage whose ``stage.json`` exists and continues an interrupted
one: sampling and meta-judging append to resumable JSONL files keyed by example id; training
resumes from its last checkpoint (``srjudge.training.common``). Which model each stage leaves
as J_SFT or the current judge J_t is declared on the stage (``Stage.becomes``).
"""

from __future__ import annotations

import logging
import time

from srjudge.judging.backends import load_backend
from srjudge.loop.config import RunConfig
from srjudge.loop.rundir import (
    check_config,
    read_stage,
    run_report,
    stage_dir,
    template_provenance,
    write_stage,
)
from srjudge.loop.stages import BackendFactory, RunState, plan

log = logging.getLogger("srjudge.loop")


def default_backend_factory(cfg: RunConfig) -> BackendFactory:
    return lambda model: load_backend(cfg.backend, model)


def run(
    cfg: RunConfig,
    *,
    backend_factory: BackendFactory | None = None,
    allow_config_change: bool = False,
) -> RunState:
    """Run (or resume) every stage of ``cfg``; returns the state with each stage's outputs."""
    run_dir = cfg.directory
    check_config(cfg, run_dir, allow_config_change)
    state = RunState(cfg, run_dir, backend_factory or default_backend_factory(cfg), plan(cfg))
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
