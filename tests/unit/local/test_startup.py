"""Start-up: serve refuses broken settings in one line, local mode follows ECPAY_ENV and FRONTEND_URL,
the sandbox is guarded on public binds, reconcile finds the running server, the CLI explains itself."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ecpay_lambda.cli import main
from ecpay_lambda.local.http import Request
from ecpay_lambda.local.preflight import PreflightError, open_checked_store
from ecpay_lambda.local.stack import (
    SandboxGuard,
    StackError,
    build_stack,
    local_environment,
    running_server_state,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = REPO_ROOT / "template.yaml"
TOKEN = "t" * 32


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ECPAY_", "STORE_URL", "API_TOKEN", "PORT", "FRONTEND_URL", "PUBLIC_BASE_URL"))
    }
    env.update(extra)
    return env


def _serve(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ecpay_lambda.cli", "serve", "--data-dir", str(tmp_path / "data"), *args],
        cwd=REPO_ROOT,
        env=_clean_env(**env),
        capture_output=True,
        text=True,
        timeout=90,  # a bound, never asserted on: the checks themselves give up after 15 s
        check=False,
    )


# --- serve refuses broken settings --------------------------------------------------------------


@pytest.mark.parametrize(
    ("store_url", "reason"),
    [
        ("dynamodb://WalletTable?foo=1", "unknown dynamodb:// URL options"),
        ("postgres://x", "cannot use the store"),
        ("foo", "unsupported STORE_URL scheme"),
        ("mysql+pymysql://app:s3cr3t-pw@127.0.0.1:1/wallet", "cannot use the store"),
    ],
)
def test_serve_exits_with_one_line_on_a_broken_store_url(tmp_path: Path, store_url: str, reason: str) -> None:
    result = _serve(tmp_path, "--port", "0", STORE_URL=store_url)
    assert result.returncode == 2
    assert "Listening" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ecpay-lambda serve: STORE_URL=")
    assert reason in lines[0]
    assert "s3cr3t-pw" not in result.stderr  # the password is redacted, in the URL and the reason


def test_serve_refuses_an_unknown_ecpay_env(tmp_path: Path) -> None:
    result = _serve(tmp_path, "--port", "0", ECPAY_ENV="prod")
    assert result.returncode == 2 and "Listening" not in result.stdout
    assert result.stderr.strip() == (
        "ecpay-lambda serve: ECPAY_ENV='prod' is not known: use sandbox (the offline sandbox, the "
        "default), stage (ECPay's test servers) or production"
    )


def test_serve_names_a_port_in_use_and_suggests_another(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _serve(tmp_path, "--port", str(port))
    assert result.returncode == 2
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1
    assert f"port {port}" in line and "already in use" in line and "--port" in line


def test_production_without_credentials_is_refused_before_binding(tmp_path: Path) -> None:
    env: dict[str, str] = {"ECPAY_ENV": "production", "STORE_URL": f"sqlite:///{tmp_path / 'w.db'}"}
    with pytest.raises(StackError, match="real merchant credentials"):
        build_stack(port=0, template=TEMPLATE, data_dir=tmp_path, environ=env)
    assert "PUBLIC_BASE_URL" not in env  # nothing was set for handlers


def test_the_store_check_opens_migrates_and_writes(tmp_path: Path) -> None:
    store = open_checked_store(f"sqlite:///{tmp_path / 'w.db'}")
    assert store.ping() and (tmp_path / "w.db").exists()
    with pytest.raises(PreflightError, match=r"^STORE_URL=sqlite:///:memory:: "):
        open_checked_store("sqlite:///:memory:")


# --- local mode follows the settings ------------------------------------------------------------


def test_local_environment_keeps_the_developers_values(tmp_path: Path) -> None:
    values = local_environment(
        "http://127.0.0.1:3000",
        tmp_path,
        {
            "ECPAY_ENV": "Stage",
            "ECPAY_BASE_URL": "https://payment-stage.ecpay.com.tw",
            "FRONTEND_URL": "http://localhost:3001/",
            "PUBLIC_BASE_URL": "https://tunnel.example",
        },
    )
    assert values["ECPAY_ENV"] == "stage"
    assert values["ECPAY_BASE_URL"] == "https://payment-stage.ecpay.com.tw"
    assert values["FRONTEND_URL"] == "http://localhost:3001/"
    assert values["PUBLIC_BASE_URL"] == "https://tunnel.example"
    stage_default = local_environment("http://127.0.0.1:3000", tmp_path, {"ECPAY_ENV": "stage"})
    assert "ECPAY_BASE_URL" not in stage_default  # ECPay's own stage host, not the embedded sandbox


def test_stage_mode_serves_no_sandbox_and_points_checkout_at_ecpay(tmp_path: Path) -> None:
    env = {
        "ECPAY_ENV": "stage",
        "ECPAY_BASE_URL": "https://payment-stage.ecpay.com.tw",
        "STORE_URL": f"sqlite:///{tmp_path / 'w.db'}",
    }
    stack = build_stack(port=0, template=TEMPLATE, data_dir=tmp_path, environ=env)
    stack.server.start_background()
    try:
        assert stack.sandbox is None
        assert env["ECPAY_ENV"] == "stage" and env["ECPAY_BASE_URL"] == "https://payment-stage.ecpay.com.tw"
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(stack.base_url + "/sandbox/api/trades", timeout=10)
        assert info.value.code == 404
    finally:
        stack.close()


def test_the_sandbox_guard() -> None:
    guard = SandboxGuard(TOKEN)

    def request(path: str, ip: str, **headers: str) -> Request:
        return Request("POST", path, "", tuple(headers.items()), b"", client_ip=ip)

    assert guard.handle(request("/sandbox/api/settings", "127.0.0.1")) is None
    refused = guard.handle(request("/sandbox/api/settings", "192.168.1.20"))
    assert refused is not None and refused.status == 403
    for path in ("/sandbox/", "/Cashier/AioCheckOut/V5", "/CreditDetail/DoAction", "/sandbox/checkout/X"):
        answer = guard.handle(request(path, "192.168.1.20"))
        assert answer is not None and answer.status == 403, path
    # A proxy on this machine makes every client look local: its forwarding header gives it away.
    proxied = guard.handle(request("/sandbox/api/trades", "127.0.0.1", **{"X-Forwarded-For": "203.0.113.9"}))
    assert proxied is not None and proxied.status == 403
    assert (
        guard.handle(request("/sandbox/api/trades", "192.168.1.20", Authorization=f"Bearer {TOKEN}")) is None
    )
    wrong = guard.handle(request("/sandbox/api/trades", "192.168.1.20", Authorization="Bearer nope"))
    assert wrong is not None and wrong.status == 403
    assert guard.handle(request("/users", "192.168.1.20")) is None  # the API has its own token check


def test_a_public_bind_puts_the_guard_before_the_sandbox(tmp_path: Path) -> None:
    env = {"API_TOKEN": TOKEN, "STORE_URL": f"sqlite:///{tmp_path / 'w.db'}"}
    stack = build_stack(host="0.0.0.0", port=0, template=TEMPLATE, data_dir=tmp_path, environ=env)
    try:
        kinds = [type(app).__name__ for app in stack.server.apps]
        assert kinds.index("SandboxGuard") < kinds.index("SandboxApp")
    finally:
        stack.close()
    local = build_stack(port=0, template=TEMPLATE, data_dir=tmp_path, environ={"STORE_URL": env["STORE_URL"]})
    try:
        assert "SandboxGuard" not in [type(app).__name__ for app in local.server.apps]
    finally:
        local.close()


# --- a running serve, reconcile and --quiet -----------------------------------------------------


def test_reconcile_right_after_serve_uses_its_sandbox_and_says_why_nothing_was_checked(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ecpay_lambda.cli",
            "serve",
            "--port",
            "0",
            "--data-dir",
            str(data),
            "--quiet",
        ],
        cwd=REPO_ROOT,
        env=_clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    banner: list[str] = []
    try:
        url = None
        for _ in range(20):
            line = process.stdout.readline()
            banner.append(line)
            found = re.search(r"Listening on (http://127\.0\.0\.1:\d+)", line)
            if found:
                url = found.group(1)
                break
        assert url, banner
        state = running_server_state(data)
        assert (
            state is not None and state["ECPAY_BASE_URL"] == url and state["STORE_URL"].startswith("sqlite")
        )
        assert (data / "server.json").stat().st_mode & 0o077 == 0  # owner-only: STORE_URL may hold a password
        # A deposit checked out a moment ago: within the grace period.
        user = _post(url + "/users", {"username": "rita", "email": "rita@example.com"})
        tx = _post(
            f"{url}/users/{user['user_id']}/transactions", {"transaction_type": "deposit", "amount": 500}
        )
        _post(
            f"{url}/users/{user['user_id']}/transactions/{tx['transaction_id']}/requestPayment",
            None,
            accept="application/json",
        )
        reconcile = subprocess.run(
            [sys.executable, "-m", "ecpay_lambda.cli", "reconcile", "--data-dir", str(data)],
            cwd=REPO_ROOT,
            env=_clean_env(),
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        assert reconcile.returncode == 0, reconcile.stderr
        assert f"using the local server's ECPay sandbox at {url}" in reconcile.stderr
        assert "checked: 0" in reconcile.stdout
        assert "nothing checked: no deposit awaiting payment is due before" in reconcile.stdout
        assert "--grace-minutes 0" in reconcile.stdout
        now = subprocess.run(
            [
                sys.executable,
                "-m",
                "ecpay_lambda.cli",
                "reconcile",
                "--data-dir",
                str(data),
                "--grace-minutes",
                "0",
            ],
            cwd=REPO_ROOT,
            env=_clean_env(),
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        assert now.returncode == 0, now.stderr
        assert "checked: 1" in now.stdout and "nothing checked" not in now.stdout
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    # --quiet: the banner and "stopped", no request lines, no JSON log lines from the handlers.
    assert not [line for line in (out + err).splitlines() if line.lstrip().startswith("{")], out + err
    assert " -> 201 " not in err
    assert running_server_state(data) is None and not (data / "server.json").exists()


def _post(url: str, payload: object, *, accept: str = "application/json") -> dict[str, str]:
    body = None if payload is None else json.dumps(payload).encode()
    headers = {"Accept": accept, **({"Content-Type": "application/json"} if body else {})}
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        data: dict[str, str] = json.loads(response.read())
    return data


def test_reconcile_without_a_running_server_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("ECPAY_ENV", "ECPAY_BASE_URL", "STORE_URL"):
        monkeypatch.delenv(name, raising=False)
    assert main(["reconcile", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "make run" in err and "ECPAY_BASE_URL" in err


@pytest.mark.parametrize("command", ["audit", "reconcile"])
def test_audit_and_reconcile_on_an_unreachable_store_print_one_line(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ECPAY_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("STORE_URL", "mysql+pymysql://app:pw-secret@127.0.0.1:1/wallet")
    assert main([command]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"{command}: STORE_URL=mysql+pymysql://app:***@127.0.0.1:1/wallet")
    assert "Connection refused" in err and "pw-secret" not in err


# --- the CLI explains itself --------------------------------------------------------------------


def test_version_and_plain_help(capsys: pytest.CaptureFixture[str]) -> None:
    from ecpay_lambda import __version__  # noqa: PLC0415

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"ecpay-lambda {__version__}"
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for phrase in ("ecpay-lambda serve", "http://127.0.0.1:3000/", "Exit status", "COMMAND --help"):
        assert phrase in text
    assert "console script" not in text  # the module docstring is for developers, not the help
