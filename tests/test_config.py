"""Every shipped config loads; overrides apply; contradictions are rejected before any work."""

from pathlib import Path

import pytest

from srjudge.loop.config import apply_overrides, load_config, read_config_dict
from srjudge.loop.stages import eval_labels, plan

CONFIGS = sorted((Path(__file__).parents[1] / "src/srjudge/configs").glob("*.yaml"))


def test_configs_exist():
    names = {p.stem for p in CONFIGS}
    assert {"demo", "paper"} <= names
    assert len(CONFIGS) >= 10  # the demo, the paper recipe, baselines and ablations


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_config_loads_and_plans(path):
    cfg = load_config(path)
    stages = [s.name for s in plan(cfg)]
    assert stages[0] == "data"
    assert len(stages) == len(set(stages))
    for label in eval_labels(cfg):
        assert f"eval_{label}" in stages


def test_overrides_apply_with_yaml_types(tmp_path):
    demo = CONFIGS[[p.stem for p in CONFIGS].index("demo")]
    cfg = load_config(demo, ["iterations.0.dpo.beta=0.05", "seed=7", "run_dir=" + str(tmp_path)])
    assert cfg.iterations[0].dpo.beta == 0.05
    assert cfg.seed == 7
    assert cfg.directory == tmp_path


def test_base_inheritance_merges_mappings(tmp_path):
    (tmp_path / "a.yaml").write_text("name: a\nseed: 1\ndata: {heldout_fraction: 0.1}\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\nname: b\ndata: {derive_pairwise: true}\n")
    raw = read_config_dict(tmp_path / "b.yaml")
    assert raw == {
        "name": "b",
        "seed": 1,
        "data": {"heldout_fraction": 0.1, "derive_pairwise": True},
    }


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["iterations.0.sample.count=5"], "exactly one of 'fraction' or 'count'"),
        (["merge.weight=1.5"], "merge.weight"),
        (["no_such_field=1"], "no_such_field"),
        (["seed=abc"], "seed"),
        (["iterations.0.curation.strategy=coin_flip"], "coin_flip"),
        (["data.heldout_fraction=0", "eval.benchmarks=[in-domain]"], "heldout_fraction"),
        (["data.derive_pairwise=false", "data.pairwise=[]"], "pairwise"),
    ],
)
def test_contradictions_rejected(overrides, message):
    demo = CONFIGS[[p.stem for p in CONFIGS].index("demo")]
    raw = read_config_dict(demo)
    raw["iterations"][0]["sample"] = {"fraction": 0.5}
    from srjudge.loop.config import config_from_dict

    with pytest.raises(ValueError, match=message):
        config_from_dict(apply_overrides(raw, overrides))
