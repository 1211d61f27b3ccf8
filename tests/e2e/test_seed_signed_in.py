"""The seed's front end, signed in (issue 15): its request sequence as an end user of ``AUTH_MODE=jwt``.

The same calls as tests/e2e/test_seed_frontend.py (paths, methods, headers, bodies: the amount a string
from the <input>, ``requestPayment`` with ``Content-Type: text/html`` and the HTML form submitted to
ECPay), each carrying ``Authorization: Bearer <the user's token>`` — the one line a front end for end
users adds to the seed's ``fetchData``. The token is the local issuer's (``ecpay-lambda token --user``),
checked by ``serve``'s gateway as the HTTP API's JWT authorizer checks a provider's.

What a signed-in user's front end does differently from the seed's operator view: it creates *its own*
wallet (bound to the sign-in; the answer names it, and a second create answers the same one) and reads
it with ``GET /users/{id}`` instead of paging through every user, which is an operator's route (404).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.test_seed_frontend import (
    PAYMENT_DEADLINE_S,
    TRANSACTIONS_PER_PAGE,
    USERS_PER_PAGE,
    SeedFrontEnd,
    http,
    shopper_pays_on_ecpay,
)
from tests.support.stack_plugin import LocalStack, start_local_stack, stop_local_stack

from ecpay_lambda.commands.token import claims_for
from ecpay_lambda.local.issuer import issue, load_key


@pytest.fixture(scope="module")
def jwt_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A local stack with ``AUTH_MODE=jwt``: every management route needs a local issuer's token."""
    stack = start_local_stack(tmp_path_factory.mktemp("jwt-seed-stack"), {"AUTH_MODE": "jwt"})
    try:
        yield stack
    finally:
        stop_local_stack(stack.process)


def token_for(stack: LocalStack, *, user: str | None = None, operator: bool = False) -> str:
    """What ``ecpay-lambda token --user USER`` (or ``--operator``) prints for this stack's data folder."""
    data_dir = Path(stack.log_path).parent
    return issue(load_key(data_dir), claims_for(user, operator=operator, env={}))


class SignedInSeed(SeedFrontEnd):
    """The seed's ``fetchData`` with the signed-in user's bearer token on every call."""

    def __init__(self, base: str, token: str) -> None:
        super().__init__(base)
        self.token = token

    def fetch_data(
        self,
        path: str,
        *,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        body: str | None = None,
    ) -> Any:
        """The seed's ``fetchData`` plus ``Authorization: Bearer``."""
        signed = {**(headers or {}), "Authorization": f"Bearer {self.token}"}
        return super().fetch_data(path, method=method, headers=signed, body=body)

    def status(self, method: str, path: str, payload: Any = None) -> int:
        """The status of one JSON call with this token (for what the seed must not reach)."""
        body = None if payload is None else json.dumps(payload).encode("utf-8")
        headers = {"Accept": "*/*", "Content-Type": "application/json"}
        headers["Authorization"] = f"Bearer {self.token}"
        return http(method, self.base + path, headers=headers, body=body).status

    def create_own_user(self, username: str, email: str) -> dict[str, Any]:
        """The seed's "Create New User" as an end user: the answer is their own wallet."""
        data = self.fetch_data(
            "/users",
            method="POST",
            headers={"Content-Type": "application/json"},
            body=json.dumps({"username": username, "email": email}),
        )
        assert isinstance(data, dict) and isinstance(data["user_id"], str) and data["user_id"]
        return data

    def own_user(self, user_id: str) -> dict[str, Any]:
        """``GET /users/{id}``: the balance a signed-in user's page shows."""
        data = self.fetch_data(f"/users/{user_id}")
        assert isinstance(data, dict) and data["user_id"] == user_id
        assert isinstance(data["balance"], int)
        return data


def wait_for_own_balance(seed: SignedInSeed, user_id: str, expected: int) -> dict[str, Any]:
    """Refetch the user (as the page does when it re-renders) until the balance is ``expected``."""
    deadline = time.monotonic() + PAYMENT_DEADLINE_S
    while True:
        user = seed.own_user(user_id)
        if user["balance"] == expected or time.monotonic() > deadline:
            return user
        time.sleep(0.2)


def test_a_signed_in_user_runs_the_seeds_deposit_flow_on_their_own_wallet_only(jwt_stack: LocalStack) -> None:
    base = jwt_stack.rstrip("/")
    tag = uuid.uuid4().hex[:8]
    # The sign-in subject is the identity provider's, not a wallet id: the wallet is bound to it.
    seed = SignedInSeed(base, token_for(jwt_stack, user=f"idp-subject-{tag}"))
    operator = SignedInSeed(base, token_for(jwt_stack, operator=True))
    other = operator.create_own_user(f"seed-erin-{tag}", f"erin-{tag}@example.com")  # an operator creates

    # Without a token the gateway (the authorizer) refuses before any handler runs.
    listing = f"/users?page=1&pageSize={USERS_PER_PAGE}"
    assert http("GET", base + listing, headers={"Accept": "*/*"}).status == 401
    # The seed's page load lists every user: an operator's route, so an end user gets 404.
    assert seed.status("GET", listing) == 404

    # "Create New User": the user's own wallet, bound to the sign-in; again answers the same wallet.
    mine = seed.create_own_user(f"seed-frank-{tag}", f"frank-{tag}@example.com")
    again = seed.create_own_user(f"seed-frank2-{tag}", f"frank2-{tag}@example.com")
    assert again["user_id"] == mine["user_id"] and again["username"] == f"seed-frank-{tag}"
    user_id = mine["user_id"]
    assert seed.own_user(user_id)["balance"] == 0
    empty = seed.fetch_transactions(user_id)
    assert empty["transactions"] == [] and empty["total"] == 0

    # Deposit "500" (the <input>'s string), then requestPayment as HTML and the shopper pays on ECPay.
    deposit_id = seed.create_transaction(user_id, "500", "deposit")
    assert seed.transaction(user_id, deposit_id)["status"] == "pending"
    landing = shopper_pays_on_ecpay(seed.request_payment(user_id, deposit_id), base)
    assert f"transaction_id={deposit_id}" in landing and f"user_id={user_id}" in landing

    # Back on the front end: the balance and the paid deposit.
    assert wait_for_own_balance(seed, user_id, 500)["balance"] == 500
    assert seed.transaction(user_id, deposit_id)["status"] == "paid"
    listed = seed.fetch_data(f"/users/{user_id}/transactions?page=1&pageSize={TRANSACTIONS_PER_PAGE}")
    assert listed["total"] == 1

    # A withdrawal request is the user's; completing it (the seed's PATCH) is an operator's (404).
    withdraw_id = seed.create_transaction(user_id, "200", "withdraw")
    assert seed.status("PATCH", f"/users/{user_id}/transactions/{withdraw_id}") == 404
    assert seed.own_user(user_id)["held"] == 200
    operator.update_transaction(user_id, withdraw_id)
    assert seed.own_user(user_id)["balance"] == 300
    assert seed.transaction(user_id, withdraw_id)["status"] == "completed"

    # Another user's wallet: 404 on every route, exactly as for an id that does not exist.
    theirs = other["user_id"]
    for method, path, payload in [
        ("GET", f"/users/{theirs}", None),
        ("GET", f"/users/{theirs}/transactions?page=1&pageSize={TRANSACTIONS_PER_PAGE}", None),
        ("POST", f"/users/{theirs}/transactions", {"transaction_type": "deposit", "amount": "500"}),
        ("DELETE", f"/users/{theirs}", None),
        ("GET", "/users/no-such-user", None),
    ]:
        assert seed.status(method, path, payload) == 404, (method, path)
    assert operator.own_user(theirs)["balance"] == 0  # untouched
    # And the user's own deposit cannot be reached through someone else's path.
    assert seed.status("POST", f"/users/{theirs}/transactions/{deposit_id}/requestPayment") == 404
