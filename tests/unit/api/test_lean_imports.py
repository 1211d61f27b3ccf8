"""The cold-start rule (docs/performance.md), enforced: what each deployed handler imports.

Checked in fresh interpreters, without any timing: importing each handler module template.yaml names,
and handling real first requests end to end as deployed (DynamoDB store and Secrets Manager on moto,
the QueryTradeInfo cross-check against a stand-in ECPay over HTTP), never loads a module on that
handler's forbidden list (``FORBIDDEN``). And a first request imports nothing beyond what
``bench/cold_start.py`` counts for it (``FIRST_NOTIFICATION``, ``FIRST_MANAGEMENT_REQUEST``), so
the benchmark's figures are the whole cold import each function pays.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from bench.cold_start import FIRST_MANAGEMENT_REQUEST, FIRST_NOTIFICATION
from tests.unit.api.apitest import (
    MERCHANT,
    ROOT,
    TOKEN,
    atm_info_fields,
    form,
    load_template,
    make_event,
    match,
    return_fields,
    sign,
)
from tests.unit.api.conftest import SETTINGS_VARIABLES

from ecpay_lambda.api.composition import build_service
from ecpay_lambda.config import parse_settings
from ecpay_lambda.ecpay.testing import FakeEcpay
from ecpay_lambda.store.dynamodb import DynamoDBStore
from ecpay_lambda.wallet.models import PaymentMethod, TransactionStatus, TransactionType
from ecpay_lambda.wallet.service import CheckoutUrls, WalletService

NOTIFICATIONS = "ecpay_lambda.api.ecpay_callbacks"
SCHEDULED = "ecpay_lambda.api.scheduled"
MANAGEMENT = "ecpay_lambda.api.handlers"
OPENAPI_MODELS = "aws_lambda_powertools.event_handler.openapi.models"
# ecpay_lambda.local holds the local JWT issuer, gateway and sandbox: local mode only, never a function's.
# SQLAlchemy: every function here runs on DynamoDB as deployed (the SQL stores are for laptops).
# The events outbox is local mode's stand-in for the Pipe (store/outbox.py).
_NEVER = ("sqlalchemy", "ecpay_lambda.local", "ecpay_lambda.ecpay.testing", "ecpay_lambda.store.outbox")
_LEAN = (*_NEVER, "pydantic", "aws_lambda_powertools")
# Modules (and their submodules) each deployed handler must not load on import or first request.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    # Notifications go to the wallet's notification handler without the other use cases.
    NOTIFICATIONS: (*_LEAN, "ecpay_lambda.wallet.service", "ecpay_lambda.api.app"),
    SCHEDULED: (*_LEAN, "ecpay_lambda.api.app"),
    # The common requests take the lean path (api/fast/): no resolver, no pydantic.
    MANAGEMENT: _LEAN,
}
# A management request the lean path hands on may load the resolver; the OpenAPI models and Swagger
# UI are still for /openapi.json and /docs only.
DELEGATED = (*_NEVER, OPENAPI_MODELS, "aws_lambda_powertools.event_handler.openapi.swagger_ui")
# A clientReturn sends the browser on with the transaction's state: it may read it through the service.
CLIENT_RETURN_ALLOWED = ("ecpay_lambda.wallet.service",)
# Creating boto3 clients on the first request may load more of these packages: that is client
# creation, which the benchmark leaves out on purpose (it is not the function's own import cost).
CLIENT_CREATION = ("boto3", "botocore", "urllib3", "s3transfer", "jmespath", "dateutil")

REPORT = textwrap.dedent(
    """
    import json, sys
    forbidden = json.loads(sys.argv[-1])
    heavy = sorted({m for m in sys.modules for f in forbidden if m == f or m.startswith(f + ".")})
    print(json.dumps({"heavy": heavy, "result": globals().get("result")}))
    """
)


def deployed_handlers() -> set[str]:
    """The module of every function's handler in template.yaml."""
    resources = load_template()["Resources"].values()
    return {
        r["Properties"]["Handler"].rpartition(".")[0]
        for r in resources
        if r.get("Type") == "AWS::Serverless::Function"
    }


def run_python(code: str, forbidden: tuple[str, ...], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``code`` + the report on ``forbidden`` in a fresh interpreter; return the report."""
    proc = subprocess.run(
        [sys.executable, "-c", code + REPORT, json.dumps(forbidden)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


def test_every_deployed_handler_has_a_forbidden_list() -> None:
    assert deployed_handlers() == set(FORBIDDEN)


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_importing_a_handler_loads_nothing_it_forbids(module: str) -> None:
    assert run_python(f"import {module}", FORBIDDEN[module])["heavy"] == []


def test_the_resolver_does_load_pydantic_and_powertools() -> None:
    # The counter-check: the same probe does see heavy modules where they belong.
    heavy = run_python("import ecpay_lambda.api.app", FORBIDDEN[MANAGEMENT])["heavy"]
    assert "pydantic" in heavy and "aws_lambda_powertools.event_handler" in heavy


# --- a first request, as deployed -----------------------------------------------------------------

# One cold start: the handler module, then what the benchmark counts for its first request, then one
# request; reports what the request imported beyond those, and its answer.
FIRST_REQUEST = textwrap.dedent(
    """
    import importlib, json, sys
    import boto3
    module, counted, event = json.loads(sys.argv[1])
    handler = importlib.import_module(module).handler
    class Context:  # what Powertools' Logger reads from Lambda's context
        function_name, function_version, memory_limit_in_mb = "probe", "$LATEST", 512
        invoked_function_arn, aws_request_id = "arn:aws:lambda:ap-northeast-1:1:function:probe", "r"
    for name in counted:
        importlib.import_module(name)
    before = set(sys.modules)
    answer = handler(event, Context())
    result = {"status": answer["statusCode"], "body": answer["body"][:80],
              "imported": sorted(set(sys.modules) - before)}
    """
)


class _EcpayHandler(BaseHTTPRequestHandler):
    """ECPay's QueryTradeInfo over real HTTP (the function's own urllib transport calls it)."""

    fake = FakeEcpay(unknown_trades="unpaid")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        fields = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True))
        answer = self.fake.post_form(self.path, fields, timeout=5)
        self.send_response(answer.status)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, format: str, *args: object) -> None:  # quiet: no access log
        pass


@pytest.fixture
def ecpay_url() -> Iterator[str]:
    """A stand-in ECPay payment host on loopback, answering QueryTradeInfo as ``_EcpayHandler.fake``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EcpayHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def deployed(moto_endpoint: str, dynamodb_store_url: str, ecpay_url: str) -> Iterator[dict[str, str]]:
    """The callbacks function's environment as the template deploys it (credentials in a secret)."""
    secrets = boto3.client("secretsmanager", endpoint_url=moto_endpoint)
    secret = json.dumps(
        {"MerchantID": MERCHANT.merchant_id, "HashKey": MERCHANT.hash_key, "HashIV": MERCHANT.hash_iv}
    )
    arn = secrets.create_secret(Name=f"ecpay-{os.getpid()}-{id(secret)}", SecretString=secret)["ARN"]
    env = {name: value for name, value in os.environ.items() if name not in SETTINGS_VARIABLES}
    env.update(
        STORE_URL=dynamodb_store_url,
        ECPAY_ENV="stage",  # outside the sandbox: paid notifications are cross-checked by default
        ECPAY_BASE_URL=ecpay_url,
        ECPAY_SECRET_ARN=arn,
        AWS_ENDPOINT_URL_SECRETS_MANAGER=moto_endpoint,
    )
    try:
        yield env
    finally:
        secrets.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)


def _wallet(env: dict[str, str]) -> WalletService:
    """This process's view of the same store (to set up deposits and read the outcome)."""
    settings = parse_settings(
        {
            "STORE_URL": env["STORE_URL"],
            "ECPAY_ENV": "stage",
            "ECPAY_BASE_URL": env["ECPAY_BASE_URL"],
            "ECPAY_MERCHANT_ID": MERCHANT.merchant_id,
            "ECPAY_HASH_KEY": MERCHANT.hash_key,
            "ECPAY_HASH_IV": MERCHANT.hash_iv,
        }
    )
    return build_service(settings, store=DynamoDBStore.from_url(env["STORE_URL"]))


def _checked_out(wallet: WalletService, user_id: str, method: PaymentMethod) -> tuple[str, str]:
    txn, _ = wallet.create_transaction(user_id, TransactionType.DEPOSIT, 500, payment_method=method)
    urls = CheckoutUrls(
        "https://x.test/return", "https://x.test/info", "https://x.test/back", "https://x.test/r"
    )
    mtn = wallet.checkout(user_id, txn.transaction_id, urls).fields["MerchantTradeNo"]
    return txn.transaction_id, mtn


def _event(route: str, user_id: str, transaction_id: str, body: str) -> dict[str, Any]:
    path = f"/users/{user_id}/transactions/{transaction_id}/{route}"
    return {
        "version": "2.0",
        "routeKey": "POST /users/{userId}/transactions/{transactionId}/" + route,
        "rawPath": "/Prod" + path,
        "headers": {"content-type": "application/x-www-form-urlencoded"},
        "pathParameters": {"userId": user_id, "transactionId": transaction_id},
        "requestContext": {"http": {"method": "POST"}, "stage": "Prod", "requestId": "r"},
        "body": body,
        "isBase64Encoded": False,
    }


def _first_request(
    env: dict[str, str],
    event: dict[str, Any],
    module: str = NOTIFICATIONS,
    counted: tuple[str, ...] = FIRST_NOTIFICATION,
    forbidden: tuple[str, ...] = FORBIDDEN[NOTIFICATIONS],
) -> dict[str, Any]:
    code = FIRST_REQUEST + "\n"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            code + REPORT,
            json.dumps([module, list(counted), event]),
            json.dumps(forbidden),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


def _uncounted(report: dict[str, Any]) -> list[str]:
    imported: list[str] = report["result"]["imported"]
    return [m for m in imported if m.split(".", 1)[0] not in CLIENT_CREATION]


def test_first_notifications_as_deployed_import_only_what_the_benchmark_counts(
    deployed: dict[str, str],
) -> None:
    wallet = _wallet(deployed)
    user = wallet.create_user("amy", "amy@example.com")
    card_id, card_mtn = _checked_out(wallet, user.user_id, PaymentMethod.CREDIT)
    atm_id, atm_mtn = _checked_out(wallet, user.user_id, PaymentMethod.ATM)
    _EcpayHandler.fake.pay(card_mtn, 500)  # what QueryTradeInfo confirms
    forged = {**sign(return_fields(card_mtn, 500)), "CheckMacValue": "0" * 64}
    cases = {
        # paid, cross-checked with QueryTradeInfo over HTTP, credited: the longest path
        "paid": _event("return", user.user_id, card_id, form(sign(return_fields(card_mtn, 500)))),
        "atm code": _event("paymentInfo", user.user_id, atm_id, form(sign(atm_info_fields(atm_mtn, 500)))),
        "forged": _event("return", user.user_id, card_id, form(forged)),
    }
    for name, event in cases.items():
        report = _first_request(deployed, event)
        assert report["heavy"] == [], name
        # Anything listed here must be avoided on this path, or added to FIRST_NOTIFICATION.
        assert _uncounted(report) == [], name
        assert report["result"]["status"] == 200, (name, report["result"])
    assert _EcpayHandler.fake.queries == [card_mtn]  # the paid one was cross-checked
    paid = wallet.store.get_transaction(card_id)
    atm = wallet.store.get_transaction(atm_id)
    assert paid is not None and paid.status is TransactionStatus.PAID
    assert atm is not None and atm.status is TransactionStatus.AWAITING_OFFLINE_PAYMENT
    assert wallet.get_user(user.user_id).balance == 500


def test_a_first_client_return_as_deployed_loads_nothing_heavy(deployed: dict[str, str]) -> None:
    wallet = _wallet(deployed)
    user = wallet.create_user("bob", "bob@example.com")
    txn_id, _ = _checked_out(wallet, user.user_id, PaymentMethod.CREDIT)
    event = _event("clientReturn", user.user_id, txn_id, "")
    forbidden = tuple(m for m in FORBIDDEN[NOTIFICATIONS] if m not in CLIENT_RETURN_ALLOWED)
    report = _first_request({**deployed, "FRONTEND_URL": "https://shop.test/"}, event, forbidden=forbidden)
    assert report["heavy"] == []
    assert report["result"]["status"] == 303


# --- the management function --------------------------------------------------------------------


@pytest.fixture
def management(deployed: dict[str, str], moto_endpoint: str) -> Iterator[dict[str, str]]:
    """A management function's environment as deployed: the API token in a secret too."""
    secrets = boto3.client("secretsmanager", endpoint_url=moto_endpoint)
    arn = secrets.create_secret(Name=f"token-{os.getpid()}-{id(deployed)}", SecretString=TOKEN)["ARN"]
    try:
        yield {**deployed, "API_TOKEN_SECRET_ARN": arn}
    finally:
        secrets.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)


def _management_event(method: str, path: str, body: Any = None) -> dict[str, Any]:
    found = match(method, path)
    assert found is not None, path
    route, params = found
    assert route.handler == MANAGEMENT + ".handler", route
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    return make_event(
        method,
        path,
        body=None if body is None else json.dumps(body),
        headers=headers,
        route=route,
        path_parameters=params,
    )


def test_first_management_requests_as_deployed_import_only_what_the_benchmark_counts(
    management: dict[str, str],
) -> None:
    wallet = _wallet(management)
    user = wallet.create_user("cat", "cat@example.com")
    deposit, _ = wallet.create_transaction(user.user_id, TransactionType.DEPOSIT, 500)
    transactions = f"/users/{user.user_id}/transactions"
    cases = {
        "create user": (_management_event("POST", "/users", {"username": "dan", "email": "d@x.test"}), 201),
        "get user": (_management_event("GET", f"/users/{user.user_id}"), 200),
        "create transaction": (
            _management_event("POST", transactions, {"transaction_type": "withdraw", "amount": "1"}),
            409,  # a refusal from the wallet (no balance), still on the lean path
        ),
        "list transactions": (_management_event("GET", transactions), 200),
        "get transaction": (_management_event("GET", f"{transactions}/{deposit.transaction_id}"), 200),
        "health": (_management_event("GET", "/healthz"), 200),
        "list users": (_management_event("GET", "/users"), 200),
        "complete a deposit": (_management_event("PATCH", f"{transactions}/{deposit.transaction_id}"), 409),
    }
    for name, (event, status) in cases.items():
        report = _first_request(
            management, event, MANAGEMENT, FIRST_MANAGEMENT_REQUEST, FORBIDDEN[MANAGEMENT]
        )
        assert report["heavy"] == [], name
        assert _uncounted(report) == [], name
        assert report["result"]["status"] == status, (name, report["result"])


def test_an_invalid_first_management_request_gets_the_resolvers_canonical_answer(
    management: dict[str, str],
) -> None:
    event = _management_event("POST", "/users", {"username": ""})
    report = _first_request(management, event, MANAGEMENT, FIRST_MANAGEMENT_REQUEST, FORBIDDEN[MANAGEMENT])
    # Handed on: pydantic and the resolver decide, with their 422 (never the OpenAPI models).
    assert report["result"]["status"] == 422, report["result"]
    assert '"validation_error"' in report["result"]["body"]
    assert "pydantic" in report["heavy"] and "aws_lambda_powertools.event_handler" in report["heavy"]
    assert OPENAPI_MODELS not in report["heavy"]


@pytest.mark.parametrize("path", ["/openapi.json", "/docs"])
def test_the_docs_routes_alone_load_the_openapi_models(management: dict[str, str], path: str) -> None:
    report = _first_request(
        management,
        _management_event("GET", path),
        MANAGEMENT,
        FIRST_MANAGEMENT_REQUEST,
        DELEGATED,
    )
    assert report["result"]["status"] == 200
    assert OPENAPI_MODELS in report["heavy"]
