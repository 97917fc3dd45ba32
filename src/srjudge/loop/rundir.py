"""The run folder: the only module that knows its layout and the names of its stage folders.

    RUN/config.yaml                      the resolved config (a rerun must match it)
    RUN/stages/NN_<stage name>/          one folder per stage, NN = its place in the plan
    RUN/stages/NN_<stage>/stage.json     provenance, written last and atomically: its existence
                                         means the stage finished
    RUN/stages/NN_data/{pointwise,pairwise,heldout}.jsonl   the run's data
    RUN/stages/NN_eval_<label>/          an evaluation folder (metrics.json, predictions.jsonl)
    RUN/report.md, RUN/report.html

``stage.json`` holds what the stage function returned (outputs, counts) and, added here: the
stage name, its folder, the seed, the stage's own config section (``config``), start time and
seconds, the template ids and hashes, library versions and the host.

    run_report("runs/demo", "runs/demo")          # report.md + report.html of a run
    run_report(["ev/seed", "ev/iter2"], "out")    # or of evaluation folders
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import platform
import re
import shutil
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from srjudge import __version__
from srjudge.data.sources import load_srjudge
from srjudge.evaluation.report import IterationRow, Section, loss_curve, write_report
from srjudge.evaluation.results import (
    ModelEval,
    find_evals,
    read_json_tolerant,
    read_jsonl_tolerant,
    read_model_eval,
)
from srjudge.loop.config import RunConfig, config_to_dict
from srjudge.paths import refuse_foreign_dir
from srjudge.records import Example

STAGES = "stages"
STAGE_FILE = "stage.json"
DATA_STAGE = "data"
EVAL_PREFIX = "eval_"
_STAGE_DIR = re.compile(r"(\d+)_(\w+)")
_ITERATION_STAGE = re.compile(r"iter(\d+)_(\w+)")


# ---------------------------------------------------------------------------------------
# stage folders


def stage_dir(run_dir: Path, index: int, name: str) -> Path:
    """``RUN/stages/NN_<name>``."""
    return run_dir / STAGES / f"{index:02d}_{name}"


def stage_dirs(run_dir: Path) -> list[tuple[str, Path]]:
    """(stage name, folder) of every stage folder of a run, in plan order."""
    found = []
    for d in sorted((run_dir / STAGES).glob("*_*")):
        m = _STAGE_DIR.fullmatch(d.name)
        if m and d.is_dir():
            found.append((m.group(2), d))
    return found


def eval_stage_name(label: str) -> str:
    """The stage that evaluates the model labelled ``label`` (``seed``, ``sft``, a training
    stage's name)."""
    return EVAL_PREFIX + label


def read_stage(folder: Path) -> dict[str, Any] | None:
    """A finished stage's record, or None while it has not finished."""
    path = folder / STAGE_FILE
    return json.loads(path.read_text()) if path.exists() else None


def write_stage(
    folder: Path,
    name: str,
    outputs: dict[str, Any],
    *,
    seed: int,
    config: Any,
    started: float,
    templates: dict[str, str],
) -> dict[str, Any]:
    """Write ``stage.json`` atomically (the stage is then finished) and return the record."""
    record = {"stage": name, "dir": folder.name, "seed": seed, **outputs}
    record.update(
        config=asdict(config) if is_dataclass(config) else config,
        started=started,
        seconds=round(time.time() - started, 2),
        templates=templates,
        versions=library_versions(),
        host=platform.node(),
    )
    write_json_atomic(folder / STAGE_FILE, record)
    return record


def clean_stage(run_dir: Path, name: str) -> None:
    """Remove a stage folder so the next run redoes it (and nothing after it is affected)."""
    for stage, d in stage_dirs(run_dir):
        if stage == name:
            shutil.rmtree(d)


def library_versions() -> dict[str, str]:
    out = {"srjudge": __version__, "python": platform.python_version()}
    for pkg in ("torch", "transformers", "trl", "peft", "datasets"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def template_provenance() -> dict[str, Any]:
    from srjudge.judging import prompts

    return {tid: prompts.template_hash(tid) for tid in prompts.TEMPLATE_IDS}


def write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


HOW_NOT_WHAT = ("launch",)
"""Config keys that say how a run is spread over processes, not what it computes: a run may
resume with other values (each stage.json records the ones it ran with)."""


def config_changes(cfg: RunConfig, run_dir: Path) -> list[str]:
    """Top-level settings where the config saved in ``run_dir`` differs from ``cfg`` (none
    when no config is saved there yet). Reads only."""
    path = run_dir / "config.yaml"
    if not path.exists():
        return []
    before = yaml.safe_load(path.read_text()) or {}
    resolved = config_to_dict(cfg)
    keys = (set(before) | set(resolved)) - set(HOW_NOT_WHAT)
    return sorted(k for k in keys if before.get(k) != resolved.get(k))


def check_config(cfg: RunConfig, run_dir: Path, allow_change: bool) -> None:
    """Write the resolved config into the run folder; refuse a folder that is no run folder,
    and one whose saved config differs (a resumed run must be the same run) unless
    ``allow_change``."""
    refuse_foreign_dir(
        run_dir, "run_dir", "a run folder (no config.yaml)", lambda d: (d / "config.yaml").is_file()
    )
    path = run_dir / "config.yaml"
    changed = config_changes(cfg, run_dir)
    if changed and not allow_change:
        raise ValueError(
            f"{path} exists with a different config (changed: {', '.join(changed)}). "
            "Use a new run_dir, or --allow-config-change to resume anyway."
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


# ---------------------------------------------------------------------------------------
# reading a run back: training data, evaluations, iterations, report


def training_examples(run_dir: str | Path) -> list[Example]:
    """The training examples of a run (the data stage's pointwise and pairwise files)."""
    out: list[Example] = []
    for name, d in stage_dirs(Path(run_dir)):
        if name == DATA_STAGE:
            for kind in ("pointwise", "pairwise"):
                if (d / f"{kind}.jsonl").is_file():
                    out += load_srjudge(d / f"{kind}.jsonl").examples
    return out


def display_name(label: str) -> str:
    """Row names as in the paper: seed model, J_SFT, J_t.

    >>> display_name("iter2_dpo"), display_name("sft"), display_name("prometheus")
    ('J_2 (iter2_dpo)', 'J_SFT', 'prometheus')
    """
    if label == "seed":
        return "seed model"
    if label == "sft":
        return "J_SFT"
    m = _ITERATION_STAGE.fullmatch(label)
    return f"J_{m.group(1)} ({label})" if m else label


def run_evals(run_dir: Path) -> list[ModelEval]:
    """The evaluation stages of a run (unreadable ones left out), labelled by stage."""
    out = []
    for name, d in stage_dirs(run_dir):
        if name.startswith(EVAL_PREFIX):
            e = read_model_eval(d, label=name.removeprefix(EVAL_PREFIX))
            if e is not None:
                out.append(e)
    return out


def read_iterations(
    run_dir: Path,
) -> tuple[list[IterationRow], dict[str, list[tuple[float, float]]]]:
    """Per-iteration counts (sample + curate stages) and loss curves of the training stages."""
    rows: dict[str, IterationRow] = {}
    losses: dict[str, list[tuple[float, float]]] = {}
    for name, d in stage_dirs(run_dir):
        info = read_json_tolerant(d / STAGE_FILE)
        info = info if isinstance(info, dict) else {}
        counts = info.get("counts") if isinstance(info.get("counts"), dict) else {}
        m = _ITERATION_STAGE.fullmatch(name)
        if m and m.group(2) == "sample":
            row = rows.setdefault(f"iter{m.group(1)}", IterationRow(f"iter{m.group(1)}"))
            row.judgments = counts.get("judgments")
            row.parse_failures = counts.get("parse_failures")
            row.inputs = counts.get("inputs_sampled")
            row.mean_rationale_chars = counts.get("mean_rationale_chars")
        elif m and m.group(2) == "curate":
            row = rows.setdefault(f"iter{m.group(1)}", IterationRow(f"iter{m.group(1)}"))
            row.strategy = info.get("strategy")
            row.pairs_kept = counts.get("pairs_after_cap", counts.get("pairs"))
            by_rule = counts.get("by_rule")
            row.by_rule = by_rule if isinstance(by_rule, dict) else {}
        for log in (d / "train_log.jsonl", d / "model" / "train_log.jsonl"):
            curve = loss_curve(read_jsonl_tolerant(log))
            if curve:
                losses[name] = curve
                break
    return list(rows.values()), losses


def is_run_dir(path: str | Path) -> bool:
    return (Path(path) / STAGES).is_dir()


def run_report(
    run_dir_or_eval_dirs: str | Path | list[str | Path],
    out_dir: str | Path,
    extra: list[Section] | None = None,
) -> tuple[Path, Path]:
    """``report.md`` + ``report.html`` of a run folder, or of evaluation folders (one, a list,
    or a folder holding several), rows named by ``display_name``. What a run gives::

        NN_eval_<label>/metrics.json, predictions.jsonl   one model's evaluation (typed results)
        NN_iter<t>_sample/stage.json    counts.judgments, .parse_failures, .inputs_sampled,
                                        .mean_rationale_chars
        NN_iter<t>_curate/stage.json    counts.pairs_after_cap (pairs kept), counts.by_rule,
                                        "strategy"
        NN_<stage>/train_log.jsonl (or model/train_log.jsonl)   TRL log history: loss curve

    A missing or unreadable piece drops its table, row or figure, never the report. ``extra``
    sections (a human study's) are appended.
    """
    target = run_dir_or_eval_dirs
    iterations: list[IterationRow] = []
    losses: dict[str, list[tuple[float, float]]] = {}
    if isinstance(target, list | tuple) or not is_run_dir(target):
        evals, title = find_evals(target), "srjudge report: evaluations"
    else:
        evals, title = run_evals(Path(target)), f"srjudge report: {Path(target).name}"
        iterations, losses = read_iterations(Path(target))
    if not evals and not iterations and not losses and not extra:
        raise FileNotFoundError(f"nothing to report in {target}: no metrics.json, no stages")
    for e in evals:
        e.display = display_name(e.label)
    return write_report(
        evals, out_dir, title=title, iterations=iterations, losses=losses, extra=extra
    )
