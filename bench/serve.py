"""Load test of ``srjudge serve``: one request at a time vs 16 concurrent clients, then faults.

Starts ``srjudge serve`` (API key on, loopback) on the default CPU model and sends the same
grading items (a) one request at a time and (b) from ``--clients`` concurrent clients, one item
per request. Reports items/s, p50/p95/p99 latency, the batch sizes the server formed (from its
``/metrics``), errors, whether (a) and (b) gave the same verdicts, and
``concurrent_speedup`` = items/s of (b) / items/s of (a). (a) and (b) each run on a freshly
started server, so that (b) does not find (a)'s prompts in the engine's prefix cache; each
starts with one untimed warm-up request. Then, on (b)'s server, a fault run: clients that
disconnect mid-request, malformed JSON, oversized bodies, wrong JSON keys and wrong API keys,
and a burst of ``--burst`` requests at once, while ``/health`` is polled; the server must keep
answering. Writes ``bench/results/<output>.{md,json}``.

    python bench/serve.py                                  # smollm2-135m, 64 items, 16 clients
    python bench/serve.py --model tiny-random --items 8 --clients 4 --max-new-tokens 8 \
        --burst 20 --output serve_smoke                    # smoke run, seconds
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"


def load_items(k: int) -> list[dict]:
    """``k`` bundled MT-Bench pointwise examples spread over the file, as request items."""
    from srjudge.data import load_bundled
    from srjudge.records import to_dict

    examples = load_bundled("mt-bench").examples
    step = max(1, len(examples) // k)
    return [to_dict(e) for e in examples[::step][:k]]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args: argparse.Namespace, key_file: Path, log_path: Path):
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "srjudge.cli",
        "serve",
        "--model",
        args.model,
        "--port",
        str(port),
        "--api-key-file",
        str(key_file),
        "--max-batch",
        str(args.max_batch),
        "--max-wait-ms",
        str(args.max_wait_ms),
        "--max-body-bytes",
        str(args.max_body_bytes),
        "--log-level",
        "warning",
    ]
    log = open(log_path, "w")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return proc, url, cmd
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError("server did not start in 600 s")


def redacted(cmd: list[str]) -> list[str]:
    """The server command with its port and key file path replaced by placeholders."""
    out = ["python", *cmd[1:]]
    for flag, placeholder in (("--port", "PORT"), ("--api-key-file", "KEY_FILE")):
        out[out.index(flag) + 1] = placeholder
    return out


def batch_stats(url: str, headers: dict) -> dict:
    """Cumulative ``srjudge_batch_items`` / ``srjudge_batch_requests`` histograms."""
    text = httpx.get(url + "/metrics", headers=headers, timeout=30).text
    out: dict = {"buckets": {}}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "srjudge_batch_items_bucket":
                out["buckets"][s.labels["le"]] = s.value
            elif s.name in ("srjudge_batch_items_count", "srjudge_batch_items_sum"):
                out[s.name.rsplit("_", 1)[1]] = s.value
            elif s.name == "srjudge_batch_requests_sum":
                out["requests"] = s.value
    return out


def batch_delta(before: dict, after: dict) -> dict:
    """Backend calls between two snapshots: how many, mean items and requests per call, and
    how many calls fell in each size bucket (``"<=16": 3`` ...)."""
    calls = after["count"] - before["count"]
    cumulative = {
        le: after["buckets"][le] - before["buckets"].get(le, 0) for le in after["buckets"]
    }
    per_bucket, previous = {}, 0.0
    for le, value in cumulative.items():  # in increasing le order
        if value - previous:
            per_bucket[f"<={le.removesuffix('.0')}"] = int(value - previous)
        previous = value
    return {
        "backend_calls": int(calls),
        "mean_items_per_call": (after["sum"] - before["sum"]) / calls if calls else None,
        "mean_requests_per_call": (after["requests"] - before["requests"]) / calls
        if calls
        else None,
        "calls_by_size": per_bucket,
    }


def grade_once(client: httpx.Client, item: dict, max_new_tokens: int) -> dict:
    t0 = time.monotonic()
    try:
        r = client.post("/v1/grade", json={"items": [item], "max_new_tokens": max_new_tokens})
        ok = r.status_code == 200
        result = r.json()["results"][0] if ok else None
        status = r.status_code
    except httpx.HTTPError as e:
        ok, result, status = False, None, type(e).__name__
    return {
        "id": item["id"],
        "seconds": time.monotonic() - t0,
        "ok": ok,
        "status": status,
        "verdict": result and result["verdict"],
        "raw": result and result["raw"],
    }


def summarize(rows: list[dict], wall: float) -> dict:
    latencies = np.array([r["seconds"] for r in rows])
    return {
        "requests": len(rows),
        "errors": sum(not r["ok"] for r in rows),
        "wall_s": round(wall, 2),
        "items_per_s": len(rows) / wall,
        "latency_s": {f"p{q}": round(float(np.percentile(latencies, q)), 3) for q in (50, 95, 99)}
        | {"mean": round(float(latencies.mean()), 3), "max": round(float(latencies.max()), 3)},
        "parsed_verdicts": sum(r["verdict"] is not None for r in rows),
    }


def sequential(url, headers, items, args) -> tuple[dict, list[dict]]:
    with httpx.Client(base_url=url, headers=headers, timeout=3600) as client:
        t0 = time.monotonic()
        rows = [grade_once(client, item, args.max_new_tokens) for item in items]
        return summarize(rows, time.monotonic() - t0), rows


def concurrent(url, headers, items, args) -> tuple[dict, list[dict]]:
    """``args.clients`` threads, each with its own connection, taking items from one queue."""
    todo = list(enumerate(items))
    lock = threading.Lock()
    rows: list[dict | None] = [None] * len(items)

    def client_loop() -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=3600) as client:
            while True:
                with lock:
                    if not todo:
                        return
                    index, item = todo.pop(0)
                rows[index] = grade_once(client, item, args.max_new_tokens)

    t0 = time.monotonic()
    with ThreadPoolExecutor(args.clients) as pool:
        for f in [pool.submit(client_loop) for _ in range(args.clients)]:
            f.result()
    done = [r for r in rows if r is not None]
    return summarize(done, time.monotonic() - t0), done


# ------------------------------------------------------------------------------------------
# fault run


class HealthPoller:
    """Polls /health every 0.5 s in a thread: count, failures, slowest answer."""

    def __init__(self, url: str):
        self.url = url
        self.checks = self.failures = 0
        self.slowest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                t0 = time.monotonic()
                try:
                    ok = client.get(self.url + "/health").json()["status"] == "ok"
                except (httpx.HTTPError, ValueError, KeyError):
                    ok = False
                self.checks += 1
                self.failures += not ok
                self.slowest = max(self.slowest, time.monotonic() - t0)
                self._stop.wait(0.5)

    def __enter__(self) -> HealthPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


async def _send(client: httpx.AsyncClient, method: str, path: str, **kw) -> str:
    try:
        r = await client.request(method, path, **kw)
        return str(r.status_code)
    except httpx.TimeoutException:
        return "client_timeout"
    except httpx.HTTPError as e:
        return type(e).__name__


async def _faults(url: str, headers: dict, items: list[dict], args) -> tuple[dict, float]:
    """Answers (status or client-side error) by kind of request, and the burst's wall time."""
    body = {"items": [items[0]], "max_new_tokens": args.burst_max_new_tokens}
    big = {"items": [{**items[0], "response": "x" * (args.max_body_bytes + 1)}]}
    cases = {  # kind -> (request kwargs, count, client timeout)
        "disconnect_mid_request": (dict(json=body), 8, 0.5),
        "malformed_json": (
            dict(content=b'{"items": [', headers={"content-type": "application/json"}),
            20,
            30,
        ),
        "oversized_body": (dict(json=big), 5, 30),
        "wrong_json_keys": (dict(json={"itemz": [items[0]], "sample": 2}), 20, 30),
        "wrong_api_key": (dict(json=body, headers={"Authorization": "Bearer wrong-key"}), 20, 30),
    }
    out = {}
    async with httpx.AsyncClient(base_url=url, headers=headers) as client:
        tasks = {
            kind: [_send(client, "POST", "/v1/grade", timeout=timeout, **kw) for _ in range(count)]
            for kind, (kw, count, timeout) in cases.items()
        }
        for kind, coros in tasks.items():
            out[kind] = _counts(await asyncio.gather(*coros))
    limits = httpx.Limits(max_connections=args.burst, max_keepalive_connections=args.burst)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits) as client:
        t0 = time.monotonic()
        burst = [
            _send(
                client,
                "POST",
                "/v1/grade",
                timeout=3600,
                json={
                    "items": [items[i % len(items)]],
                    "max_new_tokens": args.burst_max_new_tokens,
                },
            )
            for i in range(args.burst)
        ]
        out["burst"] = _counts(await asyncio.gather(*burst))
    return out, round(time.monotonic() - t0, 2)


def _counts(statuses: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for s in statuses:
        counts[s] = counts.get(s, 0) + 1
    return counts


EXPECTED = {
    "disconnect_mid_request": {"client_timeout"},
    "malformed_json": {"422"},
    "oversized_body": {"413"},
    "wrong_json_keys": {"422"},
    "wrong_api_key": {"401"},
    "burst": {"200"},
}


def fault_run(url: str, headers: dict, items: list[dict], args) -> dict:
    with HealthPoller(url) as health:
        statuses, burst_wall = asyncio.run(_faults(url, headers, items, args))
    after = httpx.get(url + "/health", timeout=10).json()
    with httpx.Client(base_url=url, headers=headers, timeout=3600) as client:
        final = grade_once(client, items[0], args.burst_max_new_tokens)
    unexpected = {
        kind: {s: n for s, n in statuses[kind].items() if s not in allowed}
        for kind, allowed in EXPECTED.items()
    }
    return {
        "statuses": statuses,
        "burst_wall_s": burst_wall,
        "expected": {k: sorted(v) for k, v in EXPECTED.items()},
        "unexpected": {k: v for k, v in unexpected.items() if v},
        "health_checks": health.checks,
        "health_failures": health.failures,
        "slowest_health_s": round(health.slowest, 3),
        "health_after": after["status"],
        "grade_after_ok": final["ok"],
    }


# ------------------------------------------------------------------------------------------
# report


TABLE_HEADER = (
    "| run | requests (1 item each) | errors | wall s | items/s | p50 s | p95 s | p99 s "
    "| backend calls | items per call | calls by batch size |\n" + "|---" * 11 + "|"
)


def write_results(report: dict, output: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{output}.json").write_text(json.dumps(report, indent=2) + "\n")
    a, b = report["sequential"], report["concurrent"]
    rows = []
    for name, r in (
        ("(a) one request at a time", a),
        (f"(b) {report['args']['clients']} concurrent clients", b),
    ):
        lat, bt = r["latency_s"], r["batches"]
        rows.append(
            f"| {name} | {r['requests']} | {r['errors']} | {r['wall_s']} | {r['items_per_s']:.3f} "
            f"| {lat['p50']} | {lat['p95']} | {lat['p99']} | {bt['backend_calls']} "
            f"| {bt['mean_items_per_call']:.2f} | {bt['calls_by_size']} |"
        )
    f = report["faults"]
    paragraphs = [
        "# srjudge serve: load test",
        f"`{report['command']}`",
        f"Date {report['date']}; {report['conditions']}. "
        f"Server: `{' '.join(report['server_command'])}` (API key file, loopback). "
        f"Machine: {report['machine']}.",
        f"**concurrent_speedup = {report['concurrent_speedup']:.2f}** "
        f"(items/s of (b) / items/s of (a)); errors: {a['errors'] + b['errors']}. "
        f"Same verdict in (a) and (b): {report['same_verdict']} of {a['requests']} items "
        f"(same text: {report['same_raw']}). "
        f"Parsed verdicts: (a) {a['parsed_verdicts']}, (b) {b['parsed_verdicts']}.",
        TABLE_HEADER + "\n" + "\n".join(rows),
        "## Fault run",
        f"While `/health` was polled every 0.5 s ({f['health_checks']} checks, "
        f"{f['health_failures']} failed, slowest {f['slowest_health_s']} s), answers by kind "
        f"of request (expected: {f['expected']}); the burst took {f['burst_wall_s']} s:",
        "```\n" + json.dumps(f["statuses"], indent=1) + "\n```",
        f"Unexpected answers: {f['unexpected'] or 'none'}. After the fault run `/health` said "
        f"`{f['health_after']}` and a grading request succeeded: {f['grade_after_ok']}.",
    ]
    md = "\n\n".join(paragraphs) + "\n"
    (RESULTS / f"{output}.md").write_text(md)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--items", type=int, default=64)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--max-wait-ms", type=float, default=20)
    p.add_argument("--max-body-bytes", type=int, default=2_000_000)
    p.add_argument("--burst", type=int, default=200)
    p.add_argument("--burst-max-new-tokens", type=int, default=16)
    p.add_argument("--output", default="serve")
    p.add_argument("--note", default="")
    args = p.parse_args()
    items = load_items(args.items)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    conditions = f"load average at start {os.getloadavg()}"
    with tempfile.TemporaryDirectory() as tmp:
        key_file = Path(tmp) / "key"
        key = secrets.token_urlsafe(24)
        key_file.write_text(key)
        key_file.chmod(0o600)
        headers = {"Authorization": f"Bearer {key}"}

        def phase(name: str, run):
            """A fresh server for each phase: the engine's prefix cache must not carry the
            items' prompts from (a) into (b)."""
            proc, url, cmd = start_server(args, key_file, Path(tmp) / f"server-{name}.log")
            try:
                with httpx.Client(base_url=url, headers=headers, timeout=3600) as c:
                    grade_once(c, items[0], args.max_new_tokens)  # warm-up, not timed
                before = batch_stats(url, headers)
                result = run(url)
                return result, batch_delta(before, batch_stats(url, headers)), url, cmd, proc
            except BaseException:
                proc.terminate()
                proc.wait(timeout=60)
                raise

        (seq, seq_rows), seq_batches, _, server_cmd, proc = phase(
            "a", lambda url: sequential(url, headers, items, args)
        )
        proc.terminate()
        proc.wait(timeout=60)
        (con, con_rows), con_batches, url, _, proc = phase(
            "b", lambda url: concurrent(url, headers, items, args)
        )
        seq["batches"], con["batches"] = seq_batches, con_batches
        try:
            print(
                f"sequential {seq['items_per_s']:.3f}/s, concurrent {con['items_per_s']:.3f}/s",
                file=sys.stderr,
                flush=True,
            )
            faults = fault_run(url, headers, items, args)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    by_id = {r["id"]: r for r in con_rows}
    report = {
        "command": "python bench/serve.py " + " ".join(sys.argv[1:]),
        "date": started,
        "conditions": conditions
        + f"; at end {os.getloadavg()}"
        + (f"; {args.note}" if args.note else ""),
        "machine": f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}",
        "server_command": redacted(server_cmd),
        "args": vars(args),
        "sequential": seq,
        "concurrent": con,
        "concurrent_speedup": con["items_per_s"] / seq["items_per_s"],
        "same_verdict": sum(r["verdict"] == by_id[r["id"]]["verdict"] for r in seq_rows),
        "same_raw": sum(r["raw"] == by_id[r["id"]]["raw"] for r in seq_rows),
        "faults": faults,
    }
    write_results(report, args.output)
    print(json.dumps({k: report[k] for k in ("concurrent_speedup", "same_verdict")}))
    ok = not faults["unexpected"] and faults["grade_after_ok"] and faults["health_failures"] == 0
    return 0 if ok and seq["errors"] + con["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
