"""Composing the stack: environment for the handlers, refusal to listen publicly, and the two commands."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ecpay_lambda.local.stack import (
    StackError,
    build_stack,
    check_bind_host,
    find_template,
    local_environment,
    merchant_from_env,
    parse_delays,
    port_from,
    redact_url,
)

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_local_environment(tmp_path: Path) -> None:
    values = local_environment("http://127.0.0.1:3456", tmp_path, {})
    assert values == {
        "ECPAY_ENV": "sandbox",
        "ECPAY_BASE_URL": "http://127.0.0.1:3456",
        "PUBLIC_BASE_URL": "http://127.0.0.1:3456",
        "FRONTEND_URL": "http://127.0.0.1:3456/",
        "STORE_URL": f"sqlite:///{tmp_path.resolve() / 'wallet.db'}",
        "EVENTS_OUTBOX": str(tmp_path.resolve() / "events.jsonl"),
        "INVOICING": "on",  # offline e-invoices by default (issue 13)
    }
    assert local_environment("http://127.0.0.1:1", tmp_path, {"INVOICING": "off"})["INVOICING"] == "off"
    kept = local_environment("http://127.0.0.1:1", tmp_path, {"STORE_URL": "postgresql+psycopg://u:p@h/db"})
    assert kept["STORE_URL"] == "postgresql+psycopg://u:p@h/db"


def test_public_address_needs_an_api_token() -> None:
    check_bind_host("127.0.0.1", {})
    check_bind_host("::1", {})
    check_bind_host("localhost", {})
    with pytest.raises(StackError, match="API_TOKEN"):
        check_bind_host("0.0.0.0", {})
    check_bind_host("0.0.0.0", {"API_TOKEN": "t" * 32})
    check_bind_host("0.0.0.0", {}, allow_remote=True)


def test_merchant_from_env() -> None:
    assert merchant_from_env({}).merchant_id == "3002607"
    own = merchant_from_env(
        {"ECPAY_MERCHANT_ID": "3000001", "ECPAY_HASH_KEY": "k" * 16, "ECPAY_HASH_IV": "v" * 16}
    )
    assert own.merchant_id == "3000001"
    with pytest.raises(StackError, match="ECPAY_HASH_IV"):
        merchant_from_env({"ECPAY_MERCHANT_ID": "3000001", "ECPAY_HASH_KEY": "k" * 16})


def test_small_parsers() -> None:
    assert parse_delays("1,2, 4,8") == (1.0, 2.0, 4.0, 8.0)
    for bad in ("", "a", "-1", "5000"):
        with pytest.raises(StackError):
            parse_delays(bad)
    assert port_from(None, 3000) == 3000 and port_from("", 3000) == 3000 and port_from("8080", 3000) == 8080
    for bad in ("http", "70000", "-1"):
        with pytest.raises(StackError):
            port_from(bad, 3000)
    assert redact_url("mysql+pymysql://app:s3cr3t@db:3306/w") == "mysql+pymysql://app:***@db:3306/w"
    assert redact_url("sqlite:////tmp/w.db") == "sqlite:////tmp/w.db"


def test_find_template(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert find_template(str(REPO_ROOT / "template.yaml")) == (REPO_ROOT / "template.yaml").resolve()
    monkeypatch.chdir(tmp_path)
    assert find_template() == (REPO_ROOT / "template.yaml").resolve()  # next to src/ in a checkout
    with pytest.raises(StackError):
        find_template(str(tmp_path / "missing.yaml"))


def test_build_stack_refuses_before_touching_anything(tmp_path: Path) -> None:
    env: dict[str, str] = {}
    with pytest.raises(StackError):
        build_stack(
            host="0.0.0.0", port=0, template=REPO_ROOT / "template.yaml", data_dir=tmp_path, environ=env
        )
    assert env == {}


def _start(args: list[str], env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "ecpay_lambda.cli", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    lines = []
    for _ in range(20):  # the banner is a handful of lines; bounded in case it never comes
        line = process.stdout.readline()
        lines.append(line)
        match = re.search(r"Listening on (http://127\.0\.0\.1:\d+)", line)
        if match:
            return process, match.group(1)
        if not line:
            break
    process.kill()
    _, err = process.communicate(timeout=30)
    raise AssertionError(f"no 'Listening on' line: {''.join(lines)}\n{err}")


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("ECPAY_", "STORE_URL", "API_TOKEN", "PORT"))
    }
    env.update(extra)
    return env


def test_serve_command_starts_stops_and_prints_urls(tmp_path: Path) -> None:
    process, url = _start(
        ["serve", "--port", "0", "--data-dir", str(tmp_path / "data"), "--quiet"], _clean_env(), REPO_ROOT
    )
    try:
        with urllib.request.urlopen(url + "/sandbox/api/settings", timeout=10) as response:
            assert response.status == 200
        with urllib.request.urlopen(url + "/healthz", timeout=30) as response:
            assert response.status == 200
        assert (tmp_path / "data" / "wallet.db").exists()  # the SQLite store lives in the data folder
        # A notification: the handler logs a JSON line and counts it in an EMF line, unless quiet.
        notification = urllib.request.Request(url + "/users/u/transactions/t/return", data=b"a=1")
        with urllib.request.urlopen(notification, timeout=30) as response:
            assert response.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "stopped" in out
    assert "{" not in out + err  # --quiet: no JSON log lines, no EMF metric lines


def test_serve_uses_the_port_variable_and_refuses_public_hosts(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ecpay_lambda.cli", "serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path)],
        cwd=REPO_ROOT,
        env=_clean_env(PORT="0"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2 and "API_TOKEN" in result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "ecpay_lambda.cli", "serve", "--data-dir", str(tmp_path)],
        cwd=REPO_ROOT,
        env=_clean_env(PORT="not-a-port"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2 and "port" in result.stderr


def test_sandbox_command(tmp_path: Path) -> None:
    process, url = _start(
        ["sandbox", "--port", "0", "--data-dir", str(tmp_path), "--quiet"], _clean_env(), tmp_path
    )
    try:
        with urllib.request.urlopen(url + "/sandbox/api/trades", timeout=10) as response:
            assert response.read() == b'{"trades":[]}'
        request = urllib.request.Request(url + "/users", method="GET")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=10)
        assert info.value.code == 404  # the sandbox alone serves no API
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    assert process.returncode == 0
