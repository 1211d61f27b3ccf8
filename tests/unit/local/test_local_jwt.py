"""AUTH_MODE=jwt locally: the gateway plays the template's JWT authorizer against the local issuer.

Over HTTP against ``ecpay-lambda serve``: tokens from ``ecpay-lambda token`` reach what their role may
(an end user: its own wallet; an operator: everything); expired, wrongly signed, wrong-issuer or
wrong-audience tokens get API Gateway's 401 before any function runs.
"""

from __future__ import annotations

import base64
import http.client
import json
import signal
import stat
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.unit.local.test_stack import REPO_ROOT, _clean_env, _start

from ecpay_lambda.local import issuer
from ecpay_lambda.local.template_routes import RouteTable

KEY = b"k" * 32
NOW = 1_800_000_000.0


# --- the issuer and the authorizer's checks --------------------------------------------------------


def test_a_token_round_trips_with_its_claims() -> None:
    token = issuer.issue(KEY, {"sub": "u_1", "cognito:groups": ["operators"]}, now=NOW)
    claims = issuer.verify(KEY, token, now=NOW + 3599)
    assert claims["sub"] == "u_1" and claims["cognito:groups"] == ["operators"]
    assert (claims["iss"], claims["aud"], claims["exp"]) == (
        issuer.LOCAL_ISSUER,
        issuer.LOCAL_AUDIENCE,
        int(NOW) + 3600,
    )


def _forge(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return ".".join((part(json.dumps(header).encode()), part(json.dumps(payload).encode()), part(signature)))


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (issuer.issue(KEY, {"sub": "u"}, now=NOW - 3600), "expired"),  # exp == now
        (issuer.issue(b"x" * 32, {"sub": "u"}, now=NOW), "signature"),
        (issuer.issue(KEY, {"sub": "u"}, now=NOW, audience="another-app"), "audience"),
        (issuer.issue(KEY, {"sub": "u"}, now=NOW, issuer="https://evil.example.com"), "issuer"),
        (issuer.issue(KEY, {"sub": "u", "nbf": NOW + 60}, now=NOW), "not yet valid"),
        (_forge({"alg": "none"}, {"sub": "u", "iss": issuer.LOCAL_ISSUER, "exp": NOW + 60}), "malformed"),
        (
            _forge({"alg": "RS256"}, {"sub": "u", "iss": issuer.LOCAL_ISSUER, "exp": NOW + 60}, b"s"),
            "algorithm",
        ),
        (
            _forge({"alg": "HS256"}, {"sub": "u", "iss": issuer.LOCAL_ISSUER, "exp": NOW + 60}, b"\0" * 32),
            "signature",
        ),
        (_forge({"alg": "HS256"}, {"sub": "u", "iss": issuer.LOCAL_ISSUER, "exp": NOW + 60}), "malformed"),
        ("", "malformed"),
        ("a.b", "malformed"),
        ("a.b.c", "malformed"),
        ("e30.e30.!!", "malformed"),
        ("x" * 9000, "malformed"),
    ],
)
def test_the_authorizer_refuses(token: str, reason: str) -> None:
    with pytest.raises(issuer.InvalidToken, match=reason):
        issuer.verify(KEY, token, now=NOW)


def test_a_changed_payload_breaks_the_signature() -> None:
    header, _, signature = issuer.issue(KEY, {"sub": "u_1"}, now=NOW).split(".")
    forged = issuer.issue(b"other", {"sub": "u_2"}, now=NOW).split(".")[1]
    with pytest.raises(issuer.InvalidToken, match="signature"):
        issuer.verify(KEY, f"{header}.{forged}.{signature}", now=NOW)


def test_the_key_is_made_once_and_kept_private(tmp_path: Path) -> None:
    key = issuer.load_key(tmp_path / "data")
    assert len(key) == 32 and issuer.load_key(tmp_path / "data") == key
    mode = (tmp_path / "data" / issuer.KEY_FILE).stat().st_mode
    assert stat.S_IMODE(mode) == 0o600


def test_claims_reach_the_function_as_api_gateway_passes_them() -> None:
    claims = {"sub": "u", "exp": 5, "cognito:groups": ["a", "operators"], "email_verified": True}
    assert issuer.as_event_claims(claims) == {
        "sub": "u",
        "exp": "5",
        "cognito:groups": "[a operators]",
        "email_verified": "true",
    }
    assert issuer.bearer("Bearer abc") == issuer.bearer("abc") == "abc"
    assert issuer.bearer("Bearer ") is None and issuer.bearer(None) is None


def test_the_secured_routes_are_the_templates_management_operations() -> None:
    table = RouteTable.from_file(REPO_ROOT / "template.yaml")
    assert (
        "GET /users" in table.secured
        and "PATCH /users/{userId}/transactions/{transactionId}" in table.secured
    )
    callbacks = [r.route_key for r in table.routes if r.path.endswith(("/return", "/paymentInfo"))]
    assert callbacks and not table.secured.intersection(callbacks)
    assert "GET /healthz" not in table.secured


# --- over HTTP against `ecpay-lambda serve` -------------------------------------------------------


@pytest.fixture(scope="module")
def jwt_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``serve`` with AUTH_MODE=jwt on a free port: (base URL, data folder)."""
    data = tmp_path_factory.mktemp("jwt") / "data"
    env = _clean_env(AUTH_MODE="jwt")
    process, url = _start(["serve", "--port", "0", "--data-dir", str(data), "--quiet"], env, REPO_ROOT)
    try:
        yield url, data
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)


def token(data: Path, *args: str) -> str:
    """``ecpay-lambda token ARGS`` against ``data``'s key: its stdout, one token."""
    done = subprocess.run(
        [sys.executable, "-m", "ecpay_lambda.cli", "token", "--data-dir", str(data), *args],
        cwd=REPO_ROOT,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def call(url: str, method: str, path: str, bearer: str | None, body: Any = None) -> tuple[int, Any]:
    """One request: (status, JSON body)."""
    headers = {"Content-Type": "application/json"}
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_roles_over_http(jwt_serve: tuple[str, Path]) -> None:
    url, data = jwt_serve
    operator = token(data, "--operator")
    made = [call(url, "POST", "/users", operator, {"username": n, "email": f"{n}@example.com"}) for n in "ab"]
    assert [s for s, _ in made] == [201, 201], made
    alice, bob = (body["user_id"] for _, body in made)
    me = token(data, "--user", alice)
    assert call(url, "GET", f"/users/{alice}", me) == (200, made[0][1])
    status, deposit = call(
        url, "POST", f"/users/{alice}/transactions", me, {"transaction_type": "deposit", "amount": 100}
    )
    assert status == 201, deposit
    assert call(url, "GET", f"/users/{bob}", me)[0] == 404
    assert call(url, "GET", f"/users/{bob}/transactions", me)[0] == 404
    for method, path in (
        ("GET", "/users"),
        ("DELETE", f"/users/{alice}"),
        ("PATCH", f"/users/{alice}/transactions/{deposit['transaction_id']}"),
    ):
        assert call(url, method, path, me)[0] == 404, (method, path)
    status, listing = call(url, "GET", "/users", operator)
    assert status == 200 and {u["user_id"] for u in listing["users"]} == {alice, bob}
    assert call(url, "GET", "/healthz", None)[0] == 200  # public routes need no token


def test_bad_tokens_get_the_authorizers_401(jwt_serve: tuple[str, Path]) -> None:
    url, data = jwt_serve
    key = issuer.load_key(data)
    operator_claims = {"sub": "ops", "cognito:groups": ["operators"]}
    expired = issuer.issue(key, operator_claims, now=1_000_000_000)
    wrong_key = issuer.issue(b"not-the-key", operator_claims)
    wrong_audience = issuer.issue(key, operator_claims, audience="some-other-client")
    for bad in (None, "", expired, wrong_key, wrong_audience, "not.a.jwt"):
        assert call(url, "GET", "/users", bad) == (401, {"message": "Unauthorized"}), bad
    assert call(url, "GET", "/users", issuer.issue(key, operator_claims))[0] == 200


def _raw(url: str, method: str, path: str, headers: list[tuple[str, str]]) -> tuple[int, str]:
    """One request with a raw path (no normalisation) and repeated headers allowed."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


def test_header_and_path_tricks_never_reach_another_users_wallet(jwt_serve: tuple[str, Path]) -> None:
    url, data = jwt_serve
    operator = token(data, "--operator")
    made = [
        call(url, "POST", "/users", operator, {"username": f"trick{n}", "email": f"trick{n}@example.com"})
        for n in "ab"
    ]
    alice, bob = (body["user_id"] for _, body in made)
    me = token(data, "--user", alice)
    bearer = ("Authorization", f"Bearer {me}")
    key = issuer.load_key(data)
    # A token claiming operator rights but signed with another key; one naming bob, expired.
    forged_operator = issuer.issue(b"guess", {"sub": alice, "cognito:groups": ["operators"]})
    expired_bob = issuer.issue(key, {"sub": bob}, now=1_000_000_000)
    tricks: list[tuple[str, str, list[tuple[str, str]]]] = [
        ("GET", f"/users/{bob}", [bearer]),
        ("GET", f"/users/{bob}/", [bearer]),
        ("GET", f"//users/{bob}", [bearer]),
        ("GET", f"/users//{bob}", [bearer]),
        ("GET", f"/users/{alice}/../{bob}", [bearer]),
        ("GET", f"/users/{alice}/%2e%2e/{bob}", [bearer]),
        ("GET", f"/users/{alice}%2F..%2F{bob}", [bearer]),
        ("GET", f"/users/{bob}%2F", [bearer]),
        ("GET", f"/users/{bob}%00", [bearer]),
        ("GET", f"/users/{bob.upper()}", [bearer]),
        ("GET", f"/USERS/{bob}", [bearer]),
        ("GET", f"/users/{bob}?userId={alice}", [bearer]),
        ("GET", f"/users/{alice}/transactions/../../{bob}", [bearer]),
        ("GET", f"/users/{bob}/transactions", [bearer]),
        (
            "GET",
            f"/users/{bob}",
            [("Authorization", f"Bearer {me}"), ("Authorization", f"Bearer {operator}x")],
        ),
        ("GET", f"/users/{bob}", [("Authorization", f"Bearer {me}, Bearer {forged_operator}")]),
        ("GET", f"/users/{bob}", [("Authorization", f"bearer {forged_operator}")]),
        ("GET", f"/users/{bob}", [("Authorization", f"Bearer {expired_bob}")]),
        ("GET", f"/users/{bob}", [bearer, ("X-Forwarded-User", bob), ("X-Amzn-Oidc-Identity", bob)]),
        (
            "GET",
            f"/users/{bob}",
            [bearer, ("X-Http-Method-Override", "GET"), ("X-Original-Url", f"/users/{alice}")],
        ),
        ("GET", "/users", [bearer]),
        ("GET", "/users?include_closed=true", [bearer]),
        ("GET", "/users/", [bearer]),
        ("DELETE", f"/users/{bob}", [bearer]),
        ("POST", f"/users/{bob}/reopen", [bearer]),
        ("POST", f"/users/{bob}/transactions", [bearer, ("Content-Type", "application/json")]),
    ]
    for method, path, headers in tricks:
        status, body = _raw(url, method, path, headers)
        assert status in (400, 401, 403, 404, 405, 422), (method, path, status, body)
        # Never bob's data (an unknown-user 404 may echo the id the caller sent, nothing more).
        assert "trickb" not in body and '"balance"' not in body, (method, path, body)
    # Bob's wallet is untouched and still his; alice still reaches hers.
    assert call(url, "GET", f"/users/{bob}", operator)[1]["status"] == "active"
    assert call(url, "GET", f"/users/{alice}", me)[0] == 200
