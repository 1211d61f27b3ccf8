"""Ids, idempotency fingerprints, callback body recording and the import discipline of the wallet."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import pytest

from ecpay_lambda.ecpay.merchant_trade_no import new_merchant_trade_no, reference_of
from ecpay_lambda.wallet import ids
from ecpay_lambda.wallet.errors import InvalidRequest
from ecpay_lambda.wallet.idempotency import fingerprint, validate_key
from ecpay_lambda.wallet.models import PaymentMethod, TransactionType
from ecpay_lambda.wallet.notifications import MAX_RECORDED_CHARS, body_text


def test_transaction_ids_fit_a_merchant_trade_no_and_come_back() -> None:
    made = {ids.new_transaction_id() for _ in range(2000)}
    assert len(made) == 2000
    for tid in list(made)[:50]:
        assert ids.is_transaction_id(tid)
        assert reference_of(new_merchant_trade_no(tid)) == tid
    assert not ids.is_transaction_id("ABCDEFGHIJKL")
    assert not ids.is_transaction_id("abc")


def test_user_ids_and_time_ordered_ids() -> None:
    user_id = ids.new_user_id()
    assert len(user_id) == 16 and user_id.startswith("u") and user_id.isalnum()
    entries = [ids.new_entry_id() for _ in range(200)]
    assert len(set(entries)) == 200
    # The time part (after the prefix, 10 digits) never goes backwards.
    stamps = [e[1:11] for e in entries]
    assert stamps == sorted(stamps)
    assert ids.new_notification_id().startswith("n")


def test_fingerprint_distinguishes_every_field_of_the_request() -> None:
    base = fingerprint(TransactionType.DEPOSIT, 100, PaymentMethod.CREDIT)
    assert base == fingerprint(TransactionType.DEPOSIT, 100, PaymentMethod.CREDIT)
    others = {
        fingerprint(TransactionType.DEPOSIT, 101, PaymentMethod.CREDIT),
        fingerprint(TransactionType.WITHDRAW, 100, PaymentMethod.CREDIT),
        fingerprint(TransactionType.DEPOSIT, 100, None),
        fingerprint(TransactionType.DEPOSIT, "100", PaymentMethod.CREDIT),
        fingerprint(TransactionType.DEPOSIT, True, PaymentMethod.CREDIT),
    }
    assert base not in others and len(others) == 5


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\tkey", "中文"])
def test_bad_idempotency_keys(key: str) -> None:
    with pytest.raises(InvalidRequest):
        validate_key(key)


def test_good_idempotency_key() -> None:
    validate_key("order-2026-11-27 #1")
    validate_key("x" * 255)


def test_body_text_keeps_evidence() -> None:
    form = "RtnMsg=交易成功&X=1".encode()
    assert body_text(form, is_base64=False) == "RtnMsg=交易成功&X=1"
    assert body_text(base64.b64encode(form), is_base64=True) == "RtnMsg=交易成功&X=1"
    assert body_text(b"not base64!!", is_base64=True) == "not base64!!"
    assert body_text(b"\xff\xfe=1", is_base64=False) == "\ufffd\ufffd=1"
    assert body_text(b"a=\x00", is_base64=False) == "a=\ufffd"
    long = body_text(b"a" * (MAX_RECORDED_CHARS + 10), is_base64=False)
    assert long.startswith("a" * MAX_RECORDED_CHARS) and long.endswith("[truncated 10 chars]")


def test_the_notification_path_stays_light() -> None:
    # The notification Lambda imports the service: no pydantic, SQLAlchemy, Powertools or boto3.
    code = (
        "import json, sys; import ecpay_lambda.wallet.service, ecpay_lambda.store;"
        "print(json.dumps(sorted(m for m in ('pydantic', 'sqlalchemy', 'aws_lambda_powertools', 'boto3')"
        " if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
