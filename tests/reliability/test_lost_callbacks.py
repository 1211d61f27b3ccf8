"""Lost callbacks: the sandbox drops every ReturnURL and PaymentInfoURL; one reconciliation credits all.

Deposits paid by card, ATM, CVS and barcode; ECPay "sends" every notification into the void
(``drop_callbacks``). Nothing is credited — until one reconciliation pass asks QueryTradeInfo about
each deposit awaiting payment and credits every one exactly once. A second pass finds nothing to do,
and the notifications that finally arrive late are harmless duplicates.

The pass is the wallet's own ``reconcile`` use case (what the scheduled function and
``ecpay-lambda reconcile`` run) with its grace period set to zero and its schedule ignored
(``ignore_schedule``, what ``reconcile --now`` does): a checkout makes a deposit due a grace period
(15 minutes by default) later, and the grace only decides how soon after checkout it is looked at.
``make test``: 12 deposits; ``make soak``: 60.
"""

from __future__ import annotations

from datetime import timedelta

from ecpay_lambda.api.composition import build_service
from ecpay_lambda.config import parse_settings

from .conftest import ServerFactory, audit
from .harness import Api, size, wait_until

METHODS = ("Credit", "ATM", "CVS", "BARCODE")


def test_reconciliation_credits_every_lost_payment(
    sqlite_store_url: str, server_factory: ServerFactory
) -> None:
    count = size(12, 60)
    server = server_factory(sqlite_store_url, quiet=True)
    api = server.api(server.env["API_TOKEN"])
    ecpay = Api(server.base_url, scanner=server.scanner)  # the embedded sandbox (no token)
    assert ecpay.json("POST", "/sandbox/api/settings", {"drop_callbacks": True}).status == 200
    user_id = api.create_user()

    deposits: list[tuple[str, str, int]] = []
    for index in range(count):
        amount = 200 + index
        method = METHODS[index % len(METHODS)]
        transaction_id = api.create_deposit(user_id, amount)
        fields = api.checkout(user_id, transaction_id, method)
        assert ecpay.form("/Cashier/AioCheckOut/V5", fields).status == 200
        mtn = fields["MerchantTradeNo"]
        paid = ecpay.json("POST", f"/sandbox/api/trades/{mtn}/pay", {})
        assert paid.status == 200, paid.text
        assert paid.json()["status"] == "paid"
        deposits.append((transaction_id, mtn, amount))

    for _transaction_id, mtn, _amount in deposits:
        trade = ecpay.request("GET", f"/sandbox/api/trades/{mtn}").json()
        assert trade["callbacks"] and all(a["dropped"] for a in trade["callbacks"]), trade["callbacks"]
    assert api.user(user_id)["balance"] == 0
    for transaction_id, _mtn, _amount in deposits:
        assert api.transaction(user_id, transaction_id)["status"] == "awaiting_payment"

    settings = parse_settings(
        {"STORE_URL": sqlite_store_url, "ECPAY_ENV": "sandbox", "ECPAY_BASE_URL": server.base_url}
    )
    service = build_service(settings)
    service.reconcile_grace = timedelta(0)
    report = service.reconcile(limit=1_000, ignore_schedule=True)
    assert report.errors == [], report
    assert (report.checked, report.paid) == (count, count), report

    total = sum(amount for _, _, amount in deposits)
    assert api.user(user_id)["balance"] == total
    for transaction_id, _mtn, amount in deposits:
        detail = api.transaction(user_id, transaction_id)
        assert detail["status"] == "paid"
        assert [e["delta_balance"] for e in detail["ledger"] if e["kind"] == "deposit_paid"] == [amount]
    again = service.reconcile(limit=1_000, ignore_schedule=True)
    assert (again.checked, again.paid, again.errors) == (0, 0, []), again

    # The lost notifications finally arrive: acknowledged, and nothing is credited twice.
    assert ecpay.json("POST", "/sandbox/api/settings", {"drop_callbacks": False}).status == 200
    for _transaction_id, mtn, _amount in deposits:
        assert ecpay.json("POST", f"/sandbox/api/trades/{mtn}/resend", {"kind": "return"}).status == 200

    def acknowledged() -> bool:
        return all(
            ecpay.request("GET", f"/sandbox/api/trades/{mtn}").json()["callbacks"][-1]["ok"]
            for _, mtn, _ in deposits
        )

    assert wait_until(acknowledged, timeout=60)
    assert api.user(user_id)["balance"] == total
    report_after = audit(sqlite_store_url)
    assert report_after.clean, report_after.mismatches
