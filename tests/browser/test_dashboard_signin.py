"""Signing in to the dashboard (issue 15): against ``serve`` with ``AUTH_MODE=jwt``, a user's token shows
only that user's wallet, an operator's shows everything; sign out; an expired or refused token brings
the sign-in back with a message. On a phone (390 px) and a desktop (1280 px), in both languages.

Tokens are the local issuer's, exactly what ``ecpay-lambda token --user ID`` / ``--operator`` print for
the stack's data folder. Data comes over HTTP with an operator's token (seed.py).
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

try:
    from playwright.sync_api import Page, expect

    from tests.browser.conftest import DESKTOP, PHONE
    from tests.browser.dashboard_ui import Dashboard
    from tests.browser.seed import Seeder
except ImportError:  # the conftest's fixtures report the missing prerequisite (fail under CI)
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        raise
    pytest.skip("playwright is not installed: make venv (it is in the dev extra)", allow_module_level=True)

from ecpay_lambda.commands.token import claims_for
from ecpay_lambda.local.issuer import issue, load_key
from tests.support.stack_plugin import LocalStack, start_local_stack, stop_local_stack

pytestmark = pytest.mark.browser

# What the page says, per language (i18n.js is the source of truth).
SAYS = {
    "en": {
        "user": "User",
        "operator": "Operator",
        "required": "Sign in to use the wallet.",
        "expired": "Your sign-in has expired or was not accepted. Please sign in again.",
        "signed_out": "You have signed out.",
        "not_found": "was not found",
    },
    "zh-TW": {
        "user": "使用者",
        "operator": "管理者",
        "required": "請先登入才能使用錢包。",
        "expired": "登入已過期或未被接受，請重新登入。",
        "signed_out": "您已登出。",
        "not_found": "找不到錢包",
    },
}
# Controls only an operator may use (the API answers 404 to an end user on each): the users column and
# closing a user are hidden, a withdrawal's complete and cancel buttons are not rendered at all.
OPERATOR_PANELS = ["user-list", "create-user-form", "users-refresh", "close-user", "events"]
OPERATOR_BUTTONS = ["tx-complete", "tx-cancel"]
VIEWS = [(PHONE, "en"), (PHONE, "zh-TW"), (DESKTOP, "en"), (DESKTOP, "zh-TW")]
VIEW_IDS = ["phone-en", "phone-zh-TW", "desktop-en", "desktop-zh-TW"]


@pytest.fixture(scope="module")
def jwt_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The local stack with ``AUTH_MODE=jwt``: its gateway plays the template's JWT authorizer."""
    stack = start_local_stack(tmp_path_factory.mktemp("jwt-dashboard"), {"AUTH_MODE": "jwt"})
    try:
        yield stack
    finally:
        stop_local_stack(stack.process)


def token(stack: LocalStack, *, user: str | None = None, operator: bool = False, ttl: int = 3600) -> str:
    """What ``ecpay-lambda token`` prints for this stack (``ttl`` may be negative: already expired)."""
    key = load_key(Path(stack.log_path).parent)
    claims = claims_for(user, operator=operator, env={})
    if ttl > 0:
        return issue(key, claims, ttl=ttl)
    return issue(key, claims, ttl=3600, now=time.time() - 7200)


@dataclass
class OperatorSeeder(Seeder):
    """seed.py's Seeder with an operator's bearer token on every request."""

    token: str = ""

    def call(self, method: str, path: str, payload: Any = None, **headers: str) -> tuple[int, Any]:
        """One JSON request as the operator."""
        return super().call(method, path, payload, Authorization=f"Bearer {self.token}", **headers)


@pytest.fixture
def operator_seeder(jwt_stack: LocalStack) -> OperatorSeeder:
    """Users and transactions on the jwt stack, made by an operator over HTTP."""
    return OperatorSeeder(jwt_stack.base_url, token=token(jwt_stack, operator=True))


def open_signed_out(page: Page, stack: LocalStack, language: str) -> Dashboard:
    """The dashboard with no token: it asks to sign in."""
    dashboard = Dashboard(page, stack.base_url)
    dashboard.open(language)
    expect(page.get_by_test_id("signin")).to_be_visible()
    expect(page.locator("#layout")).to_be_hidden()
    return dashboard


def sign_in(dashboard: Dashboard, value: str) -> None:
    """Paste a token into the sign-in and submit it."""
    dashboard.page.get_by_test_id("signin-token").fill(value)
    dashboard.page.get_by_test_id("signin-submit").click()


def open_with_token(
    page: Page, stack: LocalStack, value: str, language: str, selected: str | None = None
) -> Dashboard:
    """Load the dashboard as if this browser had signed in earlier (token, language, chosen wallet)."""
    stored = {"ecpayWallet.token": value, "ecpayWallet.lang": language}
    if selected:
        stored["ecpayWallet.selectedUser"] = selected
    page.add_init_script(
        "if (!sessionStorage.getItem('seeded')) { sessionStorage.setItem('seeded', '1');"
        f" for (const [k, v] of Object.entries({json.dumps(stored)})) localStorage.setItem(k, v); }}"
    )
    dashboard = Dashboard(page, stack.base_url)
    page.goto(stack.base_url + "/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.locator("html")).to_have_attribute("lang", language)
    return dashboard


def absent_operator_controls(page: Page) -> None:
    """None of the operator's controls is on the page (hidden or not rendered)."""
    for testid in OPERATOR_PANELS:
        expect(page.get_by_test_id(testid)).to_be_hidden()
    for testid in OPERATOR_BUTTONS:
        expect(page.get_by_test_id(testid)).to_have_count(0)


# ---- a user sees only their wallet; an operator sees everything; sign out ------------------------


@pytest.mark.parametrize(("viewport", "language"), VIEWS, ids=VIEW_IDS)
def test_a_user_sees_only_their_own_wallet_and_an_operator_sees_everything(
    open_page: Callable[..., Page],
    jwt_stack: LocalStack,
    operator_seeder: OperatorSeeder,
    viewport: dict[str, int],
    language: str,
) -> None:
    says = SAYS[language]
    mine = operator_seeder.user("mine")
    other = operator_seeder.user("other")
    paid = operator_seeder.paid_deposit(mine["user_id"], 500)
    operator_seeder.transaction(mine["user_id"], "withdraw", 100)
    operator_seeder.transaction(mine["user_id"], "deposit", 300, "Credit")  # unpaid: payable, cancellable
    page = open_page(viewport)
    dashboard = open_signed_out(page, jwt_stack, language)
    expect(page.get_by_test_id("signin-message")).to_have_text(says["required"])
    assert dashboard.covered_controls() == []

    # An end user: their wallet, and only what an end user may do.
    sign_in(dashboard, token(jwt_stack, user=mine["user_id"]))
    expect(page.get_by_test_id("signin")).to_be_hidden()
    expect(page.get_by_test_id("session-role")).to_have_text(says["user"])
    expect(page.get_by_test_id("session-who")).to_have_text(mine["user_id"])
    expect(page.get_by_test_id("user-name")).to_have_text(mine["username"])
    expect(dashboard.balance).to_have_attribute("data-value", "400")
    expect(dashboard.held).to_have_attribute("data-value", "100")
    expect(dashboard.rows()).to_have_count(3)
    absent_operator_controls(page)
    expect(page.get_by_text(other["username"])).to_have_count(0)
    expect(page.get_by_test_id("deposit-submit")).to_be_visible()
    expect(page.get_by_test_id("withdraw-submit")).to_be_visible()
    expect(dashboard.rows(type_="deposit", status="pending").get_by_test_id("tx-pay")).to_be_visible()
    assert dashboard.horizontal_overflow() == 0
    assert dashboard.covered_controls() == []
    # The paid card deposit's panel: the ledger, no refund, nothing covered.
    drawer = dashboard.open_details(dashboard.rows(type_="deposit", status="paid"))
    expect(drawer.get_by_test_id("tx-detail-status")).to_have_attribute("data-status", "paid")
    expect(drawer.get_by_test_id("refund-amount")).to_have_count(0)
    expect(drawer.get_by_test_id("detail-refund")).to_have_count(0)
    assert dashboard.covered_controls('[data-testid="tx-detail"]') == []
    drawer.get_by_test_id("tx-detail-close").click()
    drawer = dashboard.open_details(dashboard.rows(type_="withdraw", status="pending"))
    expect(drawer.get_by_test_id("tx-detail-status")).to_have_attribute("data-status", "pending")
    expect(drawer.get_by_test_id("detail-complete")).to_have_count(0)
    expect(drawer.get_by_test_id("detail-cancel")).to_have_count(0)
    drawer.get_by_test_id("tx-detail-close").click()
    # An unpaid deposit: the user may pay it; cancelling it is an operator's.
    drawer = dashboard.open_details(dashboard.rows(type_="deposit", status="pending"))
    expect(drawer.get_by_test_id("detail-pay")).to_be_visible()
    expect(drawer.get_by_test_id("detail-cancel-deposit")).to_have_count(0)
    drawer.get_by_test_id("tx-detail-close").click()
    expect(drawer).to_be_hidden()

    # Sign out: the token is gone, the sign-in says so.
    page.get_by_test_id("sign-out").click()
    expect(page.get_by_test_id("signin-message")).to_have_text(says["signed_out"])
    expect(page.locator("#layout")).to_be_hidden()
    assert page.evaluate("localStorage.getItem('ecpayWallet.token')") is None

    # An operator: every user and every control.
    sign_in(dashboard, token(jwt_stack, operator=True))
    expect(page.get_by_test_id("session-role")).to_have_text(says["operator"])
    expect(page.get_by_test_id("user-list")).to_be_visible()
    expect(page.get_by_test_id("create-user-form")).to_be_visible()
    events = page.get_by_test_id("events")
    expect(events).to_be_visible()  # what local mode's outbox recorded, as the stack publishes it
    expect(
        events.locator(f'[data-testid="event"][data-name="deposit.paid"][data-transaction-id="{paid}"]')
    ).to_have_count(1)
    page.get_by_test_id("users-refresh").click()
    # A wallet the operator picks (wherever the list's pages put it): the seeded wallet by storage.
    page.evaluate(f"localStorage.setItem('ecpayWallet.selectedUser', {json.dumps(mine['user_id'])})")
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.get_by_test_id("user-name")).to_have_text(mine["username"])
    expect(page.get_by_test_id("close-user")).to_be_visible()
    pending = dashboard.rows(type_="withdraw", status="pending")
    expect(pending.get_by_test_id("tx-complete")).to_be_visible()
    expect(pending.get_by_test_id("tx-cancel")).to_be_visible()
    assert dashboard.horizontal_overflow() == 0
    assert dashboard.covered_controls() == []
    drawer = dashboard.open_details(dashboard.rows(type_="deposit", status="pending"))
    expect(drawer.get_by_test_id("detail-cancel-deposit")).to_be_visible()
    drawer.get_by_test_id("tx-detail-close").click()
    drawer = dashboard.open_details(dashboard.rows(type_="deposit", status="paid"))
    expect(drawer.get_by_test_id("detail-refund")).to_be_visible()
    assert dashboard.covered_controls('[data-testid="tx-detail"]') == []


# ---- another user's wallet, a first sign-in, expired and refused tokens --------------------------


@pytest.mark.parametrize("language", ["en", "zh-TW"])
def test_a_user_token_cannot_see_another_users_wallet(
    open_page: Callable[..., Page], jwt_stack: LocalStack, operator_seeder: OperatorSeeder, language: str
) -> None:
    mine = operator_seeder.user("self")
    other = operator_seeder.user("victim")
    operator_seeder.paid_deposit(other["user_id"], 700)
    page = open_page(DESKTOP)
    # This browser last showed the other wallet (or a link names it): the API answers 404, so does the page.
    open_with_token(
        page, jwt_stack, token(jwt_stack, user=mine["user_id"]), language, selected=other["user_id"]
    )
    missing = page.get_by_test_id("wallet-not-found")
    expect(missing).to_be_visible()
    expect(missing).to_contain_text(SAYS[language]["not_found"])
    expect(missing).to_contain_text(other["user_id"])
    expect(page.get_by_test_id("user-detail")).to_be_hidden()
    expect(page.get_by_text(other["username"])).to_have_count(0)
    expect(page.get_by_text("NT$700")).to_have_count(0)
    absent_operator_controls(page)
    assert Dashboard(page, jwt_stack.base_url).covered_controls() == []


def test_a_first_sign_in_opens_the_users_own_wallet(
    open_page: Callable[..., Page], jwt_stack: LocalStack
) -> None:
    page = open_page(PHONE)
    dashboard = open_signed_out(page, jwt_stack, "zh-TW")
    subject = f"idp-{uuid.uuid4().hex[:10]}"  # an identity provider's subject: no wallet has this id
    sign_in(dashboard, token(jwt_stack, user=subject))
    own = page.get_by_test_id("own-wallet")
    expect(own).to_be_visible()
    expect(page.get_by_test_id("wallet-not-found")).to_be_hidden()
    assert dashboard.covered_controls() == []
    name = f"grace-{uuid.uuid4().hex[:6]}"
    page.get_by_test_id("own-username").fill(name)
    page.get_by_test_id("own-email").fill(f"{name}@example.com")
    page.get_by_test_id("own-wallet-submit").click()
    expect(page.get_by_test_id("user-name")).to_have_text(name)
    expect(dashboard.balance).to_have_attribute("data-value", "0")
    expect(own).to_be_hidden()
    # Next visit: the page finds the wallet bound to this sign-in by itself.
    page.evaluate("localStorage.removeItem('ecpayWallet.selectedUser')")
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.get_by_test_id("user-name")).to_have_text(name)
    absent_operator_controls(page)


@pytest.mark.parametrize("language", ["en", "zh-TW"])
def test_an_expired_token_brings_back_the_sign_in_with_a_message(
    open_page: Callable[..., Page], jwt_stack: LocalStack, operator_seeder: OperatorSeeder, language: str
) -> None:
    user = operator_seeder.user("expired")
    page = open_page(PHONE if language == "zh-TW" else DESKTOP)
    expired = token(jwt_stack, user=user["user_id"], ttl=-1)
    dashboard = open_with_token(page, jwt_stack, expired, language)
    expect(page.get_by_test_id("signin")).to_be_visible()
    expect(page.get_by_test_id("signin-message")).to_have_text(SAYS[language]["expired"])
    expect(page.locator("#layout")).to_be_hidden()
    expect(page.get_by_test_id("session")).to_be_hidden()
    assert page.evaluate("localStorage.getItem('ecpayWallet.token')") is None
    expect(dashboard.errors).to_have_count(0)  # the sign-in says it, not an error message
    assert dashboard.covered_controls() == []

    # Pasting the expired token again is refused on the spot; a token the API refuses (wrong key) too.
    sign_in(dashboard, expired)
    expect(page.get_by_test_id("signin-message")).to_have_text(SAYS[language]["expired"])
    forged = issue(b"not-the-stack-key", claims_for(user["user_id"], operator=True, env={}))
    with page.expect_response(lambda r: "/users" in r.url and r.status == 401):
        sign_in(dashboard, forged)
    expect(page.get_by_test_id("signin-message")).to_have_text(SAYS[language]["expired"])
    expect(page.locator("#layout")).to_be_hidden()

    # Signed in, then the API stops accepting the token (it expired meanwhile): back to the sign-in.
    sign_in(dashboard, token(jwt_stack, user=user["user_id"]))
    expect(page.get_by_test_id("user-name")).to_have_text(user["username"])
    page.route("**/users/**", lambda route: route.fulfill(status=401, json={"message": "Unauthorized"}))
    page.get_by_test_id("withdraw-amount").fill("10")
    page.get_by_test_id("withdraw-submit").click()
    expect(page.get_by_test_id("signin-message")).to_have_text(SAYS[language]["expired"])
    expect(page.locator("#layout")).to_be_hidden()
    page.unroute("**/users/**")


# ---- live refresh keeps what a signed-in user types ---------------------------------------------------


def test_a_signed_in_user_keeps_what_they_type_while_the_page_refreshes(
    open_page: Callable[..., Page], jwt_stack: LocalStack, operator_seeder: OperatorSeeder
) -> None:
    user = operator_seeder.user("typing")
    uid = user["user_id"]
    operator_seeder.paid_deposit(uid, 500)
    _, waiting = operator_seeder.awaiting_code(uid, 300)  # keeps the page refreshing every 2 s
    page = open_page(PHONE)
    dashboard = open_signed_out(page, jwt_stack, "zh-TW")
    sign_in(dashboard, token(jwt_stack, user=uid))
    expect(page.get_by_test_id("live-indicator")).to_be_visible()
    amount = page.get_by_test_id("withdraw-amount")
    amount.fill("12")
    listing = f"/users/{uid}/transactions?"
    for _ in range(3):  # three live refreshes of the transactions while the amount is half typed
        with page.expect_response(lambda r: listing in r.url and r.request.method == "GET"):
            pass
    expect(amount).to_have_value("12")
    expect(amount).to_be_focused()
    amount.press_sequentially("3")
    expect(amount).to_have_value("123")
    page.get_by_test_id("withdraw-submit").click()
    expect(dashboard.rows(type_="withdraw", status="pending")).to_have_count(1)
    expect(dashboard.held).to_have_attribute("data-value", "123")
    absent_operator_controls(page)
    operator_seeder.sandbox.expire(waiting)


def test_sign_in_screenshots(
    open_page: Callable[..., Page],
    jwt_stack: LocalStack,
    operator_seeder: OperatorSeeder,
    screenshot_dir: Path,
) -> None:
    """The sign-in and a signed-in user's wallet, desktop and phone (docs/screenshots with
    UPDATE_SCREENSHOTS=1)."""
    from tests.browser.conftest import cjk_font_installed, missing_prerequisite  # noqa: PLC0415

    if not cjk_font_installed():
        missing_prerequisite("no Traditional Chinese font: apt-get install -y fonts-noto-cjk")
    user = operator_seeder.user("meiling")
    operator_seeder.paid_deposit(user["user_id"], 500)
    operator_seeder.transaction(user["user_id"], "withdraw", 120)

    def shoot(page: Page, path: Path) -> None:
        page.evaluate("document.querySelectorAll('.toast').forEach(t => t.remove())")
        page.screenshot(path=str(path), full_page=True)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 10_000  # a rendered page, not a blank one

    desktop = open_signed_out(open_page(DESKTOP), jwt_stack, "en")
    shoot(desktop.page, screenshot_dir / "signin.png")
    sign_in(desktop, token(jwt_stack, user=user["user_id"]))
    expect(desktop.held).to_have_attribute("data-value", "120")
    shoot(desktop.page, screenshot_dir / "signed-in-user.png")

    phone = open_signed_out(open_page(PHONE), jwt_stack, "zh-TW")
    shoot(phone.page, screenshot_dir / "signin.phone.zh-TW.png")
    sign_in(phone, token(jwt_stack, user=user["user_id"]))
    expect(phone.held).to_have_attribute("data-value", "120")
    shoot(phone.page, screenshot_dir / "signed-in-user.phone.zh-TW.png")


def test_a_page_left_open_signs_out_when_its_token_runs_out(
    open_page: Callable[..., Page], jwt_stack: LocalStack, operator_seeder: OperatorSeeder
) -> None:
    user = operator_seeder.user("idle")
    page = open_page(DESKTOP)
    page.clock.install()  # the page's clock: moved by hand below, nothing waits an hour
    dashboard = open_signed_out(page, jwt_stack, "en")
    sign_in(dashboard, token(jwt_stack, user=user["user_id"]))
    expect(page.get_by_test_id("user-name")).to_have_text(user["username"])
    page.clock.fast_forward("59:00")
    expect(page.get_by_test_id("user-name")).to_have_text(user["username"])  # still signed in
    expect(page.get_by_test_id("signin")).to_be_hidden()
    page.clock.fast_forward("02:00")  # the token's hour is over: no click needed
    expect(page.get_by_test_id("signin-message")).to_have_text(SAYS["en"]["expired"])
    expect(page.locator("#layout")).to_be_hidden()
    assert page.evaluate("localStorage.getItem('ecpayWallet.token')") is None


def test_not_found_holds_when_the_wallet_answers_before_the_role_is_known(
    open_page: Callable[..., Page], jwt_stack: LocalStack, operator_seeder: OperatorSeeder
) -> None:
    # The page asks GET /users (which decides the role) and GET /users/{id} side by side; here the
    # wallet's 404 arrives first, as it may on a loaded machine. The page must still say "not found".
    mine = operator_seeder.user("early")
    other = operator_seeder.user("elsewhere")
    page = open_page(DESKTOP)
    held: list[Any] = []
    listing = re.compile(r".*/users\?.*")

    def hold(route: Any) -> None:
        held.append(route)  # answered below, once the wallet's 404 has come

    page.route(listing, hold)
    stored = {
        "ecpayWallet.token": token(jwt_stack, user=mine["user_id"]),
        "ecpayWallet.selectedUser": other["user_id"],
    }
    page.add_init_script(
        f"for (const [k, v] of Object.entries({json.dumps(stored)})) localStorage.setItem(k, v);"
    )
    with page.expect_response(lambda r: r.url.endswith(f"/users/{other['user_id']}")) as wallet:
        page.goto(jwt_stack.base_url + "/")
    assert wallet.value.status == 404
    # The list was asked for first (the same tick), so its interception was reported before this answer.
    assert held, "GET /users is held"
    for route in held:
        route.continue_()
    page.unroute(listing)
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.get_by_test_id("session-role")).to_have_text(SAYS["en"]["user"])
    missing = page.get_by_test_id("wallet-not-found")
    expect(missing).to_be_visible()
    expect(missing).to_contain_text(other["user_id"])
    expect(page.get_by_test_id("user-detail")).to_be_hidden()
