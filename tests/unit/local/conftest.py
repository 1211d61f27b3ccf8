"""Fixtures for the local-mode unit tests: signed checkout forms for the sandbox."""

from __future__ import annotations

from collections.abc import Callable
from itertools import count

import pytest

from ecpay_lambda.ecpay.checkmac import check_mac_value
from ecpay_lambda.ecpay.credentials import MerchantCredentials

STAGE = MerchantCredentials.stage_test_merchant()
_numbers = count(1)

CheckoutFactory = Callable[..., dict[str, str]]


@pytest.fixture
def checkout_form() -> CheckoutFactory:
    """Build a signed AioCheckOut form: ``checkout_form(return_url, ChoosePayment="ATM", ...)``."""

    def build(
        return_url: str, *, sign: bool = True, drop: tuple[str, ...] = (), **overrides: str
    ) -> dict[str, str]:
        fields = {
            "MerchantID": STAGE.merchant_id,
            "MerchantTradeNo": f"T{next(_numbers):05d}x{id(build) % 100000}",
            "MerchantTradeDate": "2024/11/27 15:50:00",
            "PaymentType": "aio",
            "TotalAmount": "500",
            "TradeDesc": "Wallet deposit",
            "ItemName": "Wallet points",
            "ReturnURL": return_url,
            "ChoosePayment": "Credit",
            "EncryptType": "1",
        }
        fields.update(overrides)
        if sign:
            fields["CheckMacValue"] = check_mac_value(fields, STAGE.hash_key, STAGE.hash_iv)
        for name in drop:  # removed after signing: the form arrives without it
            fields.pop(name, None)
        return fields

    return build
