"""The run folder (``loop.rundir``) and the stage plan: stages declare what their model becomes,
each stage.json carries its own config section, and a run is read back (training data,
evaluations as typed results, report) through the one module that knows the layout."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from srjudge.evaluation.results import EvalResult, Metric, find_evals
from srjudge.judging.backends import MockBackend
from srjudge.loop.config import config_from_dict, load_config
from srjudge.loop.run import run
from srjudge.loop.rundir import (
    clean_stage,
    run_evals,
    run_report,
    stage_dir,
    stage_dirs,
    training_examples,
)
from srjudge.loop.stages import plan
from srjudge.records import read_jsonl

CONFIGS = Path(__file__).parents[1] / "src" / "srjudge" / "configs"


def _flags(cfg) -> dict[str, tuple[bool, str | None]]:
    return {s.name: (s.produces_model, s.becomes) for s in plan(cfg)}


def test_the_demo_plan_says_which_stages_make_the_judges():
    flags = _flags(load_config(CONFIGS / "demo.yaml"))
    assert flags["data"] == (False, None)
    assert flags["sft_pointwise"] == flags["sft_pairwise"] == (True, None)  # merged next
    assert flags["merge"] == (True, "sft")
    assert flags["iter1_sample"] == flags["iter1_curate"] == (False, None)
    assert flags["iter1_dpo"] == flags["iter2_dpo"] == (True, "current")
    assert all(v == (False, None) for k, v in flags.items() if k.startswith("eval_"))


def test_a_single_sft_stage_is_j_sft_and_best_of_n_is_a_judge():
    flags = _flags(load_config(CONFIGS / "baseline_best_of_n.yaml", ["sft_pairwise.enabled=false"]))
    assert flags["sft_pointwise"] == (True, "sft")
    assert "merge" not in flags
    assert flags["iter1_best_of_n_sft"] == (True, "current")


def _eval_only_config(run_dir: Path) -> dict:
    return {
        "name": "eval-only",
        "run_dir": str(run_dir),
        "model": "seed-model",
        "backend": "mock",
        "data": {
            "pointwise": [{"format": "vicuna-bench", "path": "bundled:vicuna-bench", "limit": 20}],
            "heldout_fraction": 0.25,
        },
        "sft_pointwise": {"enabled": False},
        "sft_pairwise": {"enabled": False},
        "eval": {"benchmarks": ["in-domain"], "models": ["seed"], "limit": 3},
    }


@pytest.fixture(scope="module")
def eval_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    cfg = config_from_dict(_eval_only_config(run_dir))
    factory = lambda model: MockBackend(["Judged. [RESULT] 4"], name=f"mock:{model}")  # noqa: E731
    return run(cfg, backend_factory=factory), run_dir


def test_stage_json_snapshots_the_stages_own_config(eval_run):
    state, run_dir = eval_run
    assert [name for name, _ in stage_dirs(run_dir)] == ["data", "eval_seed"]
    data_record = json.loads((stage_dir(run_dir, 0, "data") / "stage.json").read_text())
    assert data_record["config"]["heldout_fraction"] == 0.25
    assert data_record["config"]["pointwise"][0]["path"] == "bundled:vicuna-bench"
    eval_record = json.loads((stage_dir(run_dir, 1, "eval_seed") / "stage.json").read_text())
    assert eval_record["config"]["benchmarks"] == ["in-domain"]
    assert state.current_model == state.sft_model == "seed-model"  # no stage made a judge


def test_a_run_is_read_back_through_rundir(eval_run):
    state, run_dir = eval_run
    data = run_dir / "stages" / state.outputs["data"]["dir"]
    expected = [d["id"] for d in read_jsonl(data / "pointwise.jsonl")]
    assert [ex.id for ex in training_examples(run_dir)] == expected
    (evaluation,) = run_evals(run_dir)
    assert evaluation.label == "seed" and evaluation.display == "seed"
    assert isinstance(evaluation.result, EvalResult)
    metric = evaluation.value("in-domain", "parse_failure_rate")
    assert isinstance(metric, Metric) and metric.value == 0.0 and metric.n == 3
    assert evaluation.value("in-domain", "no_such_metric") is None
    assert evaluation.value("rewardbench", "total") is None
    assert len(evaluation.predictions["in-domain"]) == 3
    assert (run_dir / "report.md").is_file()  # the loop wrote the report


def test_report_rows_use_display_names_and_typed_metrics(eval_run, tmp_path):
    _, run_dir = eval_run
    md, _ = run_report(run_dir, tmp_path)
    text = md.read_text()
    assert "| seed model |" in text and "srjudge report: " + run_dir.name in text
    (folder,) = [d for name, d in stage_dirs(run_dir) if name == "eval_seed"]
    (e,) = find_evals(folder)
    assert e.display == "seed"  # plain evaluation folders keep their label


def test_unreadable_metrics_drop_the_folder_not_the_report(tmp_path):
    folder = tmp_path / "ev"
    folder.mkdir()
    (folder / "metrics.json").write_text(json.dumps({"label": "x", "benchmarks": 3}))
    assert find_evals(folder) == []
    with pytest.raises(FileNotFoundError, match="nothing to report"):
        run_report(folder, tmp_path / "out")


def test_clean_stage_removes_only_that_stage(tmp_path):
    for i, name in enumerate(["data", "iter1_sample", "iter1_sample_extra"]):
        stage_dir(tmp_path, i, name).mkdir(parents=True)
    clean_stage(tmp_path, "iter1_sample")
    assert [name for name, _ in stage_dirs(tmp_path)] == ["data", "iter1_sample_extra"]


def test_nan_metrics_read_back_as_nan(eval_run):
    _, run_dir = eval_run
    (evaluation,) = run_evals(run_dir)
    values = [m.value for b in evaluation.result.benchmarks.values() for m in b.metrics.values()]
    assert all(isinstance(v, float) for v in values)
    assert any(math.isnan(v) for v in values)  # constant scores: correlations undefined
