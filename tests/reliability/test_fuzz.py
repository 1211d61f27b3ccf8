"""Fuzzing the notification path: atheris (coverage-guided) on the parser, Hypothesis on the whole callback.

- ``test_atheris_parser``: libFuzzer-driven mutation of raw and re-signed bodies (fuzz_parser.py),
  seeded with genuine notifications and a dictionary of ECPay field names. ``make test``: 100,000
  runs or 60 s; ``make soak``: 2,000,000 runs or 600 s.
- ``test_generated_callbacks_change_nothing``: Hypothesis generates notifications (fields from
  ECPay's vocabulary and arbitrary text, signed in every wrong way) and sends each through the
  wallet's callback handler against a SQLite store: none may be accepted or change a balance or a
  transaction, and every one is recorded. ``make test``: 300 examples; ``make soak``: 5,000.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from ecpay_lambda.api.composition import build_service
from ecpay_lambda.config import parse_settings
from ecpay_lambda.ecpay.checkmac import MD5, check_mac_value
from ecpay_lambda.ecpay.credentials import MerchantCredentials
from ecpay_lambda.store import sql_schema
from ecpay_lambda.store.sql import SqlStore
from ecpay_lambda.wallet.models import TransactionType
from ecpay_lambda.wallet.service import CheckoutUrls, WalletService

from .harness import STAGE, in_ci, paid_fields, size, soak

HERE = Path(__file__).resolve().parent
FIELD_NAMES = (
    "MerchantID", "MerchantTradeNo", "StoreID", "RtnCode", "RtnMsg", "TradeNo", "TradeAmt", "PaymentDate",
    "PaymentType", "PaymentTypeChargeFee", "TradeDate", "SimulatePaid", "CustomField1", "CheckMacValue",
    "BankCode", "vAccount", "ExpireDate", "PaymentNo", "Barcode1", "gwsr", "amount", "PlatformID",
)  # fmt: skip


def _seed_corpus(directory: Path) -> None:
    """Genuine notifications (each mode byte in front) for libFuzzer to start from."""
    directory.mkdir(parents=True, exist_ok=True)
    from urllib.parse import urlencode  # noqa: PLC0415

    fields = paid_fields("abcdefghijkl0123456z", 100)
    fields["CheckMacValue"] = check_mac_value(fields, STAGE.hash_key, STAGE.hash_iv)
    body = urlencode(fields).encode()
    info = dict(fields, RtnCode="2", BankCode="812", vAccount="9103522175887271", ExpireDate="2030/01/01")
    info["CheckMacValue"] = check_mac_value(info, STAGE.hash_key, STAGE.hash_iv)
    import base64  # noqa: PLC0415

    for index, sample in enumerate(
        (b"\x00" + body, b"\x02" + body, b"\x04" + base64.b64encode(body), b"\x03" + urlencode(info).encode())
    ):
        (directory / f"seed{index}").write_bytes(sample)


def _dictionary(path: Path) -> None:
    tokens = [f"{name}=" for name in FIELD_NAMES] + ["&", "%", "%FF", "%E4%BA%A4", "+", "=", "RtnCode=1"]
    path.write_text("".join(f'"{t}"\n' for t in tokens), encoding="utf-8")


# Past pytest's 300 s default at the soak size: libFuzzer alone may run 600 s (its -max_total_time).
@pytest.mark.timeout(size(300, 900))
def test_atheris_parser() -> None:
    if importlib.util.find_spec("atheris") is None:
        message = "atheris is not installed (its wheels are Linux x86_64, Python < 3.12 only)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    # Its own directory, not pytest's tmp_path: libFuzzer writes the growing corpus there for minutes,
    # and pytest deletes old base directories when other sessions start. Kept when a crash is found.
    tmp_path = Path(tempfile.mkdtemp(prefix="ecpay-fuzz-"))
    corpus = tmp_path / "corpus"
    _seed_corpus(corpus)
    dictionary = tmp_path / "ecpay.dict"
    _dictionary(dictionary)
    runs, seconds = (2_000_000, 600) if soak() else (100_000, 60)
    argv = [
        sys.executable,
        str(HERE / "fuzz_parser.py"),
        str(corpus),
        f"-runs={runs}",
        f"-max_total_time={seconds}",
        f"-dict={dictionary}",
        f"-artifact_prefix={tmp_path}/",
        "-print_final_stats=1",
        "-max_len=4096",
    ]
    process = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        cwd=tmp_path,
        env=os.environ.copy(),
        check=False,
    )
    output = process.stdout + process.stderr
    if process.returncode != 0:
        at = output.find("=== Uncaught Python exception")
        detail = output[at : at + 3000] if at >= 0 else output[-4000:]
        pytest.fail(f"atheris found a failing input (kept with the corpus in {tmp_path}):\n{detail}")
    shutil.rmtree(tmp_path, ignore_errors=True)
    done = re.search(r"Done (\d+) runs", output)
    assert done is not None, output[-2000:]
    coverage = re.findall(r"cov: (\d+)", output)
    print(f"atheris: {done.group(1)} runs, coverage {coverage[-1] if coverage else '?'} edges")


# --- Hypothesis: the whole callback path, in process ----------------------------------------------


@pytest.fixture(scope="module")
def wallet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A WalletService on a fresh SQLite file, one user, one deposit awaiting payment."""
    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'wallet.db'}"
    service: WalletService = build_service(
        parse_settings({"STORE_URL": url, "ECPAY_ENV": "sandbox", "ECPAY_BASE_URL": "http://127.0.0.1:9"})
    )
    user = service.create_user("fuzz", "fuzz@example.com")
    deposit, _ = service.create_transaction(user.user_id, TransactionType.DEPOSIT, 300)
    base = f"http://127.0.0.1:9/users/{user.user_id}/transactions/{deposit.transaction_id}"
    form = service.checkout(
        user.user_id,
        deposit.transaction_id,
        CheckoutUrls(f"{base}/return", f"{base}/paymentInfo", f"{base}/clientReturn"),
    )
    yield {
        "service": service,
        "user": user.user_id,
        "deposit": deposit.transaction_id,
        "form": form,
        "url": url,
    }


def _count_records(store: SqlStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(sql_schema.notifications)).scalar_one())


_TEXT = st.text(st.characters(codec="utf-8"), max_size=40)  # UTF-8 has no surrogates
_WRONG_KEYS = st.sampled_from(["sha256-wrong-key", "md5-right-key", "unsigned", "stale-mac", "iv-as-key"])


@st.composite
def forged_bodies(draw: st.DrawFn, mtn: str, amount: int) -> tuple[str, bytes]:
    """A notification for the awaiting deposit, broken in one of several ways."""
    from urllib.parse import urlencode  # noqa: PLC0415

    fields = paid_fields(mtn, amount, trade_no=draw(st.from_regex(r"2[0-9]{19}", fullmatch=True)))
    for name in draw(st.lists(st.sampled_from(FIELD_NAMES), max_size=4)):
        fields[name] = draw(_TEXT)
    if draw(st.booleans()):
        for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=3)):
            fields.pop(name, None)
    how = draw(_WRONG_KEYS)
    if how == "sha256-wrong-key":
        other = MerchantCredentials(STAGE.merchant_id, draw(st.text(min_size=1, max_size=20)), STAGE.hash_iv)
        if other.hash_key == STAGE.hash_key:
            return how, b""
        fields["CheckMacValue"] = check_mac_value(fields, other.hash_key, other.hash_iv)
    elif how == "md5-right-key":
        fields["CheckMacValue"] = check_mac_value(fields, STAGE.hash_key, STAGE.hash_iv, MD5)
    elif how == "stale-mac":
        mac = check_mac_value(fields, STAGE.hash_key, STAGE.hash_iv)
        fields["TradeAmt"] = str(amount + draw(st.integers(1, 10**6)))
        fields["CheckMacValue"] = mac
    elif how == "iv-as-key":
        fields["CheckMacValue"] = check_mac_value(fields, STAGE.hash_iv, STAGE.hash_key)
    else:
        fields.pop("CheckMacValue", None)
    body = urlencode(fields).encode("utf-8")
    if draw(st.booleans()):
        raw = draw(st.binary(max_size=64))
        body = body + b"&" + raw if draw(st.booleans()) else raw + body
    return how, body


def test_generated_callbacks_change_nothing(wallet: dict[str, Any]) -> None:
    service: WalletService = wallet["service"]
    store = service.store
    assert isinstance(store, SqlStore)
    user_id, deposit_id = wallet["user"], wallet["deposit"]
    mtn = wallet["form"].fields["MerchantTradeNo"]
    before_user = store.get_user(user_id)
    before_txn = store.get_transaction(deposit_id)
    start = _count_records(store)
    sent = 0

    @settings(
        max_examples=size(300, 5_000),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(forged_bodies(mtn, 300), st.booleans())
    def check(forged: tuple[str, bytes], route_given: bool) -> None:
        nonlocal sent
        _how, body = forged
        reply = service.handle_return(body, route_transaction_id=deposit_id if route_given else None)
        sent += 1
        assert not reply.accepted and reply.body.startswith("0|"), (reply, body[:300])

    check()
    assert store.get_user(user_id) == before_user
    assert store.get_transaction(deposit_id) == before_txn
    assert store.list_ledger(user_id=user_id) == []
    assert _count_records(store) - start == sent
