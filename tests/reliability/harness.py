"""The reliability suite's tools: the local server as a process, an HTTP client, signed notifications.

Everything here talks to 127.0.0.1 only, and every wait is bounded by a deadline.

- :class:`ServerProcess` runs ``ecpay-lambda serve`` (or ``ecpay-lambda sandbox``) as a child process
  that can be killed with SIGKILL and restarted on the same port, with its output in a log file.
- :class:`Api` is a small keep-alive HTTP client; every answer it receives passes through a
  :class:`SecretScanner` (no HashKey, HashIV or API token may ever come back).
- :func:`paid_notification` builds a ReturnURL body signed as ECPay signs it.
- :func:`run_command` runs an ``ecpay-lambda`` command (``reconcile``, ``audit``) as a child process.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import secrets
import signal
import string
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from ecpay_lambda.ecpay.checkmac import check_mac_value
from ecpay_lambda.ecpay.credentials import MerchantCredentials
from ecpay_lambda.ecpay.timezone import TAIPEI

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
STAGE = MerchantCredentials.stage_test_merchant()
OK = b"1|OK"
_LISTENING = re.compile(r"Listening on (http://127\.0\.0\.1:\d+)")


def soak() -> bool:
    """True under ``make soak`` (SOAK=1): the full sizes of the issue."""
    return os.environ.get("SOAK", "") == "1"


def size(reduced: int, full: int) -> int:
    """``full`` under SOAK=1, else ``reduced`` (what ``make test`` runs on a 2-core CI machine)."""
    return full if soak() else reduced


def in_ci() -> bool:
    """True when CI=true: a missing prerequisite is a failure there, not a skip."""
    return os.environ.get("CI", "").lower() == "true"


def random_secret(length: int = 16) -> str:
    """Letters and digits, like ECPay's HashKey/HashIV."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


# --- secrets ---------------------------------------------------------------------------------


@dataclass
class SecretScanner:
    """Remembers every place a secret value was seen (case-insensitively: a lower-cased MAC input counts)."""

    secrets: dict[str, str] = field(default_factory=dict)  # label -> value
    findings: list[str] = field(default_factory=list)
    scanned: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, label: str, value: str) -> None:
        """Watch for ``value`` from now on."""
        if len(value) < 8:
            raise ValueError("too short to scan for without false alarms")
        with self.lock:
            self.secrets[label] = value

    def check(self, where: str, data: bytes | str) -> None:
        """Record every watched secret that occurs in ``data``."""
        text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
        lowered = text.lower()
        with self.lock:
            self.scanned += 1
            for label, value in self.secrets.items():
                if value.lower() in lowered:
                    at = lowered.index(value.lower())
                    context = text[max(0, at - 60) : at + len(value) + 20]
                    masked = re.sub(re.escape(value), f"<{label}>", context, flags=re.IGNORECASE)
                    self.findings.append(f"{label} in {where}: ...{masked!r}...")

    def assert_clean(self) -> None:
        """Fail with every finding."""
        assert not self.findings, "secrets leaked:\n" + "\n".join(self.findings[:20])


# --- HTTP ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """One HTTP answer."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        """The body as UTF-8 text."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)

    def error_code(self) -> str | None:
        """``error.code`` of a JSON error document, if it is one."""
        try:
            data = self.json()
        except ValueError:
            return None
        error = data.get("error") if isinstance(data, dict) else None
        return str(error.get("code")) if isinstance(error, dict) else None


class Api:
    """A keep-alive HTTP/1.1 client for one base URL; one connection per thread."""

    def __init__(
        self, base_url: str, *, token: str | None = None, scanner: SecretScanner | None = None
    ) -> None:
        parts = urlsplit(base_url)
        if parts.hostname != "127.0.0.1":
            raise ValueError("the reliability suite only talks to 127.0.0.1")
        self.base_url = base_url.rstrip("/")
        self.host = parts.hostname
        self.port = int(parts.port or 80)
        self.token = token
        self.scanner = scanner
        self.timeout = 60.0
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self._local.conn = conn
        return conn

    def connect(self) -> None:
        """Open this thread's connection now (it is otherwise opened by the first request)."""
        self._connection().connect()

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        auth: bool = True,
    ) -> Reply:
        """Send one request (reconnecting once if a kept-alive connection went stale)."""
        all_headers = dict(headers or {})
        if auth and self.token and "Authorization" not in all_headers:
            all_headers["Authorization"] = f"Bearer {self.token}"
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(method, path, body=body, headers=all_headers)
                response = conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt == 2 or method not in ("GET", "HEAD"):
                    raise
                continue
            reply = Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
            if response.getheader("Connection", "").lower() == "close":
                self.close()
            if self.scanner is not None:
                self.scanner.check(f"response to {method} {path}", "\n".join(reply.headers.values()))
                self.scanner.check(f"response to {method} {path}", data)
            return reply
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, payload: object | None = None, **headers: str) -> Reply:
        """A JSON request."""
        body = None if payload is None else json.dumps(payload).encode()
        return self.request(method, path, body, {"Content-Type": "application/json", **headers})

    def form(self, path: str, fields: Mapping[str, str] | bytes, content_type: str | None = None) -> Reply:
        """POST a form (already-encoded bytes are sent as they are)."""
        body = fields if isinstance(fields, bytes) else urlencode(fields).encode("utf-8")
        ctype = content_type or "application/x-www-form-urlencoded"
        return self.request("POST", path, body, {"Content-Type": ctype}, auth=False)

    # --- the wallet's API ---------------------------------------------------------------------

    def create_user(self, name: str | None = None) -> str:
        """A new user's id."""
        username = name or f"u{secrets.token_hex(6)}"
        reply = self.json("POST", "/users", {"username": username, "email": f"{username}@example.com"})
        assert reply.status == 201, reply.text
        return str(reply.json()["user_id"])

    def user(self, user_id: str) -> dict[str, Any]:
        """GET /users/{id}."""
        reply = self.request("GET", f"/users/{user_id}")
        assert reply.status == 200, reply.text
        return dict(reply.json())

    def create_transaction(
        self, user_id: str, kind: str, amount: int, *, headers: Mapping[str, str] | None = None, **extra: Any
    ) -> Reply:
        """POST /users/{id}/transactions."""
        payload = {"transaction_type": kind, "amount": amount, **extra}
        return self.json("POST", f"/users/{user_id}/transactions", payload, **dict(headers or {}))

    def create_deposit(self, user_id: str, amount: int, method: str | None = None) -> str:
        """A new pending deposit's id."""
        if method:
            reply = self.create_transaction(user_id, "deposit", amount, payment_method=method)
        else:
            reply = self.create_transaction(user_id, "deposit", amount)
        assert reply.status == 201, reply.text
        return str(reply.json()["transaction_id"])

    def checkout(self, user_id: str, transaction_id: str, method: str | None = None) -> dict[str, str]:
        """requestPayment as JSON: the signed AioCheckOut fields (MerchantTradeNo among them)."""
        path = f"/users/{user_id}/transactions/{transaction_id}/requestPayment"
        if method:
            path += f"?payment_method={quote(method)}"
        reply = self.request("POST", path, b"", {"Accept": "application/json"})
        assert reply.status == 200, reply.text
        data = reply.json()
        return {str(k): str(v) for k, v in data["fields"].items()}

    def transaction(self, user_id: str, transaction_id: str) -> dict[str, Any]:
        """GET one transaction with its ledger entries and notification records."""
        reply = self.request("GET", f"/users/{user_id}/transactions/{transaction_id}")
        assert reply.status == 200, reply.text
        return dict(reply.json())

    def create_plan(self, user_id: str, amount: int, exec_times: int = 12) -> str:
        """A new pending recurring (monthly, card) deposit's id."""
        plan = {"period_type": "M", "frequency": 1, "exec_times": exec_times}
        reply = self.create_transaction(user_id, "deposit", amount, payment_method="Credit", recurring=plan)
        assert reply.status == 201, reply.text
        return str(reply.json()["transaction_id"])

    def notify_period(self, user_id: str, transaction_id: str, fields: Mapping[str, str] | bytes) -> Reply:
        """POST a PeriodReturnURL body to the callback route, as ECPay's servers do."""
        return self.form(f"/users/{user_id}/transactions/{transaction_id}/periodReturn", fields)

    def notify(self, user_id: str, transaction_id: str, fields: Mapping[str, str] | bytes) -> Reply:
        """POST a ReturnURL body to the callback route, as ECPay's servers do."""
        return self.form(f"/users/{user_id}/transactions/{transaction_id}/return", fields)


def run_parallel(jobs: Sequence[Callable[[], Any]], *, workers: int, deadline_s: float) -> list[Any]:
    """Run ``jobs`` on ``workers`` threads; results in order. Bounded: raises past ``deadline_s``."""
    results: list[Any] = [None] * len(jobs)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(job) for job in jobs]
        end = time.monotonic() + deadline_s
        for index, future in enumerate(futures):
            remaining = end - time.monotonic()
            if remaining <= 0:
                for other in futures:
                    other.cancel()
                raise TimeoutError(f"{len(jobs)} requests did not finish within {deadline_s:.0f} s")
            results[index] = future.result(timeout=remaining)
    return results


# --- ECPay notifications -----------------------------------------------------------------------


def ecpay_time(moment: datetime | None = None) -> str:
    """``yyyy/MM/dd HH:mm:ss`` in Taiwan time, as ECPay writes it."""
    return (moment or datetime.now(UTC)).astimezone(TAIPEI).strftime("%Y/%m/%d %H:%M:%S")


def paid_fields(
    merchant_trade_no: str,
    amount: int,
    *,
    trade_no: str | None = None,
    rtn_msg: str = "交易成功",
    merchant_id: str = STAGE.merchant_id,
    payment_type: str = "Credit_CreditCard",
) -> dict[str, str]:
    """The unsigned fields of a ReturnURL "paid" notification (the set ECPay's stage sends)."""
    now = ecpay_time()
    return {
        "CustomField1": "",
        "CustomField2": "",
        "CustomField3": "",
        "CustomField4": "",
        "MerchantID": merchant_id,
        "MerchantTradeNo": merchant_trade_no,
        "PaymentDate": now,
        "PaymentType": payment_type,
        "PaymentTypeChargeFee": "0",
        "RtnCode": "1",
        "RtnMsg": rtn_msg,
        "SimulatePaid": "0",
        "StoreID": "",
        "TradeAmt": str(amount),
        "TradeDate": now,
        "TradeNo": trade_no or ("2" + "".join(random.choices(string.digits, k=19))),
    }


def sign(
    fields: Mapping[str, str], credentials: MerchantCredentials = STAGE, encrypt_type: int = 1
) -> dict[str, str]:
    """``fields`` with their CheckMacValue."""
    signed = {k: v for k, v in fields.items() if k != "CheckMacValue"}
    signed["CheckMacValue"] = check_mac_value(signed, credentials.hash_key, credentials.hash_iv, encrypt_type)
    return signed


def period_fields(
    merchant_trade_no: str,
    amount: int,
    successes: int,
    *,
    rtn_code: str = "1",
    rtn_msg: str = "交易成功",
    merchant_id: str = STAGE.merchant_id,
) -> dict[str, str]:
    """The unsigned fields of a PeriodReturnURL notification (§5.5): charge ``successes`` of a plan."""
    return {
        "MerchantID": merchant_id,
        "MerchantTradeNo": merchant_trade_no,
        "StoreID": "",
        "RtnCode": rtn_code,
        "RtnMsg": rtn_msg,
        "PeriodType": "M",
        "Frequency": "1",
        "ExecTimes": "12",
        "Amount": str(amount),
        "Gwsr": str(10_000_000 + successes) if rtn_code == "1" else "",
        "ProcessDate": ecpay_time(),
        "AuthCode": "777777" if rtn_code == "1" else "",
        "FirstAuthAmount": str(amount),
        "TotalSuccessTimes": str(successes),
        "CustomField1": "",
        "CustomField2": "",
        "CustomField3": "",
        "CustomField4": "",
    }


def period_notification(merchant_trade_no: str, amount: int, successes: int, **kwargs: Any) -> dict[str, str]:
    """A signed PeriodReturnURL notification."""
    return sign(period_fields(merchant_trade_no, amount, successes, **kwargs))


def paid_notification(merchant_trade_no: str, amount: int, **kwargs: Any) -> dict[str, str]:
    """A signed ReturnURL "paid" notification."""
    credentials = kwargs.pop("credentials", STAGE)
    return sign(paid_fields(merchant_trade_no, amount, **kwargs), credentials)


# --- processes -----------------------------------------------------------------------------------


class ServerProcess:
    """``ecpay-lambda serve`` (or ``sandbox``) as a child process that can be SIGKILLed and restarted.

    The port is chosen by the first start (``--port 0``) and kept on restarts: the ECPay callback
    URLs handed out at checkout contain it.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        command: str = "serve",
        env: Mapping[str, str] | None = None,
        retry_delays: str = "0.2,0.4,0.8,1.6",
        quiet: bool = False,
        scanner: SecretScanner | None = None,
        startup_timeout: float = 180.0,
    ) -> None:
        self.workdir = workdir
        self.command = command
        self.env = dict(env or {})
        self.retry_delays = retry_delays
        self.quiet = quiet
        self.scanner = scanner
        self.startup_timeout = startup_timeout
        self.log_path = workdir / f"{command}.log"
        self.port = 0
        self.base_url = ""
        self.starts = 0
        self.kills = 0
        self._process: subprocess.Popen[bytes] | None = None

    def _argv(self) -> list[str]:
        argv = [sys.executable, "-m", "ecpay_lambda.cli", self.command, "--port", str(self.port)]
        argv += ["--retry-delays", self.retry_delays, "--data-dir", str(self.workdir / "data")]
        if self.command == "serve":
            argv += ["--template", str(TEMPLATE)]
        if self.quiet:
            argv.append("--quiet")
        return argv

    def start(self) -> str:
        """Start and wait (bounded) until it listens; returns the base URL."""
        if self._process is not None and self._process.poll() is None:
            raise RuntimeError("already running")
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        env.pop("PORT", None)
        self.workdir.mkdir(parents=True, exist_ok=True)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self._argv(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.workdir,
                start_new_session=True,
            )
        self.starts += 1
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            text = self._log_from(offset)
            match = _LISTENING.search(text)
            if match:
                self.base_url = match.group(1)
                self.port = int(self.base_url.rsplit(":", 1)[1])
                return self.base_url
            if self._process.poll() is not None:
                break
            time.sleep(0.05)
        tail = self._log_from(offset)[-3000:]
        self.stop()
        raise RuntimeError(f"ecpay-lambda {self.command} did not start; its output:\n{tail}")

    def _log_from(self, offset: int) -> str:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode("utf-8", errors="replace")

    @property
    def pid(self) -> int | None:
        """The running process's id."""
        return self._process.pid if self._process is not None else None

    def running(self) -> bool:
        """True while the process lives."""
        return self._process is not None and self._process.poll() is None

    def kill9(self) -> None:
        """SIGKILL, as a crash: no shutdown code runs."""
        process = self._process
        if process is None:
            return
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        self.kills += 1
        self._process = None

    def restart(self) -> str:
        """Start again on the same port."""
        return self.start()

    def stop(self) -> None:
        """SIGTERM (a clean stop), then SIGKILL if it does not go within 15 s."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)

    def log_text(self) -> str:
        """Everything the process (every start of it) wrote."""
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def scan_log(self) -> None:
        """Pass every log line through the scanner."""
        if self.scanner is not None:
            for number, line in enumerate(self.log_text().splitlines(), 1):
                self.scanner.check(f"{self.command} log line {number}", line)

    def api(self, token: str | None = None) -> Api:
        """A client for this server."""
        return Api(self.base_url, token=token, scanner=self.scanner)


@dataclass(frozen=True)
class CommandResult:
    """One finished ``ecpay-lambda`` command: exit status, output and how long it took."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def json(self) -> Any:
        """The command's ``--json`` report."""
        return json.loads(self.stdout)


def run_command(
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    timeout: float = 300.0,
    scanner: SecretScanner | None = None,
) -> CommandResult:
    """Run ``ecpay-lambda ARGS`` as a child process with ``env`` added to this one's (bounded by ``timeout``).

    Its output passes through ``scanner``: a command's report must not show a secret either.
    """
    variables = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "ecpay_lambda.cli", *args],
        env=variables,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=REPO,
    )
    result = CommandResult(done.returncode, done.stdout, done.stderr, time.monotonic() - started)
    if scanner is not None:
        scanner.check(f"ecpay-lambda {args[0]} stdout", result.stdout)
        scanner.check(f"ecpay-lambda {args[0]} stderr", result.stderr)
    return result


def wait_until(predicate: Callable[[], bool], *, timeout: float, interval: float = 0.1) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass; returns the last result."""
    end = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(interval)
