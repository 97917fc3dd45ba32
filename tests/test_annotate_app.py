"""The annotation page over HTTP: tokens, labels, blindness, escaping, limits, errors.

In-process (Starlette's TestClient) except where a real server matters: concurrent annotators
and a server killed with SIGKILL (``srjudge annotate serve`` in a subprocess).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from annotate_support import (
    MODEL_WORDS,
    LiveServer,
    add,
    db_labels,
    demo_study,
    judge_study,
    login,
    post_label,
    write_judge_pair,
)
from srjudge.annotation import store
from srjudge.annotation.app import COOKIE, is_loopback, make_app, serve
from srjudge.annotation.study import create_study

SRC = Path(__file__).resolve().parent.parent / "src"


@pytest.fixture
def study(tmp_path) -> Path:
    return judge_study(tmp_path / "s.db")


def _client(db: Path, token: str | None = None) -> TestClient:
    client = TestClient(make_app(db))
    if token:
        assert client.get(f"/t/{token}").status_code == 200
    return client


def test_no_token_is_401_and_a_wrong_token_403(study):
    client = _client(study)
    for path in ("/", "/item/1", "/done"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 401 and "Bearer" in r.headers["www-authenticate"]
    assert post_label(client, 1, "1").status_code == 401
    assert client.get("/t/not-a-token").status_code == 403
    client.cookies.set(COOKIE, "forged")
    assert client.get("/item/1").status_code == 403
    assert post_label(client, 1, "1").status_code == 403
    assert db_labels(study) == {}


def test_login_sets_a_strict_cookie_and_goes_to_the_first_unlabelled_item(study):
    token = add(study, "ann")
    client = TestClient(make_app(study))
    r = client.get(f"/t/{token}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/item/1"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    post_label(client, 1, "2")
    r = client.get(f"/t/{token}", follow_redirects=False)
    assert r.headers["location"] == "/item/2"
    # a bearer header works too (for scripts)
    bare = TestClient(make_app(study))
    assert bare.get("/item/3", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_labels_are_saved_changed_and_shown_back(study):
    client = _client(study, add(study, "ann"))
    r = post_label(client, 1, "1", ["accurate", "clear"], "sharper")
    assert r.status_code == 303 and r.headers["location"] == "/item/2?saved=1"
    post_label(client, 2, "tie_poor")
    assert db_labels(study) == {
        ("ann", 1): ("1", ("accurate", "clear"), "sharper"),
        ("ann", 2): ("tie_poor", (), ""),
    }
    page = client.get("/item/1").text
    assert re.search(r'value="1" id="choice-1" required checked', page)
    assert re.search(r'id="reason-clear" data-key="c" checked', page)
    assert ">sharper</textarea>" in page
    assert "2 of 4 labelled" in page
    post_label(client, 1, "2", ["specific"])  # going back and changing it
    assert db_labels(study)[("ann", 1)] == ("2", ("specific",), "")
    with store.opened(study) as conn:
        history = conn.execute("SELECT COUNT(*) FROM label_history").fetchone()[0]
        revision = conn.execute("SELECT MAX(revision) FROM labels").fetchone()[0]
    assert (history, revision) == (3, 2)
    last = post_label(client, 4, "tie_good")
    assert last.headers["location"] == "/done?saved=4"
    assert "You have labelled 3 of 4 items." in client.get("/done").text


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"comment": "", "go": "next"}, "choice: missing"),
        ({"choice": "A"}, "choice &#39;A&#39;: expected one of"),
        ({"choice": ["1", "2"]}, "choice: given 2 times"),
        ({"choice": "1", "reason": ["accurate", "bogus"]}, "reasons: unknown &#39;bogus&#39;"),
        ({"choice": "1", "comment": "x" * 2001}, "comment: longer than 2000"),
    ],
)
def test_invalid_labels_are_refused_with_a_message(study, data, message):
    client = _client(study, add(study, "ann"))
    r = client.post("/item/2", data=data)
    assert r.status_code == 400 and message in r.text
    assert db_labels(study) == {}


def test_each_annotator_sees_and_changes_only_their_own_labels(study):
    alice = _client(study, add(study, "alice"))
    bob = _client(study, add(study, "bob"))
    post_label(alice, 1, "1", ["accurate"], "alice's note")
    page = bob.get("/item/1").text
    assert "checked" not in page and "alice" not in page and "0 of 4 labelled" in page
    post_label(bob, 1, "tie_good")  # bob's label is his own row: alice's stays
    assert db_labels(study) == {
        ("alice", 1): ("1", ("accurate",), "alice's note"),
        ("bob", 1): ("tie_good", (), ""),
    }
    assert "alice&#39;s note" in alice.get("/item/1").text


def test_untrusted_text_is_escaped_and_no_inline_script_is_allowed(study):
    client = _client(study, add(study, "ann"))
    pages = [client.get(f"/item/{n}") for n in range(1, 5)]
    html = "".join(p.text for p in pages)
    assert "window.__pwned" in html  # the text is shown...
    assert "<script>window" not in html and "<img src=x" not in html  # ...as text
    assert "&lt;script&gt;window.__pwned = &#39;rationale&#39;&lt;/script&gt;" in html
    assert "&lt;script&gt;window.__pwned = &#39;response&#39;&lt;/script&gt;" in html
    csp = pages[0].headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "Saved item" not in client.get("/item/1?saved=%3Cb%3Ecall%20us").text
    assert "Saved item 3" in client.get("/item/1?saved=3").text
    scripts = re.findall(r"<script[^>]*>", html)
    assert set(scripts) == {'<script src="/static/annotate.js" defer>'}


def test_nothing_served_names_the_models_or_the_sides(study):
    client = _client(study, add(study, "ann"))
    with store.opened(study) as conn:
        meta = store.read_meta(conn)
        keys = [k for (k,) in conn.execute("SELECT key FROM items")]
    served = []
    for n in range(1, 5):
        r = client.get(f"/item/{n}")
        served += [r.text, str(r.headers), str(r.url)]
        r = post_label(client, n, "1")
        served += [str(r.headers), r.headers["location"]]
    served += [client.get("/done").text, client.get("/static/annotate.js").text]
    served.append(client.get("/static/annotate.css").text)
    text = "\n".join(served).lower()
    forbidden = [*MODEL_WORDS, meta["label_a"], meta["label_b"], meta["path_a"], meta["path_b"]]
    forbidden += ["model", "side", "alpha", "beta", *keys]
    for word in forbidden:
        assert word.lower() not in text, word
    assert "rationale 1" in text and "rationale 2" in text


def test_request_limits_and_cross_site_posts(study):
    client = _client(study, add(study, "ann"))
    form = {"content-type": "application/x-www-form-urlencoded"}
    assert client.post("/item/1", content=b"choice=1&" * 3000, headers=form).status_code == 413
    r = client.post("/item/1", content=b'{"choice": "1"}', headers={"content-type": "text/json"})
    assert r.status_code == 415
    r = client.post("/item/1", data={"choice": "1"}, headers={"origin": "http://evil.example"})
    assert r.status_code == 403
    assert client.get("/item/0").status_code == 404 and client.get("/item/5").status_code == 404
    assert db_labels(study) == {}


def test_a_server_error_shows_no_stack_trace(study, tmp_path):
    client = TestClient(make_app(study), raise_server_exceptions=False)
    token = add(study, "ann")
    client.get(f"/t/{token}")
    with store.opened(study) as conn:  # break the database under the running app
        conn.execute("DROP TABLE labels")
    r = client.get("/item/1")
    assert r.status_code == 500
    assert "Traceback" not in r.text and "sqlite" not in r.text.lower()
    assert "Something went wrong." in r.text


def test_non_loopback_hosts_need_public():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    with pytest.raises(store.StudyError, match="--public"):
        serve("unused.db", host="0.0.0.0", port=1)


def test_two_annotators_labelling_concurrently_lose_nothing(tmp_path):
    ex, a, b = write_judge_pair(tmp_path / "in", 25)
    db = tmp_path / "s.db"
    create_study(a, b, db, examples=[ex])
    tokens = {name: add(db, name) for name in ("alice", "bob")}
    choices = ["1", "2", "tie_good", "tie_poor"]
    want = {}
    errors = []
    with LiveServer(db) as server:

        def label(name: str, offset: int) -> None:
            try:
                with closing(login(server.url, tokens[name])) as client:
                    for n in range(1, 26):
                        for attempt in range(2):  # every item twice: a label, then a change
                            choice = choices[(n + offset + attempt) % 4]
                            r = post_label(client, n, choice, ["clear"], f"{name}{n}")
                            assert r.status_code == 303, r.status_code
                            want[(name, n)] = (choice, ("clear",), f"{name}{n}")
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=label, args=(n, k)) for k, n in enumerate(tokens)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    assert db_labels(db) == want and len(want) == 50
    with store.opened(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM label_history").fetchone()[0] == 100


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_killed_server_loses_no_submitted_label(tmp_path):
    db = demo_study(tmp_path / "s.db")
    token = add(db, "ann")
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    cmd = [sys.executable, "-m", "srjudge.cli", "annotate", "serve", str(db), "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(base + "/", timeout=2).status_code == 401:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.time() < deadline, "server did not start"
            time.sleep(0.1)
        answered: list[str] = []  # choices whose request was answered, in order
        stop = threading.Event()
        cycle = ["1", "2", "tie_good", "tie_poor", "2"]

        def label_until_killed() -> None:
            with closing(login(base, token)) as client:
                while not stop.is_set():
                    choice = cycle[len(answered) % len(cycle)]
                    try:
                        r = post_label(client, 1 + len(answered) % 4, choice)
                    except httpx.TransportError:
                        return  # killed mid-request
                    assert r.status_code == 303
                    answered.append(choice)

        writer = threading.Thread(target=label_until_killed)
        writer.start()
        while len(answered) < 20:  # kill while labels are being written
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        stop.set()
        writer.join(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    with store.opened(db) as conn:
        history = [c for (c,) in conn.execute("SELECT choice FROM label_history ORDER BY id")]
    # every answered label is stored, in order; at most the one in flight was stored besides
    assert history[: len(answered)] == answered and len(history) - len(answered) in (0, 1)
    last = {1 + k % 4: c for k, c in enumerate(history)}
    assert db_labels(db) == {("ann", n): (c, (), "") for n, c in last.items()}


def test_cli_refusals(tmp_path, capsys):
    from srjudge.cli import main

    db = judge_study(tmp_path / "s.db")
    assert main(["annotate", "serve", str(db), "--host", "0.0.0.0"]) == 2
    assert "--public" in capsys.readouterr().err
    assert main(["annotate", "add-annotator", str(db), "a/b"]) == 2
    assert main(["annotate", "add-annotator", str(db), "kim"]) == 0
    url = capsys.readouterr().out.strip()
    assert re.fullmatch(r"http://127\.0\.0\.1:8080/t/[A-Za-z0-9_-]{40,}", url)
    assert main(["annotate", "add-annotator", str(db), "kim"]) == 2
    assert "--new-token" in capsys.readouterr().err
    old = url.rsplit("/", 1)[1]
    assert main(["annotate", "add-annotator", str(db), "kim", "--new-token"]) == 0
    new = capsys.readouterr().out.strip().rsplit("/", 1)[1]
    client = TestClient(make_app(db))
    assert client.get(f"/t/{old}").status_code == 403 and client.get(f"/t/{new}").status_code == 200
    not_db = tmp_path / "x.db"
    not_db.write_text("hello")
    assert main(["annotate", "report", str(not_db)]) == 2
    assert "not a srjudge study database" in capsys.readouterr().err
