"""The floor of our MariaDB writes: what the money rules make a request send, and nothing else.

``MoneyFloor`` does a request's HTTP-level work exactly as the seed's side does (``seed_baseline``: the
JSON body parsed and a JSON answer, or the ReturnURL's CheckMacValue verified), then sends our store's
statements for it as plain SQL on one kept PyMySQL connection, in the fewest turns the design allows:

- ``create transaction``: one batch: the deposit's ``INSERT`` (every column our store writes), the
  owner's conditional ``UPDATE`` (active, one open transaction more), its in-SQL row check, ``COMMIT``;
- ``ReturnURL``: the deposit's locked read (``SELECT ... FOR UPDATE``: a credit is decided on what is
  stored), then one batch: the notification record, the deposit's compare-and-set on its version, the
  owner's credit, a row check after each, the ledger entry, ``COMMIT``.

No framework, no pool, no decoding of the row read, no logging: no handler that keeps these rules
(and, on the ReturnURL, decides the credit on the stored deposit, as our SQL store does) can be faster
on this server. Its p50 against the seed's says how far below the seed such a handler can get at all;
ours against it says what our code adds. Only a speculative credit sent without the read (what the
DynamoDB store does, ``port.CreditGuess``) would have a lower floor.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from ecpay_lambda.store.sql_batch import ONE_ROW

_INSERT_TRANSACTION = (
    "INSERT INTO wallet_transactions (transaction_id, user_id, transaction_type, amount, status, version, "
    "created_us, updated_us, payment_method, merchant_trade_no, trade_no, payment_info, expires_us, "
    "refunded_amount, related_transaction_id, flags, attempts, next_check_us, check_count, paid_us, plan, "
    "invoice, invoice_due_us) VALUES (%s, %s, 'deposit', %s, %s, 1, %s, %s, %s, %s, NULL, '{}', NULL, 0, "
    "NULL, '[]', %s, NULL, 0, NULL, NULL, NULL, NULL)"
)
_OPEN_ONE_MORE = (
    "UPDATE wallet_users SET open_transactions = open_transactions + 1, updated_us = %s "
    "WHERE user_id = %s AND status = 'active'"
)
_LOCKED = (
    "SELECT transaction_id, user_id, transaction_type, amount, status, version, created_us, updated_us, "
    "payment_method, merchant_trade_no, trade_no, payment_info, expires_us, refunded_amount, "
    "related_transaction_id, flags, attempts, next_check_us, check_count, paid_us, plan, invoice, "
    "invoice_due_us FROM wallet_transactions WHERE transaction_id = %s FOR UPDATE"
)
_RECORD = (
    "INSERT INTO wallet_notifications (notification_id, received_us, route, raw_body, outcome, "
    "transaction_id, merchant_trade_no, dedupe_key) VALUES (%s, %s, 'return', %s, 'applied', %s, %s, %s)"
)
_PAID = (
    "UPDATE wallet_transactions SET user_id = %s, transaction_type = 'deposit', amount = %s, "
    "status = 'paid', version = %s, created_us = %s, updated_us = %s, payment_method = 'ALL', "
    "merchant_trade_no = %s, trade_no = %s, payment_info = %s, expires_us = NULL, refunded_amount = 0, "
    "related_transaction_id = NULL, flags = '[]', attempts = %s, next_check_us = NULL, check_count = 0, "
    "paid_us = %s, plan = NULL, invoice = NULL, invoice_due_us = NULL "
    "WHERE transaction_id = %s AND version = %s"
)
_PAID_UNREAD = (
    "UPDATE wallet_transactions SET status = 'paid', version = version + 1, updated_us = %s, trade_no = %s, "
    "payment_info = %s, attempts = %s, next_check_us = NULL, paid_us = %s WHERE transaction_id = %s "
    "AND user_id = %s AND amount = %s AND transaction_type = 'deposit' AND merchant_trade_no = %s "
    "AND status IN ('awaiting_payment', 'awaiting_offline_payment') AND invoice IS NULL"
)
_CREDIT = (
    "UPDATE wallet_users SET balance = balance + %s, open_transactions = open_transactions - 1, "
    "updated_us = %s WHERE user_id = %s AND status = 'active' AND open_transactions - 1 >= 0"
)
_LEDGER = (
    "INSERT INTO wallet_ledger (entry_id, user_id, transaction_id, kind, delta_balance, delta_held, "
    "created_us) VALUES (%s, %s, %s, 'deposit_paid', %s, 0, %s)"
)


def _us() -> int:
    return time.time_ns() // 1000


def _attempts(mtn: str, state: str, created_us: int, trade_no: str | None = None, **info: str) -> str:
    """One checkout attempt as our store keeps it (wallet/attempts.py's JSON)."""
    created = datetime.fromtimestamp(created_us / 1e6, UTC).isoformat(timespec="microseconds")
    attempt = {
        "created_at": created,
        "expires_at": None,
        "merchant_trade_no": mtn,
        "payment_info": info,
        "payment_method": "ALL",
        "state": state,
        "trade_no": trade_no,
    }
    return json.dumps([attempt], sort_keys=True)


def created_transaction(user_id: str, body: bytes, insert: Callable[[str, int], str]) -> str:
    """The seed's POST /users/{id}/transactions around ``insert(user_id, amount)`` (the new id): the
    JSON body parsed, the new transaction answered as JSON (shared by the seed's side and the floor)."""
    data = json.loads(body)
    amount = int(data["amount"])
    transaction_id = insert(user_id, amount)
    return json.dumps(
        {"id": transaction_id, "user_id": user_id, "type": data["transaction_type"], "amount": amount}
    )


class MoneyFloor:
    """Our statements, raw, on one kept connection (see the module's docstring)."""

    def __init__(self, args: dict[str, Any]) -> None:
        import pymysql  # noqa: PLC0415
        from pymysql.constants import CLIENT  # noqa: PLC0415

        flags = CLIENT.MULTI_STATEMENTS | CLIENT.FOUND_ROWS
        self.conn = pymysql.connect(**args, client_flag=flags, autocommit=False)
        self.cursor = self.conn.cursor()
        self.cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def _batch(self, *statements: str) -> None:
        self.cursor.execute(";\n".join([*statements, "COMMIT"]))
        while self.cursor.nextset():
            pass

    def create_user(self) -> str:
        """An active user of our table (set-up, not timed)."""
        user_id = uuid.uuid4().hex[:16]
        self.cursor.execute(
            "INSERT INTO wallet_users (user_id, username, email, balance, held, status, open_transactions, "
            "created_us, updated_us) VALUES (%s, %s, 'floor@example.com', 0, 0, 'active', 0, %s, %s)",
            (user_id, f"floor{user_id}", _us(), _us()),
        )
        self.conn.commit()
        return user_id

    def _insert_deposit(self, user_id: str, amount: int, awaiting: str | None = None) -> str:
        transaction_id = uuid.uuid4().hex[:12]
        now = _us()
        status, method, attempts = "pending", None, "[]"
        if awaiting is not None:  # checked out: attempt ``awaiting`` on ECPay's page
            status, method, attempts = "awaiting_payment", "ALL", _attempts(awaiting, "awaiting_payment", now)
        values = (transaction_id, user_id, amount, status, now, now, method, awaiting, attempts)
        mogrify = self.cursor.mogrify
        self._batch(
            mogrify(_INSERT_TRANSACTION, values),
            mogrify(_OPEN_ONE_MORE, (now, user_id)),
            ONE_ROW.sql,
        )
        return transaction_id

    def handle_create_transaction(self, user_id: str, body: bytes) -> str:
        """POST /users/{id}/transactions: the JSON body in, one batch, the new transaction out."""
        return created_transaction(user_id, body, self._insert_deposit)

    def awaiting(self, user_id: str, amount: int, mtn: str) -> str:
        """A deposit awaiting payment on attempt ``mtn`` (set-up, not timed)."""
        return self._insert_deposit(user_id, amount, awaiting=mtn)

    def return_url(self, transaction_id: str, body: bytes, unread_for: str | None = None) -> str:
        """Check the form's CheckMacValue, read the deposit locked, write the credit in one batch.

        ``unread_for`` (the callback URL's user id): no read; the credit is sent speculatively, its
        conditions in the compare-and-set (what a port.CreditGuess conditions, the attempts aside), as
        the DynamoDB store sends it: the floor of a handler that does not decide on the stored deposit.
        """
        from ecpay_lambda.ecpay.checkmac import verify_check_mac_value  # noqa: PLC0415

        from .wallet_ops import STAGE  # noqa: PLC0415

        raw = body.decode("utf-8")
        fields = dict(parse_qsl(raw, keep_blank_values=True))
        if not verify_check_mac_value(fields, STAGE.hash_key, STAGE.hash_iv):
            return "0|CheckMacValue error"
        mtn, trade_no, now = fields["MerchantTradeNo"], fields["TradeNo"], _us()
        paid_info = {"payment_type": fields["PaymentType"]}
        info = json.dumps(paid_info, sort_keys=True)
        mogrify = self.cursor.mogrify
        if unread_for is None:
            self.cursor.execute(_LOCKED, (transaction_id,))
            row = self.cursor.fetchone()
            user_id, amount, version, created = row[1], row[3], row[5], row[6]
            attempts = _attempts(mtn, "paid", created, trade_no, **paid_info)
            values = (user_id, amount, version + 1, created, now, mtn, trade_no, info, attempts, now)
            paid = mogrify(_PAID, (*values, transaction_id, version))
        else:
            user_id, amount = unread_for, int(fields["TradeAmt"])
            attempts = _attempts(mtn, "paid", now, trade_no, **paid_info)
            values = (now, trade_no, info, attempts, now, transaction_id, user_id, amount, mtn)
            paid = mogrify(_PAID_UNREAD, values)
        self._batch(
            mogrify(_RECORD, (uuid.uuid4().hex, now, raw, transaction_id, mtn, f"{mtn}:paid")),
            paid,
            ONE_ROW.sql,
            mogrify(_CREDIT, (amount, now, user_id)),
            ONE_ROW.sql,
            mogrify(_LEDGER, (uuid.uuid4().hex, user_id, transaction_id, amount, now)),
        )
        return "1|OK"
