"""The run folder: the resolved config, stage folders and their provenance.

A stage folder is ``RUN/stages/NN_<name>``; its ``stage.json`` (written last and atomically)
means the stage finished. This module writes the resolved config (``check_config``) and
collects the provenance every stage records (library versions, template hashes).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from pathlib import Path
from typing import Any

import yaml

from srjudge import __version__
from srjudge.loop.config import RunConfig, config_to_dict


def library_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"srjudge": __version__, "python": platform.python_version()}
    for pkg in ("torch", "transformers", "trl", "peft", "datasets"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


def check_config(cfg: RunConfig, run_dir: Path, allow_change: bool) -> None:
    resolved = config_to_dict(cfg)
    path = run_dir / "config.yaml"
    if path.exists():
        before = yaml.safe_load(path.read_text())
        if before != resolved and not allow_change:
            changed = sorted(
                k for k in set(before) | set(resolved) if before.get(k) != resolved.get(k)
            )
            raise ValueError(
                f"{path} exists with a different config (changed: {', '.join(changed)}). "
                "Use a new run_dir, or --allow-config-change to resume anyway."
            )
    run_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(resolved, sort_keys=False))


def template_provenance() -> dict[str, Any]:
    from srjudge.judging import prompts

    return {tid: prompts.template_hash(tid) for tid in prompts.TEMPLATE_IDS}


def clean_stage(run_dir: Path, name: str) -> None:
    """Remove a stage folder so the next run redoes it (and nothing after it is affected)."""
    for d in (run_dir / "stages").glob(f"*_{name}"):
        shutil.rmtree(d)
