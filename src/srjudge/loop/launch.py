"""Training stages as ``accelerate launch`` subprocesses: the run config's ``launch`` section.

    srjudge run configs/demo.yaml launch.num_processes=2
    srjudge run configs/paper.yaml launch.num_processes=8 \
        launch.config_file=configs/accelerate/zero3.yaml

A training stage writes its inputs into its folder (``train_examples.jsonl``, or it reuses the
curated ``pairs.jsonl``) with ``settings.json``, the stage's settings for each process
(``SFTSettings.per_process``: the global batch stays the configured one), then runs

    python -m accelerate.commands.launch --num_processes N ... -m srjudge.cli sft \\
        --model M --data STAGE/train_examples.jsonl --out STAGE/model --settings STAGE/settings.json

streaming its output to the console and to ``STAGE/launch.log``; the stage's counts are read
back from ``STAGE/model/srjudge_train.json``. A launch that fails (an error, a rank killed)
raises and leaves the checkpoints: rerunning ``srjudge run`` resumes the stage from its last
one, exactly as a one-process run does. On a machine without CUDA the processes train on CPU
(``ACCELERATE_USE_CPU=1``: gloo).

Several machines share the run folder (a shared filesystem). Machine 0 runs the loop and,
before each launch, writes the command's arguments to ``STAGE/launch.json``; every other
machine runs ``srjudge run CONFIG launch.machine_rank=k``, which only follows (``follow``): it
waits for each training stage's ``launch.json`` and joins that launch with its own rank.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from srjudge.loop.config import RunConfig
from srjudge.loop.launch_config import LaunchConfig
from srjudge.loop.rundir import write_json_atomic
from srjudge.records import Example, write_jsonl
from srjudge.training.common import PROVENANCE_FILE
from srjudge.training.settings import CommonSettings

log = logging.getLogger("srjudge.loop")

LAUNCH_FILE = "launch.json"
LOG_FILE = "launch.log"

Runner = Callable[[list[str], dict[str, str], Path], int]
"""(command, environment, log file) -> exit code; ``run_streamed`` (tests inject a fake)."""


def launch_command(launch: LaunchConfig, verb_args: Sequence[str]) -> list[str]:
    """``accelerate launch`` running ``srjudge <verb_args>`` as this machine's processes.

    >>> launch_command(LaunchConfig(num_processes=2), ["sft", "--out", "m"])[3:]
    ['--multi_gpu', '--num_processes', '2', '--num_machines', '1', '--machine_rank', '0', \
'--main_process_port', '0', '--mixed_precision', 'no', '--dynamo_backend', 'no', '-m', \
'srjudge.cli', 'sft', '--out', 'm']
    """
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if launch.config_file:
        cmd += ["--config_file", launch.config_file]
    elif launch.num_processes > 1:
        cmd += ["--multi_gpu"]  # torchrun's DDP launcher (on CPU too, with ACCELERATE_USE_CPU)
    cmd += ["--num_processes", str(launch.num_processes)]
    cmd += ["--num_machines", str(launch.num_machines), "--machine_rank", str(launch.machine_rank)]
    if launch.main_process_ip:
        cmd += ["--main_process_ip", launch.main_process_ip]
    port = launch.main_process_port
    if port is None:  # 0 = any free port; machines must agree on one, accelerate's default
        port = 0 if launch.num_machines == 1 else 29500
    cmd += ["--main_process_port", str(port)]
    if not launch.config_file:
        cmd += ["--mixed_precision", "no", "--dynamo_backend", "no"]  # bf16 comes from srjudge
    return [*cmd, "-m", "srjudge.cli", *verb_args]


def launch_env(cuda: bool | None = None) -> dict[str, str]:
    """The launch's environment: unbuffered output, and CPU training where there is no GPU."""
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if not cuda:
        env["ACCELERATE_USE_CPU"] = "1"
    return env


def run_streamed(cmd: list[str], env: dict[str, str], log_path: Path) -> int:
    """Run ``cmd``, copying its output line by line to stderr and ``log_path``."""
    with open(log_path, "a", encoding="utf-8") as log_file:
        log_file.write(f"$ {' '.join(cmd)}\n")
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                sys.stderr.write(line)
                log_file.write(line)
                log_file.flush()
            return proc.wait()
        finally:
            if proc.poll() is None:  # interrupted: do not leave the ranks training
                proc.terminate()
                proc.wait()


def _launch(launch: LaunchConfig, out: Path, verb_args: list[str], runner: Runner) -> None:
    cmd = launch_command(launch, verb_args)
    log_path = out / (
        LOG_FILE if launch.machine_rank == 0 else f"launch.machine{launch.machine_rank}.log"
    )
    log.info("stage %s: %s", out.name, " ".join(cmd))
    code = runner(cmd, launch_env(), log_path)
    if code != 0:
        raise RuntimeError(
            f"stage {out.name}: the training launch exited with code {code} (its output is "
            f"above and in {log_path}). Its checkpoints are kept: rerun the same command to "
            "resume the stage."
        )


# ---------------------------------------------------------------------------------------
# the leader (machine 0)


def train_launched(
    launch: LaunchConfig,
    out: Path,
    verb: str,
    verb_args: list[str],
    settings: CommonSettings,
    runner: Runner = run_streamed,
) -> dict[str, Any]:
    """Run ``srjudge <verb>`` under ``accelerate launch`` into ``out/model``; returns the
    model's provenance (``srjudge_train.json``). Paths are absolute: other machines read
    them from ``launch.json``."""
    out = out.resolve()
    settings_path = out / "settings.json"
    write_json_atomic(settings_path, asdict(settings.per_process(launch.num_processes)))
    args = [verb, *verb_args, "--out", str(out / "model"), "--settings", str(settings_path)]
    write_json_atomic(out / LAUNCH_FILE, {"args": args, "launch": asdict(launch)})
    _launch(launch, out, args, runner)
    return json.loads((out / "model" / PROVENANCE_FILE).read_text(encoding="utf-8"))


def sft_launched(
    launch: LaunchConfig,
    out: Path,
    model: str,
    examples: Sequence[Example],
    settings: CommonSettings,
    *,
    score_only: bool = False,
    runner: Runner = run_streamed,
) -> dict[str, Any]:
    """SFT of ``model`` on ``examples`` (written to ``out/train_examples.jsonl``)."""
    data = out.resolve() / "train_examples.jsonl"
    write_jsonl(data, examples)
    args = ["--model", _absolute(model), "--data", str(data)]
    args += ["--score-only"] if score_only else []
    return train_launched(launch, out, "sft", args, settings, runner)


def dpo_launched(
    launch: LaunchConfig,
    out: Path,
    model: str,
    pairs: Path,
    settings: CommonSettings,
    *,
    ref_model: str,
    runner: Runner = run_streamed,
) -> dict[str, Any]:
    """DPO of ``model`` on the pairs file ``pairs`` against ``ref_model``."""
    args = ["--model", _absolute(model), "--pairs", str(pairs.resolve())]
    args += ["--ref", _absolute(ref_model)]
    return train_launched(launch, out, "dpo", args, settings, runner)


def _absolute(model: str) -> str:
    """A model directory as an absolute path; an alias or hub id as it is."""
    return str(Path(model).resolve()) if Path(model).exists() else model


# ---------------------------------------------------------------------------------------
# the other machines


def follow(
    cfg: RunConfig,
    stage_dirs: Sequence[Path],
    *,
    poll: float = 5.0,
    runner: Runner = run_streamed,
) -> None:
    """Join machine 0's launch of each training stage in ``stage_dirs`` (in order).

    A stage already finished (``stage.json``) is skipped; otherwise this waits for its
    ``launch.json`` and runs the same arguments with this machine's rank. Writes nothing
    into the run folder except the launch log."""
    assert cfg.launch is not None
    for d in stage_dirs:
        waited = False
        while not (d / "stage.json").exists() and not (d / LAUNCH_FILE).exists():
            if not waited:
                log.info("machine %d: waiting for machine 0 to launch %s", cfg.launch.machine_rank,
                         d.name)  # fmt: skip
                waited = True
            time.sleep(poll)
        if (d / "stage.json").exists():
            continue
        args = json.loads((d / LAUNCH_FILE).read_text(encoding="utf-8"))["args"]
        _launch(cfg.launch, d, args, runner)
