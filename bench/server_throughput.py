"""The local server under 32 concurrent ECPay clients, against a bare stdlib server answering ``1|OK``.

Both servers run as processes of their own on 127.0.0.1 and get the same load from the same client
(32 keep-alive connections, one request in flight each, spread over 4 client processes of 8 threads
so that the client's own interpreter lock is not the limit): signed ReturnURL notifications.
Two loads on the local server (``ecpay-lambda serve --quiet``, SQLite store):

- duplicates: re-deliveries of paid deposits (verified, recorded, answered ``1|OK``: one commit each);
- first deliveries: one notification per deposit awaiting payment (verified, credited, recorded).

A third server is the floor for any server that keeps what it acknowledges: the bare server plus one
row committed durably in SQLite per request (``baseline_server.py --durable-commit``).

Interleaved: the servers stay up, and each load is sent in ``ROUNDS`` slices, the servers taking turns
to go first, so that what else runs on the machine slows them alike. Each ratio is a server's rate over
the bare server's rate in the same rounds. Client and servers share the machine's cores, so read the ratio,
not the absolute rate. Each row also gives the server process's CPU time per request (user + system,
read from ``/proc`` on Linux): what a request costs the server, whatever else runs on the machine.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from .common import ROOT, TEMPLATE, Table, percentile
from .wallet_ops import paid_body

CLIENTS = 32
CLIENT_PROCESSES = 4
ROUNDS = 6
_LISTENING = re.compile(r"Listening on http://127\.0\.0\.1:(\d+)")


class Served(NamedTuple):
    """A server process: its loopback port and its pid."""

    port: int
    pid: int


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) the process ``pid`` has used so far; None without Linux's ``/proc``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def process(argv: Sequence[str], workdir: Path, env: dict[str, str] | None = None) -> Iterator[Served]:
    """Run ``argv``; yield its port and pid once it prints ``Listening on``; SIGTERM it afterwards."""
    log_path = workdir / f"server-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log:
        child = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
            env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
        )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            match = _LISTENING.search(log_path.read_text(errors="replace"))
            if match:
                break
            if child.poll() is not None:
                raise RuntimeError(f"{argv[:4]} exited:\n{log_path.read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)
        else:
            raise RuntimeError(f"{argv[:4]} did not start within 180 s")
        yield Served(int(match.group(1)), child.pid)
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(timeout=20)


@dataclass
class Load:
    """One load's result."""

    name: str
    requests: int
    seconds: float
    latencies: list[float]
    errors: int
    server_cpu: float | None = None  # seconds of the server process's CPU time over the load

    @property
    def cpu_ms(self) -> float | None:
        """The server's CPU milliseconds per request."""
        if self.server_cpu is None or not self.requests:
            return None
        return self.server_cpu / self.requests * 1000

    @property
    def rate(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0


def _drive_slice(
    port: int, requests: Sequence[tuple[str, bytes]], threads: int, end: float
) -> tuple[list[float], int]:
    """One client process: ``threads`` keep-alive connections over its slice of the requests."""
    local = threading.local()
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()

    def send(item: tuple[str, bytes]) -> None:
        nonlocal errors
        if time.monotonic() > end:
            raise TimeoutError("the load did not finish in time")
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        path, body = item
        started = time.perf_counter()
        try:
            conn.request("POST", path, body, {"Content-Type": "application/x-www-form-urlencoded"})
            response = conn.getresponse()
            data = response.read()
            ok = response.status == 200 and data == b"1|OK"
        except (OSError, http.client.HTTPException):
            conn.close()
            local.conn = None
            ok = False
        elapsed = time.perf_counter() - started
        with lock:
            latencies.append(elapsed)
            errors += not ok

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(send, requests))
    return latencies, errors


def drive(server: Served, requests: Sequence[tuple[str, bytes]], name: str, deadline_s: float = 600) -> Load:
    """Send ``requests`` (path, form body) over ``CLIENTS`` connections; bounded in time."""
    import multiprocessing  # noqa: PLC0415

    end = time.monotonic() + deadline_s
    slices = [list(requests[i::CLIENT_PROCESSES]) for i in range(CLIENT_PROCESSES)]
    threads = CLIENTS // CLIENT_PROCESSES
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=CLIENT_PROCESSES, mp_context=context) as pool:
        list(pool.map(_noop, range(CLIENT_PROCESSES)))  # processes up before the clock starts
        cpu_before = cpu_seconds(server.pid)
        started = time.perf_counter()
        futures = [pool.submit(_drive_slice, server.port, part, threads, end) for part in slices if part]
        results = [f.result(timeout=deadline_s + 60) for f in futures]
        seconds = time.perf_counter() - started
        cpu_after = cpu_seconds(server.pid)
    latencies = [value for part, _ in results for value in part]
    cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return Load(name, len(requests), seconds, latencies, sum(e for _, e in results), cpu)


def _noop(_: int) -> None:
    return None


def _json(port: int, method: str, path: str, payload: Any = None, accept: str = "application/json") -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        body = None if payload is None else json.dumps(payload).encode()
        conn.request(method, path, body, {"Content-Type": "application/json", "Accept": accept})
        response = conn.getresponse()
        data = response.read()
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:200]!r}")
        return json.loads(data)
    finally:
        conn.close()


def _prepare(port: int, user_id: str, count: int) -> list[tuple[str, str]]:
    """``count`` deposits awaiting payment: (transaction id, MerchantTradeNo)."""

    def one(_: int) -> tuple[str, str]:
        created = _json(
            port, "POST", f"/users/{user_id}/transactions", {"transaction_type": "deposit", "amount": 100}
        )
        tid = created["transaction_id"]
        form = _json(port, "POST", f"/users/{user_id}/transactions/{tid}/requestPayment")
        return tid, form["fields"]["MerchantTradeNo"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, range(count)))


def _combined(name: str, parts: Sequence[Load]) -> Load:
    cpus = [p.server_cpu for p in parts]
    return Load(
        name,
        sum(p.requests for p in parts),
        sum(p.seconds for p in parts),
        [v for p in parts for v in p.latencies],
        sum(p.errors for p in parts),
        None if any(c is None for c in cpus) else sum(c or 0.0 for c in cpus),
    )


def _interleaved(
    bare_server: Served,
    durable_server: Served,
    server: Served,
    requests: Sequence[tuple[str, bytes]],
    baseline: Sequence[tuple[str, bytes]],
    name: str,
) -> tuple[Load, ...]:
    """(bare server, bare server with a durable commit, local server) on ``ROUNDS`` rotating slices."""
    floor: list[Load] = []
    durable: list[Load] = []
    ours: list[Load] = []
    size = max(1, -(-len(requests) // ROUNDS))
    for index in range(0, len(requests), size):
        chunk = requests[index : index + size]
        steps = [
            (floor, bare_server, baseline[: len(chunk)]),
            (durable, durable_server, chunk),
            (ours, server, chunk),
        ]
        turn = (index // size) % len(steps)  # each server goes first, second and last in turn
        for into, target, load in steps[turn:] + steps[:turn]:
            into.append(drive(target, load, name))
    return (
        _combined(f"bare stdlib server, same rounds as {name}", floor),
        _combined(f"bare server + one durable SQLite commit, same rounds as {name}", durable),
        _combined(name, ours),
    )


def measure(workdir: Path, duplicates: int, first: int) -> list[tuple[Load, ...]]:
    """Per load: the bare server, the bare server with a durable commit, the local server, interleaved."""
    serve = [sys.executable, "-m", "ecpay_lambda.cli", "serve", "--port", "0", "--quiet"]
    serve += ["--data-dir", str(workdir / "data"), "--template", str(TEMPLATE)]
    env = {"STORE_URL": f"sqlite:///{workdir / 'data' / 'wallet.db'}", "API_TOKEN": ""}
    baseline_argv = [sys.executable, str(ROOT / "bench" / "baseline_server.py")]
    durable_argv = [*baseline_argv, "--durable-commit", str(workdir / "floor.db")]
    with (
        process(serve, workdir, env) as server,
        process(baseline_argv, workdir) as bare_server,
        process(durable_argv, workdir) as durable_server,
    ):
        port = server.port
        user = _json(port, "POST", "/users", {"username": f"bench{os.getpid()}", "email": "b@example.com"})
        user_id = user["user_id"]
        fresh = _prepare(port, user_id, first + 10)
        paid_pool = fresh[first:]
        for tid, mtn in paid_pool:  # these become the paid deposits whose notifications are re-sent
            drive(server, [(f"/users/{user_id}/transactions/{tid}/return", paid_body(mtn, 100))], "pay")
        resend = [
            (f"/users/{user_id}/transactions/{tid}/return", paid_body(mtn, 100, rtn_msg="paid"))
            for tid, mtn in paid_pool
        ]
        dup_requests = [resend[i % len(resend)] for i in range(duplicates)]
        first_requests = [
            (f"/users/{user_id}/transactions/{tid}/return", paid_body(mtn, 100)) for tid, mtn in fresh[:first]
        ]
        drive(bare_server, dup_requests[: min(200, duplicates)], "warm-up")
        drive(durable_server, dup_requests[: min(200, duplicates)], "warm-up")
        drive(server, dup_requests[: min(100, duplicates)], "warm-up")
        return [
            _interleaved(
                bare_server,
                durable_server,
                server,
                dup_requests,
                dup_requests,
                "local server: duplicate notifications",
            ),
            _interleaved(
                bare_server,
                durable_server,
                server,
                first_requests,
                dup_requests,
                "local server: first deliveries (credit)",
            ),
        ]


def table(groups: list[tuple[Load, ...]]) -> Table:
    """Rate, latency and the ratio to the bare server measured in the same rounds."""
    rows = []
    for bare, *others in groups:
        for row, ratio in ((bare, 1.0), *((load, load.rate / (bare.rate or 1.0)) for load in others)):
            rows.append(
                [
                    row.name,
                    row.requests,
                    row.rate,
                    percentile(row.latencies, 50) * 1000,
                    percentile(row.latencies, 99) * 1000,
                    ratio,
                    float("nan") if row.cpu_ms is None else row.cpu_ms,
                    row.errors,
                ]
            )
    return Table(
        f"Local server, {CLIENTS} concurrent clients (keep-alive), interleaved ({ROUNDS} rounds)",
        ["load", "requests", "req/s", "p50 ms", "p99 ms", "ratio to bare", "server CPU ms/req", "errors"],
        rows,
        note=(
            "server CPU ms/req = the server process's CPU time (user + system) per request, from /proc. "
            "bare server + one durable SQLite commit = the floor for any server that keeps what it "
            "acknowledges (one row, WAL, synchronous=FULL, one request at a time, as local mode runs events)."
        ),
    )
