"""pytest plugin: the whole local stack (API + ECPay sandbox + dashboard) on a free loopback port.

``local_stack`` (session-scoped) runs ``ecpay-lambda serve --port 0`` in a subprocess with a fresh
SQLite store in a temporary folder and callback retries 50/100/200/400 ms apart, and yields its
base URL. The value is a ``str`` (``http://127.0.0.1:PORT``) that also carries ``.base_url``,
``.store_url``, ``.env`` (the variables a CLI command needs to act on this stack, e.g.
``ecpay-lambda reconcile``), ``.sandbox`` (a SandboxClient) and ``.log_path`` (the server's stderr).
A subprocess keeps the handlers' once-per-process settings out of the test process.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ecpay_lambda.local.sandbox.client import SandboxClient
from tests.support.clock import daytime_offset

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0  # seconds; a bound on a loaded CI machine, not a measurement
RETRY_DELAYS = "0.05,0.1,0.2,0.4"
# Variables from the developer's shell that would point the stack somewhere else.
_SCRUBBED = (
    "STORE_URL",
    "ECPAY_ENV",
    "ECPAY_BASE_URL",
    "ECPAY_MERCHANT_ID",
    "ECPAY_HASH_KEY",
    "ECPAY_HASH_IV",
    "ECPAY_SECRET_ARN",
    "ECPAY_CREDENTIALS",
    "ECPAY_CROSS_CHECK",
    "API_TOKEN",
    "API_TOKEN_SECRET_ARN",
    "AUTH_MODE",
    "AWS_LAMBDA_FUNCTION_NAME",
    "PORT",
    "FRONTEND_URL",
    "PUBLIC_BASE_URL",
    "CORS_ORIGINS",
    "INVOICING",
    "INVOICE_BASE_URL",
    "INVOICE_MERCHANT_ID",
    "INVOICE_HASH_KEY",
    "INVOICE_HASH_IV",
    "INVOICE_SECRET_ARN",
    "INVOICE_WORKER_SECONDS",
)


class LocalStack(str):
    """The stack's base URL, with the details tests need."""

    base_url: str
    store_url: str
    env: dict[str, str]
    sandbox: SandboxClient
    log_path: Path
    process: subprocess.Popen[str]
    clock_offset: float  # seconds the stack's clock (sandbox and wallet) is ahead of real time

    def clock(self) -> datetime:
        """Now, by the stack's clock: give it to an in-process WalletService acting on this store."""
        return datetime.now(UTC) + timedelta(seconds=self.clock_offset)

    def log(self) -> str:
        """What the server wrote to stderr so far (for failure messages)."""
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""


def start_local_stack(data_dir: Path, extra_env: Mapping[str, str] | None = None) -> LocalStack:
    """Start ``ecpay-lambda serve`` on a free port; returns once it listens (or fails with its log).

    ``extra_env`` sets variables for the server after the developer's are scrubbed (e.g. ``API_TOKEN``).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    store_url = f"sqlite:///{data_dir / 'wallet.db'}"
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env.update({"STORE_URL": store_url, "PYTHONUNBUFFERED": "1", **(extra_env or {})})
    log_path = data_dir / "server.log"
    log_file = log_path.open("w", encoding="utf-8")
    command = [
        sys.executable,
        "-m",
        "ecpay_lambda.cli",
        "serve",
        "--port",
        "0",
        "--data-dir",
        str(data_dir),
        "--retry-delays",
        RETRY_DELAYS,
    ]
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=log_file, text=True
    )
    log_file.close()
    lines: queue.Queue[str | None] = queue.Queue()

    def drain() -> None:
        assert process.stdout is not None
        for line in process.stdout:  # keeps the pipe from filling up for the server's whole life
            lines.put(line)
        lines.put(None)

    threading.Thread(target=drain, name="local-stack-stdout", daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT
    base_url = None
    while base_url is None:
        remaining = deadline - time.monotonic()
        try:
            line = lines.get(timeout=max(0.05, remaining))
        except queue.Empty:
            line = ""
        if line is None or remaining <= 0:
            stop_local_stack(process)
            raise RuntimeError(f"ecpay-lambda serve did not start:\n{log_path.read_text(errors='replace')}")
        match = re.search(r"Listening on (http://127\.0\.0\.1:\d+)", line)
        if match:
            base_url = match.group(1)
    stack = LocalStack(base_url)
    stack.base_url = base_url
    stack.store_url = store_url
    stack.env = {
        **env,
        "ECPAY_ENV": "sandbox",
        "ECPAY_BASE_URL": base_url,
        "PUBLIC_BASE_URL": base_url,
        "FRONTEND_URL": (extra_env or {}).get("FRONTEND_URL") or f"{base_url}/",
    }
    stack.sandbox = SandboxClient(base_url)
    stack.log_path = log_path
    stack.process = process
    # The stack's one calendar (the wallet reads the sandbox's clock) is pinned to 10:00 Taipei, far from
    # ECPay's 20:15 daily card close, so refunds and capture states behave the same whenever tests run.
    stack.clock_offset = daytime_offset()
    stack.sandbox.settings(clock_offset_seconds=stack.clock_offset)
    return stack


def stop_local_stack(process: subprocess.Popen[str]) -> None:
    """SIGTERM, then SIGKILL if it does not stop within 15 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The whole local stack on 127.0.0.1 with a temporary SQLite store, shared by the session."""
    stack = start_local_stack(tmp_path_factory.mktemp("local-stack"))
    try:
        yield stack
    finally:
        stop_local_stack(stack.process)
