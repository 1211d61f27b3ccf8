"""The seed's React front end (hty85123/aws-lambda-ecpay-api, my-app/src/App.js), replayed over HTTP.

The seed's front end must keep working unchanged against this API, so this test sends exactly what
it sends — same paths, query strings, methods, headers and bodies, in the same order — and checks
every answer the way the seed's ``fetchData`` does (``response.ok``, a JSON or HTML Content-Type)
plus the fields the seed reads. What the seed does:

- page load: ``GET /users?page=1&pageSize=8`` (reads ``users[].user_id/username/email/balance``, ``total``)
- create user: ``POST /users`` ``{username, email}`` (JSON), then the users list again
- select user: ``GET /users/{id}/transactions?page=1&pageSize=6`` (reads ``transactions[].transaction_id/
  transaction_type/amount/status/created_at``, ``total``)
- deposit: ``POST /users/{id}/transactions`` ``{transaction_type: "deposit", amount: "<digits>",
  status: "pending"}`` — the amount is the <input>'s string — reads ``transaction_id``; the transactions
  again; then ``POST .../requestPayment`` with ``Content-Type: text/html`` and no body, puts the HTML
  answer in the page and submits its ``<form>`` (to ECPay: here the offline sandbox)
- withdraw: the same create with ``"withdraw"``, then ``PATCH .../{transactionId}`` with
  ``Content-Type: application/json`` and *no body* (the seed's "complete"), then users and transactions
- delete user: ``DELETE /users/{id}`` with ``Content-Type: application/json``, then the users list

Not replayed: CORS. The seed's page is served from another origin (its React dev server), so a
deployment serving it must list that origin in CORS_ORIGINS; the local stack serves same-origin.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode, urljoin

import pytest
from tests.support.stack_plugin import LocalStack, start_local_stack, stop_local_stack

USERS_PER_PAGE = 8  # usersPerPage in the seed
TRANSACTIONS_PER_PAGE = 6  # transactionsPerPage in the seed
BROWSER_ACCEPT = "*/*"  # what fetch() sends when the seed sets no Accept header
PAYMENT_DEADLINE_S = 60.0  # an upper bound for the sandbox's ReturnURL to land; not a timing assertion


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_plain = urllib.request.build_opener(_NoRedirect())


class Answer:
    """One HTTP answer."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


def http(
    method: str, url: str, *, headers: dict[str, str] | None = None, body: bytes | None = None
) -> Answer:
    """One request, redirects not followed, errors returned rather than raised."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with _plain.open(request, timeout=30) as response:
            return Answer(
                response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
            )
    except urllib.error.HTTPError as error:
        return Answer(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())


class SeedFrontEnd:
    """The seed's ``fetchData`` and the calls App.js makes, against ``base`` (its API_ID URL)."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")

    def fetch_data(
        self,
        path: str,
        *,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        body: str | None = None,
    ) -> Any:
        """App.js ``fetchData``: throws unless ``response.ok``; JSON or HTML by Content-Type, else throws."""
        all_headers = {"Accept": BROWSER_ACCEPT, **(headers or {})}
        answer = http(
            method,
            self.base + path,
            headers=all_headers,
            body=body.encode("utf-8") if body is not None else None,
        )
        assert 200 <= answer.status < 300, (
            f"the seed would throw 'Network response was not ok': {method} {path} -> {answer.status} "
            f"{answer.body[:300]!r}"
        )
        if "application/json" in answer.content_type:
            return json.loads(answer.body)
        if "text/html" in answer.content_type:
            return answer.text
        raise AssertionError(f"the seed would throw 'Unsupported content type: {answer.content_type}'")

    def fetch_users(self, page: int = 1) -> dict[str, Any]:
        data = self.fetch_data(f"/users?page={page}&pageSize={USERS_PER_PAGE}")
        assert isinstance(data, dict)
        assert isinstance(data["users"], list)
        assert isinstance(data["total"], int)
        for user in data["users"]:  # UserDataPanel renders these
            assert isinstance(user["user_id"], str) and user["user_id"]
            assert isinstance(user["username"], str)
            assert isinstance(user["email"], str)
            assert isinstance(user["balance"], int)
        return data

    def find_user(self, user_id: str) -> dict[str, Any]:
        """The user as the seed's paginated list shows it (clicking through its pages)."""
        page = 1
        while True:
            data = self.fetch_users(page)
            for user in data["users"]:
                if user["user_id"] == user_id:
                    return dict(user)
            if page * USERS_PER_PAGE >= data["total"] or not data["users"]:
                raise AssertionError(f"user {user_id} is not on any page of the seed's user list")
            page += 1

    def fetch_transactions(self, user_id: str, page: int = 1) -> dict[str, Any]:
        data = self.fetch_data(f"/users/{user_id}/transactions?page={page}&pageSize={TRANSACTIONS_PER_PAGE}")
        assert isinstance(data, dict)
        assert isinstance(data["transactions"], list)
        assert isinstance(data["total"], int)
        for tx in data["transactions"]:  # TransactionDataPanel renders these
            assert isinstance(tx["transaction_id"], str) and tx["transaction_id"]
            assert tx["transaction_type"] in ("deposit", "withdraw", "refund")
            assert isinstance(tx["amount"], int)
            assert isinstance(tx["status"], str)
            datetime.fromisoformat(tx["created_at"])  # `new Date(created_at)` must parse it
        return data

    def transaction(self, user_id: str, transaction_id: str) -> dict[str, Any]:
        """A transaction as the seed's list shows it (first page: the newest come first)."""
        for tx in self.fetch_transactions(user_id)["transactions"]:
            if tx["transaction_id"] == transaction_id:
                return dict(tx)
        raise AssertionError(f"transaction {transaction_id} is not on the seed's first transactions page")

    def create_user(self, username: str, email: str) -> None:
        self.fetch_data(
            "/users",
            method="POST",
            headers={"Content-Type": "application/json"},
            body=json.dumps({"username": username, "email": email}),
        )

    def create_transaction(self, user_id: str, amount: str, type_: str, status: str = "pending") -> str:
        data = self.fetch_data(
            f"/users/{user_id}/transactions",
            method="POST",
            headers={"Content-Type": "application/json"},
            body=json.dumps({"transaction_type": type_, "amount": amount, "status": status}),
        )
        assert isinstance(data, dict)
        transaction_id = data["transaction_id"]
        assert isinstance(transaction_id, str) and transaction_id
        return transaction_id

    def update_transaction(self, user_id: str, transaction_id: str) -> None:
        self.fetch_data(
            f"/users/{user_id}/transactions/{transaction_id}",
            method="PATCH",
            headers={"Content-Type": "application/json"},
        )

    def request_payment(self, user_id: str, transaction_id: str) -> str:
        html = self.fetch_data(
            f"/users/{user_id}/transactions/{transaction_id}/requestPayment",
            method="POST",
            headers={"Content-Type": "text/html"},
        )
        assert isinstance(html, str), "the seed puts the answer into innerHTML: it must be HTML"
        return html

    def delete_user(self, user_id: str) -> None:
        self.fetch_data(f"/users/{user_id}", method="DELETE", headers={"Content-Type": "application/json"})


class Forms(HTMLParser):
    """The <form>s of a page: action, method, fields (what ``form.submit()`` sends)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.links: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(
                {
                    "id": a.get("id", ""),
                    "action": a.get("action", ""),
                    "method": a.get("method", "get").upper(),
                    "fields": {},
                }
            )
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1]["fields"][a["name"]] = a.get("value", "")
        elif tag == "a" and a.get("id"):
            self.links[a["id"]] = a.get("href", "")


def forms_of(html: str) -> Forms:
    parser = Forms()
    parser.feed(html)
    return parser


def post_form(url: str, fields: dict[str, str]) -> Answer:
    """What a browser sends when it submits a form."""
    return http(
        "POST",
        url,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"},
        body=urlencode(fields).encode("utf-8"),
    )


def shopper_pays_on_ecpay(checkout_html: str, base: str) -> str:
    """The browser: submit the checkout form to ECPay (the sandbox), press "pay", go back to the shop.

    Returns the URL the browser finally lands on (the front end).
    """
    forms = forms_of(checkout_html).forms
    assert len(forms) >= 1, "requestPayment's HTML has a <form> for the seed to submit"
    form = forms[0]
    assert form["method"] == "POST"
    assert form["action"].endswith("/Cashier/AioCheckOut/V5"), form["action"]
    assert form["fields"]["TotalAmount"] == "500"
    assert form["fields"]["CheckMacValue"]
    merchant_trade_no = form["fields"]["MerchantTradeNo"]

    page = post_form(form["action"], form["fields"])
    assert page.status == 200, page.text[:500]
    assert 'id="trade"' in page.text, "the sandbox accepted the checkout and shows its payment page"

    # Press the page's pay button (its own form), as the shopper does.
    result = post_form(
        urljoin(form["action"], f"/sandbox/checkout/{merchant_trade_no}"), {"action": "pay", "do": "pay"}
    )
    assert result.status == 200, result.text[:500]

    # Back to the shop: ECPay posts the result to OrderResultURL, or the page links to ClientBackURL.
    parsed = forms_of(result.text)
    autopost = [f for f in parsed.forms if f["id"] == "autopost"]
    if autopost:
        back = post_form(urljoin(base + "/", autopost[0]["action"]), autopost[0]["fields"])
    else:
        assert "client-back" in parsed.links, "the sandbox's result page links back to the shop"
        back = http("GET", urljoin(base + "/", parsed.links["client-back"]))
    assert back.status in (302, 303), f"clientReturn redirects the browser to the front end: {back.status}"
    return back.headers["location"]


def wait_for_balance(seed: SeedFrontEnd, user_id: str, expected: int) -> dict[str, Any]:
    """Refetch the users list (as the seed does when it re-renders) until the balance is ``expected``."""
    deadline = time.monotonic() + PAYMENT_DEADLINE_S
    while True:
        user = seed.find_user(user_id)
        if user["balance"] == expected or time.monotonic() > deadline:
            return user
        time.sleep(0.2)


def test_the_seed_front_end_works_unchanged(local_stack: str) -> None:
    base = local_stack.rstrip("/")
    seed = SeedFrontEnd(base)
    tag = uuid.uuid4().hex[:8]

    # Page load.
    seed.fetch_users()

    # "Create New User" twice (one to use, one to delete).
    seed.create_user(f"seed-alice-{tag}", f"alice-{tag}@example.com")
    seed.create_user(f"seed-bob-{tag}", f"bob-{tag}@example.com")
    users = _all_users(seed)
    alice = next(u for u in users if u["username"] == f"seed-alice-{tag}")
    bob = next(u for u in users if u["username"] == f"seed-bob-{tag}")
    assert alice["email"] == f"alice-{tag}@example.com"
    assert alice["balance"] == 0

    # Select alice: her (empty) transactions.
    empty = seed.fetch_transactions(alice["user_id"])
    assert empty["transactions"] == []
    assert empty["total"] == 0

    # Deposit "500" (a string, from the <input>), then requestPayment and submit its form.
    deposit_id = seed.create_transaction(alice["user_id"], "500", "deposit")
    listed = seed.transaction(alice["user_id"], deposit_id)
    assert listed["transaction_type"] == "deposit"
    assert listed["amount"] == 500
    assert listed["status"] == "pending"  # the seed shows its "Payment" button for this status
    checkout_html = seed.request_payment(alice["user_id"], deposit_id)
    landing = shopper_pays_on_ecpay(checkout_html, base)
    assert f"transaction_id={deposit_id}" in landing

    # Back on the front end: the balance and the transaction.
    alice = wait_for_balance(seed, alice["user_id"], 500)
    assert alice["balance"] == 500
    assert seed.transaction(alice["user_id"], deposit_id)["status"] == "paid"

    # Withdraw "200": the seed checks the balance itself, creates, then PATCHes with no body.
    assert alice["balance"] >= 200
    withdraw_id = seed.create_transaction(alice["user_id"], "200", "withdraw")
    seed.update_transaction(alice["user_id"], withdraw_id)
    assert seed.find_user(alice["user_id"])["balance"] == 300
    withdrawal = seed.transaction(alice["user_id"], withdraw_id)
    assert withdrawal["transaction_type"] == "withdraw"
    assert withdrawal["amount"] == 200
    assert withdrawal["status"] == "completed"
    assert seed.fetch_transactions(alice["user_id"])["total"] == 2

    # Delete bob (no money, no transactions), then the list again.
    seed.delete_user(bob["user_id"])
    seed.fetch_users()


def _all_users(seed: SeedFrontEnd) -> list[dict[str, Any]]:
    """Every user, through the seed's pages (the seed shows 8 per page)."""
    users: list[dict[str, Any]] = []
    page = 1
    while True:
        data = seed.fetch_users(page)
        users.extend(data["users"])
        if page * USERS_PER_PAGE >= data["total"] or not data["users"]:
            return users
        page += 1


# --- the seed's users, as they use it: an abandoned checkout, a retry, a delete, back to the front end ---

SEED_FRONT_END = "http://localhost:3001/"  # the seed's React dev server (another origin, never contacted)


@pytest.fixture(scope="module")
def seed_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A local stack whose FRONTEND_URL is the seed's own front end, not the dashboard."""
    stack = start_local_stack(tmp_path_factory.mktemp("seed-stack"), {"FRONTEND_URL": SEED_FRONT_END})
    try:
        yield stack
    finally:
        stop_local_stack(stack.process)


def open_ecpay_page(checkout_html: str) -> str:
    """The browser submits requestPayment's form and lands on ECPay's page; returns its MerchantTradeNo."""
    form = forms_of(checkout_html).forms[0]
    page = post_form(form["action"], form["fields"])
    assert page.status == 200 and 'id="trade"' in page.text, page.text[:500]
    return str(form["fields"]["MerchantTradeNo"])


def test_the_seed_retries_an_abandoned_checkout_deletes_a_user_and_returns_to_its_front_end(
    seed_stack: LocalStack,
) -> None:
    base = seed_stack.rstrip("/")
    seed = SeedFrontEnd(base)
    tag = uuid.uuid4().hex[:8]

    seed.fetch_users()
    seed.create_user(f"seed-carol-{tag}", f"carol-{tag}@example.com")
    seed.create_user(f"seed-dave-{tag}", f"dave-{tag}@example.com")
    users = _all_users(seed)
    carol = next(u for u in users if u["username"] == f"seed-carol-{tag}")
    dave = next(u for u in users if u["username"] == f"seed-dave-{tag}")

    # Deposit, "Payment", ECPay's page opens... and the shopper closes the tab without paying.
    deposit_id = seed.create_transaction(carol["user_id"], "500", "deposit")
    first_mtn = open_ecpay_page(seed.request_payment(carol["user_id"], deposit_id))

    # Back in the seed: the deposit still reads "pending", so its "Payment" button is there again.
    abandoned = seed.transaction(carol["user_id"], deposit_id)
    assert abandoned["status"] == "pending"
    assert abandoned["status_detail"] == "awaiting_payment"  # the lifecycle, for whoever wants it
    # A client that asks for JSON explicitly (the dashboard, API clients) sees the lifecycle itself.
    detailed = http(
        "GET",
        f"{base}/users/{carol['user_id']}/transactions/{deposit_id}",
        headers={"Accept": "application/json"},
    )
    assert json.loads(detailed.body)["status"] == "awaiting_payment"

    # "Payment" again: a new ECPay attempt (a fresh MerchantTradeNo); this time the shopper pays.
    retry_html = seed.request_payment(carol["user_id"], deposit_id)
    assert forms_of(retry_html).forms[0]["fields"]["MerchantTradeNo"] != first_mtn
    landing = shopper_pays_on_ecpay(retry_html, base)

    # ECPay sends the browser back to the seed's front end (FRONTEND_URL), not to the dashboard.
    assert landing.startswith(SEED_FRONT_END), landing
    assert f"transaction_id={deposit_id}" in landing and f"user_id={carol['user_id']}" in landing
    carol = wait_for_balance(seed, carol["user_id"], 500)
    assert carol["balance"] == 500
    paid = seed.transaction(carol["user_id"], deposit_id)
    assert paid["status"] == "paid" and paid["status_detail"] == "paid"

    # Delete dave: he leaves the seed's list (and its total); carol stays.
    before = seed.fetch_users()["total"]
    seed.delete_user(dave["user_id"])
    after = seed.fetch_users()
    assert after["total"] == before - 1
    listed = {u["user_id"] for u in _all_users(seed)}
    assert dave["user_id"] not in listed and carol["user_id"] in listed
    # Operators still find him, closed.
    everyone = http("GET", f"{base}/users?page=1&pageSize=100&include_closed=true", headers={"Accept": "*/*"})
    closed = [u for u in json.loads(everyone.body)["users"] if u["user_id"] == dave["user_id"]]
    assert closed and closed[0]["status"] == "closed"
