"""The whole loop on the tiny random model: SFT x2, merge, two DPO iterations, evaluation,
report. Sampling uses a mock backend (a random model writes no parseable judgments, so the
curation would have nothing to pair); training is real TRL on the real tiny model.

Also: a run killed with SIGKILL in the middle of sampling resumes without losing or repeating
work, and finished stages are not redone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from srjudge.judging.backends import MockBackend
from srjudge.loop.config import config_from_dict
from srjudge.loop.run import run
from srjudge.loop.stages import plan
from srjudge.records import read_jsonl

TINY_TRAIN = {
    "num_train_epochs": 1,
    "learning_rate": 1e-3,
    "max_length": 3072,
    "per_device_train_batch_size": 2,
    "gradient_accumulation_steps": 1,
    "logging_steps": 1,
    "disable_tqdm": True,
}


def _config(run_dir: Path, tiny_model_dir: str, **extra) -> dict:
    iteration = {
        "sample": {"count": 2, "n": 5, "max_new_tokens": 32},
        "curation": {"strategy": "correct_answer", "margin": 1, "max_pairs_per_input": 1},
        "dpo": {**TINY_TRAIN, "beta": 0.1},
    }
    return {
        "name": "tiny",
        "run_dir": str(run_dir),
        "model": tiny_model_dir,
        "data": {
            "pointwise": [{"format": "vicuna-bench", "path": "bundled:vicuna-bench", "limit": 40}],
            "derive_pairwise": True,
            "heldout_fraction": 0.25,
        },
        "sft_pointwise": {"max_examples": 2, "settings": TINY_TRAIN},
        "sft_pairwise": {"max_examples": 2, "settings": TINY_TRAIN},
        "iterations": [iteration, iteration],
        "eval": {
            "benchmarks": ["in-domain"],
            "models": ["sft", "final"],
            "limit": 3,
            "max_new_tokens": 16,
        },
        **extra,
    }


def _mock_judge(prompt, i: int) -> str:
    pairwise = "RESPONSE 2" in prompt[-1].content
    verdict = 1 + i % 2 if pairwise else 1 + i % 5
    return f"The response meets some of the criteria, judged as {verdict}. [RESULT] {verdict}"


def _mock_factory(model: str) -> MockBackend:
    return MockBackend(_mock_judge, name=f"mock:{model}")


def _weights(model_dir: str) -> dict[str, torch.Tensor]:
    return load_file(str(Path(model_dir) / "model.safetensors"))


def test_whole_loop_trains_every_parameter(tmp_path, tiny_model_dir):
    cfg = config_from_dict(_config(tmp_path / "run", tiny_model_dir))
    state = run(cfg, backend_factory=_mock_factory)

    names = [s.name for s in plan(cfg)]
    assert list(state.outputs) == names
    seed = _weights(tiny_model_dir)
    for stage in ("sft_pointwise", "sft_pairwise", "iter1_dpo", "iter2_dpo"):
        rec = state.outputs[stage]
        assert rec.get("trained", True), f"{stage} did not train: {rec}"
        before = (
            seed
            if stage.startswith("sft")
            else _weights(state.outputs["merge" if stage == "iter1_dpo" else "iter1_dpo"]["model"])
        )
        after = _weights(rec["model"])
        unchanged = [k for k in before if torch.equal(before[k], after[k])]
        assert not unchanged, f"{stage}: parameters not changed by training: {unchanged}"
        log = [json.loads(line) for line in (Path(rec["model"]) / "train_log.jsonl").open()]
        assert any("loss" in row for row in log), f"{stage}: no loss logged"

    for t in (1, 2):
        pairs = list(
            read_jsonl(
                tmp_path
                / "run"
                / "stages"
                / state.outputs[f"iter{t}_curate"]["dir"]
                / "pairs.jsonl"
            )
        )
        assert pairs and all(p["strategy"] == "correct_answer" for p in pairs)
    assert state.outputs["iter2_dpo"]["ref_model"] == state.outputs["iter1_dpo"]["model"]
    for stage in names:
        stage_json = json.loads(
            (tmp_path / "run/stages" / state.outputs[stage]["dir"] / "stage.json").read_text()
        )
        assert {"seconds", "templates", "versions", "seed"} <= set(stage_json)
    assert (tmp_path / "run" / "report.html").exists()

    # a rerun does nothing: every stage is skipped
    mtimes = {p: p.stat().st_mtime for p in (tmp_path / "run").rglob("stage.json")}
    run(cfg, backend_factory=_mock_factory)
    assert mtimes == {p: p.stat().st_mtime for p in (tmp_path / "run").rglob("stage.json")}


def test_changed_config_is_refused(tmp_path, tiny_model_dir):
    raw = _config(tmp_path / "run", tiny_model_dir, iterations=[])
    raw["sft_pointwise"]["enabled"] = raw["sft_pairwise"]["enabled"] = False
    raw["eval"]["benchmarks"] = []
    run(config_from_dict(raw), backend_factory=_mock_factory)
    raw["seed"] = 5
    with pytest.raises(ValueError, match="seed"):
        run(config_from_dict(raw), backend_factory=_mock_factory)


def test_kill_during_sampling_then_resume(tmp_path, tiny_model_dir):
    """SIGKILL the real CLI while it samples with the tiny model; the rerun completes with every
    input judged exactly once and does not redo the finished data stage."""
    import yaml

    raw = _config(tmp_path / "run", tiny_model_dir)
    raw["sft_pointwise"]["enabled"] = raw["sft_pairwise"]["enabled"] = False
    raw["iterations"] = [
        {
            "sample": {"count": 30, "n": 2, "max_new_tokens": 48},
            "curation": {"strategy": "correct_answer", "margin": 1},
        }
    ]
    raw["eval"]["benchmarks"] = []
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(raw))
    judgments = tmp_path / "run/stages/01_iter1_sample/judgments.jsonl"
    cmd = [sys.executable, "-m", "srjudge.cli", "run", str(cfg_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        if judgments.exists() and sum(1 for _ in judgments.open()) >= 3:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    lines_at_kill = sum(1 for _ in judgments.open())
    assert 3 <= lines_at_kill < 30, "the kill did not land mid-stage"
    assert not (judgments.parent / "stage.json").exists()
    data_stage = tmp_path / "run/stages/00_data/stage.json"
    data_mtime = data_stage.stat().st_mtime

    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ids = [row["example_id"] for row in read_jsonl(judgments)]
    inputs = [row["id"] for row in read_jsonl(judgments.parent / "inputs.jsonl")]
    assert sorted(ids) == sorted(inputs) and len(ids) == len(set(ids)) == 30
    assert data_stage.stat().st_mtime == data_mtime
    counts = json.loads((judgments.parent / "stage.json").read_text())["counts"]
    assert counts["judgments"] == 60
