"""Fixtures for the ECPay protocol tests: a fake transport and ECPay's official Node SDK as an oracle."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ecpay_lambda.ecpay.credentials import MerchantCredentials
from ecpay_lambda.ecpay.transport import HttpResponse

ORACLE_DIR = Path(__file__).resolve().parents[2] / "oracle"
ORACLE_SDK = ORACLE_DIR / "node_modules" / "ecpay_aio_nodejs" / "lib" / "ecpay_payment" / "helper.js"
IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture
def stage() -> MerchantCredentials:
    """ECPay's public stage test merchant."""
    return MerchantCredentials.stage_test_merchant()


@dataclass
class FakeTransport:
    """Records each POST and answers with the queued responses, in order."""

    responses: list[HttpResponse] = field(default_factory=list)
    calls: list[tuple[str, dict[str, str], float]] = field(default_factory=list)

    def queue(self, body: str | bytes, status: int = 200) -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.responses.append(HttpResponse(status=status, body=data, headers={}))

    def post_form(self, url: str, fields: Mapping[str, str], *, timeout: float) -> HttpResponse:
        self.calls.append((url, dict(fields), timeout))
        if not self.responses:
            raise AssertionError("FakeTransport: no response queued")
        return self.responses.pop(0)


@pytest.fixture
def fake_transport() -> FakeTransport:
    """A transport that never touches the network."""
    return FakeTransport()


OracleFn = Callable[[list[tuple[Mapping[str, str], int]], str, str], list[str]]


def _unavailable(reason: str) -> None:
    # Locally a missing tool is a skip with its reason; in CI the oracle is a required check.
    if IN_CI:
        pytest.fail(f"Node SDK oracle unavailable under CI=true: {reason}")
    pytest.skip(f"Node SDK oracle unavailable: {reason}")


@pytest.fixture(scope="session")
def node_oracle() -> OracleFn:
    """``gen_chk_mac_value`` of npm ``ecpay_aio_nodejs@1.2.2``, installed into tests/oracle on first use."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable("node and npm are not installed")
    assert node is not None and npm is not None
    if not ORACLE_SDK.exists():
        # The only network access of the ECPay tests: installing the pinned SDK from npm.
        command = [npm, "ci", "--prefix", str(ORACLE_DIR), "--no-audit", "--no-fund", "--loglevel=error"]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
        except subprocess.TimeoutExpired:
            _unavailable("npm ci timed out")
        else:
            if result.returncode != 0 or not ORACLE_SDK.exists():
                _unavailable(f"npm ci failed: {result.stderr.strip()[-500:]}")

    def compute(cases: list[tuple[Mapping[str, str], int]], hash_key: str, hash_iv: str) -> list[str]:
        request = {
            "hash_key": hash_key,
            "hash_iv": hash_iv,
            "cases": [{"params": dict(params), "mode": mode} for params, mode in cases],
        }
        # The SDK console.logs HashKey/HashIV; the oracle script silences that, and stdout is
        # captured here either way, never shown.
        result = subprocess.run(
            [node, str(ORACLE_DIR / "gen_chk_mac.js")],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, f"oracle failed: {result.stderr[-2000:]}"
        assert hash_key not in result.stdout and hash_iv not in result.stdout
        results: list[str] = json.loads(result.stdout)["results"]
        assert len(results) == len(cases)
        return results

    return compute
