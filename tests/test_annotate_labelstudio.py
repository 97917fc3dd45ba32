"""Label Studio interchange: task/config export, JSON-export import, JSONL of labels."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from annotate_support import MODEL_WORDS, add, db_labels, demo_study, judge_study, post_label
from srjudge.annotation import store
from srjudge.annotation.app import make_app
from srjudge.annotation.labelstudio import (
    ImportErrorLS,
    export_jsonl,
    export_label_studio,
    import_label_studio,
)
from srjudge.annotation.report import summarize
from srjudge.cli import main


def _export(db: Path, out: Path) -> tuple[list[dict], ET.Element]:
    tasks_path, config_path = export_label_studio(db, out)
    return json.loads(tasks_path.read_text()), ET.fromstring(config_path.read_text())


def test_tasks_fill_every_variable_of_the_config(tmp_path):
    db = demo_study(tmp_path / "s.db")
    tasks, config = _export(db, tmp_path / "ls")
    assert len(tasks) == 4 and all(set(t) == {"data"} for t in tasks)
    variables = {e.get("value")[1:] for e in config.iter("Text")}
    assert variables == {
        "criteria",
        "rubric",
        "conversation",
        "response",
        "verdicts",
        "rationale_1",
        "rationale_2",
    }
    for t in tasks:
        assert variables <= set(t["data"])
    names = {e.get("name") for e in config.iter() if e.get("name")}
    for control in config.iter("Choices"):
        assert control.get("toName") in names
    preference = next(c for c in config.iter("Choices") if c.get("name") == "preference")
    assert [c.get("value") for c in preference] == [
        "Rationale 1",
        "Rationale 2",
        "Tie: both good",
        "Tie: both poor",
    ]
    data = next(t["data"] for t in tasks if "FlexPower: Bio" in t["data"]["response"])
    assert data["verdicts"] == "Both rationales end in the same verdict: score 3."
    assert data["rubric"].startswith("Score 1: The model fails")
    assert data["conversation"].startswith("USER: Help me construct")


def test_exported_tasks_do_not_reveal_the_models(tmp_path):
    db = judge_study(tmp_path / "s.db")
    tasks, _ = _export(db, tmp_path / "ls")
    text = json.dumps(tasks).lower()
    with store.opened(db) as conn:
        keys = [k for (k,) in conn.execute("SELECT key FROM items")]
    for word in [*MODEL_WORDS, "alpha", "beta", "model", "first", *keys]:
        assert f'"{word}' not in text and word not in text.replace('"item"', ""), word
    assert {tuple(sorted(t["data"])) for t in tasks} == {
        (
            "conversation",
            "criteria",
            "item",
            "rationale_1",
            "rationale_2",
            "response",
            "rubric",
            "study",
            "verdicts",
        )
    }


def _ls_export(tasks: list[dict], annotations: dict[int, list[dict]]) -> list[dict]:
    """What Label Studio's JSON export gives back for these tasks: ids and annotations."""
    return [
        {
            "id": 100 + k,
            "data": t["data"],
            "annotations": annotations.get(k, []),
            "predictions": [],
            "project": 3,
        }
        for k, t in enumerate(tasks)
    ]


def _ann(who, preference=None, reasons=(), comment=None, pairwise=None, cancelled=False):
    result = []
    if preference:
        result.append(
            {
                "id": "p",
                "from_name": "preference",
                "to_name": "rationale_1",
                "type": "choices",
                "value": {"choices": [preference]},
            }
        )
    if pairwise:
        result.append(
            {
                "id": "w",
                "from_name": "pw",
                "to_name": "rationale_1,rationale_2",
                "type": "pairwise",
                "value": {"selected": pairwise},
            }
        )
    if reasons:
        result.append(
            {
                "id": "r",
                "from_name": "reasons",
                "to_name": "rationale_1",
                "type": "choices",
                "value": {"choices": list(reasons)},
            }
        )
    if comment is not None:
        result.append(
            {
                "id": "c",
                "from_name": "comment",
                "to_name": "rationale_1",
                "type": "textarea",
                "value": {"text": [comment]},
            }
        )
    return {
        "id": 1,
        "completed_by": who,
        "result": result,
        "was_cancelled": cancelled,
        "ground_truth": False,
        "lead_time": 3.2,
    }


def test_import_round_trip(tmp_path):
    db = demo_study(tmp_path / "s.db")
    tasks, _ = _export(db, tmp_path / "ls")
    export = _ls_export(
        tasks,
        {
            0: [
                _ann(7, "Rationale 2", ["More specific", "Clearer"], "more concrete"),
                _ann({"id": 9, "email": "kim@example.org"}, pairwise="left"),
                _ann(8, "Rationale 1", cancelled=True),
            ],
            1: [_ann(7, "Tie: both poor")],
        },
    )
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export))
    counts = import_label_studio(db, path)
    assert counts == {"tasks": 4, "annotations": 3, "cancelled": 1, "unlabelled_tasks": 2}
    assert db_labels(db) == {
        ("label-studio:7", 1): ("2", ("specific", "clear"), "more concrete"),
        ("label-studio:kim@example.org", 1): ("1", (), ""),
        ("label-studio:7", 2): ("tie_poor", (), ""),
    }
    # importing the same export again replaces, never duplicates
    import_label_studio(db, path)
    assert len(db_labels(db)) == 3
    # the report counts them like labels from the page
    wr = summarize(db, n_boot=20)["win_rates"]
    assert set(wr["annotators"]) == {"label-studio:7", "label-studio:kim@example.org"}


def test_imported_labels_map_to_the_same_models_as_web_labels(tmp_path):
    db = demo_study(tmp_path / "s.db")
    tasks, _ = _export(db, tmp_path / "ls")
    client = TestClient(make_app(db))
    client.get(f"/t/{add(db, 'web')}")
    post_label(client, 1, "2")
    path = tmp_path / "export.json"
    path.write_text(json.dumps(_ls_export(tasks, {0: [_ann(5, "Rationale 2")]})))
    import_label_studio(db, path)
    with store.opened(db) as conn:
        prefs = {r.annotator: r.preferred for r in store.all_labels(conn)}
    assert prefs["web"] == prefs["label-studio:5"] in ("a", "b")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda e: e[1]["annotations"][0]["result"][0]["value"].update(choices=["Model A"]),
            r"task 1 \(id 101\)\.annotations\[0\]\.result\[0\]\.value\.choices: expected one of",
        ),
        (
            lambda e: e[1]["data"].update(item="deadbeef"),
            r"task 1 \(id 101\): field 'data.item': 'deadbeef' is not in this study",
        ),
        (
            lambda e: e[0]["data"].update(study="0" * 16),
            r"task 0 \(id 100\): field 'data.study'.*another study",
        ),
        (
            lambda e: e[1]["annotations"][0].pop("completed_by"),
            r"annotations\[0\]: field 'completed_by'",
        ),
        (lambda e: e[1]["annotations"][0]["result"].pop(0), r"no 'preference' choice"),
        (
            lambda e: e[1]["annotations"][0]["result"][1]["value"].update(choices=["Shorter"]),
            r"result\[1\]\.value\.choices: unknown reason",
        ),
    ],
)
def test_a_bad_export_is_refused_whole(tmp_path, mutate, message):
    db = demo_study(tmp_path / "s.db")
    tasks, _ = _export(db, tmp_path / "ls")
    export = _ls_export(
        tasks, {0: [_ann(1, "Rationale 1")], 1: [_ann(2, "Rationale 2", ["Clearer"])]}
    )
    mutate(export)
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export))
    with pytest.raises(ImportErrorLS, match=message):
        import_label_studio(db, path)
    assert db_labels(db) == {}
    with store.opened(db) as conn:
        assert store.annotators(conn) == []


def test_jsonl_export_resolves_the_sides(tmp_path):
    db = judge_study(tmp_path / "s.db")
    client = TestClient(make_app(db))
    client.get(f"/t/{add(db, 'ann')}")
    post_label(client, 1, "1", ["accurate"], "note")
    post_label(client, 2, "tie_good")
    n = export_jsonl(db, tmp_path / "labels.jsonl")
    rows = [json.loads(x) for x in (tmp_path / "labels.jsonl").read_text().splitlines()]
    assert n == 2 == len(rows)
    with store.opened(db) as conn:
        first = dict(conn.execute("SELECT position, first FROM items"))
    one = rows[0]
    assert one["preferred"] == first[1] and one["rationale_1_is"] == first[1]
    assert one["preferred_model"] == {"a": "alpha-judge", "b": "beta-judge"}[first[1]]
    assert (one["reasons"], one["comment"], one["source"]) == (["accurate"], "note", "web")
    assert (rows[1]["preferred"], rows[1]["tie"]) == ("tie", "both good")


def test_cli_export_and_import(tmp_path, capsys):
    db = demo_study(tmp_path / "s.db")
    out = tmp_path / "ls"
    assert main(["annotate", "export", str(db), "--format", "label-studio", "--out", str(out)]) == 0
    tasks = json.loads((out / "tasks.json").read_text())
    path = tmp_path / "export.json"
    path.write_text(json.dumps(_ls_export(tasks, {2: [_ann(4, "Tie: both good")]})))
    assert main(["annotate", "import", str(db), str(path)]) == 0
    assert "1 labels imported from 4 tasks" in capsys.readouterr().out
    path.write_text("[{")
    assert main(["annotate", "import", str(db), str(path)]) == 2
    assert re.search(r"export\.json: not a readable JSON file", capsys.readouterr().err)
    jsonl = tmp_path / "labels.jsonl"
    assert main(["annotate", "export", str(db), "--format", "jsonl", "--out", str(jsonl)]) == 0
    assert len(jsonl.read_text().splitlines()) == 1
