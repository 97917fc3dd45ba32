"""Regenerate the annotation screenshots in docs/ (annotate_page.png, annotate_report.png).

    .venv/bin/python scripts/annotate_docs.py [--out docs]
    .venv/bin/python scripts/annotate_docs.py --a runs/demo/stages/12_eval_iter2_dpo \
        --b runs/demo/stages/10_eval_sft --keep-study study.db     # a real run's predictions

Builds a study (``--all``) from the hand-made demo-like evaluations in
``tests/fixtures/annotate/demo_run`` (J_2 vs J_SFT on five held-out MT-Bench items), labels it
through the real page as three annotators with *scripted, made-up* choices (the numbers in the
report screenshot illustrate the layout; they are not a human evaluation), then photographs
item 2 of the page and the written report in headless Chromium (system chromium +
chromedriver, no downloads).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from srjudge.annotation import store
from srjudge.annotation.app import make_app
from srjudge.annotation.report import write_study_report
from srjudge.annotation.study import create_study

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "tests" / "fixtures" / "annotate" / "demo_run" / "stages"
# annotator -> model preferred per item (position 1..5): 'a' (J_2), 'b' (J_SFT) or a tie
SCRIPT = {
    "ana": ["a", "a", "tie_good", "a", "b"],
    "ben": ["a", "b", "a", "a", "tie_poor"],
    "chloe": ["a", "a", "a", "tie_good", "a"],
}
REASONS = {"a": ["specific", "accurate"], "b": ["clear"]}


def _label(base: str, db: Path) -> None:
    with store.opened(db) as conn:
        first = dict(conn.execute("SELECT position, first FROM items"))
    for name, prefs in SCRIPT.items():
        with store.opened(db) as conn:
            token = store.add_annotator(conn, name)
        with httpx.Client(base_url=base) as client:
            client.get(f"/t/{token}")
            for n, pref in enumerate(prefs[: len(first)], 1):
                choice = pref if pref.startswith("tie") else ("1" if pref == first[n] else "2")
                data = {"choice": choice, "reason": REASONS.get(pref, []), "comment": ""}
                assert client.post(f"/item/{n}", data=data).status_code == 303


def _browser(profile: str):
    os.environ["SE_OFFLINE"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--window-size=1280,1500",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(arg)
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    return webdriver.Chrome(service=service, options=options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs"))
    parser.add_argument("--a", default=str(DEMO / "13_eval_iter2_dpo"), help="J_2's eval folder")
    parser.add_argument("--b", default=str(DEMO / "11_eval_sft"), help="J_SFT's eval folder")
    parser.add_argument("--keep-study", help="copy the labelled study file here")
    args = parser.parse_args()
    out = Path(args.out)
    work = Path(tempfile.mkdtemp(prefix="srjudge-annotate-docs-"))
    db = work / "study.db"
    create_study(
        Path(args.a),
        Path(args.b),
        db,
        keep_all=True,
        label_a="J_2",
        label_b="J_SFT",
    )
    server = uvicorn.Server(
        uvicorn.Config(
            make_app(db), host="127.0.0.1", port=0, log_level="warning", access_log=False
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    _label(base, db)
    md, html, _ = write_study_report(db, work / "report")
    driver = _browser(str(work / "profile"))
    try:
        with store.opened(db) as conn:
            token = store.add_annotator(conn, "dana")
        driver.get(f"{base}/t/{token}")  # item 1: label it, land on item 2
        driver.find_element("id", "choice-2").click()
        driver.find_element("id", "reason-accurate").click()
        driver.find_element("id", "save").click()
        driver.find_element("id", "choice-2").click()  # item 2: being labelled
        driver.find_element("id", "reason-specific").click()
        driver.find_element("id", "reason-rubric").click()
        driver.find_element("id", "comment").send_keys("Rationale 2 counts the words.")
        out.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out / "annotate_page.png"))
        driver.set_window_size(1100, 1600)
        driver.get(html.as_uri())
        driver.save_screenshot(str(out / "annotate_report.png"))
    finally:
        driver.quit()
        server.should_exit = True
        thread.join(timeout=10)
    print(f"wrote {out / 'annotate_page.png'}, {out / 'annotate_report.png'}")
    if args.keep_study:
        with store.opened(db) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        shutil.copyfile(db, args.keep_study)
        print(f"kept the labelled study as {args.keep_study}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
