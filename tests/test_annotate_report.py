"""``srjudge annotate report``: win rates, bootstrap CIs, agreement, reasons, the plot."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from annotate_support import write_judge_pair
from srjudge.annotation import store
from srjudge.annotation.report import (
    agreement,
    study_sections,
    summarize,
    win_rates,
    write_study_report,
)
from srjudge.annotation.study import create_study
from srjudge.cli import main


def _study(tmp_path: Path, n: int = 4) -> Path:
    ex, a, b = write_judge_pair(tmp_path / "in", n)
    db = tmp_path / "s.db"
    create_study(a, b, db, examples=[ex], label_a="J_2", label_b="J_SFT")
    return db


def label_as(db: Path, name: str, prefs: list[str], reasons: list[tuple[str, ...]] | None = None):
    """Label items 1..len(prefs) as annotator ``name``; prefs 'a', 'b', 'tie_good', 'tie_poor'
    name the *model* preferred, turned into the side shown through the stored assignment."""
    with store.opened(db) as conn:
        store.add_annotator(conn, name)
        who = conn.execute("SELECT id FROM annotators WHERE name = ?", (name,)).fetchone()[0]
        for k, pref in enumerate(prefs, 1):
            item, first = conn.execute(
                "SELECT id, first FROM items WHERE position = ?", (k,)
            ).fetchone()
            choice = pref if pref.startswith("tie") else ("1" if pref == first else "2")
            why = reasons[k - 1] if reasons else ()
            store.save_label(conn, who, item, store.check_label(choice, list(why), ""))


def _rows(db: Path) -> list[store.LabelRow]:
    with store.opened(db) as conn:
        return store.all_labels(conn)


def test_win_rates_per_annotator_and_averaged(tmp_path):
    db = _study(tmp_path)
    label_as(db, "alice", ["a", "a", "b", "tie_good"])
    label_as(db, "bob", ["a", "a", "a", "tie_poor"])
    wr = win_rates(_rows(db), n_boot=200)
    alice, bob, avg = wr["annotators"]["alice"], wr["annotators"]["bob"], wr["average"]
    assert {k: alice[k]["value"] for k in ("win", "tie_good", "tie_poor", "loss", "tie")} == {
        "win": 0.5,
        "tie_good": 0.25,
        "tie_poor": 0.0,
        "loss": 0.25,
        "tie": 0.25,
    }
    assert bob["win"]["value"] == 0.75 and bob["tie_poor"]["value"] == 0.25
    assert avg["win"]["value"] == pytest.approx(0.625)
    assert avg["loss"]["value"] == pytest.approx(0.125)
    assert (avg["labels"], avg["items"]) == (8, 4)
    for entry in (alice, bob, avg):
        for key in ("win", "loss", "tie"):
            e = entry[key]
            assert e["lo"] <= e["value"] <= e["hi"]
    assert avg["win"]["lo"] < 0.625 < avg["win"]["hi"]  # items vary: a real interval


def test_an_annotator_who_always_prefers_a_has_a_degenerate_interval(tmp_path):
    db = _study(tmp_path, 6)
    label_as(db, "carol", ["a"] * 6)
    carol = win_rates(_rows(db), n_boot=100)["annotators"]["carol"]
    assert (carol["win"]["value"], carol["win"]["lo"], carol["win"]["hi"]) == (1.0, 1.0, 1.0)
    assert carol["loss"]["value"] == 0.0


def test_average_over_annotators_weights_each_annotator_equally(tmp_path):
    db = _study(tmp_path, 4)
    label_as(db, "many", ["a", "a", "a", "a"])
    label_as(db, "few", ["b"])  # one label: still half of the average
    avg = win_rates(_rows(db), n_boot=50)["average"]
    assert avg["win"]["value"] == pytest.approx(0.5)
    assert avg["loss"]["value"] == pytest.approx(0.5)


def test_krippendorff_alpha_matches_a_hand_computation(tmp_path):
    db = _study(tmp_path)
    label_as(db, "alice", ["a", "a", "b", "tie_good"])
    label_as(db, "bob", ["a", "a", "a", "tie_poor"])  # ties of either kind agree
    ag = agreement(_rows(db))
    # coincidences: o_AA = 4, o_AB = o_BA = 1, o_TT = 2; n_A = 5, n_T = 2, n_B = 1, n = 8
    # D_o = 2/8; D_e = 2 (5*2 + 5*1 + 2*1) / (8*7); alpha = 1 - D_o / D_e = 10/17
    assert ag["alpha_nominal"] == pytest.approx(10 / 17)
    assert ag["pairwise_agreement"] == 0.75 and ag["shared_items"] == 4
    assert -1 <= ag["alpha_ordinal"] <= 1


def test_agreement_needs_two_annotators_on_an_item(tmp_path):
    db = _study(tmp_path)
    label_as(db, "alice", ["a", "b"])
    ag = agreement(_rows(db))
    assert "alpha_nominal" not in ag and "two annotators" in ag["note"]


def test_reasons_are_counted_for_the_side_preferred(tmp_path):
    db = _study(tmp_path)
    label_as(
        db,
        "alice",
        ["a", "b", "a", "tie_good"],
        [("accurate", "specific"), ("clear",), ("accurate",), ()],
    )
    reasons = summarize(db, n_boot=10)["reasons"]
    assert reasons["a"] == {
        "labels": 2,
        "accurate": 2,
        "specific": 1,
        "rubric": 0,
        "grounded": 0,
        "clear": 0,
    }
    assert reasons["b"]["labels"] == 1 and reasons["b"]["clear"] == 1
    assert reasons["tie"]["labels"] == 1 and sum(reasons["tie"].values()) == 1


def test_written_report_has_tables_plot_and_strict_json(tmp_path):
    db = _study(tmp_path)
    label_as(db, "alice", ["a", "a", "a", "a"])
    label_as(db, "bob", ["a", "a", "a", "a"])  # every label the same: alpha undefined
    md, html, _ = write_study_report(db, tmp_path / "out", n_boot=50)
    text = md.read_text()
    assert "| average over annotators | 8 | 100.0% [100.0, 100.0]" in text
    assert "J_2 better" in text and "J_SFT better" in text
    png = (tmp_path / "out" / "figures" / "annotation_winrate.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    assert '<img src="data:image/png;base64,' in html.read_text()
    data = json.loads((tmp_path / "out" / "annotation_report.json").read_text())
    assert data["win_rates"]["average"]["win"]["value"] == 1.0
    assert data["agreement"]["alpha_nominal"] is None  # NaN written as null


def test_sections_for_the_run_report(tmp_path):
    db = _study(tmp_path)
    label_as(db, "alice", ["a", "b", "tie_poor", "a"])
    sections = study_sections(db, n_boot=20)
    assert [s.title for s in sections] == [
        "Human evaluation: J_2 vs J_SFT (paper Figure 2)",
        "Inter-annotator agreement",
        "Reasons given",
    ]
    headers, rows = sections[0].table
    assert headers[2] == "J_2 better" and rows[1][0] == "alice"
    assert sections[0].figure is not None and sections[1].table is None


def test_empty_study_reports_without_numbers(tmp_path):
    db = _study(tmp_path)
    summary = summarize(db, n_boot=10)
    assert summary["win_rates"]["annotators"] == {}
    assert math.isnan(summary["win_rates"]["average"]["win"]["value"])


def test_cli_report(tmp_path, capsys):
    db = _study(tmp_path)
    label_as(db, "alice", ["a", "b", "a", "a"])
    assert (
        main(["annotate", "report", str(db), "--out", str(tmp_path / "rep"), "--n-boot", "50"]) == 0
    )
    out = capsys.readouterr().out
    assert "| alice | 4 | 75.0% [" in out
    assert (tmp_path / "rep" / "annotation_report.html").is_file()


def test_srjudge_report_appends_the_study(tmp_path, capsys):
    """`srjudge report RUN --study STUDY.db` puts the study's sections into the run's report."""
    db = _study(tmp_path)
    label_as(db, "alice", ["a", "b", "tie_poor", "a"])
    run = Path(__file__).parent / "fixtures" / "annotate" / "demo_run"
    out = tmp_path / "report"
    assert (
        main(["report", str(run / "stages" / "11_eval_sft"), "--out", str(out), "--study", str(db)])
        == 0
    )
    md = (out / "report.md").read_text()
    assert "Human evaluation: J_2 vs J_SFT (paper Figure 2)" in md
    assert "Inter-annotator agreement" in md
    assert main(["report", str(run), "--out", str(out), "--study", str(tmp_path / "no.db")]) == 2
    assert "no such study file" in capsys.readouterr().err
