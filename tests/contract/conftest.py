"""The contract suite runs against every store adapter through the parametrized ``store`` fixture.

``sqlite`` always (a tmp file); ``dynamodb`` through the moto plugin's ``dynamodb_store_url``;
``mysql`` / ``postgres`` when ``TEST_MYSQL_URL`` / ``TEST_POSTGRES_URL`` are set (skipped with the
reason otherwise, failed under ``CI=true``). Each test gets a clean database.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from ecpay_lambda.ecpay.testing import FakeEcpay
from ecpay_lambda.store import open_store
from ecpay_lambda.wallet.port import WalletStore
from ecpay_lambda.wallet.service import CheckoutUrls, EcpayConfig, WalletService

from .notices import CREDENTIALS, make_client

STORE_KINDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("dynamodb", id="dynamodb"),
    pytest.param("mysql", id="mysql", marks=pytest.mark.mysql),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    """Which adapter this run of a contract test uses."""
    return str(request.param)


@pytest.fixture
def store(store_kind: str, request: pytest.FixtureRequest) -> Iterator[WalletStore]:
    """A fresh, empty store of the adapter under test (schema created)."""
    url = request.getfixturevalue(f"{store_kind}_store_url")
    opened = open_store(str(url))
    opened.ensure_schema()
    yield opened
    dispose = getattr(opened, "dispose", None)
    if callable(dispose):
        dispose()


@dataclass
class Clock:
    """A settable clock (aware UTC); ``advance`` moves it on."""

    now: datetime = field(default_factory=lambda: datetime(2026, 11, 27, 4, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        """Move the clock forward."""
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    """The wallet's clock for this test."""
    return Clock()


@pytest.fixture
def fake_ecpay() -> FakeEcpay:
    """A fresh fake ECPay."""
    return FakeEcpay()


def make_service(
    store: WalletStore, fake: FakeEcpay, clock: Clock, *, cross_check: bool = False
) -> WalletService:
    """A WalletService over ``store`` talking to ``fake``."""
    config = EcpayConfig(
        credentials=CREDENTIALS,
        client=make_client(fake),
        cross_check_paid=cross_check,
        credit_check_code=CREDIT_CHECK_CODE,
    )
    return WalletService(store, config, clock=clock)


@pytest.fixture
def service(store: WalletStore, fake_ecpay: FakeEcpay, clock: Clock) -> WalletService:
    """The wallet over the store under test (no cross-check, as in the sandbox)."""
    return make_service(store, fake_ecpay, clock)


CREDIT_CHECK_CODE = 62861749  # the merchant's check code for CreditDetail/QueryTrade/V2 (any, for the fake)

URLS = CheckoutUrls(
    return_url="https://api.example.com/users/u/transactions/t/return",
    payment_info_url="https://api.example.com/users/u/transactions/t/paymentInfo",
    client_back_url="https://shop.example.com/back",
    order_result_url="https://api.example.com/users/u/transactions/t/clientReturn",
)
