"""The notification and schedule functions import only what they need (their cold start is the budget).

Checked in fresh interpreters, without any timing: importing the module, and handling real first
requests end to end as deployed (DynamoDB store and Secrets Manager on moto, the QueryTradeInfo
cross-check against a stand-in ECPay over HTTP), never loads pydantic, SQLAlchemy or Powertools' event
handler / OpenAPI machinery. And a first notification imports nothing beyond what
``bench/cold_start.py`` counts for it (``FIRST_NOTIFICATION``), so the benchmark's headline figure
is the whole cold import the function pays.
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
from bench.cold_start import FIRST_NOTIFICATION
from tests.unit.api.apitest import MERCHANT, ROOT, atm_info_fields, form, return_fields, sign
from tests.unit.api.conftest import SETTINGS_VARIABLES
from tests.unit.api.ecpayfake import FakeEcpay

from ecpay_lambda.api.composition import build_service
from ecpay_lambda.config import parse_settings
from ecpay_lambda.store.dynamodb import DynamoDBStore
from ecpay_lambda.wallet.models import PaymentMethod, TransactionStatus, TransactionType
from ecpay_lambda.wallet.service import CheckoutUrls, WalletService

# ecpay_lambda.local holds the local JWT issuer and gateway (issue 15): local mode only, never a function's.
FORBIDDEN = (
    "pydantic",
    "sqlalchemy",
    "aws_lambda_powertools.event_handler",
    "aws_lambda_powertools",
    "ecpay_lambda.local",
)
# Creating boto3 clients on the first request may load more of these packages: that is client
# creation, which the benchmark leaves out on purpose (it is not the function's own import cost).
CLIENT_CREATION = ("boto3", "botocore", "urllib3", "s3transfer", "jmespath", "dateutil")

REPORT = textwrap.dedent(
    """
    import json, sys
    heavy = sorted({m for m in sys.modules for f in %r if m == f or m.startswith(f + ".")})
    print(json.dumps({"heavy": heavy, "result": globals().get("result")}))
    """
) % (FORBIDDEN,)


def run_python(code: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``code`` + the module report in a fresh interpreter; return the report."""
    proc = subprocess.run(
        [sys.executable, "-c", code + REPORT],
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


@pytest.mark.parametrize("module", ["ecpay_lambda.api.ecpay_callbacks", "ecpay_lambda.api.scheduled"])
def test_importing_a_lean_handler_loads_nothing_heavy(module: str) -> None:
    assert run_python(f"import {module}")["heavy"] == []


def test_the_management_handler_does_load_the_resolver() -> None:
    # The counter-check: the same probe does see heavy modules where they belong.
    heavy = run_python("import ecpay_lambda.api.handlers")["heavy"]
    assert "pydantic" in heavy and "aws_lambda_powertools.event_handler" in heavy


# --- a first request, as deployed -----------------------------------------------------------------

# One cold start: the handler module, then what the benchmark counts for the first notification,
# then one request; reports what the request imported beyond those, and its answer.
FIRST_REQUEST = textwrap.dedent(
    """
    import importlib, json, sys
    import boto3
    from ecpay_lambda.api import ecpay_callbacks
    counted, event = json.loads(sys.argv[1])
    for name in counted:
        importlib.import_module(name)
    before = set(sys.modules)
    answer = ecpay_callbacks.handler(event, None)
    result = {"status": answer["statusCode"], "body": answer["body"][:80],
              "imported": sorted(set(sys.modules) - before)}
    """
)


class _EcpayHandler(BaseHTTPRequestHandler):
    """ECPay's QueryTradeInfo over real HTTP (the function's own urllib transport calls it)."""

    fake = FakeEcpay()

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


def _first_request(env: dict[str, str], event: dict[str, Any]) -> dict[str, Any]:
    code = FIRST_REQUEST + "\n"
    proc = subprocess.run(
        [sys.executable, "-c", code + REPORT, json.dumps([list(FIRST_NOTIFICATION), event])],
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
    _EcpayHandler.fake.paid[card_mtn] = 500  # what QueryTradeInfo confirms
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
    report = _first_request({**deployed, "FRONTEND_URL": "https://shop.test/"}, event)
    assert report["heavy"] == []
    assert report["result"]["status"] == 303
