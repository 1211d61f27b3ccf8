"""Schemathesis with every check against the local stack, as `schemathesis run <local>/openapi.json` sees it.

The stack is the one `make run` starts (its own process, store and port), first open as on a laptop
without ``API_TOKEN``, then protected by a token. Schemathesis runs as its CLI does (coverage, fuzzing
and stateful phases, ``--checks all``) with a fixed seed and a bounded number of examples per operation,
and reports to an NDJSON file that this test reads: every failed check must match one of the justified
exceptions in ``EXCEPTIONS`` below, each narrow (the check, the route, the status and the error code),
or the test fails and prints the schemathesis findings.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from tests.e2e.conftest import Http
from tests.support.stack_plugin import LocalStack, start_local_stack, stop_local_stack

SEED = 20261128  # fixed: a run is repeatable, a failure reproducible with the same options
TOKEN = "conformance-test-token-not-a-secret"
RUN_TIMEOUT = 600  # seconds; a bound against a hung run, never a measurement


@dataclass(frozen=True)
class Finding:
    """One failed schemathesis check on one request."""

    check: str
    code: str
    operation: str
    method: str
    path: str
    query: dict[str, list[str]]
    status: int | None
    body: bytes
    message: str

    @property
    def error_code(self) -> str | None:
        """``error.code`` of the answer, when it is one of our JSON errors."""
        try:
            data = json.loads(self.body)
        except ValueError:
            return None
        error = data.get("error") if isinstance(data, dict) else None
        return str(error.get("code")) if isinstance(error, dict) else None

    def __str__(self) -> str:
        text = self.body[:300].decode("utf-8", errors="replace")
        return (
            f"{self.code} {self.check} on {self.operation}: {self.method} {self.path} -> {self.status} {text}"
        )


class Justified(NamedTuple):
    """A failure schemathesis reports that is the intended behaviour, and why."""

    name: str
    why: str
    applies: Callable[[Finding, Http], bool]


def _unknown_to_ecpay(finding: Finding, http: Http) -> bool:
    """The sync'd deposit has no trade at ECPay: never checked out, or its form never reached ECPay."""
    parts = finding.path.strip("/").split("/")
    if len(parts) != 5 or parts[0] != "users" or parts[2] != "transactions" or parts[4] != "sync":
        return False
    reply = http.json("GET", "/" + "/".join(parts[:4]))
    if reply.status != 200:
        return False
    merchant_trade_no = reply.json().get("merchant_trade_no")
    if merchant_trade_no is None:
        return True
    trade = http.json("GET", f"/sandbox/api/trades/{urllib.parse.quote(merchant_trade_no, safe='')}")
    return trade.status == 404 and trade.json()["error"]["code"] == "trade_not_found"


EXCEPTIONS = (
    Justified(
        "no 405 from API Gateway",
        "API Gateway (HTTP API) answers an undeclared method on a known path with 404 Not Found and no "
        "Allow header: it routes by method and path together. Local mode mirrors it (schemathesis "
        "accepts that 404 only where it generated the path's ids, so it still flags /healthz).",
        lambda f, _: (
            f.check == "unsupported_method" and f.status == 404 and f.body == b'{"message":"Not Found"}'
        ),
    ),
    Justified(
        "forged cursor",
        "A cursor is opaque: only a next_cursor this API issued for that listing is valid. The document "
        "states its alphabet and length, which a forged one can match; it is refused with 400.",
        lambda f, _: (
            f.check == "positive_data_acceptance"
            and f.status == 400
            and "cursor" in f.query
            and f.body == b'{"error": {"code": "invalid_request", "message": "invalid cursor"}}'
        ),
    ),
    Justified(
        "Idempotency-Key reused with another body",
        "Schemathesis reuses generated Idempotency-Key values across different bodies; the API refuses "
        "such a repeat with 422 idempotency_key_mismatch, as the IETF Idempotency-Key draft asks.",
        lambda f, _: (
            f.check == "positive_data_acceptance"
            and f.status == 422
            and f.error_code == "idempotency_key_mismatch"
        ),
    ),
    Justified(
        "closed users stay readable",
        "DELETE /users/{userId} closes the user and keeps every record (money rules); GET by id still "
        "answers the user, with status closed.",
        lambda f, _: f.check == "use_after_free" and f.method == "GET" and f.status == 200,
    ),
    Justified(
        "recurring plan outside ECPay's limits for its period type",
        "ECPay's periodic limits depend on period_type (M: frequency 1-12; Y: frequency 1, exec_times "
        "up to 99); the document states the widest bounds and the wallet answers 400 "
        "invalid_recurring_plan, as it does for a method other than Credit.",
        lambda f, _: (
            f.check == "positive_data_acceptance"
            and f.status == 400
            and f.error_code == "invalid_recurring_plan"
        ),
    ),
    Justified(
        "amount outside the payment method's ECPay range",
        "Each ECPay method has its own amount range (configurable settings); the document states the "
        "wallet's overall range and the per-method check answers 400 amount_out_of_range.",
        lambda f, _: (
            f.check == "positive_data_acceptance"
            and f.status == 400
            and f.error_code == "amount_out_of_range"
        ),
    ),
    Justified(
        "ECPay's e-invoice buyer rules",
        "Buyer invoice settings (PUT /users/{userId}/invoice-settings, a deposit's `invoice`) follow ECPay's "
        "rules, which a JSON Schema cannot state: a tax ID's check digit, carrier formats, a barcode or "
        "love code ECPay knows (CheckBarcode, CheckLoveCode), ECPay's field lengths. Each broken rule "
        "answers 400 with its own invoice_<rule> code (issue 13).",
        lambda f, _: (
            f.check == "positive_data_acceptance"
            and f.status == 400
            and (f.error_code or "").startswith("invoice_")
            and (f.path.endswith("/invoice-settings") or f.path.endswith("/transactions"))
        ),
    ),
)


def _findings(ndjson: Path) -> tuple[list[Finding], list[str], dict[str, int]]:
    """Failed checks, engine errors, and counts (operations, cases) from a schemathesis NDJSON report."""
    findings: list[Finding] = []
    errors: list[str] = []
    counts = {"scenarios": 0, "requests": 0, "finished": 0}
    for line in ndjson.read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        name, data = next(iter(event.items()))
        if name in ("NonFatalError", "FatalError", "Interrupted"):
            errors.append(f"{name}: {json.dumps(data)[:2000]}")
        elif name == "EngineFinished":
            counts["finished"] += 1
        elif name.endswith("ScenarioFinished"):
            counts["scenarios"] += 1
            recorder = data.get("recorder") or {}
            interactions = recorder.get("interactions") or {}
            counts["requests"] += len(interactions)
            for case_id, checks in (recorder.get("checks") or {}).items():
                for check in checks:
                    if check.get("status") != "failure":
                        continue
                    findings.append(_finding(check, interactions.get(case_id) or {}))
    return findings, errors, counts


def _finding(check: dict[str, Any], interaction: dict[str, Any]) -> Finding:
    failure = (check.get("failure_info") or {}).get("failure") or {}
    request = interaction.get("request") or {}
    response = interaction.get("response") or {}
    uri = urllib.parse.urlsplit(str(request.get("uri", "")))
    content = response.get("content") or {}
    body = base64.b64decode(content["$base64"]) if "$base64" in content else b""
    return Finding(
        check=str(check.get("name")),
        code=str(failure.get("code")),
        operation=str(failure.get("operation")),
        method=str(request.get("method")),
        path=urllib.parse.unquote(uri.path),
        query=urllib.parse.parse_qs(uri.query, keep_blank_values=True),
        status=response.get("status_code"),
        body=body,
        message=str(failure.get("message", ""))[:300],
    )


def run_schemathesis(
    stack: LocalStack, work: Path, *, max_examples: int, headers: dict[str, str], phases: str | None = None
) -> Path:
    """``schemathesis run <stack>/openapi.json --checks all``, bounded; returns its NDJSON report."""
    report = work / "schemathesis.ndjson"
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{stack.base_url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(max_examples),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--continue-on-failure",  # an accepted exception must not end a scenario and hide the rest
        "--no-shrink",
        "--generation-database",
        "none",
        "--request-timeout",
        "30",
        "--no-color",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(report),
    ]
    for name, value in headers.items():
        command += ["--header", f"{name}: {value}"]
    if phases:
        command += ["--phases", phases]
    done = subprocess.run(  # noqa: PLW1510  # the exit status is not the verdict: the report is
        command, cwd=work, capture_output=True, text=True, timeout=RUN_TIMEOUT
    )
    assert report.exists(), f"schemathesis wrote no report:\n{done.stdout[-5000:]}\n{done.stderr[-3000:]}"
    (work / "schemathesis.out").write_text(done.stdout + done.stderr, encoding="utf-8")
    return report


def check_report(report: Path, http: Http, *, min_requests: int) -> None:
    """Every failure is a justified exception; the run finished, without engine errors, and did work."""
    findings, errors, counts = _findings(report)
    assert not errors, "\n".join(errors)
    assert counts["finished"] == 1 and counts["requests"] >= min_requests, counts
    unexplained: list[Finding] = []
    used: dict[str, int] = {}
    for finding in findings:
        justified = next((e for e in EXCEPTIONS if e.applies(finding, http)), None)
        if justified is None:
            unexplained.append(finding)
        else:
            used[justified.name] = used.get(justified.name, 0) + 1
    print(f"schemathesis: {counts['requests']} requests; justified exceptions seen: {used}")
    assert not unexplained, "schemathesis found:\n" + "\n".join(map(str, unexplained))


@pytest.fixture(scope="module")
def open_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The stack as `make run` starts it: no API_TOKEN, so its routes (and its document) are open."""
    stack = start_local_stack(tmp_path_factory.mktemp("conformance-open"))
    try:
        yield stack
    finally:
        stop_local_stack(stack.process)


@pytest.fixture(scope="module")
def protected_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The stack with API_TOKEN set: every management route needs the token."""
    stack = start_local_stack(tmp_path_factory.mktemp("conformance-token"), {"API_TOKEN": TOKEN})
    try:
        yield stack
    finally:
        stop_local_stack(stack.process)


def test_open_local_stack_matches_its_document(open_stack: LocalStack, tmp_path: Path) -> None:
    http = Http(open_stack.base_url)
    spec = http.json("GET", "/openapi.json").json()
    assert all("security" not in op for ops in spec["paths"].values() for op in ops.values())
    report = run_schemathesis(open_stack, tmp_path, max_examples=5, headers={})
    check_report(report, http, min_requests=300)  # about 500 with this seed and bound


def test_protected_stack_matches_its_document(protected_stack: LocalStack, tmp_path: Path) -> None:
    # With the token in every request, schemathesis' ignored_auth check also sends requests without
    # it or with a wrong one and requires them refused.
    http = Http(protected_stack.base_url)
    spec = http.json("GET", "/openapi.json").json()
    assert spec["paths"]["/users"]["get"]["security"] == [{"bearerAuth": []}]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert http.json("GET", "/users").status == 401
    # The coverage phase (the costly one) already ran against the open stack: the same routes.
    report = run_schemathesis(
        protected_stack, tmp_path, max_examples=5, headers=auth, phases="fuzzing,stateful"
    )
    check_report(report, _Authorized(protected_stack.base_url, auth), min_requests=50)  # about 120


class _Authorized(Http):
    """Http that sends the token (for the exceptions that look a transaction up)."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        super().__init__(base_url)
        self._headers = headers

    def request(
        self, method: str, url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Any:
        """As :meth:`Http.request`, with the token."""
        return super().request(method, url, body=body, headers={**self._headers, **(headers or {})})


@pytest.mark.parametrize(
    ("length", "status", "code"), [(64, 404, "not_found"), (65, 422, "validation_error")]
)
def test_non_ascii_ids_count_characters(open_stack: LocalStack, length: int, status: int, code: str) -> None:
    # API Gateway decodes the path as UTF-8: 64 characters are 64, however many bytes they take.
    user_id = urllib.parse.quote("綠" * length, safe="")
    reply = Http(open_stack.base_url).json("GET", f"/users/{user_id}")
    assert (reply.status, reply.json()["error"]["code"]) == (status, code), reply.text
