"""``run``: the self-rationalization loop, resumable by stage.

    from srjudge.loop.config import load_config
    from srjudge.loop.run import run
    run(load_config("configs/demo.yaml"))

data -> SFT (pointwise, pairwise) -> merge -> for each iteration (sample -> curate -> DPO) ->
evaluation -> report. Run folder layout (``RUN`` = ``cfg.directory``)::

    RUN/config.yaml                      resolved config (a rerun must match it)
    RUN/stages/NN_<name>/stage.json      provenance: inputs, outputs, counts, seconds, versions;
                                         written last, so its existence means the stage finished
    RUN/stages/00_data/{pointwise,pairwise,heldout}.jsonl
    RUN/stages/NN_sft_pointwise/model/   save_pretrained directories (+ train_log.jsonl)
    RUN/stages/NN_iter1_sample/judgments.jsonl   one line per input, appended as produced
    RUN/stages/NN_iter1_curate/pairs.jsonl
    RUN/stages/NN_iter1_dpo/model/
    RUN/stages/NN_eval_<model>/metrics.json, predictions.jsonl
    RUN/report.md, RUN/report.html

A rerun skips every stage whose ``stage.json`` exists and continues an interrupted one:
sampling and meta-judging append to resumable JSONL files keyed by example id; training
resumes from its last checkpoint (``srjudge.training.common``).
"""

from __future__ import annotations

import json
import logging
import platform
import time

from srjudge.judging.backends import load_backend
from srjudge.loop.config import RunConfig
from srjudge.loop.rundir import (
    check_config,
    library_versions,
    template_provenance,
    write_json_atomic,
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
    state = RunState(cfg, run_dir, backend_factory or default_backend_factory(cfg))
    state.current_model = cfg.model
    state.sft_model = cfg.model
    templates = template_provenance()
    for i, stage in enumerate(plan(cfg)):
        d = run_dir / "stages" / f"{i:02d}_{stage.name}"
        done = d / "stage.json"
        if done.exists():
            record = json.loads(done.read_text())
            log.info("stage %s: done, skipped", stage.name)
        else:
            d.mkdir(parents=True, exist_ok=True)
            log.info("stage %s: running in %s", stage.name, d)
            started = time.time()
            record = {"stage": stage.name, "dir": d.name, "seed": cfg.seed, **stage.fn(state, d)}
            record.update(
                started=started,
                seconds=round(time.time() - started, 2),
                templates=templates,
                versions=library_versions(),
                host=platform.node(),
            )
            write_json_atomic(done, record)
        record["dir"] = d.name
        state.outputs[stage.name] = record
        if stage.name == "merge" or (stage.name.startswith("sft_") and not _merges(cfg)):
            state.sft_model = state.current_model = record["model"]
        elif stage.name.endswith(("_dpo", "_best_of_n_sft")):
            state.current_model = record["model"]
    if cfg.report and cfg.eval.benchmarks:
        from srjudge.evaluation.report import write_report

        write_report(run_dir, run_dir)
    return state


def _merges(cfg: RunConfig) -> bool:
    return cfg.sft_pointwise.enabled and cfg.sft_pairwise.enabled
