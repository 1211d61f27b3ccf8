"""The notification and schedule functions import only what they need (their cold start is the budget).

Checked in fresh interpreters: importing the module, and handling a real notification end to end on
the DynamoDB store the template deploys (moto on loopback), never loads pydantic, SQLAlchemy or
Powertools' event handler / OpenAPI machinery.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from tests.unit.api.apitest import ROOT

FORBIDDEN = ("pydantic", "sqlalchemy", "aws_lambda_powertools.event_handler", "aws_lambda_powertools")

REPORT = textwrap.dedent(
    """
    import json, sys
    heavy = sorted({m for m in sys.modules for f in %r if m == f or m.startswith(f + ".")})
    print(json.dumps({"heavy": heavy, "result": globals().get("result")}))
    """
) % (FORBIDDEN,)


def run_python(code: str, env: dict[str, str] | None = None) -> dict[str, object]:
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
    report: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


@pytest.mark.parametrize("module", ["ecpay_lambda.api.callbacks", "ecpay_lambda.api.scheduled"])
def test_importing_a_lean_handler_loads_nothing_heavy(module: str) -> None:
    assert run_python(f"import {module}")["heavy"] == []


def test_the_management_handler_does_load_the_resolver() -> None:
    # The counter-check: the same probe does see heavy modules where they belong.
    heavy = run_python("import ecpay_lambda.api.handlers")["heavy"]
    assert "pydantic" in heavy and "aws_lambda_powertools.event_handler" in heavy  # type: ignore[operator]


def test_handling_a_notification_on_dynamodb_loads_nothing_heavy(dynamodb_store_url: str) -> None:
    code = textwrap.dedent(
        """
        import urllib.parse
        from ecpay_lambda.api import callbacks
        from ecpay_lambda.ecpay.checkmac import check_mac_value
        fields = {"MerchantID": "3002607", "MerchantTradeNo": "abcdefghijkl12345678", "RtnCode": "1",
                  "RtnMsg": "paid", "TradeNo": "1", "TradeAmt": "5", "PaymentDate": "2026/11/27 12:00:00",
                  "PaymentType": "Credit_CreditCard", "TradeDate": "2026/11/27 11:59:00",
                  "SimulatePaid": "0", "CustomField1": ""}
        fields["CheckMacValue"] = check_mac_value(fields, "pwFHCqoQZGmho4w6", "EkRm7iFT261dpevs")
        event = {"version": "2.0", "routeKey": "POST /users/{userId}/transactions/{transactionId}/return",
                 "rawPath": "/Prod/users/u1/transactions/abcdefghijkl/return", "headers": {},
                 "pathParameters": {"userId": "u1", "transactionId": "abcdefghijkl"},
                 "requestContext": {"http": {"method": "POST"}, "stage": "Prod", "requestId": "r"},
                 "body": urllib.parse.urlencode(fields), "isBase64Encoded": False}
        answer = callbacks.handler(event, None)
        result = [answer["statusCode"], answer["body"]]
        """
    )
    report = run_python(
        code,
        {
            "STORE_URL": dynamodb_store_url,
            "ECPAY_ENV": "sandbox",
            "ECPAY_BASE_URL": "http://127.0.0.1:9",
            "ECPAY_CROSS_CHECK": "false",
        },
    )
    status, body = report["result"]  # type: ignore[misc]
    assert status == 200 and (body == "1|OK" or body.startswith("0|"))
    assert report["heavy"] == []
