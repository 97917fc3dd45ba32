"""Run configs are checked whole, before any work: one line per bad setting, named by its dotted
path (issue 9, "configs accepted until they crash").

Tables of hostile overrides and files, each with the line it must produce; ``srjudge run
--dry-run`` prints the plan; the command line prints one message, no traceback, and leaves
the config file and the run folder as they were.

    pytest tests/test_hardening_config.py
"""

from __future__ import annotations

import contextlib
import doctest
import io
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from srjudge import cli
from srjudge.loop import config as config_module
from srjudge.loop.config import (
    ConfigError,
    apply_overrides,
    config_from_dict,
    load_config,
    parse_yaml,
    read_config_dict,
)
from srjudge.training.settings import SettingsError, SFTSettings

CONFIGS = Path(__file__).parents[1] / "src/srjudge/configs"
DEMO = CONFIGS / "demo.yaml"


def _problems(overrides: list[str]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(DEMO, overrides)
    return info.value.problems


# override -> the problem line; it names the setting the override sets unless given with ':'
BAD_SETTINGS = [
    ("iterations.0.sample.temperature=-0.5", "must be >= 0, got -0.5"),
    ("iterations.0.sample.temperature=.nan", "expected a number (finite), got nan"),
    ("iterations.0.sample.top_p=0", "must be in (0, 1], got 0"),
    ("iterations.1.sample.top_p=1.5", "must be in (0, 1], got 1.5"),
    ("iterations.0.sample.n=0", "must be >= 1, got 0"),
    ("iterations.0.sample.n=-2", "must be >= 1, got -2"),
    ("iterations.0.sample.max_new_tokens=0", "must be >= 1, got 0"),
    ("iterations.0.sample.max_retries=-1", "must be >= 0, got -1"),
    ("iterations.0.curation.margin=5", "must be in [0, 4], got 5"),
    ("iterations.0.curation.strategy=coin_flip", "'coin_flip': unknown strategy"),
    ("eval.benchmarks=[rewardbnch]",
     ":eval.benchmarks.0: unknown benchmark 'rewardbnch'; did you mean 'rewardbench'?"),
    ("eval.limit=-3", "must be >= 1, got -3"),
    ("eval.samples=0", "must be >= 1, got 0"),
    ("data.pointwise.0.limit=-1", "must be >= 1, got -1"),
    ("sft_pointwise.max_examples=0", "must be >= 1, got 0"),
    ("seed=true", "expected an integer, got true"),
    ("seed=-1", "must be >= 0, got -1"),
    ("seed=1.5", "expected an integer, got 1.5"),
    ("run_dir=", "must not be empty"),
    ("name=' '", "must not be empty"),
    ("merge.weight=1.5", "must be in [0, 1], got 1.5"),
    ("data.heldout_fraction=1", "must be below 1"),
    ("data.pointwise.0.format=mt-bnch", "unknown loader 'mt-bnch'; did you mean 'mt-bench'?"),
    ("data.pointwise.0.path=bundled:mt-bnch", "no bundled slice 'mt-bnch'"),
    ("data.pointwise.0.path=./no/such.jsonl", "no such file: ./no/such.jsonl"),
    ("iterations.0.dpo.beta=0", "must be > 0, got 0"),
    ("iterations.0.dpo.learning_rate=abc", "expected a number or null, got 'abc'"),
    ("iterations.0.dpo.loss_type=sigmod", "'sigmod' unknown"),
    ("iterations.0.method=dpoo",
     "must be one of dpo, best_of_n_sft, got 'dpoo'; did you mean 'dpo'?"),
    ("iterations.0.sample.modes=[]", "must name at least one mode"),
    ("backend=vlm", "must be one of auto, transformers, vllm, openai, mock, got 'vlm'"),
    ("iterations.0.sampel.n=3",
     ":iterations.0.sampel: unknown setting; did you mean 'iterations.0.sample'?"),
    ("model=./no-such-model", "model './no-such-model': no such directory"),
    ("eval.models=[]", "is empty, so none of the benchmarks would run"),
]  # fmt: skip


@pytest.mark.parametrize("override, line", BAD_SETTINGS, ids=[o for o, _ in BAD_SETTINGS])
def test_each_bad_setting_is_one_line(override, line):
    line = line[1:] if line.startswith(":") else f"{override.split('=')[0]}: {line}"
    problems = _problems([override])
    assert len(problems) == 1, problems
    assert problems[0].startswith(line), problems


def test_every_bad_setting_is_reported_at_once():
    overrides = [o for o, _ in BAD_SETTINGS[:8]] + ["seed=true", "run_dir=", "eval.limit=-3"]
    overrides += ["iterations.7.n=1", "seed.x=1"]  # and bad paths, in the same message
    problems = _problems(overrides)
    settings = {o.split("=")[0] for o in overrides}  # a setting given twice: the last wins
    assert len(problems) == len(settings), problems
    assert problems[0].startswith("override 'iterations.7.n=1': iterations is a list")
    assert problems[1].startswith("override 'seed.x=1': seed is a value")


def test_a_contradiction_is_not_blamed_on_a_dropped_value():
    """A bad source limit drops the source; 'derive_pairwise needs pointwise sources' would
    then be a consequence, not a problem, and is not reported."""
    assert _problems(["data.pointwise.0.limit=-1", "data.pointwise.1.limit=0"]) == [
        "data.pointwise.0.limit: must be >= 1, got -1",
        "data.pointwise.1.limit: must be >= 1, got 0",
    ]


@pytest.mark.parametrize(
    "overrides, line",
    [
        (["data.pointwise=[]", "data.derive_pairwise=false"],
         "data: give at least one pointwise or pairwise source"),
        (["data.pointwise=[]", "data.derive_pairwise=false",
          "data.pairwise=[{format: srjudge, path: 'bundled:mt-bench'}]"],
         "sft_pointwise is enabled but data.pointwise is empty"),
        (["data.pointwise=[]", "data.derive_pairwise=false", "sft_pointwise.enabled=false",
          "data.pairwise=[{format: srjudge, path: 'bundled:mt-bench'}]"],
         "iterations.0.sample.modes: pointwise, but no pointwise data"),
        (["iterations.0.method=best_of_n_sft", "iterations.0.curation.strategy=majority_vote"],
         "iterations.0: method best_of_n_sft selects judgments by the gold answer"),
        (["iterations.0.sample.count=null"], "iterations.0.sample: sample: give exactly one of"),
    ],
)  # fmt: skip
def test_contradictions_are_reported(overrides, line):
    assert any(p.startswith(line) for p in _problems(overrides)), _problems(overrides)


@pytest.mark.parametrize(
    "text, value",
    [("5e-6", 5e-6), ("1e3", 1000.0), ("2.0e-4", 2e-4), ("-1E+2", -100.0), ("5e", "5e"),
     ("1_000", 1000), ("0.5", 0.5), ("1.0e3", 1000.0)],
)  # fmt: skip
def test_yaml_reads_exponent_floats_as_numbers(text, value):
    assert parse_yaml(text) == value and type(parse_yaml(text)) is type(value)


def test_learning_rate_in_exponent_form_works(tmp_path):
    cfg = load_config(
        DEMO, ["iterations.0.dpo.learning_rate=5e-6", "sft_pointwise.settings.learning_rate=1e-4"]
    )
    assert cfg.iterations[0].dpo.learning_rate == 5e-6
    assert cfg.sft_pointwise.settings.learning_rate == 1e-4
    path = tmp_path / "x.yaml"
    path.write_text(f"base: {DEMO}\nmerge: {{weight: 5e-1}}\n")
    assert load_config(path).merge.weight == 0.5
    import yaml

    assert yaml.safe_load("5e-6") == "5e-6"  # PyYAML's own loader is left as it was


# override -> what follows "override '<it>': " in its problem line
BAD_PATHS = [
    ("iterations.5.sample.n=4", "iterations is a list with indexes 0..1, so it has no '5'"),
    ("iterations.-1.sample.n=4", "iterations is a list with indexes 0..1, so it has no '-1'"),
    ("iterations.x.n=4", "iterations is a list with indexes 0..1, so it has no 'x'"),
    ("seed.value=1", "seed is a value (0), not a section, so 'seed.value' names no setting"),
    ("eval.limit.max=1", "eval.limit is a value (4), not a section"),
    ("data.pointwise.0.path.x=1",
     "data.pointwise.0.path is a value ('bundled:mt-bench'), not a section"),
    ("seed", "expected setting=value"),
    ("=3", "expected setting=value"),
    ("a..b=1", "expected setting=value"),
    ("seed=[1", "the value is not valid YAML"),
]  # fmt: skip


@pytest.mark.parametrize("override, line", BAD_PATHS, ids=[o for o, _ in BAD_PATHS])
def test_a_bad_override_path_names_the_setting(override, line):
    line = f"override '{override}': {line}"
    problems = _problems([override])
    assert len(problems) == 1 and problems[0].startswith(line), problems


def test_overrides_that_work_still_work():
    raw = read_config_dict(DEMO)
    out = apply_overrides(raw, ["iterations.1.sample.n=2", "eval.limit=null", "new.section=1"])
    assert out["iterations"][1]["sample"]["n"] == 2 and out["eval"]["limit"] is None
    assert raw["iterations"][1]["sample"]["n"] == 4  # not modified in place
    with pytest.raises(ConfigError, match="new: unknown setting"):
        config_from_dict(out)


@pytest.mark.parametrize(
    "text, line",
    [
        ("name: x\ndata: {pointwise: [{format: mt-bench, path: 'bundled:mt-bench'}]\n",
         "not valid YAML"),
        ("- a\n- b\n", "expected a mapping of settings at the top, got a list"),
        ("base: missing.yaml\nname: x\n", "cannot read the config (FileNotFoundError"),
        ("base: self.yaml\nname: x\n", "is already in the chain of base files"),
        ("name: x\n", "data: missing (required)"),
        ("name: x\ndata: 3\n", "data: expected a mapping of settings, got 3"),
    ],
)  # fmt: skip
def test_bad_config_files(tmp_path, text, line):
    path = tmp_path / "self.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert line in str(info.value) and str(info.value).startswith(str(tmp_path))


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_config_validates(path):
    cfg = load_config(path)
    assert cfg.name


def test_settings_report_every_bad_field_directly():
    with pytest.raises(SettingsError) as info:
        SFTSettings(learning_rate=-1, max_length=0, lora_dropout=2)
    assert [f for f, _ in info.value.problems] == ["learning_rate", "max_length", "lora_dropout"]


def test_doctests():
    from srjudge.training import settings

    assert doctest.testmod(config_module).failed == 0
    assert doctest.testmod(settings).failed == 0


# ---------------------------------------------------------------------------------------
# the command line


def _srjudge(*argv: str, cwd: Path) -> SimpleNamespace:
    """``srjudge ARGV`` in this process (an exception would fail the test, as a traceback
    would); the one subprocess run is in the test below that checks stderr for a traceback."""
    out, err, before = io.StringIO(), io.StringIO(), os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(list(argv))
    finally:
        os.chdir(before)
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path):
    result = _srjudge("run", str(DEMO), f"run_dir={tmp_path / 'run'}", "--dry-run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("config OK: run 'demo'")
    assert "13 stages" in out and "  00_data " in out and "  12_eval_iter2_dpo " in out
    assert "01_sft_pointwise             to run  -> a model" in out
    assert not (tmp_path / "run").exists() and list(tmp_path.iterdir()) == []


def test_dry_run_shows_finished_stages_and_a_changed_config(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "stages" / "00_data").mkdir(parents=True)
    (run_dir / "stages" / "00_data" / "stage.json").write_text("{}")
    (run_dir / "config.yaml").write_text("name: demo\nseed: 5\n")
    result = _srjudge("run", str(DEMO), f"run_dir={run_dir}", "--dry-run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "00_data                      done" in result.stdout
    assert "holds a different config (changed: " in result.stdout
    assert (run_dir / "config.yaml").read_text() == "name: demo\nseed: 5\n"


@pytest.mark.parametrize(
    "argv, lines",
    [
        (["iterations.0.sample.temperature=-1", "seed=true", "iterations.9.n=1"],
         ["3 problems:", "  override 'iterations.9.n=1': iterations is a list",
          "  seed: expected an integer, got true",
          "  iterations.0.sample.temperature: must be >= 0, got -1"]),
        (["model=tiny-randm"], ["model: model 'tiny-randm':", "Did you mean 'tiny-random'?"]),
    ],
)  # fmt: skip
def test_run_prints_config_errors_without_traceback_and_touches_nothing(
    tmp_path, argv, lines, monkeypatch
):
    config = tmp_path / "c.yaml"
    config.write_text(DEMO.read_text())
    before = config.read_bytes()
    run_dir = tmp_path / "run"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run = ["run", str(config), f"run_dir={run_dir}", *argv]
    for result in (
        subprocess.run([sys.executable, "-m", "srjudge.cli", *run], capture_output=True,
                       text=True, cwd=tmp_path, timeout=300),
        _srjudge(*run, "--dry-run", cwd=tmp_path),
    ):  # fmt: skip
        assert result.returncode == 2
        assert "Traceback" not in result.stderr and result.stdout == ""
        assert result.stderr.startswith(f"error: {config}: ")
        for line in lines:
            assert line in result.stderr, result.stderr
    assert config.read_bytes() == before and not run_dir.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


def test_demo_with_a_bad_override_is_one_message(tmp_path):
    result = _srjudge(
        "demo", "--run-dir", str(tmp_path / "d"), "iterations.0.sample.n=0", cwd=tmp_path
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "iterations.0.sample.n: must be >= 1, got 0" in result.stderr
    assert not (tmp_path / "d").exists()


def test_a_changed_run_folder_is_refused_without_traceback(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("name: other\n")
    result = _srjudge("run", str(DEMO), f"run_dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "holds a different config (changed: " in result.stderr
    assert (run_dir / "config.yaml").read_text() == "name: other\n"
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.yaml"]
