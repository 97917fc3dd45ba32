"""The annotation page in a real browser: headless Chromium driven by Selenium.

Uses the system Chromium and chromedriver (Debian: ``apt-get install chromium
chromium-driver``; ``.ci/run`` installs them). Selenium Manager is never asked to download
anything: the driver's path is given and ``SE_OFFLINE`` is set. Without a browser the tests
skip, unless ``SRJUDGE_REQUIRE_BROWSER=1`` (set by ``.ci/run``) makes that a failure.
Set ``SRJUDGE_SCREENSHOTS=DIR`` to keep a screenshot of the labelled page.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from annotate_support import LiveServer, add, db_labels, demo_study, judge_study
from srjudge.annotation.labelstudio import export_label_studio, import_label_studio
from srjudge.annotation.report import write_study_report

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _find() -> tuple[str | None, str | None]:
    browser = next((p for p in map(shutil.which, BROWSERS) if p), None)
    return browser, shutil.which("chromedriver")


@pytest.fixture(scope="module")
def driver():
    browser, chromedriver = _find()
    if not (browser and chromedriver):
        if os.environ.get("SRJUDGE_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium and chromedriver are required (apt-get install chromium ...)")
        pytest.skip("no chromium/chromedriver on this machine")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager: never download
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="srjudge-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,1400",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(arg)
    drv = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    drv.set_page_load_timeout(30)
    yield drv
    drv.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _wait_for(driver, path: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 10).until(lambda d: d.current_url.split("?")[0].endswith(path))


def _press(driver, *keys: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    body = driver.find_element("tag name", "body")
    body.click()  # focus the page, not a form field
    chain = ActionChains(driver)
    for k in keys:
        chain.send_keys(k)
    chain.perform()


def _checked(driver, element_id: str) -> bool:
    return driver.find_element("id", element_id).is_selected()


def test_label_with_mouse_and_keyboard_go_back_change_reload(driver, tmp_path):
    from selenium.webdriver.common.keys import Keys

    db = demo_study(tmp_path / "s.db")
    token = add(db, "ann")
    with LiveServer(db) as server:
        driver.delete_all_cookies()
        driver.get(f"{server.url}/t/{token}")
        _wait_for(driver, "/item/1")
        assert "0 of 4 labelled" in driver.find_element("id", "progress-text").text
        # item 1 with the mouse: choice, two reasons, a comment, the button
        driver.find_element("id", "choice-1").click()
        driver.find_element("id", "reason-accurate").click()
        driver.find_element("id", "reason-specific").click()
        driver.find_element("id", "comment").send_keys("names the <verb> problem")
        driver.find_element("id", "save").click()
        _wait_for(driver, "/item/2")
        assert driver.find_element("id", "saved").text == "Saved item 1"
        # item 2 with the keyboard: '2', tick 'rubric' (r), Enter
        _press(driver, "2", "r", Keys.ENTER)
        _wait_for(driver, "/item/3")
        assert "2 of 4 labelled" in driver.find_element("id", "progress-text").text
        # item 3: tie, both good (3), Enter
        _press(driver, "3", Keys.ENTER)
        _wait_for(driver, "/item/4")
        # back to item 3 with the left arrow: the label is shown; change it to 'both poor'
        _press(driver, Keys.ARROW_LEFT)
        _wait_for(driver, "/item/3")
        assert _checked(driver, "choice-tie_good")
        _press(driver, "4", "c", Keys.ENTER)
        _wait_for(driver, "/item/4")
        driver.refresh()
        _wait_for(driver, "/item/4")
        assert "3 of 4 labelled" in driver.find_element("id", "progress-text").text
        driver.get(f"{server.url}/item/1")
        assert _checked(driver, "choice-1") and _checked(driver, "reason-specific")
        assert driver.find_element("id", "comment").get_attribute("value") == (
            "names the <verb> problem"
        )
        if shots := os.environ.get("SRJUDGE_SCREENSHOTS"):
            Path(shots).mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(Path(shots) / "annotate_page.png"))
    assert db_labels(db) == {
        ("ann", 1): ("1", ("accurate", "specific"), "names the <verb> problem"),
        ("ann", 2): ("2", ("rubric",), ""),
        ("ann", 3): ("tie_poor", ("clear",), ""),
    }
    # the same study exported to Label Studio, an export read back, both reported together
    tasks = json.loads(export_label_studio(db, tmp_path / "ls")[0].read_text())
    pick = {"from_name": "preference", "to_name": "rationale_1", "type": "choices"}
    ann = {"completed_by": 3, "result": [pick | {"value": {"choices": ["Rationale 1"]}}]}
    export = [{"id": k, "data": t["data"], "annotations": [ann]} for k, t in enumerate(tasks)]
    (tmp_path / "ls.json").write_text(json.dumps(export))
    import_label_studio(db, tmp_path / "ls.json")
    md, _, summary = write_study_report(db, tmp_path / "report", n_boot=50)
    assert set(summary["win_rates"]["annotators"]) == {"ann", "label-studio:3"}
    assert summary["agreement"]["shared_items"] == 3
    assert "| label-studio:3 | 4 |" in md.read_text()


def test_script_in_model_text_does_not_run(driver, tmp_path):
    db = judge_study(tmp_path / "s.db")
    token = add(db, "ann")
    with LiveServer(db) as server:
        driver.delete_all_cookies()
        driver.get(f"{server.url}/t/{token}")
        seen = ""
        for n in range(1, 5):
            driver.get(f"{server.url}/item/{n}")
            assert driver.execute_script("return typeof window.__pwned") == "undefined"
            seen += driver.find_element("tag name", "main").text
    assert "<script>window.__pwned = 'rationale'</script>" in seen  # shown as text
    assert "<script>window.__pwned = 'response'</script>" in seen
