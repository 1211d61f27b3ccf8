"""The dashboard as people really use it (issue 10): on a phone and a desktop, during live refresh, with the
store down, and with nothing but readable text in its panels. Both languages.

Data comes over HTTP (seed.py) so that each test spends its time on what it checks.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

try:
    from playwright.sync_api import Page, Route, expect

    from tests.browser.conftest import DESKTOP, PHONE
    from tests.browser.dashboard_ui import Dashboard
    from tests.browser.seed import Seeder
except ImportError:  # the conftest's fixtures report the missing prerequisite (fail under CI)
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        raise
    pytest.skip("playwright is not installed: make venv (it is in the dev extra)", allow_module_level=True)

from tests.support.stack_plugin import LocalStack, start_local_stack, stop_local_stack

pytestmark = pytest.mark.browser

RED = "rgb(192, 57, 43)"  # --red in styles.css
NO_TEXT = re.compile(r"\b(null|undefined|NaN|\[object Object\])\b")


def in_both_languages(dashboard: Dashboard, check: Callable[[str], None]) -> None:
    """Run ``check(language)`` in English, then in 繁體中文."""
    for language in ("en", "zh-TW"):
        dashboard.set_language(language)
        check(language)


# ---- layout: every control usable at 390 px and 1280 px -------------------------------------------


@pytest.mark.parametrize(
    ("viewport", "language"),
    [(PHONE, "zh-TW"), (PHONE, "en"), (DESKTOP, "en"), (DESKTOP, "zh-TW")],
    ids=["phone-zh-TW", "phone-en", "desktop-en", "desktop-zh-TW"],
)
def test_no_control_is_covered_on_a_phone_or_a_desktop(
    open_page: Callable[..., Page], seeder: Seeder, local_stack: str, viewport: dict[str, int], language: str
) -> None:
    user = seeder.user("layout")
    seeder.paid_deposit(user["user_id"], 500)
    seeder.awaiting_code(user["user_id"], 300)
    seeder.transaction(user["user_id"], "withdraw", 100)
    dashboard = Dashboard(open_page(viewport), local_stack.rstrip("/"))
    dashboard.open_with_user(user["user_id"], language)
    expect(dashboard.rows()).to_have_count(3)
    # An error message is showing too: messages must not cover the rows' buttons.
    dashboard.withdraw(100_000)
    expect(dashboard.errors.first).to_be_visible()

    assert dashboard.horizontal_overflow() == 0
    assert dashboard.covered_controls() == []
    # "Deposit and pay" (covered by the users card on phones before) takes a click where it is.
    dashboard.page.get_by_test_id("deposit-submit").click(trial=True)

    drawer = dashboard.open_details(dashboard.rows(type_="deposit", status="paid"))
    expect(drawer.get_by_test_id("refund-amount")).to_be_visible()
    assert dashboard.covered_controls('[data-testid="tx-detail"]') == []
    drawer.get_by_test_id("tx-detail-close").click()
    expect(drawer).to_be_hidden()


STALE_TOP_HEIGHTS_JS = """
() => {
  // Registered after the page's own observers, so it runs right after them on every change of the
  // top: whatever runs next (a click, a scroll, a test's check) must already see the bar's height.
  const top = document.querySelector(".top-sticky");
  window.__staleTopHeights = [];
  new MutationObserver(() => {
    const published = document.documentElement.style.getPropertyValue("--top-height");
    const actual = `${top.offsetHeight}px`;
    if (published !== actual) window.__staleTopHeights.push(`${published} for ${actual}`);
  }).observe(top, { childList: true, subtree: true, characterData: true, attributes: true });
}
"""


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_the_bar_height_is_published_before_anything_can_run_after_a_message(
    open_page: Callable[..., Page], seeder: Seeder, local_stack: str, viewport: dict[str, int]
) -> None:
    """CI once found every control "covered" right after an error appeared: scrolling used the bar's
    height from before the message until the next frame's ResizeObserver callback."""
    user = seeder.user("bar")
    dashboard = Dashboard(open_page(viewport), local_stack.rstrip("/"))
    dashboard.open_with_user(user["user_id"], "en")
    dashboard.page.evaluate(STALE_TOP_HEIGHTS_JS)
    dashboard.withdraw(100_000)
    expect(dashboard.errors).to_have_count(1)
    dashboard.withdraw(200_000)  # the same error again replaces the first
    expect(dashboard.errors).to_have_count(1)
    dashboard.errors.first.locator(".toast-close").click()
    expect(dashboard.errors).to_have_count(0)
    dashboard.set_language("zh-TW")
    assert dashboard.page.evaluate("window.__staleTopHeights") == []


# ---- live refresh keeps what the user typed ----------------------------------------------------------


def test_a_typed_refund_amount_survives_live_refresh_and_is_what_gets_refunded(
    open_page: Callable[..., Page], seeder: Seeder, local_stack: str
) -> None:
    user = seeder.user("refund")
    paid = seeder.paid_deposit(user["user_id"], 500)
    _, waiting_mtn = seeder.awaiting_code(user["user_id"], 300)  # keeps the page refreshing
    paid_mtn = seeder.call("GET", f"/users/{user['user_id']}/transactions/{paid}")[1]["merchant_trade_no"]
    seeder.sandbox.close_trade(paid_mtn)  # past ECPay's daily close: a partial refund is possible
    page = open_page(DESKTOP)
    dashboard = Dashboard(page, local_stack.rstrip("/"))
    dashboard.open_with_user(user["user_id"], "zh-TW")
    expect(page.get_by_test_id("live-indicator")).to_be_visible()

    drawer = dashboard.open_details(dashboard.rows(type_="deposit", status="paid"))
    amount = drawer.get_by_test_id("refund-amount")
    amount.fill("200")
    notifications = drawer.get_by_test_id("notification")
    expect(notifications).to_have_count(1)

    # Ten seconds of live refresh (the page polls every 2 s while a deposit awaits payment), during
    # which the open transaction itself changes: ECPay delivers its notification again.
    detail = f"/users/{user['user_id']}/transactions/{paid}"
    for refresh in range(5):
        with page.expect_response(lambda r: r.url.endswith(detail) and r.request.method == "GET"):
            pass
        if refresh == 1:
            seeder.sandbox.resend(paid_mtn)
    expect(notifications).to_have_count(2)  # the panel did refresh
    expect(amount).to_have_value("200")
    expect(amount).to_be_focused()

    refund = drawer.get_by_test_id("detail-refund")
    refund.click()
    expect(refund).to_have_attribute("data-confirming", "1")
    expect(refund).to_contain_text("NT$200")
    # A refresh while the confirmation is pending keeps it.
    with page.expect_response(lambda r: r.url.endswith(detail)):
        pass
    expect(refund).to_contain_text("NT$200")
    refund.click()

    expect(drawer.get_by_test_id("tx-detail-status")).to_have_attribute("data-status", "partially_refunded")
    expect(drawer.get_by_test_id("tx-refunded")).to_have_text("NT$200")
    expect(dashboard.balance).to_have_attribute("data-value", "300")
    status, tx = seeder.call("GET", detail)
    assert status == 200 and tx["refunded_amount"] == 200, tx
    seeder.sandbox.expire(waiting_mtn)


def test_the_pay_again_method_choice_survives_live_refresh(
    open_page: Callable[..., Page], seeder: Seeder, local_stack: str
) -> None:
    user = seeder.user("again")
    seeder.awaiting_code(user["user_id"], 300)  # keeps the page refreshing
    unpaid = seeder.transaction(user["user_id"], "deposit", 250, "Credit")
    page = open_page(DESKTOP)
    dashboard = Dashboard(page, local_stack.rstrip("/"))
    dashboard.open_with_user(user["user_id"], "en")
    drawer = dashboard.open_details(page.locator(f'[data-testid="tx-row"][data-transaction-id="{unpaid}"]'))
    method = drawer.get_by_test_id("pay-method")
    method.select_option("ATM")
    transactions = f"/users/{user['user_id']}/transactions?"
    for _ in range(3):
        with page.expect_response(lambda r: transactions in r.url):
            pass
    expect(method).to_have_value("ATM")


# ---- no "null" or "undefined" anywhere ----------------------------------------------------------------


def test_no_panel_shows_null_or_undefined(dashboard: Dashboard, seeder: Seeder) -> None:
    user = seeder.user("nulls")
    uid = user["user_id"]
    seeder.paid_deposit(uid, 700, "ATM")  # paid offline: a transaction without actions
    card = seeder.paid_deposit(uid, 400)
    status, refund = seeder.call("POST", f"/users/{uid}/transactions/{card}/refund", {})
    assert status in (200, 201), refund
    withdrawal = seeder.transaction(uid, "withdraw", 100)
    assert seeder.call("PATCH", f"/users/{uid}/transactions/{withdrawal}", {"action": "complete"})[0] == 200
    dashboard.open_with_user(uid, "en")
    rows = dashboard.rows()
    expect(rows).to_have_count(4)  # the ATM deposit, the card deposit, its refund, the withdrawal
    ids = rows.evaluate_all("els => els.map(e => e.dataset.transactionId)")

    def check(language: str) -> None:
        assert not NO_TEXT.search(dashboard.visible_text()), dashboard.visible_text()
        for transaction_id in ids:
            drawer = dashboard.open_details(
                dashboard.page.locator(f'[data-transaction-id="{transaction_id}"]')
            )
            expect(
                drawer.get_by_test_id("ledger-entry").or_(drawer.get_by_test_id("ledger-empty")).first
            ).to_be_visible()
            text = dashboard.visible_text('[data-testid="tx-detail"]')
            assert not NO_TEXT.search(text), f"{language} {transaction_id}: {text}"
            drawer.get_by_test_id("tx-detail-close").click()
            expect(drawer).to_be_hidden()

    in_both_languages(dashboard, check)


# ---- the health indicator -------------------------------------------------------------------------------


@pytest.fixture
def own_stack(tmp_path: Path) -> Iterator[LocalStack]:
    """A local stack of this test's own, whose store the test may break."""
    stack = start_local_stack(tmp_path / "stack")
    try:
        yield stack
    finally:
        stop_local_stack(stack.process)


def break_sqlite_store(stack: LocalStack) -> None:
    """The store fails: the database file and its WAL are overwritten with zeros in place (the server's
    open connections see it at once) and made read-only for good measure (root ignores that)."""
    database = Path(stack.store_url.removeprefix("sqlite:///"))
    for path in database.parent.glob(database.name + "*"):
        size = path.stat().st_size
        with path.open("r+b") as handle:
            handle.write(b"\0" * size)
        path.chmod(stat.S_IRUSR)


def health_dot_colour(page: Page) -> str:
    """The computed colour of the health indicator's dot."""
    return str(page.locator(".health-dot").evaluate("el => getComputedStyle(el).backgroundColor"))


def test_the_health_indicator_turns_red_when_the_store_is_down(
    open_page: Callable[..., Page], own_stack: LocalStack
) -> None:
    seeder = Seeder(own_stack.base_url)
    user = seeder.user("outage")
    page = open_page(PHONE)
    dashboard = Dashboard(page, own_stack.base_url)
    dashboard.open_with_user(user["user_id"], "zh-TW")
    health = page.get_by_test_id("health")
    expect(health).to_have_attribute("data-state", "ok")
    expect(health).to_have_text("API 已連線")

    break_sqlite_store(own_stack)
    page.get_by_test_id("users-refresh").click()

    expect(health).to_have_attribute("data-state", "degraded")
    expect(health).not_to_have_text("API 已連線")
    assert health_dot_colour(page) == RED
    error = dashboard.errors.first
    expect(error).to_be_visible()
    expect(error).not_to_contain_text("internal error")  # translated, not the server's English


@pytest.mark.parametrize("language", ["en", "zh-TW"])
def test_a_503_from_healthz_shows_degraded_and_recovers(dashboard: Dashboard, language: str) -> None:
    page = dashboard.page
    dashboard.open(language)
    health = page.get_by_test_id("health")
    expect(health).to_have_attribute("data-state", "ok")

    def store_down(route: Route) -> None:
        route.fulfill(status=503, json={"status": "degraded", "store": False}, headers={"Retry-After": "5"})

    page.route("**/healthz", store_down)
    page.get_by_test_id("users-refresh").click()
    expect(health).to_have_attribute("data-state", "degraded")
    expect(health).to_have_text({"en": "Store unavailable", "zh-TW": "資料儲存無法使用"}[language])
    assert health_dot_colour(page) == RED

    page.unroute("**/healthz")
    page.get_by_test_id("users-refresh").click()
    expect(health).to_have_attribute("data-state", "ok")


def test_failing_calls_mark_the_api_degraded_even_when_healthz_is_fine(dashboard: Dashboard) -> None:
    page = dashboard.page
    dashboard.open("en")
    health = page.get_by_test_id("health")
    expect(health).to_have_attribute("data-state", "ok")

    def failing(route: Route) -> None:
        route.fulfill(status=500, json={"error": {"code": "internal_error", "message": "internal error"}})

    page.route(re.compile(r".*/users\?.*"), failing)
    page.get_by_test_id("users-refresh").click()
    expect(health).to_have_attribute("data-state", "degraded")
    expect(health).to_have_text("API answering with errors")
    page.unroute(re.compile(r".*/users\?.*"))
    page.get_by_test_id("users-refresh").click()
    expect(health).to_have_attribute("data-state", "ok")


# ---- confirmations, cancellation and the transactions that block closing a user ------------------


def test_completing_a_withdrawal_asks_for_confirmation_with_its_amount(
    dashboard: Dashboard, seeder: Seeder
) -> None:
    user = seeder.user("payout")
    seeder.paid_deposit(user["user_id"], 500)
    seeder.transaction(user["user_id"], "withdraw", 120)
    dashboard.open_with_user(user["user_id"], "zh-TW")
    complete = dashboard.rows(type_="withdraw", status="pending").get_by_test_id("tx-complete")
    complete.click()
    expect(complete).to_contain_text("NT$120")
    expect(dashboard.rows(type_="withdraw", status="pending")).to_have_count(1)  # nothing happened yet
    complete.click()
    expect(dashboard.rows(type_="withdraw", status="completed")).to_have_count(1)
    expect(dashboard.held).to_have_attribute("data-value", "0")


def test_closing_a_user_names_the_blocking_transactions_and_an_unpaid_deposit_can_be_cancelled(
    dashboard: Dashboard, seeder: Seeder
) -> None:
    user = seeder.user("blocked")
    uid = user["user_id"]
    pending = seeder.transaction(uid, "deposit", 300, "Credit")
    page = dashboard.page
    dashboard.open_with_user(uid, "zh-TW")

    close = page.get_by_test_id("close-user")
    close.click()
    expect(close).to_have_attribute("data-confirming", "1")
    close.click()
    error = dashboard.errors.first
    expect(error).to_have_attribute("data-code", "user_not_empty")
    expect(error).to_contain_text("無法停用")
    blocking = error.get_by_test_id("blocking-transaction")
    expect(blocking).to_have_count(1)
    expect(blocking).to_have_attribute("data-transaction-id", pending)

    blocking.click()
    drawer = page.get_by_test_id("tx-detail")
    expect(drawer.get_by_test_id("tx-detail-id")).to_have_text(pending)
    cancel = drawer.get_by_test_id("detail-cancel-deposit")
    cancel.click()
    expect(cancel).to_contain_text("NT$300")
    with page.expect_request(
        lambda r: r.method == "PATCH" and r.url.endswith(f"/transactions/{pending}")
    ) as sent:
        cancel.click()
    assert sent.value.post_data_json == {"action": "cancel"}
    # Never checked out: nothing can still be paid, so it is cancelled and no longer blocks closing.
    expect(drawer.get_by_test_id("tx-detail-status")).to_have_attribute("data-status", "cancelled")


def test_a_refund_error_reads_in_the_chosen_language_and_leaves_the_buttons_free(
    dashboard: Dashboard, seeder: Seeder
) -> None:
    user = seeder.user("refuse")
    seeder.paid_deposit(user["user_id"], 500)
    page = dashboard.page
    dashboard.open_with_user(user["user_id"], "zh-TW")
    drawer = dashboard.open_details(dashboard.rows(type_="deposit", status="paid"))

    def refused(route: Route) -> None:
        route.fulfill(
            status=409,
            json={
                "error": {
                    "code": "refund_close_window",
                    "message": "no refunds between 20:15 and 20:30 Taipei",
                }
            },
        )

    page.route("**/refund", refused)
    drawer.get_by_test_id("refund-amount").fill("100")
    refund = drawer.get_by_test_id("detail-refund")
    refund.click()
    refund.click()
    error = drawer.get_by_test_id("error-message")
    expect(error).to_have_attribute("data-code", "refund_close_window")
    expect(error).to_contain_text("綠界關帳中")
    expect(error).not_to_contain_text("Taipei")  # no English server text in 繁體中文
    assert dashboard.covered_controls('[data-testid="tx-detail"]') == []


# ---- the sandbox's pages ------------------------------------------------------------------------------


ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


def test_the_sandbox_pages_work_on_a_phone_and_read_like_the_dashboard(
    open_page: Callable[..., Page], seeder: Seeder, local_stack: str, screenshot_dir: Path
) -> None:
    user = seeder.user("sandbox")
    page = open_page(PHONE)
    dashboard = Dashboard(page, local_stack.rstrip("/"))
    dashboard.open_with_user(user["user_id"], "zh-TW")
    dashboard.start_deposit(1500, "ATM")  # the payment page, as the shopper sees it
    assert dashboard.horizontal_overflow() == 0
    assert dashboard.covered_controls() == []
    expect(page.locator("#trade")).to_contain_text("NT$1,500")  # the dashboard's amount format
    dashboard.get_code_on_sandbox()

    _, merchant_trade_no = seeder.awaiting_code(user["user_id"], 300)
    # The payment page's address opened again (GET) shows the trade's record.
    page.goto(f"{dashboard.base_url}/sandbox/checkout/{merchant_trade_no}")
    expect(page).to_have_url(re.compile(rf".*/sandbox/trades/{merchant_trade_no}$"))
    record = page.locator("#trade")
    expect(record).to_have_attribute("data-status", "code_issued")
    expect(record).to_contain_text("NT$300")
    expect(record).to_contain_text("已取號，等待繳費")  # a state in words, not "code_issued"
    expect(record).to_contain_text("ATM 虛擬帳號")  # a payment type in words, not "ATM_..."
    assert dashboard.horizontal_overflow() == 0
    assert dashboard.covered_controls() == []
    text = dashboard.visible_text()
    assert not ISO_TIME.search(text), text  # Taipei times, not ISO-8601 with microseconds
    assert "NT$ " not in text
    page.screenshot(path=str(screenshot_dir / "sandbox.phone.png"), full_page=True)

    page.goto(f"{dashboard.base_url}/sandbox/")
    assert dashboard.horizontal_overflow() == 0
    expect(page.get_by_role("link", name=merchant_trade_no)).to_have_css("color", "rgb(0, 117, 72)")


def test_every_checkout_attempt_of_a_deposit_is_shown_with_its_code(
    dashboard: Dashboard, seeder: Seeder
) -> None:
    user = seeder.user("attempts")
    deposit, merchant_trade_no = seeder.awaiting_code(user["user_id"], 300)
    card = seeder.checkout(user["user_id"], deposit, "Credit")  # the shopper tries a card instead...
    seeder.sandbox.fail(card)  # ...which fails: the ATM code of the first attempt is still payable
    status, tx = seeder.call("GET", f"/users/{user['user_id']}/transactions/{deposit}")
    assert status == 200 and [a["merchant_trade_no"] for a in tx["attempts"]] == [merchant_trade_no, card]
    code = tx["attempts"][0]["payment_info"]["v_account"]
    dashboard.open_with_user(user["user_id"], "zh-TW")
    drawer = dashboard.open_details(dashboard.rows(type_="deposit"))
    attempts = drawer.get_by_test_id("attempt")
    expect(attempts).to_have_count(2)
    expect(attempts.first).to_have_attribute("data-state", "awaiting_offline_payment")
    expect(attempts.first).to_contain_text(code)
    expect(attempts.first.get_by_test_id("attempt-state")).to_have_text("等待繳費")
    expect(attempts.nth(1).get_by_test_id("attempt-state")).to_have_text("付款失敗")
    text = dashboard.visible_text('[data-testid="tx-detail"]')
    assert not NO_TEXT.search(text), text
