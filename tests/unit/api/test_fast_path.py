"""The lean request path (api/fast/) answers exactly as the Powertools resolver would, or hands on.

- Differential: each event (the hot routes' normal requests and hypothesis-made odd ones: bodies,
  queries, paths, headers, both auth modes, the seed's Accept) is handled twice from the same store
  state, with the same ids and clock: once by the handler as deployed (lean path first), once with the
  lean path switched off (the resolver alone). Status, headers (in order), body bytes and the whole
  store afterwards (an SQL dump) must be equal.
- Property: whenever the lean checks accept a body, pydantic's models accept it with the same values.
- Rendering: the lean renderer writes what ``model_dump_json(by_alias=True)`` writes, byte for byte.
- The lean route table names the resolver's own routes and expressions (and so the OpenAPI's).
"""

from __future__ import annotations

import copy
import itertools
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tests.unit.api.apitest import TOKEN, LambdaContext, make_event

from ecpay_lambda.api import composition, handlers
from ecpay_lambda.api.app import create_app, openapi_document
from ecpay_lambda.api.fast import checks, render, serve
from ecpay_lambda.api.fast.table import HOT_ROUTES
from ecpay_lambda.api.schemas import (
    TransactionCreate,
    TransactionDetailOut,
    TransactionList,
    TransactionOut,
    UserCreate,
    UserList,
    UserOut,
)
from ecpay_lambda.config import load_settings
from ecpay_lambda.store import open_store
from ecpay_lambda.wallet import ids
from ecpay_lambda.wallet.models import (
    Attempt,
    AttemptState,
    LedgerEntry,
    NotificationRecord,
    Page,
    PaymentMethod,
    Transaction,
    TransactionStatus,
    TransactionType,
    User,
    UserStatus,
)
from ecpay_lambda.wallet.service import TransactionDetail

NOW = datetime(2026, 11, 28, 2, 0, 0, 123456, tzinfo=UTC)
OPERATOR_CLAIMS = {"sub": "ops-1", "cognito:groups": "[support operators]"}


# --- two stores, one request, both paths -------------------------------------------------------------


@dataclass
class Side:
    """One store and the service on it."""

    path: Path
    service: Any

    def dump(self) -> list[str]:
        """The whole database as SQL statements (what the store holds, row by row)."""
        with sqlite3.connect(self.path) as db:
            # Less the schema version and health probe rows, stamped with the wall time of their write.
            wall_time = ('INSERT INTO "wallet_schema_version"', 'INSERT INTO "wallet_health"')
            return [line for line in db.iterdump() if not line.startswith(wall_time)]


class Twins:
    """Two stores in the same state; each event is answered on one by each path."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch
        self.counter = itertools.count()
        monkeypatch.setattr(ids, "_random_base36", self._next_id)
        monkeypatch.setattr(ids, "_time_ordered", lambda prefix: prefix + self._next_id(18))
        self.lean = Side(tmp_path / "lean.db", self._service(tmp_path / "lean.db"))
        self.full = Side(tmp_path / "full.db", self._service(tmp_path / "full.db"))
        self.served: list[bool] = []

        def watched(event: Any, settings: Any) -> Any:
            answer = serve.serve(event, settings)
            self.served.append(answer is not None)
            return answer

        self.watched = watched
        # The same two users, each with a deposit, on both sides (the same ids: the counter restarts).
        for side in (self.lean, self.full):
            self.counter = itertools.count()
            self.users = [side.service.create_user(n, f"{n}@example.com").user_id for n in ("amy", "bob")]
            self.transactions = [
                side.service.create_transaction(u, TransactionType.DEPOSIT, 700)[0].transaction_id
                for u in self.users
            ]

    def _service(self, path: Path) -> Any:
        return composition.build_service(load_settings(), store=self._store(path), clock=now)

    def _store(self, path: Path) -> Any:
        store = open_store(f"sqlite:///{path}")
        store.ensure_schema()
        return store

    def _next_id(self, length: int) -> str:
        return ids._base36(next(self.counter), length)

    def answer(self, event: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], bool]:
        """The handler's answer with the lean path, without it, and whether the lean path served it."""
        start = next(self.counter)
        self.counter = itertools.count(start)
        self.served.clear()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(handlers, "serve", self.watched)
            composition.set_service(self.lean.service)
            lean = _call(event)
        served = bool(self.served and self.served[0])
        self.counter = itertools.count(start)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(handlers, "serve", lambda event, settings: None)
            composition.set_service(self.full.service)
            full = _call(event)
        composition.set_service(None)
        return lean, full, served

    def check(self, event: dict[str, Any]) -> bool:
        """Assert both paths answer ``event`` alike and leave the stores alike; True when lean served it."""
        lean, full, served = self.answer(event)
        assert lean == full, event
        assert list(lean.get("headers", {}).items()) == list(full.get("headers", {}).items())
        assert self.lean.dump() == self.full.dump(), event
        return served


def _call(event: dict[str, Any]) -> dict[str, Any]:
    # An event API Gateway never sends (no stage) makes the resolver raise: both paths must, alike.
    try:
        return handlers.handler(copy.deepcopy(event), LambdaContext())
    except Exception as exc:
        return {"raised": type(exc).__name__}


def now() -> datetime:
    """The fixed clock of both sides."""
    return NOW


@pytest.fixture
def twins(api_env: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Twins]:
    """Token mode (the default)."""
    yield Twins(tmp_path, api_env)
    composition.set_service(None)


@pytest.fixture
def jwt_twins(api_env: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Twins]:
    """AUTH_MODE=jwt."""
    api_env.delenv("API_TOKEN")
    api_env.setenv("AUTH_MODE", "jwt")
    composition.reset()
    yield Twins(tmp_path, api_env)
    composition.set_service(None)


def event_for(
    method: str,
    path: str,
    *,
    body: Any = None,
    raw_body: str | None = None,
    content_type: str | None = "application/json",
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    claims: dict[str, Any] | None = None,
    stage: str | None = "Prod",
    route_key: str = "$default",
) -> dict[str, Any]:
    """A payload-2.0 event for ``path`` (stage in rawPath unless ``$default``), token or JWT."""
    all_headers = {"authorization": f"Bearer {TOKEN}"} if claims is None else {}
    if (body is not None or raw_body is not None) and content_type is not None:
        all_headers["content-type"] = content_type
    all_headers.update(headers or {})
    text = raw_body if raw_body is not None else (None if body is None else json.dumps(body))
    event = make_event(method, path, body=text, query=query)
    event["headers"] = all_headers
    event["routeKey"] = route_key
    if stage is None:
        del event["requestContext"]["stage"]
    elif stage == "$default":
        event["requestContext"]["stage"] = "$default"
        event["rawPath"] = path
    if claims is not None:
        event["requestContext"]["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    return event


# --- the normal cases: served lean, identical --------------------------------------------------------


def _normal_events(twins: Twins, claims: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    amy, bob = twins.users
    tx = twins.transactions[0]
    kw: dict[str, Any] = {"claims": claims}
    return [
        event_for("POST", "/users", body={"username": " dan ", "email": "dan@x.test", "extra": 1}, **kw),
        event_for("GET", f"/users/{amy}", **kw),
        event_for("GET", f"/users/{bob}", **kw),
        event_for(
            "POST", f"/users/{amy}/transactions", body={"transaction_type": "deposit", "amount": 500}, **kw
        ),
        event_for(
            "POST",
            f"/users/{amy}/transactions",
            body={
                "transaction_type": "deposit",
                "amount": "300",
                "payment_method": "ATM",
                "status": "pending",
            },
            headers={"idempotency-key": "order-1"},
            **kw,
        ),
        # The same key and body again: a replay (200, Idempotent-Replayed).
        event_for(
            "POST",
            f"/users/{amy}/transactions",
            body={
                "transaction_type": "deposit",
                "amount": "300",
                "payment_method": "ATM",
                "status": "pending",
            },
            headers={"idempotency-key": "order-1"},
            **kw,
        ),
        # The same key, another body: the wallet's 422, answered alike.
        event_for(
            "POST",
            f"/users/{amy}/transactions",
            body={"transaction_type": "deposit", "amount": 301},
            headers={"idempotency-key": "order-1"},
            **kw,
        ),
        event_for(
            "POST", f"/users/{amy}/transactions", body={"transaction_type": "withdraw", "amount": 9}, **kw
        ),
        event_for("GET", f"/users/{amy}/transactions", **kw),
        event_for("GET", f"/users/{amy}/transactions", query={"page": "2", "pageSize": "1"}, **kw),
        event_for("GET", f"/users/{amy}/transactions", headers={"accept": "*/*"}, **kw),
        event_for("GET", f"/users/{amy}/transactions/{tx}", **kw),
        event_for("GET", f"/users/{amy}/transactions/{tx}", headers={"accept": "*/*"}, **kw),
        event_for("GET", f"/users/{amy}/transactions/000000000000", **kw),
        event_for("GET", "/users/nobody", **kw),
        event_for("GET", "/healthz", **kw),
        event_for("GET", f"/users/{amy}", stage="$default", **kw),
        event_for("GET", "/users", **kw),
        event_for("GET", "/users", query={"include_closed": "true", "pageSize": "1", "page": "2"}, **kw),
        event_for("GET", "/users", query={"include_closed": "false"}, headers={"accept": "*/*"}, **kw),
        # PATCH: the seed's empty body completes; action/status; disagreeing (422); a deposit (409).
        event_for(
            "POST", f"/users/{amy}/transactions", body={"transaction_type": "withdraw", "amount": 1}, **kw
        ),
        event_for(
            "PATCH",
            f"/users/{amy}/transactions/{tx}",
            body={"action": "complete", "status": "cancelled"},
            **kw,
        ),
        event_for("PATCH", f"/users/{amy}/transactions/{tx}", body={"action": "complete"}, **kw),
        event_for("PATCH", f"/users/{amy}/transactions/{tx}", **kw),
        event_for("PATCH", f"/users/{amy}/transactions/{tx}", body={"status": "cancelled", "x": 1}, **kw),
    ]


def test_the_hot_routes_normal_requests_are_served_lean_and_answered_alike(twins: Twins) -> None:
    for event in _normal_events(twins):
        assert twins.check(event), event


def test_jwt_end_users_and_operators_are_answered_alike(jwt_twins: Twins) -> None:
    amy, bob = jwt_twins.users
    for claims in (OPERATOR_CLAIMS, {"sub": amy}, {"sub": "new-identity"}, {"client_id": "c", "sub": "c"}):
        for event in _normal_events(jwt_twins, claims):
            assert jwt_twins.check(event), (claims, event)
    # Another user's wallet is a 404 on either path.
    lean, _, served = jwt_twins.answer(event_for("GET", f"/users/{bob}", claims={"sub": amy}))
    assert served and lean["statusCode"] == 404


def test_the_cases_it_hands_on_are_answered_by_the_resolver(twins: Twins) -> None:
    amy = twins.users[0]
    handed_on = [
        event_for("POST", "/users", body={"username": "", "email": "e@x.test"}),
        event_for("POST", "/users", raw_body="{not json"),
        event_for("POST", "/users", body={"username": "x", "email": "e@x.test"}, content_type=None),
        event_for("POST", "/users", body={"username": "x", "email": "e@x.test"}, content_type="text/plain"),
        event_for("POST", f"/users/{amy}/transactions", body={"transaction_type": "deposit", "amount": True}),
        event_for("POST", f"/users/{amy}/transactions", body={"transaction_type": "deposit", "amount": 5.0}),
        event_for(
            "POST",
            f"/users/{amy}/transactions",
            body={"transaction_type": "deposit", "amount": 500, "recurring": {"period_type": "M"}},
        ),
        event_for("GET", f"/users/{amy}/transactions", query={"pageSize": "0"}),
        event_for("GET", f"/users/{amy}/transactions", query={"page_size": "5"}),
        event_for("GET", "/users/" + "u" * 65),
        event_for("GET", "/users", query={"include_closed": "1"}),
        event_for("PATCH", f"/users/{amy}/transactions/x", body={"action": "Complete"}),
        event_for("PATCH", f"/users/{amy}/transactions/x", raw_body=""),
        event_for("GET", "/events"),
    ]
    for event in handed_on:
        assert not twins.check(event), event


def test_with_cors_an_origin_goes_to_the_resolver(api_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    api_env.setenv("CORS_ORIGINS", "https://shop.test")
    composition.reset()
    twins = Twins(tmp_path, api_env)
    amy = twins.users[0]
    assert not twins.check(event_for("GET", f"/users/{amy}", headers={"origin": "https://shop.test"}))
    assert twins.check(event_for("GET", f"/users/{amy}"))  # no Origin: no CORS headers either way


# --- hypothesis: odd requests -----------------------------------------------------------------------

_TEXT = st.text(max_size=70)
_NAMES = st.one_of(
    st.sampled_from(
        ["amy", " amy ", "a" * 64, "a" * 65, "", " ", "a\nb", "\u3000名\u3000", "x\x7f", "\ud800"]
    ),
    _TEXT,
    st.integers(),
    st.none(),
    st.booleans(),
)
_EMAILS = st.one_of(
    st.sampled_from(["a@b", " a@b ", "a@@b", "@b", "a@b\n", "名@例.台灣", "a" * 250 + "@b.c"]),
    _TEXT,
    st.none(),
)
_AMOUNTS = st.one_of(
    st.sampled_from([True, False, 12.0, "012", 0]),
    st.sampled_from(
        [0, 1, -1, 100_000_000, 100_000_001, True, False, "12", "012", " 12", "1e3", 12.0, 12.5, "", None]
    ),
    st.integers(min_value=-5, max_value=200_000_000),
    st.from_regex(r"\A[0-9]{1,10}\Z"),
)
_OPTIONAL = st.sampled_from(["absent", None])


def _maybe(draw: st.DrawFn, body: dict[str, Any], key: str, values: st.SearchStrategy[Any]) -> None:
    if draw(st.booleans()):
        body[key] = draw(values)


@st.composite
def user_bodies(draw: st.DrawFn) -> Any:
    """POST /users bodies: mostly objects with odd fields, sometimes not an object."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.one_of(st.lists(st.integers(), max_size=2), st.text(max_size=5), st.none()))
    body: dict[str, Any] = {}
    _maybe(draw, body, "username", _NAMES)
    _maybe(draw, body, "email", _EMAILS)
    _maybe(draw, body, "extra", st.integers())
    if draw(st.booleans()):
        body.setdefault("username", "amy")
        body.setdefault("email", "amy@x.test")
    return body


@st.composite
def transaction_bodies(draw: st.DrawFn) -> Any:
    """POST transactions bodies: mostly a type and an amount (some odd), now and then more fields."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.one_of(st.lists(st.integers(), max_size=2), st.integers()))
    body: dict[str, Any] = {}
    types = st.sampled_from(["deposit", "withdraw", "refund", "Deposit", 1, None])
    body["transaction_type"] = draw(st.one_of(st.sampled_from(["deposit", "withdraw"]), types))
    body["amount"] = draw(_AMOUNTS)
    if draw(st.integers(0, 3)) == 0:
        del body[draw(st.sampled_from(["transaction_type", "amount"]))]
    if draw(st.integers(0, 2)) == 0:
        _maybe(
            draw, body, "payment_method", st.sampled_from([None, "Credit", "credit", "ATM", "CVS", "ALL", 3])
        )
        _maybe(draw, body, "status", st.sampled_from([None, "pending", "paid", 0]))
        _maybe(draw, body, "note", _TEXT)
    if draw(st.integers(0, 4)) == 0:
        recurring = st.sampled_from([None, {}, {"period_type": "M", "frequency": 1, "exec_times": 2}])
        _maybe(draw, body, "recurring", recurring)
        _maybe(draw, body, "invoice", st.sampled_from([None, {}, {"kind": "email"}]))
    return body


_QUERY_VALUES = st.one_of(
    st.sampled_from(
        ["1", "2", "0", "-1", "01", " 1", "1 ", "+1", "1000000", "1000001", "100", "101", "1.0", "", "a"]
    ),
    st.from_regex(r"\A[0-9]{1,8}\Z"),
)
_CURSORS = st.one_of(
    st.sampled_from(["", "abc", "a=", "a b", "!!", "x" * 513, "x" * 512]),
    st.from_regex(r"\A[A-Za-z0-9_-]{1,20}\Z"),
)


@st.composite
def queries(draw: st.DrawFn) -> dict[str, str] | None:
    """A listing's query parameters, some odd."""
    query: dict[str, str] = {}
    _maybe(draw, query, "page", _QUERY_VALUES)
    _maybe(draw, query, "pageSize", _QUERY_VALUES)
    _maybe(draw, query, "cursor", _CURSORS)
    _maybe(draw, query, draw(st.sampled_from(["page_size", "Page", "x"])), _QUERY_VALUES)
    return query or None


_CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json",
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        "Application/JSON",
        " application/json",
        "application/jsonx",
        "text/plain",
        None,
    ]
)
_KEYS = st.one_of(
    st.sampled_from(["k-1", "", "a,b", "k" * 255, "k" * 256, " k ", "鍵"]),
    st.from_regex(r"\A[A-Za-z0-9]{1,8}\Z"),
)


@st.composite
def events(draw: st.DrawFn, users: list[str], transactions: list[str]) -> dict[str, Any]:
    """An event for a hot route (or near one), with odd paths, bodies, queries and headers."""
    user = draw(
        st.one_of(
            st.sampled_from([*users, "nobody", "u" * 64, "u" * 65, "a b", "x%2Fy", "é"]),
            st.text(min_size=1, max_size=3),
        )
    )
    transaction = draw(st.sampled_from([*transactions, "000000000000", "t" * 65]))
    routes = ["create_user", "get_user", "create_tx", "list_tx", "get_tx", "health", "list_users", "patch"]
    route = draw(st.sampled_from(routes))
    headers: dict[str, str] = {}
    if draw(st.booleans()):
        headers["accept"] = draw(st.sampled_from(["*/*", "application/json", " */* "]))
    kw: dict[str, Any] = {
        "stage": draw(st.sampled_from(["Prod", "Prod", "$default", None])),
        "content_type": draw(_CONTENT_TYPES),
        "headers": headers,
    }
    if route == "create_user":
        return event_for("POST", "/users", body=draw(user_bodies()), **kw)
    if route == "get_user":
        return event_for("GET", f"/users/{user}", **kw)
    if route == "create_tx":
        if draw(st.booleans()):
            headers[draw(st.sampled_from(["idempotency-key", "Idempotency-Key"]))] = draw(_KEYS)
        return event_for("POST", f"/users/{user}/transactions", body=draw(transaction_bodies()), **kw)
    if route == "list_tx":
        body = draw(st.sampled_from([None, None, None, {"x": 1}]))
        return event_for("GET", f"/users/{user}/transactions", query=draw(queries()), body=body, **kw)
    if route == "get_tx":
        return event_for("GET", f"/users/{user}/transactions/{transaction}", **kw)
    if route == "list_users":
        query = draw(queries())
        if draw(st.booleans()):
            query = {
                **(query or {}),
                "include_closed": draw(st.sampled_from(["true", "false", "1", "True", ""])),
            }
        return event_for("GET", "/users", query=query, **kw)
    if route == "patch":
        body = draw(
            st.one_of(
                st.none(),
                st.fixed_dictionaries(
                    {},
                    optional={
                        "action": st.sampled_from(["complete", "cancel", "Complete", None, 1]),
                        "status": st.sampled_from(["completed", "cancelled", "pending", None]),
                        "note": st.integers(),
                    },
                ),
                st.sampled_from([[], "x"]),
            )
        )
        return event_for("PATCH", f"/users/{user}/transactions/{transaction}", body=body, **kw)
    return event_for("GET", "/healthz", **kw)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_odd_requests_are_answered_alike(twins: Twins, data: st.DataObject) -> None:
    event = data.draw(events(twins.users, twins.transactions))
    # --hypothesis-show-statistics tells how many went each way.
    hypothesis.event("served lean" if twins.check(event) else "handed to the resolver")


# --- the lean checks never accept what pydantic refuses, nor read it otherwise -----------------------


def _body_event(body: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return event_for("POST", "/users/u/transactions", body=body, headers=headers)


@settings(max_examples=400, deadline=None)
@given(body=user_bodies())
def test_an_accepted_user_body_is_one_pydantic_accepts_with_the_same_values(body: Any) -> None:
    accepted = checks.create_user(_body_event(body))
    if accepted is not None:
        model = UserCreate.model_validate(body)
        assert (model.username, model.email) == (accepted.username, accepted.email)


@settings(max_examples=400, deadline=None)
@given(body=transaction_bodies())
@example(body={"transaction_type": "deposit", "amount": True})
@example(body={"transaction_type": "deposit", "amount": 12.0})
@example(body={"transaction_type": "withdraw", "amount": "012"})
def test_an_accepted_transaction_body_is_one_pydantic_accepts_with_the_same_values(body: Any) -> None:
    accepted = checks.create_transaction(_body_event(body))
    if accepted is not None:
        model = TransactionCreate.model_validate(body)
        assert model.recurring is None and model.invoice is None
        assert TransactionType(model.transaction_type) is accepted.transaction_type
        assert (model.amount, model.payment_method) == (accepted.amount, accepted.payment_method)
        assert type(model.amount) is int


def test_the_checks_accept_the_common_cases() -> None:
    # The counter-check: the properties above would hold for checks that accept nothing.
    user = checks.create_user(_body_event({"username": " amy ", "email": "a@b"}))
    assert user == checks.CreateUser("amy", "a@b")
    tx = checks.create_transaction(
        _body_event({"transaction_type": "withdraw", "amount": "12"}, {"idempotency-key": "k"})
    )
    assert tx == checks.CreateTransaction(TransactionType.WITHDRAW, 12, None, "k")
    query = checks.list_query(
        event_for("GET", "/x", query={"page": "3", "pageSize": "100", "cursor": "ab_-"})
    )
    assert query == checks.ListQuery(3, 100, "ab_-")


# --- the lean rendering is the models' ----------------------------------------------------------------

_TIMES = st.one_of(
    st.datetimes(timezones=st.just(UTC)),
    st.datetimes(),
    st.datetimes(timezones=st.sampled_from([timezone(timedelta(hours=8)), timezone(timedelta(seconds=30))])),
)
_STRS = st.text(max_size=12)


@st.composite
def transactions_(draw: st.DrawFn) -> Transaction:
    """Transactions of every shape the plain renderer writes (and some it leaves to the model)."""
    attempts = draw(
        st.lists(
            st.builds(
                Attempt,
                merchant_trade_no=_STRS,
                payment_method=st.none() | st.sampled_from(PaymentMethod),
                state=st.sampled_from(AttemptState),
                created_at=_TIMES,
                trade_no=st.none() | _STRS,
                payment_info=st.dictionaries(_STRS, _STRS, max_size=2),
                expires_at=st.none() | _TIMES,
            ),
            max_size=2,
        )
    )
    return Transaction(
        transaction_id=draw(_STRS),
        user_id=draw(_STRS),
        transaction_type=draw(st.sampled_from(TransactionType)),
        amount=draw(st.integers(-(2**40), 2**40)),
        status=draw(st.sampled_from(TransactionStatus)),
        version=1,
        created_at=draw(_TIMES),
        updated_at=draw(_TIMES),
        payment_method=draw(st.none() | st.sampled_from(PaymentMethod)),
        merchant_trade_no=draw(st.none() | _STRS),
        trade_no=draw(st.none() | _STRS),
        payment_info=draw(st.dictionaries(_STRS, _STRS, max_size=3)),
        expires_at=draw(st.none() | _TIMES),
        refunded_amount=draw(st.integers(0, 10**9)),
        related_transaction_id=draw(st.none() | _STRS),
        flags=frozenset(draw(st.lists(_STRS, max_size=3))),
        attempts=tuple(attempts),
        paid_at=draw(st.none() | _TIMES),
    )


@settings(max_examples=200, deadline=None)
@given(tx=transactions_(), users=st.lists(st.tuples(_STRS, _STRS, _TIMES), max_size=2))
def test_the_lean_rendering_is_byte_for_byte_the_models(tx: Transaction, users: list[Any]) -> None:
    assert render.transaction(tx) == TransactionOut.of(tx).model_dump_json(by_alias=True)
    listing = Page([tx, tx], 7, "next")
    expected = TransactionList(
        transactions=[TransactionOut.of(tx)] * 2, total=7, page=2, pageSize=5, next_cursor="next"
    )
    assert render.transaction_page(listing, 2, 5) == expected.model_dump_json(by_alias=True)
    ledger = [LedgerEntry("e1", "u", tx.transaction_id, "deposit_paid", 5, -5, t) for _, _, t in users]
    notes = [NotificationRecord("n1", t, "return", "{}", "applied", None, name) for name, _, t in users]
    detail = TransactionDetail(tx, ledger, notes)
    assert render.transaction_detail(detail) == TransactionDetailOut.of_detail(detail).model_dump_json(
        by_alias=True
    )
    records = []
    for name, email, created in users:
        user = User("u1", name, email, 5, 0, UserStatus.ACTIVE, 0, created, created)
        assert render.user(user) == UserOut.of(user).model_dump_json(by_alias=True)
        records.append(user)
    expected_users = UserList(users=[UserOut.of(u) for u in records], total=3, page=1, pageSize=2)
    assert render.user_page(Page(records, 3), 1, 2) == expected_users.model_dump_json(by_alias=True)


def test_the_plain_cases_are_rendered_without_the_models(monkeypatch: pytest.MonkeyPatch) -> None:
    # The counter-check: the comparison above would also hold if every answer went to the models.
    user = User("u1", "名", "a@b", 5, 0, UserStatus.ACTIVE, 0, NOW, NOW)
    assert render._lean(lambda: render._user(user)) == UserOut.of(user).model_dump_json(by_alias=True)


# --- the lean route table is the resolver's ---------------------------------------------------------


def test_the_hot_routes_are_the_resolvers_routes_with_its_expressions() -> None:
    app = create_app()
    registered = {(r.method, r.path): r for r in app._static_routes + app._dynamic_routes}
    for hot in HOT_ROUTES:
        route = registered[(hot.method, hot.rule)]
        assert route.func.__name__ == hot.name
        assert route.rule.pattern == hot.regex.pattern
    # ... and each is in the OpenAPI document with its method (healthz included).
    spec = json.loads(openapi_document(app))
    for hot in HOT_ROUTES:
        path = hot.rule.replace("<", "{").replace(">", "}")
        assert hot.method.lower() in spec["paths"][path], hot


def test_no_earlier_route_of_the_resolver_can_take_a_hot_routes_path() -> None:
    # The resolver tries static routes first, then dynamic ones in registration order: a path a hot
    # rule matches must match no route the resolver would try before it.
    app = create_app()
    ordered = app._static_routes + app._dynamic_routes
    samples = ["u1", "x", "transactions", "reopen", "a b", "~!$&'()*+,;=:@%<>[]{}|^"]
    for hot in HOT_ROUTES:
        position = next(i for i, r in enumerate(ordered) if (r.method, r.path) == (hot.method, hot.rule))
        for value in samples:
            path = hot.rule.replace("<userId>", value).replace("<transactionId>", value)
            assert hot.regex.match(path)
            for earlier in ordered[:position]:
                if earlier.method == hot.method:
                    assert not earlier.rule.match(path), (hot.rule, earlier.path, path)
