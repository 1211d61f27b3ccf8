"""HTTP statuses belong to the API: each domain error class maps to one, decided in api/errors.py."""

from __future__ import annotations

import inspect

import pytest

from ecpay_lambda.api.errors import STATUS_OF, to_http_error
from ecpay_lambda.wallet import errors
from ecpay_lambda.wallet.errors import WalletError

DOMAIN_ERRORS = [
    cls
    for _, cls in inspect.getmembers(errors, inspect.isclass)
    if issubclass(cls, WalletError) and cls.__module__ == errors.__name__
]


def test_domain_errors_carry_no_http_status() -> None:
    assert DOMAIN_ERRORS  # the probe sees the classes
    assert [cls.__name__ for cls in DOMAIN_ERRORS if "status" in vars(cls)] == []


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (errors.InvalidRequest("bad"), 400),
        (errors.AmountOutOfRange("too much"), 400),  # no entry of its own: answers as InvalidRequest
        (errors.NotFound("no such user"), 404),
        (errors.UserClosed("closed"), 409),
        (errors.InsufficientBalance("short"), 409),
        (errors.InvalidState("paid"), 409),
        (errors.UserNotEmpty("money left"), 409),
        (errors.DepositPayable("payable"), 409),
        (errors.RefundNotPossible("refund_pending", "wait"), 409),
        (errors.Conflict("taken"), 409),
        (errors.InvalidPlan("exec_times"), 400),
        (errors.PeriodActionRefused("no declined charge"), 409),
        (errors.IdempotencyMismatch("other body"), 422),
        (errors.PaymentGatewayError("down"), 502),
        (WalletError("generic"), 400),
    ],
)
def test_each_domain_error_answers_its_status_with_its_code(error: WalletError, status: int) -> None:
    mapped = to_http_error(error)
    assert (mapped.status, mapped.code, mapped.message) == (status, error.code, error.message)


def test_every_status_is_a_client_error_or_the_gateways() -> None:
    assert all(400 <= status < 500 or status == 502 for status in STATUS_OF.values())
    assert all(cls in DOMAIN_ERRORS or cls is WalletError for cls in STATUS_OF)
