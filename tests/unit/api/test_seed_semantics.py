"""The seed front end's semantics: its status words for ``Accept: */*``, closed users out of the list."""

from __future__ import annotations

from typing import Any

from tests.unit.api.apitest import Api
from tests.unit.api.conftest import checkout, create_deposit

SEED = {"Accept": "*/*"}  # what the seed's fetch() sends


def _tx(api: Api, uid: str, tx: str, **headers: str) -> dict[str, Any]:
    data: dict[str, Any] = api.request("GET", f"/users/{uid}/transactions/{tx}", headers=headers).json()
    return data


def test_an_unpaid_checkout_reads_pending_to_the_seed_only(api: Api, user: dict[str, Any]) -> None:
    uid = user["user_id"]
    tx = create_deposit(api, uid)["transaction_id"]
    assert _tx(api, uid, tx, **SEED)["status"] == "pending"
    checkout(api, uid, tx)
    seed = _tx(api, uid, tx, **SEED)
    assert seed["status"] == "pending" and seed["status_detail"] == "awaiting_payment"
    listed = api.request("GET", f"/users/{uid}/transactions", headers=SEED).json()["transactions"]
    assert [(t["status"], t["status_detail"]) for t in listed] == [("pending", "awaiting_payment")]
    # The lifecycle itself for everyone else: JSON asked for explicitly, or no Accept at all.
    for headers in ({"Accept": "application/json"}, {}, {"Accept": "application/json, */*"}):
        plain = _tx(api, uid, tx, **headers)
        assert plain["status"] == "awaiting_payment" and "status_detail" not in plain


def test_withdrawals_and_errors_are_untouched_by_the_seed_view(api: Api, user: dict[str, Any]) -> None:
    uid = user["user_id"]
    missing = api.request("GET", f"/users/{uid}/transactions/nope", headers=SEED)
    assert missing.status == 404 and missing.error_code == "not_found"
    assert api.request("GET", f"/users/{uid}", headers=SEED).json()["status"] == "active"


def test_closed_users_leave_the_default_list(api: Api) -> None:
    ids = []
    for name in ("ann", "ben", "cat"):
        resp = api.request("POST", "/users", json_body={"username": name, "email": f"{name}@example.com"})
        ids.append(resp.json()["user_id"])
    assert api.request("DELETE", f"/users/{ids[1]}").status == 200
    default = api.request("GET", "/users").json()
    assert [u["user_id"] for u in default["users"]] == [ids[0], ids[2]] and default["total"] == 2
    everyone = api.request("GET", "/users", query={"include_closed": "true"}).json()
    assert [u["user_id"] for u in everyone["users"]] == ids and everyone["total"] == 3
    assert everyone["users"][1]["status"] == "closed"
    # Pages and cursors skip the closed user too.
    first = api.request("GET", "/users", query={"pageSize": "1"}).json()
    assert [u["user_id"] for u in first["users"]] == [ids[0]] and first["next_cursor"]
    second = api.request("GET", "/users", query={"pageSize": "1", "cursor": first["next_cursor"]}).json()
    assert [u["user_id"] for u in second["users"]] == [ids[2]] and second["next_cursor"] is None
    assert (
        api.request("GET", "/users", query={"page": "2", "pageSize": "1"}).json()["users"][0]["user_id"]
        == ids[2]
    )
    # The closed user is still there by id, and a bad cursor is a 400.
    assert api.request("GET", f"/users/{ids[1]}").json()["status"] == "closed"
    bad = api.request("GET", "/users", query={"cursor": "not-a-cursor"})
    assert bad.status == 400
