"""The launch section without launching: per-process settings keep the global batch, the
config refuses what cannot split, the accelerate command and environment, the leader's files
for a launched stage, the other machines following it, and a resumed run that changed only
``launch``. The real multi-process runs are in test_distributed.py."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from srjudge.loop.config import load_config
from srjudge.loop.launch import (
    LAUNCH_FILE,
    dpo_launched,
    follow,
    launch_command,
    launch_env,
    sft_launched,
)
from srjudge.loop.launch_config import LaunchConfig
from srjudge.loop.rundir import check_config
from srjudge.records import Message, PointwiseExample, Rubric, read_jsonl
from srjudge.training.common import PROVENANCE_FILE
from srjudge.training.settings import DPOSettings, SFTSettings

DEMO = Path(__file__).parents[1] / "src/srjudge/configs/demo.yaml"


@pytest.mark.parametrize(
    "batch, accum, processes, expected",
    [
        (2, 1, 2, (1, 1)),
        (1, 8, 2, (1, 4)),
        (2, 4, 8, (1, 1)),
        (4, 3, 6, (2, 1)),
        (3, 1, 1, (3, 1)),
    ],
)
def test_per_process_settings_keep_the_global_batch(batch, accum, processes, expected):
    s = SFTSettings(per_device_train_batch_size=batch, gradient_accumulation_steps=accum)
    p = s.per_process(processes)
    assert (p.per_device_train_batch_size, p.gradient_accumulation_steps) == expected
    assert expected[0] * expected[1] * processes == batch * accum
    assert p.learning_rate == s.learning_rate and p.seed == s.seed


@pytest.mark.parametrize("batch, accum, processes", [(2, 1, 3), (3, 3, 2), (1, 2, 4)])
def test_per_process_refuses_a_global_batch_that_does_not_split(batch, accum, processes):
    s = DPOSettings(per_device_train_batch_size=batch, gradient_accumulation_steps=accum)
    with pytest.raises(ValueError, match=f"multiple of {processes}"):
        s.per_process(processes)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["launch.num_processes=3"], "launch.num_processes with sft_pointwise.settings"),
        (["launch.num_processes=0"], "launch.num_processes: must be >= 1"),
        (
            ["launch.num_processes=2", "launch.num_machines=2"],
            "launch.main_process_ip: is needed with several machines",
        ),
        (
            ["launch.num_processes=3", "launch.num_machines=2"],
            "launch.num_processes: must be a multiple of launch.num_machines",
        ),
        (["launch.machine_rank=1"], "launch.machine_rank: must be below launch.num_machines"),
        (["launch.sample_workers=0"], "launch.sample_workers: must be >= 1"),
        (["launch.gpus=2"], "launch.gpus: unknown setting"),
        (["launch.engine_options=3"], "launch.engine_options: expected a mapping"),
    ],
)
def test_launch_contradictions_rejected(overrides, message):
    with pytest.raises(ValueError, match=message):
        load_config(DEMO, overrides)


def test_demo_with_two_processes_loads():
    cfg = load_config(DEMO, ["launch.num_processes=2"])
    assert cfg.launch == LaunchConfig(num_processes=2)


def test_launch_command_flags():
    one_machine = launch_command(LaunchConfig(num_processes=2), ["sft", "--out", "m"])
    assert one_machine[1:3] == ["-m", "accelerate.commands.launch"]
    assert "--multi_gpu" in one_machine  # torchrun, gloo on CPU
    assert one_machine[one_machine.index("--main_process_port") + 1] == "0"  # a free port
    assert one_machine[-5:] == ["-m", "srjudge.cli", "sft", "--out", "m"]
    zero3 = LaunchConfig(num_processes=16, config_file="zero3", num_machines=2,
                         machine_rank=1, main_process_ip="10.0.0.1")  # fmt: skip
    cmd = launch_command(zero3, ["dpo"])
    flags = dict(zip(cmd[3:-3:2], cmd[4:-3:2], strict=True))
    assert flags == {
        "--config_file": zero3.config_file,
        "--num_processes": "16",
        "--num_machines": "2",
        "--machine_rank": "1",
        "--main_process_ip": "10.0.0.1",
        "--main_process_port": "29500",
    }
    assert zero3.config_file.endswith("configs/accelerate/zero3.yaml")
    single = launch_command(LaunchConfig(), ["sft"])
    assert "--multi_gpu" not in single  # one process: accelerate's simple launcher


def test_launch_env_trains_on_cpu_without_cuda(monkeypatch):
    monkeypatch.delenv("ACCELERATE_USE_CPU", raising=False)
    assert launch_env(cuda=False)["ACCELERATE_USE_CPU"] == "1"
    assert "ACCELERATE_USE_CPU" not in launch_env(cuda=True)
    assert launch_env(cuda=True)["PYTHONUNBUFFERED"] == "1"


class FakeLaunch:
    """Stands in for ``run_streamed``: records the command, writes what a finished
    ``srjudge sft|dpo`` leaves (the provenance), returns ``code``."""

    def __init__(self, code: int = 0):
        self.code = code
        self.calls: list[list[str]] = []

    def __call__(self, cmd, env, log_path):
        self.calls.append(cmd)
        if self.code == 0:
            out = Path(cmd[cmd.index("--out") + 1])
            out.mkdir(parents=True)
            (out / PROVENANCE_FILE).write_text(json.dumps({"counts": {"rows": 4}}))
        return self.code


def _examples() -> list[PointwiseExample]:
    rubric = Rubric("Correct?", ("a", "b", "c", "d", "e"))
    return [PointwiseExample(f"e{i}", [Message("user", "q")], "r", rubric, gold_score=3,
                             gold_rationale="ok") for i in range(4)]  # fmt: skip


def test_launched_sft_writes_its_inputs_and_per_process_settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    stage = Path("stages/01_sft_pointwise")  # relative, as a run folder usually is
    stage.mkdir(parents=True)
    fake = FakeLaunch()
    settings = SFTSettings(per_device_train_batch_size=2, gradient_accumulation_steps=1)
    record = sft_launched(LaunchConfig(num_processes=2), stage, "tiny-random", _examples(),
                          settings, score_only=True, runner=fake)  # fmt: skip
    assert record["counts"] == {"rows": 4}
    (cmd,) = fake.calls
    args = json.loads((stage / LAUNCH_FILE).read_text())["args"]
    assert cmd[-len(args) :] == args and args[0] == "sft" and "--score-only" in args
    for flag in ("--data", "--out", "--settings"):  # absolute: other machines read them
        assert Path(args[args.index(flag) + 1]).is_absolute()
    assert len(list(read_jsonl(stage / "train_examples.jsonl"))) == 4
    per_process = json.loads((stage / "settings.json").read_text())
    assert per_process["per_device_train_batch_size"] == 1
    assert SFTSettings(**per_process) == settings.per_process(2)


def test_a_failed_launch_says_how_to_resume(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("")
    with pytest.raises(RuntimeError, match="exited with code 1.*rerun the same command"):
        dpo_launched(LaunchConfig(num_processes=2), tmp_path, "m", pairs, DPOSettings(),
                     ref_model="m", runner=FakeLaunch(code=1))  # fmt: skip


def test_other_machines_join_each_training_launch(tmp_path):
    cfg = load_config(DEMO, [f"run_dir={tmp_path}", "launch.num_processes=2",
                             "launch.num_machines=2", "launch.machine_rank=1",
                             "launch.main_process_ip=10.0.0.1"])  # fmt: skip
    done, running = tmp_path / "01_sft", tmp_path / "02_sft"
    for d in (done, running):
        d.mkdir()
        (d / LAUNCH_FILE).write_text(json.dumps({"args": ["sft", "--out", str(d / "model")]}))
    (done / "stage.json").write_text("{}")  # finished before this machine arrived
    fake = FakeLaunch()
    follow(cfg, [done, running], poll=0.01, runner=fake)
    (cmd,) = fake.calls
    assert cmd[cmd.index("--machine_rank") + 1] == "1"
    assert cmd[-3:] == ["sft", "--out", str(running / "model")]
    assert sorted(p.name for p in running.iterdir()) == [LAUNCH_FILE, "model"]  # no log clash


def test_resuming_with_another_launch_is_allowed_but_not_other_changes(tmp_path):
    cfg = load_config(DEMO, [f"run_dir={tmp_path}"])
    check_config(cfg, tmp_path, allow_change=False)
    check_config(load_config(DEMO, [f"run_dir={tmp_path}", "launch.num_processes=2"]),
                 tmp_path, allow_change=False)  # fmt: skip
    with pytest.raises(ValueError, match="changed: seed"):
        check_config(load_config(DEMO, [f"run_dir={tmp_path}", "seed=3"]), tmp_path, False)


def test_cli_settings_file_is_strict(tmp_path, capsys):
    from srjudge.cli import main

    bad = tmp_path / "s.yaml"
    bad.write_text("per_device_train_batch_size: 1\nbatch: 2\n")
    with pytest.raises(SystemExit, match=f"{bad}.*batch"):
        main(["sft", "--model", "m", "--data", "d", "--out", "o", "--settings", str(bad)])


@pytest.mark.parametrize("lr", [5e-6, 2e-4, 1e-5])
def test_settings_file_written_by_a_launch_reads_back(tmp_path, lr):
    """The loop writes a stage's settings as JSON, where 5e-6 is ``5e-06``: the training verb
    must read that as a number (YAML 1.1 reads it as a string; the demo's DPO failed on it)."""
    from srjudge.commands.train import _settings_file

    path = tmp_path / "settings.json"
    path.write_text(json.dumps(asdict(DPOSettings(learning_rate=lr))))
    assert _settings_file(DPOSettings, str(path))["learning_rate"] == lr


@pytest.mark.parametrize(
    "name, kind", [("ddp", "MULTI_GPU"), ("fsdp", "FSDP"), ("zero2", "DEEPSPEED"),
                   ("zero3", "DEEPSPEED")],
)  # fmt: skip
def test_shipped_accelerate_configs_parse_with_accelerate(name, kind):
    from accelerate.commands.config.config_args import load_config_from_file

    cfg = load_config(DEMO, [f"launch.config_file={name}", "launch.num_processes=2"])
    path = Path(cfg.launch.config_file)
    assert path.is_file() and path.parent.name == "accelerate"
    parsed = load_config_from_file(str(path))
    assert parsed.distributed_type.value == kind
    if kind == "FSDP":  # a plain save_pretrained model at the end
        assert parsed.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    if name == "zero3":
        assert parsed.deepspeed_config["zero3_save_16bit_model"] is True


def test_an_unknown_accelerate_config_is_refused():
    with pytest.raises(ValueError, match="no such file 'nope.yaml'.*ddp, fsdp"):
        load_config(DEMO, ["launch.config_file=nope.yaml"])


def test_engine_options_reach_each_workers_backend():
    import pickle

    from srjudge.judging.backends import SamplingParams
    from srjudge.loop.run import default_backend_factory

    cfg = load_config(DEMO, ["backend=mock", "launch.engine_options={outputs: ['Ok. [RESULT] 5']}"])
    factory = pickle.loads(pickle.dumps(default_backend_factory(cfg)))  # as a worker gets it
    backend = factory("m")
    assert backend.generate([[Message("user", "q")]], SamplingParams()) == [["Ok. [RESULT] 5"]]


def test_the_rank_audit_records_python_writes_of_other_ranks(tmp_path):
    """The helper behind test_distributed's 'only rank 0 writes' sees what it must."""
    import os
    import subprocess
    import sys

    watched = tmp_path / "run"
    watched.mkdir()
    (watched / "existing").mkdir()
    code = ("import os, pathlib; d = pathlib.Path(os.environ['SRJUDGE_AUDIT_DIR']); "
            "(d / 'model.json').write_text('{}'); os.makedirs(d / 'existing', exist_ok=True); "
            "os.mkdir(d / ('new' + os.environ['RANK'])); "
            "open(d / 'model.json').read()")  # fmt: skip
    audit = Path(__file__).parent / "rank_audit"
    for rank in ("1", "0"):
        env = {**os.environ, "RANK": rank, "PYTHONPATH": str(audit),
               "SRJUDGE_AUDIT_DIR": str(watched),
               "SRJUDGE_AUDIT_LOG": str(tmp_path / "a")}  # fmt: skip
        subprocess.run([sys.executable, "-c", code], env=env, check=True)
    (log,) = tmp_path.glob("a.1.*")  # rank 0 is not audited
    assert log.read_text().splitlines() == ["open model.json", "os.mkdir new1"]
