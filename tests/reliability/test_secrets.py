"""Secrets: no HashKey, HashIV or API token in any log line or response.

Every test of this suite already passes each response and each server log line through the secret
scanner (conftest ``scanner``: the public stage HashKey/HashIV and the test's API token). This test
adds a private merchant (random MerchantID-key-IV, as in production), verbose logging, and walks
every route and every failure it can provoke: refused tokens, validation errors, checkout, every
payment method through the sandbox, refunds, syncs, forged notifications, unknown routes, oversized
bodies, then the ``audit`` and ``reconcile`` commands. Nothing may echo a secret.
"""

from __future__ import annotations

import os
import subprocess
import sys
from urllib.parse import quote

from ecpay_lambda.ecpay.credentials import MerchantCredentials

from .conftest import ServerFactory
from .forgery import Forger, Target
from .harness import Api, SecretScanner, random_secret, sign


def test_no_secret_in_any_response_or_log(
    sqlite_store_url: str, server_factory: ServerFactory, scanner: SecretScanner, api_token: str
) -> None:
    merchant = MerchantCredentials("3999001", random_secret(16), random_secret(16))
    scanner.add("HashKey", merchant.hash_key)
    scanner.add("HashIV", merchant.hash_iv)
    env = {
        "ECPAY_MERCHANT_ID": merchant.merchant_id,
        "ECPAY_HASH_KEY": merchant.hash_key,
        "ECPAY_HASH_IV": merchant.hash_iv,
        "POWERTOOLS_LOG_LEVEL": "DEBUG",
        "LOG_LEVEL": "DEBUG",
    }
    server = server_factory(sqlite_store_url, env=env)  # request log on, debug logging
    api = server.api(api_token)
    anonymous = Api(server.base_url, scanner=scanner)
    ecpay = Api(server.base_url, scanner=scanner)

    # Public routes, pages, refusals.
    for path in ("/healthz", "/openapi.json", "/docs", "/", "/sandbox/", "/no/such/route"):
        anonymous.request("GET", path)
    for headers in (
        {},
        {"Authorization": "Bearer wrong-" + api_token[::-1]},
        {"Authorization": f"Basic {api_token}"},
        {"Authorization": f"Bearer {api_token} extra"},
        {"Authorization": f"bearer{api_token}"},
    ):
        reply = anonymous.request("GET", "/users", headers=headers, auth=False)
        assert reply.status in (401, 403), reply.text
    assert anonymous.request("GET", f"/users?token={quote(api_token)}", auth=False).status == 401
    api.request("POST", "/users", b"{not json", {"Content-Type": "application/json"})
    api.json("POST", "/users", {"username": "", "email": "nope"})
    api.request("POST", "/users", b"x" * (11 * 1024 * 1024), {"Content-Type": "application/json"})

    user_id = api.create_user()
    api.request("GET", "/users?page=1&pageSize=5")
    api.create_transaction(user_id, "deposit", -5)
    api.create_transaction(user_id, "withdraw", 10_000)

    # Every payment method, paid through the sandbox's signed callbacks.
    targets: list[Target] = []
    card = ""
    for method, action in (("Credit", "pay"), ("ATM", "pay"), ("CVS", "issue-code"), ("BARCODE", "fail")):
        transaction_id = api.create_deposit(user_id, 1_000)
        html = api.request("POST", f"/users/{user_id}/transactions/{transaction_id}/requestPayment")
        assert html.status == 200
        fields = api.checkout(user_id, transaction_id, method)
        assert ecpay.form("/Cashier/AioCheckOut/V5", fields).status == 200
        mtn = fields["MerchantTradeNo"]
        assert ecpay.json("POST", f"/sandbox/api/trades/{mtn}/{action}", {}).status == 200
        ecpay.request("GET", f"/sandbox/trades/{mtn}")
        api.request("POST", f"/users/{user_id}/transactions/{transaction_id}/sync")
        api.request("GET", f"/users/{user_id}/transactions/{transaction_id}")
        anonymous.request("GET", f"/users/{user_id}/transactions/{transaction_id}/clientReturn", auth=False)
        anonymous.form(f"/users/{user_id}/transactions/{transaction_id}/clientReturn", {"RtnCode": "1"})
        targets.append(Target(user_id, transaction_id, mtn, 1_000))
        if method == "Credit":
            card = transaction_id
    assert api.user(user_id)["balance"] == 2_000
    api.json("POST", f"/users/{user_id}/transactions/{card}/refund", {"amount": 300})
    api.json("POST", f"/users/{user_id}/transactions/{card}/refund", {"amount": 10_000})
    api.json("PATCH", f"/users/{user_id}/transactions/{card}", {"action": "complete"})

    withdraw = api.create_transaction(user_id, "withdraw", 100).json()["transaction_id"]
    api.json("PATCH", f"/users/{user_id}/transactions/{withdraw}", {"action": "cancel"})
    api.json("PATCH", f"/users/{user_id}/transactions/{withdraw}", {"action": "complete"})
    api.request("GET", f"/users/{user_id}/transactions?page=1&pageSize=50")

    # Forged notifications of every kind, and genuine ones signed with the stage key (wrong here).
    for forgery in Forger(targets, seed=7).make(13 * 4):
        anonymous.form(
            f"/users/{forgery.user_id}/transactions/{forgery.transaction_id}/return",
            forgery.body,
            forgery.content_type,
        )
        anonymous.form(
            f"/users/{forgery.user_id}/transactions/{forgery.transaction_id}/paymentInfo",
            forgery.body,
            forgery.content_type,
        )
    wrong_amount = {
        "MerchantID": merchant.merchant_id,
        "MerchantTradeNo": targets[0].merchant_trade_no,
        "RtnCode": "1",
        "RtnMsg": "paid",
        "TradeNo": "1",
        "TradeAmt": "1",
    }
    genuine = sign(wrong_amount, merchant)
    anonymous.form(f"/users/{user_id}/transactions/{targets[0].transaction_id}/return", genuine)
    api.request("DELETE", f"/users/{user_id}")

    # The operator's commands, with the same configuration.
    command_env = {**os.environ, **server.env, "ECPAY_BASE_URL": server.base_url, "ECPAY_ENV": "sandbox"}
    for argv in (["audit", "--json"], ["audit"], ["reconcile", "--json"], ["reconcile"]):
        done = subprocess.run(
            [sys.executable, "-m", "ecpay_lambda.cli", *argv],
            capture_output=True,
            text=True,
            timeout=300,
            env=command_env,
            check=False,
        )
        assert done.returncode in (0, 1), done.stderr[-2000:]
        scanner.check(f"ecpay-lambda {' '.join(argv)} stdout", done.stdout)
        scanner.check(f"ecpay-lambda {' '.join(argv)} stderr", done.stderr)

    server.stop()
    server.scan_log()
    log_lines = len(server.log_text().splitlines())
    assert log_lines > 100, "the server logged too little to say anything about its logs"
    assert scanner.scanned > 300
    scanner.assert_clean()


def test_scanner_finds_a_secret_in_any_case() -> None:
    watch = SecretScanner()
    watch.add("HashKey", "pwFHCqoQZGmho4w6")
    watch.check("a log line", "hashkey%3dpwfhcqoqzgmho4w6%26choosepayment")  # a lower-cased MAC input
    watch.check("a response", b'{"ok": true}')
    assert len(watch.findings) == 1
    assert "<HashKey>" in watch.findings[0]
    assert "pwfhcqoqzgmho4w6" not in watch.findings[0].lower()  # the report itself never repeats it
