"""Real multi-process runs on CPU (gloo), with the tiny random model. Slow (process start-ups
dominate): ``pytest -m slow tests/test_distributed.py``; CI runs it (``.ci/run``).

* The loop with ``launch: {num_processes: 2, sample_workers: 2}`` runs its SFT and DPO stages
  as ``accelerate launch`` (torchrun, ``ACCELERATE_USE_CPU=1``) of ``srjudge sft|dpo`` with 2
  processes x batch 1, and gives the loss curves and final weights of the in-process run with
  1 process x batch 2; its sampling and evaluation, split over 2 workers, write exactly the
  files of one worker.
* Only rank 0 writes: rank 1 is audited (``tests/rank_audit/sitecustomize.py``, Python audit
  hooks) and writes nothing under the run folder but scratch in the checkpoint folder (the
  trainer's per-rank RNG state, datasets' map caches), which is deleted at the end.
* ``kill -9`` of rank 1 in the middle of SFT (launched with the shipped ``ddp`` accelerate
  config) fails the stage cleanly (no stage.json, a clear error); rerunning resumes from the
  last checkpoint and ends with the uninterrupted weights.
* Sampling with the real tiny model (seeded sampling, not a mock) over 2 spawned workers gives
  exactly the judgments of 1 worker.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest
import torch
from safetensors.torch import load_file

from srjudge.judging.backends import MockBackend, SamplingParams, load_backend
from srjudge.judging.sampling import sample_to_file
from srjudge.loop.config import config_from_dict
from srjudge.loop.run import run
from srjudge.records import Message, PointwiseExample, Rubric, to_dict, write_jsonl

pytestmark = pytest.mark.slow  # 4.7-11.5 min measured on 2 shared cores; CI runs it (.ci/run)

AUDIT = Path(__file__).parent / "rank_audit"
RUBRIC = Rubric("Is the sum right?", ("wrong", "mostly wrong", "partly", "mostly", "right"))
TRAIN = {
    "num_train_epochs": 1,
    "learning_rate": 1e-3,
    "max_length": 1024,
    "per_device_train_batch_size": 2,  # 1 per process with 2 processes
    "gradient_accumulation_steps": 1,
    "logging_steps": 1,
    "save_steps": 1,
    "disable_tqdm": True,
}


def mock_judge(prompt, i: int) -> str:
    verdict = 1 + i % 5
    return f"The sum is checked step by step, so it is a {verdict}. [RESULT] {verdict}"


def mock_factory(model: str) -> MockBackend:
    """Module level, so that it pickles into the sampling workers."""
    return MockBackend(mock_judge, name=f"mock:{model}")


def _data(path: Path) -> Path:
    examples = [
        PointwiseExample(f"q{i}", [Message("user", f"What is {i} + {i}?")], str(2 * i), RUBRIC,
                         gold_score=1 + i % 4, gold_rationale=f"{i} + {i} is {2 * i}.")
        for i in range(12)
    ]  # fmt: skip
    write_jsonl(path, [to_dict(ex) for ex in examples])
    return path


def _config(run_dir: Path, model: str, data: Path, launch: dict | None, **extra) -> dict:
    cfg = {
        "name": "dist",
        "run_dir": str(run_dir),
        "model": model,
        "data": {"pointwise": [{"format": "srjudge", "path": str(data)}], "heldout_fraction": 0.25},
        "sft_pointwise": {"max_examples": 4, "settings": TRAIN},
        "sft_pairwise": {"enabled": False},
        "iterations": [
            {
                "sample": {"count": 4, "n": 4, "max_new_tokens": 16},
                "curation": {"strategy": "correct_answer", "margin": 1, "max_pairs_per_input": 1},
                "dpo": {**TRAIN, "beta": 0.1},
            }
        ],
        "eval": {"benchmarks": ["in-domain"], "models": ["final"], "limit": 2},
        "report": False,
        **extra,
    }
    return cfg | ({"launch": launch} if launch else {})


def _stage(run_dir: Path, name: str) -> Path:
    (d,) = (run_dir / "stages").glob(f"[0-9][0-9]_{name}")
    return d


def _losses(model_dir: Path) -> list[float]:
    lines = (model_dir / "train_log.jsonl").read_text().splitlines()
    return [json.loads(line)["loss"] for line in lines if '"loss"' in line]


def _weights(model_dir: Path | str) -> dict[str, torch.Tensor]:
    return load_file(str(Path(model_dir) / "model.safetensors"))


def _assert_same_training(a: Path, b: Path, start_a: Path | str, start_b: Path | str) -> None:
    """Same loss curve, and the same weight update from each run's starting model up to float
    noise: Adam divides by the gradient's own scale, so parameters whose gradient is ~0 move
    by amounts that float rounding changes; the update as a whole agrees to 1e-3."""
    assert _losses(a) == pytest.approx(_losses(b), rel=1e-4)
    wa, wb, sa, sb = _weights(a), _weights(b), _weights(start_a), _weights(start_b)
    assert wa.keys() == wb.keys()
    da = torch.cat([(wa[k] - sa[k]).flatten() for k in sorted(wa)])
    db = torch.cat([(wb[k] - sb[k]).flatten() for k in sorted(wa)])
    assert da.norm() > 0.1  # it trained
    assert (da - db).norm() / da.norm() < 1e-3


def _same_text(a: Path, b: Path, run_a: Path, run_b: Path) -> bool:
    """Equal files once each run's folder name is taken out (model paths in the records)."""
    return a.read_text().replace(str(run_a), "RUN") == b.read_text().replace(str(run_b), "RUN")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir):
    """The same loop in this process and launched over 2 processes, rank 1 audited."""
    root = tmp_path_factory.mktemp("dist")
    data = _data(root / "train.jsonl")
    one = run(config_from_dict(_config(root / "one", tiny_model_dir, data, None)),
              backend_factory=mock_factory)  # fmt: skip
    two_dir = root / "two"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", os.pathsep.join([str(AUDIT), os.environ.get("PYTHONPATH", "")]))
        mp.setenv("SRJUDGE_AUDIT_DIR", str(two_dir))
        mp.setenv("SRJUDGE_AUDIT_LOG", str(root / "audit"))
        launch = {"num_processes": 2, "sample_workers": 2}
        two = run(config_from_dict(_config(two_dir, tiny_model_dir, data, launch)),
                  backend_factory=mock_factory)  # fmt: skip
    return one, two, root


def test_two_processes_train_like_one_with_the_same_global_batch(runs):
    one, two, _ = runs
    assert list(two.outputs) == list(one.outputs)
    starts = {"sft_pointwise": (one.cfg.model, two.cfg.model),
              "iter1_dpo": (one.sft_model, two.sft_model)}  # fmt: skip
    for stage, (start_one, start_two) in starts.items():
        a, b = _stage(one.run_dir, stage) / "model", _stage(two.run_dir, stage) / "model"
        _assert_same_training(a, b, start_one, start_two)
        provenance = json.loads((b / "srjudge_train.json").read_text())
        assert provenance["processes"] == 2
        assert provenance["settings"]["per_device_train_batch_size"] == 1
        assert len(_losses(b)) == 2  # 4 rows, global batch 2
        assert two.outputs[stage]["launch"]["num_processes"] == 2
        assert "stage" in (_stage(two.run_dir, stage) / "launch.log").read_text()
    dpo = json.loads((_stage(two.run_dir, "iter1_dpo") / "model/srjudge_train.json").read_text())
    assert dpo["trainer"] == "SharedPromptDPOTrainer"  # the shared-prompt forward under DDP


def test_two_workers_sample_and_evaluate_like_one(runs):
    one, two, _ = runs
    files = {"iter1_sample": "judgments.jsonl", "iter1_curate": "pairs.jsonl",
             "eval_iter1_dpo": "predictions.jsonl"}  # fmt: skip
    for stage, name in files.items():
        a, b = _stage(one.run_dir, stage) / name, _stage(two.run_dir, stage) / name
        assert _same_text(a, b, one.run_dir, two.run_dir), stage
        assert not list(b.parent.glob("*.w*of*.jsonl"))  # shards merged away
    assert two.outputs["eval_iter1_dpo"]["metrics"] == one.outputs["eval_iter1_dpo"]["metrics"]


def test_only_rank_0_writes(runs):
    _, two, root = runs
    logs = sorted(root.glob("audit.1.*"))
    assert len(logs) == 2  # rank 1 of each launch (SFT, DPO) was audited
    writes = [line for log in logs for line in log.read_text().splitlines()]
    scratch = re.compile(
        r"stages/\d\d_\w+/model/checkpoints/"
        r"(checkpoint-\d+(/rng_state_1\.pth)?"  # the trainer's per-rank RNG state, for resume
        r"|rows/(tmp\w+|cache-\w+\.arrow))"  # datasets' map caches beside the DPO rows
    )
    for line in writes:
        event, path = line.split(" ", 1)
        assert scratch.fullmatch(path), line  # scratch in checkpoints/, deleted at the end


def _kill_rank_1_after(checkpoints: Path, step: int, killed: list[int]) -> None:
    """Once a complete checkpoint of ``step`` or later is in ``checkpoints`` (each replaces
    the one before), SIGKILL the process with RANK=1."""

    def reached() -> bool:
        return any(int(d.name.split("-")[1]) >= step and (d / "trainer_state.json").exists()
                   for d in checkpoints.glob("checkpoint-*"))  # fmt: skip

    deadline = time.time() + 600
    while time.time() < deadline and not reached():
        time.sleep(0.02)
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.environ().get("RANK") == "1":
                os.kill(proc.pid, signal.SIGKILL)
                killed.append(proc.pid)
        except psutil.Error:
            continue


def test_kill_9_of_one_rank_fails_the_stage_and_the_rerun_resumes(tmp_path, tiny_model_dir):
    data = _data(tmp_path / "train.jsonl")
    long_sft = {"sft_pointwise": {"max_examples": 4, "settings": {**TRAIN, "num_train_epochs": 8}},
                "iterations": [], "eval": {}}  # fmt: skip
    ref = run(config_from_dict(_config(tmp_path / "ref", tiny_model_dir, data, None, **long_sft)))
    launch = {"num_processes": 2, "config_file": "ddp"}  # the shipped accelerate config
    cfg = config_from_dict(_config(tmp_path / "run", tiny_model_dir, data, launch, **long_sft))
    stage = tmp_path / "run/stages/01_sft_pointwise"
    killed: list[int] = []
    killer = threading.Thread(
        target=_kill_rank_1_after, args=(stage / "model/checkpoints", 3, killed), daemon=True
    )
    killer.start()
    with pytest.raises(RuntimeError, match="exited with code .*rerun the same command"):
        run(cfg)
    killer.join()
    assert killed, "rank 1 was not found"
    assert not (stage / "stage.json").exists()
    assert not (stage / "model/srjudge_train.json").exists()

    state = run(cfg)  # the rerun
    provenance = json.loads((stage / "model/srjudge_train.json").read_text())
    assert provenance["resumed_from"].split("checkpoint-")[-1].isdigit()
    assert int(provenance["resumed_from"].split("checkpoint-")[-1]) >= 3
    assert provenance["optimizer_steps"] == 16
    assert (stage / "stage.json").exists() and state.outputs["sft_pointwise"]["counts"]["rows"] == 4
    _assert_same_training(_stage(ref.run_dir, "sft_pointwise") / "model", stage / "model",
                          tiny_model_dir, tiny_model_dir)  # fmt: skip


def test_two_sampling_workers_give_one_workers_judgments_with_a_real_model(
    tmp_path, tiny_model_dir
):
    inputs = [
        PointwiseExample(f"s{i}", [Message("user", f"Is {i} even?")], "yes" if i % 2 == 0 else
                         "no", RUBRIC) for i in range(5)
    ]  # fmt: skip
    params = SamplingParams(n=3, temperature=1.0, max_new_tokens=12, seed=11)
    make = lambda: load_backend("transformers", tiny_model_dir)  # noqa: E731 -- in-process only
    sample_to_file(make, inputs, params, tmp_path / "one.jsonl", max_retries=1)
    from functools import partial

    two = partial(load_backend, "transformers", tiny_model_dir)
    sample_to_file(two, inputs, params, tmp_path / "two.jsonl", max_retries=1, workers=2)
    one_text = (tmp_path / "one.jsonl").read_text()
    assert (tmp_path / "two.jsonl").read_text() == one_text
    raws = {j["raw"] for line in one_text.splitlines() for j in json.loads(line)["judgments"]}
    assert len(raws) > 5  # really sampled: varied texts, not one canned answer
