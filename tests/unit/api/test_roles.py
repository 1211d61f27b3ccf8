"""Roles in AUTH_MODE=jwt: an end user's JWT reaches only its own wallet; operators reach everything.

The attack of issue 15, replayed: with one user's JWT, list every user, withdraw another user's money
and complete that withdrawal. Each answers 404 (never 403) and changes nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.unit.api.apitest import Api
from tests.unit.api.conftest import create_deposit
from tests.unit.api.test_payments import pay

from ecpay_lambda.api import auth, composition
from ecpay_lambda.config import parse_settings

OPERATOR_CLAIMS = {"sub": "ops-1", "cognito:groups": "[support operators]"}


@pytest.fixture
def jwt_env(api_env: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """AUTH_MODE=jwt: the authorizer's verified claims are the only credentials."""
    api_env.delenv("API_TOKEN")
    api_env.setenv("AUTH_MODE", "jwt")
    composition.reset()
    return api_env


@pytest.fixture
def operator(jwt_env: pytest.MonkeyPatch) -> Api:
    """A caller whose JWT carries the operator group."""
    return Api(token=None, claims=OPERATOR_CLAIMS)


def _user(operator: Api, name: str) -> str:
    resp = operator.request("POST", "/users", json_body={"username": name, "email": f"{name}@example.com"})
    assert resp.status == 201, resp.body
    return str(resp.json()["user_id"])


def as_user(user_id: str) -> Api:
    """A caller whose JWT names wallet ``user_id`` in the default claim (``sub``)."""
    return Api(token=None, claims={"sub": user_id, "cognito:groups": "[customers]"})


def test_one_users_jwt_cannot_list_withdraw_or_complete_for_another(operator: Api) -> None:
    alice, bob = _user(operator, "alice"), _user(operator, "bob")
    pay(operator, bob, 1000)
    mallory = as_user(alice)
    listing = mallory.request("GET", "/users")
    assert listing.status == 404 and listing.error_code == "route_not_found"
    assert "bob" not in listing.body
    steal = mallory.request(
        "POST", f"/users/{bob}/transactions", json_body={"transaction_type": "withdraw", "amount": 1000}
    )
    assert steal.status == 404 and steal.error_code == "not_found"
    # Bob asks for a withdrawal himself; Alice cannot complete (or cancel) it.
    own = as_user(bob).request(
        "POST", f"/users/{bob}/transactions", json_body={"transaction_type": "withdraw", "amount": 400}
    )
    assert own.status == 201, own.body
    tx_path = f"/users/{bob}/transactions/{own.json()['transaction_id']}"
    for body in (None, {"action": "cancel"}):
        done = mallory.request("PATCH", tx_path, **({} if body is None else {"json_body": body}))
        assert done.status == 404
    # Nor can Bob complete his own: that is the operator's job.
    assert as_user(bob).request("PATCH", tx_path).status == 404
    after = operator.request("GET", f"/users/{bob}").json()
    assert (after["balance"], after["held"]) == (600, 400)
    assert operator.request("GET", tx_path).json()["status"] == "pending"
    assert operator.request("PATCH", tx_path).json()["status"] == "completed"


def test_another_users_wallet_answers_exactly_like_an_unknown_user(operator: Api) -> None:
    alice, bob = _user(operator, "alice"), _user(operator, "bob")
    deposit = create_deposit(operator, bob)
    mallory = as_user(alice)
    for path in (f"/users/{bob}", f"/users/{bob}/transactions", f"/users/{bob}/transactions/x"):
        other = mallory.request("GET", path)
        unknown = mallory.request("GET", path.replace(bob, "u_does_not_exist"))
        assert other.status == unknown.status == 404
        assert other.json() == {"error": {"code": "not_found", "message": f"user {bob} not found"}}
        assert unknown.error_code == "not_found"
    tx = deposit["transaction_id"]
    for action in ("requestPayment", "sync"):
        assert mallory.request("POST", f"/users/{bob}/transactions/{tx}/{action}").status == 404


def test_an_end_user_reaches_everything_of_its_own_wallet(operator: Api) -> None:
    alice = _user(operator, "alice")
    me = as_user(alice)
    assert me.request("GET", f"/users/{alice}").json()["user_id"] == alice
    deposit = create_deposit(me, alice, 300)
    form = me.request(
        "POST",
        f"/users/{alice}/transactions/{deposit['transaction_id']}/requestPayment",
        headers={"Accept": "application/json"},
    )
    assert form.status == 200 and form.json()["fields"]["TotalAmount"] == "300"
    listing = me.request("GET", f"/users/{alice}/transactions").json()
    assert [t["transaction_id"] for t in listing["transactions"]] == [deposit["transaction_id"]]
    detail = me.request("GET", f"/users/{alice}/transactions/{deposit['transaction_id']}")
    assert detail.status == 200 and "ledger" in detail.json()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/users", None),
        ("DELETE", "/users/{me}", None),
        ("POST", "/users/{me}/reopen", None),
        ("PATCH", "/users/{me}/transactions/{tx}", {"action": "cancel"}),
        ("POST", "/users/{me}/transactions/{tx}/refund", {"amount": 1}),
    ],
)
def test_operator_routes_answer_404_to_an_end_user(
    operator: Api, method: str, path: str, body: dict[str, Any] | None
) -> None:
    me = _user(operator, "alice")
    tx = create_deposit(operator, me)["transaction_id"]
    url = path.format(me=me, tx=tx)
    kwargs: dict[str, Any] = {} if body is None else {"json_body": body}
    refused = as_user(me).request(method, url, **kwargs)
    assert refused.status == 404 and refused.error_code == "route_not_found"
    # The same request by an operator gets past the role check (whatever the wallet then says).
    allowed = operator.request(method, url, **kwargs)
    assert allowed.status != 404 or allowed.error_code != "route_not_found", allowed.body


def test_a_jwt_naming_no_wallet_reaches_nothing(operator: Api) -> None:
    alice = _user(operator, "alice")
    nobody = Api(token=None, claims={"email": "x@example.com"})  # verified, but no `sub`
    assert nobody.request("GET", f"/users/{alice}").status == 404
    assert nobody.request("GET", "/users").status == 404


def test_claim_names_are_configurable(jwt_env: pytest.MonkeyPatch) -> None:
    jwt_env.setenv("JWT_USER_CLAIM", "custom:wallet_user_id")
    jwt_env.setenv("JWT_OPERATOR_GROUP", "")
    jwt_env.setenv("JWT_OPERATOR_SCOPE", "wallet/admin")
    composition.reset()
    by_scope = Api(token=None, claims={"sub": "svc", "scope": "openid wallet/admin"})
    alice = _user(by_scope, "alice")
    group_only = Api(token=None, claims={"sub": "ops", "cognito:groups": "[operators]"})
    assert group_only.request("GET", "/users").status == 404  # groups are switched off
    me = Api(token=None, claims={"sub": "someone-else", "custom:wallet_user_id": alice})
    assert me.request("GET", f"/users/{alice}").status == 200
    assert Api(token=None, claims={"sub": alice}).request("GET", f"/users/{alice}").status == 404


def test_principal_reads_the_forms_api_gateway_passes_claims_in() -> None:
    settings = parse_settings({"ECPAY_CREDENTIALS": "none", "AUTH_MODE": "jwt", "JWT_OPERATOR_SCOPE": "ops"})

    def event(claims: dict[str, Any], scopes: list[str] | None = None) -> dict[str, Any]:
        return {"requestContext": {"authorizer": {"jwt": {"claims": claims, "scopes": scopes}}}}

    assert auth.principal(event({"cognito:groups": "[a operators]"}), settings).operator
    assert auth.principal(event({"cognito:groups": ["operators"]}), settings).operator
    assert not auth.principal(event({"cognito:groups": "[operators-lite]", "sub": "u"}), settings).operator
    assert auth.principal(event({"sub": "u"}, scopes=["ops"]), settings).operator
    assert auth.principal(event({"sub": "u", "scp": "read ops"}), settings).operator
    user = auth.principal(event({"sub": "u_1"}), settings)
    assert user == auth.Principal(operator=False, user_id="u_1", identity="u_1")
    assert user.may_reach("u_1") and not user.may_reach("u_2") and not user.may_reach("u_1 ")
    assert auth.principal(event({}), settings) == auth.Principal(operator=False)
    token_mode = parse_settings({"ECPAY_BASE_URL": "http://127.0.0.1:1", "API_TOKEN": "t"})
    assert auth.principal({}, token_mode) is auth.OPERATOR


def test_an_end_user_creates_one_wallet_bound_to_their_identity(operator: Api) -> None:
    # The identity provider's subject is not a wallet id: the wallet is found through the binding.
    me = Api(token=None, claims={"sub": "idp-subject-1"})
    first = me.request("POST", "/users", json_body={"username": "amy", "email": "amy@example.com"})
    assert first.status == 201, first.body
    uid = first.json()["user_id"]
    again = me.request("POST", "/users", json_body={"username": "amy2", "email": "amy2@example.com"})
    assert again.status == 200 and again.json() == first.json()  # one wallet per identity
    assert me.request("GET", f"/users/{uid}").json()["user_id"] == uid
    assert create_deposit(me, uid, 200)["amount"] == 200
    other = Api(token=None, claims={"sub": "idp-subject-2"})
    assert other.request("GET", f"/users/{uid}").status == 404
    theirs = other.request("POST", "/users", json_body={"username": "ben", "email": "ben@example.com"})
    assert theirs.status == 201 and theirs.json()["user_id"] != uid
    taken = other.request("POST", "/users", json_body={"username": "amy", "email": "x@example.com"})
    assert taken.status == 200 and taken.json()["user_id"] == theirs.json()["user_id"]
    listing = operator.request("GET", "/users").json()
    assert {u["user_id"] for u in listing["users"]} == {uid, theirs.json()["user_id"]}
    # An operator's create binds nothing: it answers 201 every time.
    made = operator.request("POST", "/users", json_body={"username": "cat", "email": "cat@example.com"})
    assert made.status == 201


# A Cognito client-credentials access token as API Gateway passes it: the app client's id is both
# ``sub`` and ``client_id``, no user name, the granted scopes space-separated in ``scope``.
def _client_claims(scope: str) -> dict[str, str]:
    return {
        "sub": "6script0client0id",
        "client_id": "6script0client0id",
        "token_use": "access",
        "scope": scope,
    }


def test_a_scripts_client_credentials_token_with_the_operator_scope_is_an_operator(
    jwt_env: pytest.MonkeyPatch,
) -> None:
    jwt_env.setenv("JWT_OPERATOR_SCOPE", "wallet/operator")
    composition.reset()
    alice = _user(Api(token=None, claims=OPERATOR_CLAIMS), "alice")
    script = Api(token=None, claims=_client_claims("wallet/read wallet/operator"))
    assert script.request("GET", "/users").status == 200
    created = script.request("POST", "/users", json_body={"username": "bob", "email": "bob@example.com"})
    assert created.status == 201  # an operator's create: no identity bound to the script
    assert script.request("GET", f"/users/{alice}").status == 200


def test_a_client_token_without_the_operator_scope_is_nobodys_wallet(jwt_env: pytest.MonkeyPatch) -> None:
    jwt_env.setenv("JWT_OPERATOR_SCOPE", "wallet/operator")
    composition.reset()
    script = Api(token=None, claims=_client_claims("wallet/read"))
    # Its ``sub`` is the client's id: it must neither open a wallet bound to it nor reach one named so.
    opened = script.request("POST", "/users", json_body={"username": "svc", "email": "svc@example.com"})
    assert opened.status == 404
    assert script.request("GET", "/users").status == 404
    named = _user(Api(token=None, claims=OPERATOR_CLAIMS), "6script0client0id")
    assert script.request("GET", f"/users/{named}").status == 404
    settings = parse_settings({"ECPAY_CREDENTIALS": "none", "AUTH_MODE": "jwt"})
    event = {"requestContext": {"authorizer": {"jwt": {"claims": {"client_id": "c"}}}}}
    assert auth.principal(event, settings) == auth.Principal(operator=False)
