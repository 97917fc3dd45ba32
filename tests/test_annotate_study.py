"""``srjudge annotate create``: reading eval/judge predictions, selection, sides, refusals."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from annotate_support import DEMO, JUDGE, demo_study, judge_study, write_judge_pair
from srjudge.annotation import store
from srjudge.annotation.inputs import StudyInputError, read_predictions
from srjudge.annotation.study import create_study
from srjudge.cli import main


def _items(db: Path) -> list[tuple[str, str, int, dict, str, str]]:
    with store.opened(db) as conn:
        return store.all_items(conn)


def _firsts(db: Path) -> dict[str, str]:
    with store.opened(db) as conn:
        return dict(conn.execute("SELECT key, first FROM items"))


def test_demo_study_keeps_items_with_the_same_verdict(tmp_path):
    db = demo_study(tmp_path / "s.db")
    items = _items(db)
    keys = sorted(k for _, k, *_ in items)
    # 006: J_SFT did not parse; 013: verdicts 3 vs 2
    assert keys == [f"in-domain/mt-bench-{i}" for i in ("002", "009", "012", "030")]
    with store.opened(db) as conn:
        meta = store.read_meta(conn)
    assert meta["counts"] == {
        "judged": 6,
        "kept": 4,
        "left_out": {"no parsed verdict": 1, "different verdicts": 1},
    }
    assert (meta["label_a"], meta["label_b"]) == ("iter2_dpo", "sft")
    # the item shows the held-out example: criteria, conversation, response, reference
    by_key = {k: p for _, k, _, p, _, _ in items}
    p = by_key["in-domain/mt-bench-009"]
    assert p["criteria"].startswith("Does the response properly address")
    assert len(p["score_descriptions"]) == 5 and len(p["context"]) == 3
    assert "FlexPower" in p["response"] and p["reference_answer"]
    assert p["verdicts"] == [4, 4]


def test_an_eval_stage_reads_its_own_run_data_not_a_same_named_file_here(tmp_path, monkeypatch):
    # settings.json names runs/demo/stages/00_data/heldout.jsonl (relative); a different demo
    # run under the current directory must not be read instead of the eval's own run folder
    other = tmp_path / "runs" / "demo" / "stages" / "00_data"
    other.mkdir(parents=True)
    (other / "heldout.jsonl").write_text((JUDGE / "examples.jsonl").read_text())
    monkeypatch.chdir(tmp_path)
    db = demo_study(tmp_path / "s.db")
    assert len(_items(db)) == 4


def test_rationales_are_stored_on_the_side_recorded_for_each_item(tmp_path):
    db = demo_study(tmp_path / "s.db", seed=3)
    a = read_predictions(DEMO / "13_eval_iter2_dpo").items
    b = read_predictions(DEMO / "11_eval_sft").items
    firsts = _firsts(db)
    for _, key, _, _, r1, r2 in _items(db):
        one, two = (a, b) if firsts[key] == "a" else (b, a)
        assert (r1, r2) == (one[key].rationale, two[key].rationale)


def test_sides_and_order_follow_the_seed(tmp_path):
    ex, a, b = write_judge_pair(tmp_path / "in", 40)

    def build(name: str, seed: int):
        db = tmp_path / name
        create_study(a, b, db, examples=[ex], seed=seed)
        return [k for _, k, *_ in _items(db)], _firsts(db)

    order0, sides0 = build("s0.db", 0)
    assert build("again.db", 0) == (order0, sides0)  # deterministic
    order1, sides1 = build("s1.db", 1)
    assert order1 != order0 and sides1 != sides0
    counts = sorted(sides0.values()).count("a")
    assert 10 <= counts <= 30  # both sides used, roughly half each
    assert order0 != sorted(order0)  # shuffled


def test_all_and_limit(tmp_path):
    db = demo_study(tmp_path / "all.db", keep_all=True)
    assert len(_items(db)) == 5  # only the unparsed one left out
    ex, a, b = write_judge_pair(tmp_path / "in", 30)
    create_study(a, b, tmp_path / "lim.db", examples=[ex], limit=7, seed=5)
    with store.opened(tmp_path / "lim.db") as conn:
        meta = store.read_meta(conn)
        assert store.item_count(conn) == 7
    assert meta["counts"]["left_out"] == {"over --limit": 23}


def test_judge_outputs_find_their_input_through_the_summary(tmp_path):
    shutil.copy(JUDGE / "a.jsonl", tmp_path / "a.jsonl")
    shutil.copy(JUDGE / "b.jsonl", tmp_path / "b.jsonl")
    examples = JUDGE / "examples.jsonl"
    sha = hashlib.sha256(examples.read_bytes()).hexdigest()
    for name in ("a", "b"):
        prov = {"provenance": {"input": str(examples), "input_sha256": sha}}
        (tmp_path / f"{name}.summary.json").write_text(json.dumps(prov))
    create_study(tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "s.db")
    keys = sorted(k for _, k, *_ in _items(tmp_path / "s.db"))
    assert keys == ["p1", "q1", "q2", "q3"]  # q4: verdicts 5 vs 4
    pair = next(p for _, k, _, p, _, _ in _items(tmp_path / "s.db") if k == "p1")
    assert (pair["response_1"], pair["response_2"], pair["mode"]) == ("Red.", "Purple.", "pairwise")
    # a changed input file is refused
    prov = {"provenance": {"input": str(examples), "input_sha256": "0" * 64}}
    (tmp_path / "b.summary.json").write_text(json.dumps(prov))
    with pytest.raises(StudyInputError, match="changed since"):
        create_study(tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "t.db")


def _copy_without(src: Path, dst: Path, drop_id: str) -> Path:
    lines = [x for x in src.read_text().splitlines() if f'"{drop_id}"' not in x]
    dst.write_text("\n".join(lines) + "\n")
    return dst


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: _copy_without(JUDGE / "b.jsonl", p, "q2"), r"do not judge the same items.*q2"),
        (
            lambda p: p.write_text(
                (JUDGE / "b.jsonl").read_text() + '{"id": "q1", "kind": '
                '"pointwise", "verdict": 5, "rationale": "x"}\n'
            ),
            r"b\.jsonl:6: field 'id': item 'q1' appears twice \(first: line 1\)",
        ),
        (
            lambda p: p.write_text(
                (JUDGE / "b.jsonl").read_text().replace('"verdict": 4', '"verdict": 7', 1)
            ),
            r"b\.jsonl:3: field 'verdict': expected one of \(1, 2, 3, 4, 5\)",
        ),
        (
            lambda p: p.write_text((JUDGE / "b.jsonl").read_text() + '{"id": "q9", "ki'),
            r"b\.jsonl:6: not valid JSON",
        ),
        (
            lambda p: p.write_text(
                (JUDGE / "b.jsonl").read_text().replace('"kind": "pairwise"', '"kind": "pointwise"')
            ),
            r"b\.jsonl:5: field 'verdict'|item 'p1' is pairwise in A",
        ),
    ],
)
def test_bad_or_mismatched_input_is_refused_before_writing(tmp_path, mutate, message):
    bad = tmp_path / "b.jsonl"
    mutate(bad)
    out = tmp_path / "s.db"
    with pytest.raises(StudyInputError, match=message):
        create_study(JUDGE / "a.jsonl", bad, out, examples=[JUDGE / "examples.jsonl"])
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]


def test_eval_and_judge_files_are_not_mixed(tmp_path):
    with pytest.raises(StudyInputError, match="`srjudge judge` output but B .* `srjudge eval`"):
        create_study(JUDGE / "a.jsonl", DEMO / "11_eval_sft", tmp_path / "s.db")


def test_missing_examples_are_named(tmp_path):
    ex, a, b = write_judge_pair(tmp_path / "in", 3)
    partial = tmp_path / "partial.jsonl"
    partial.write_text(ex.read_text().splitlines()[0] + "\n")
    with pytest.raises(StudyInputError, match="2 judged items have no example .*x1, x2"):
        create_study(a, b, tmp_path / "s.db", examples=[partial])


def test_an_existing_study_is_never_overwritten(tmp_path):
    db = judge_study(tmp_path / "s.db")
    before = db.read_bytes()
    with pytest.raises(StudyInputError, match="already exists"):
        judge_study(db)
    assert db.read_bytes() == before


def test_cli_create_reports_counts_and_errors(tmp_path, capsys):
    out = tmp_path / "s.db"
    args = [
        "annotate",
        "create",
        "--a",
        str(DEMO / "13_eval_iter2_dpo"),
        "--b",
        str(DEMO / "11_eval_sft"),
        "--out",
        str(out),
        "--label-a",
        "J_2",
        "--label-b",
        "J_SFT",
    ]
    assert main(args) == 0
    assert "4 items of 6 judged by both" in capsys.readouterr().out
    with store.opened(out) as conn:
        assert store.read_meta(conn)["label_a"] == "J_2"
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err


def test_files_written_by_srjudge_eval_and_judge_are_read(tmp_path):
    """The real writers (mock backend): evaluation.evaluate and judging.files.judge_file."""
    from srjudge.evaluation.evaluate import evaluate
    from srjudge.judging.backends import MockBackend
    from srjudge.judging.files import judge_file

    heldout = DEMO / "00_data" / "heldout.jsonl"
    for name, text in (("a", "Careful reasons. [RESULT] 3"), ("b", "Other reasons. [RESULT] 3")):
        evaluate(
            MockBackend([text], name=name),
            ["in-domain"],
            out_dir=tmp_path / f"ev_{name}",
            paths={"in-domain": str(heldout)},
            n_boot=10,
        )
        judge_file(heldout, tmp_path / f"j_{name}.jsonl", MockBackend([text]), progress=False)
    create_study(tmp_path / "ev_a", tmp_path / "ev_b", tmp_path / "ev.db")
    create_study(tmp_path / "j_a.jsonl", tmp_path / "j_b.jsonl", tmp_path / "j.db")
    for db in (tmp_path / "ev.db", tmp_path / "j.db"):
        items = _items(db)
        assert len(items) == 6
        assert {frozenset((r1, r2)) for *_, r1, r2 in items} == {
            frozenset(("Careful reasons.", "Other reasons."))
        }
