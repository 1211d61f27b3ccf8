"""A page object for the dashboard (and the sandbox's payment page): the tests read as user stories.

Every wait is one of Playwright's auto-waiting expectations or URL waits; nothing sleeps.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from playwright.sync_api import Locator, Page, expect

# The sandbox's payment page (design §5): ECPay's AioCheckOut/V5 path on the local stack.
CHECKOUT_URL = re.compile(r".*/Cashier/AioCheckOut/V5(\?.*)?$")

# Texts a test may look for, per language (the dashboard's i18n.js is the source of truth).
TEXTS = {
    "en": {
        "users_title": "Users",
        "insufficient_balance": "Insufficient balance.",
        "status_paid": "Paid",
        "status_pending": "Pending",
        "status_completed": "Completed",
        "status_cancelled": "Cancelled",
        "user_closed": "Closed",
        "pay": "Pay",
    },
    "zh-TW": {
        "users_title": "使用者",
        "insufficient_balance": "餘額不足。",
        "status_paid": "已付款",
        "status_pending": "待處理",
        "status_completed": "已完成",
        "status_cancelled": "已取消",
        "user_closed": "已停用",
        "pay": "付款",
    },
}


@dataclass
class Dashboard:
    """The dashboard at ``base_url`` in one browser page."""

    page: Page
    base_url: str

    # ---- navigation and language ----------------------------------------------------------------
    def open(self, language: str = "en") -> None:
        """Load the dashboard and switch it to ``language``."""
        self.page.goto(self.base_url + "/")
        expect(self.page.locator("body")).to_have_attribute("data-ready", "true")
        self.set_language(language)

    def open_with_user(self, user_id: str, language: str = "en") -> None:
        """Load the dashboard with ``user_id`` selected (as if chosen earlier in this browser)."""
        self.page.add_init_script(
            f"if (!sessionStorage.getItem('seeded')) {{ sessionStorage.setItem('seeded', '1');"
            f" localStorage.setItem('ecpayWallet.selectedUser', {json.dumps(user_id)});"
            f" localStorage.setItem('ecpayWallet.lang', {json.dumps(language)}); }}"
        )
        self.page.goto(self.base_url + "/")
        expect(self.page.locator("body")).to_have_attribute("data-ready", "true")
        expect(self.page.locator("html")).to_have_attribute("lang", language)
        expect(self.page.get_by_test_id("balance")).not_to_have_attribute("data-value", "")

    def set_language(self, language: str) -> None:
        """Click the language toggle and wait for the page to be translated."""
        self.page.get_by_test_id(f"lang-{language}").click()
        expect(self.page.locator("html")).to_have_attribute("lang", language)
        expect(self.page.locator("#users-title")).to_have_text(TEXTS[language]["users_title"])

    # ---- users ------------------------------------------------------------------------------------
    def create_user(self, username: str, email: str) -> str:
        """Create a user through the form; it becomes the selected user. Returns its id."""
        self.page.get_by_test_id("new-username").fill(username)
        self.page.get_by_test_id("new-email").fill(email)
        self.page.get_by_test_id("create-user").click()
        expect(self.page.get_by_test_id("user-name")).to_have_text(username)
        item = self.user_item(username)
        expect(item).to_have_count(1)
        user_id = item.get_attribute("data-user-id")
        assert user_id, "the user list item carries the user id"
        return user_id

    def user_item(self, username: str) -> Locator:
        """The user list entry of ``username``."""
        return self.page.locator(f'[data-testid="user-item"][data-username="{username}"]')

    @property
    def balance(self) -> Locator:
        """The selected user's available balance (``data-value`` holds the integer)."""
        return self.page.get_by_test_id("balance")

    @property
    def held(self) -> Locator:
        """The selected user's held amount (``data-value`` holds the integer)."""
        return self.page.get_by_test_id("held")

    # ---- money ------------------------------------------------------------------------------------
    def start_deposit(self, amount: int, method: str = "Credit") -> None:
        """Fill the deposit form and submit it: the browser goes to the (sandbox) ECPay page."""
        self.page.get_by_test_id("deposit-amount").fill(str(amount))
        self.page.get_by_test_id("deposit-method").select_option(method)
        self.page.get_by_test_id("deposit-submit").click()
        self.page.wait_for_url(CHECKOUT_URL)

    def sandbox_action(self, action: str) -> Locator:
        """A button of the sandbox's payment page ("pay", "fail", "issue-code", "choose"...)."""
        return self.page.locator(f'button[name="do"][value="{action}"]')

    def pay_on_sandbox(self) -> None:
        """On the sandbox's payment page, pay; the browser comes back to the dashboard."""
        expect(self.page).to_have_url(CHECKOUT_URL)
        self.sandbox_action("pay").click()
        self.back_to_the_shop()

    def back_to_the_shop(self) -> None:
        """Follow ECPay's way back to the dashboard: the page's automatic POST to OrderResultURL, or,
        without one, the result page's "back to the shop" link (ClientBackURL)."""
        dashboard = self.page.get_by_test_id("user-detail")
        back = self.page.locator("#client-back")
        expect(dashboard.or_(back).first).to_be_visible()
        if back.is_visible():
            back.click()
        self.page.wait_for_url(re.compile(re.escape(self.base_url) + r"/(\?.*)?$"))
        expect(self.page.locator("body")).to_have_attribute("data-ready", "true")

    def get_code_on_sandbox(self) -> None:
        """ATM/CVS/BARCODE: have the sandbox issue the payment code, then go back to the shop."""
        expect(self.page).to_have_url(CHECKOUT_URL)
        self.sandbox_action("issue-code").click()
        expect(self.page.locator("code[data-field]").first).to_be_visible()
        back = self.page.locator('form:has(input[name="action"][value="client-redirect"]) button')
        back.or_(self.page.locator("#client-back")).first.click()
        self.page.wait_for_url(re.compile(re.escape(self.base_url) + r"/(\?.*)?$"))
        expect(self.page.locator("body")).to_have_attribute("data-ready", "true")

    def withdraw(self, amount: int) -> None:
        """Submit the withdraw form (the result is a new row, or an error message)."""
        self.page.get_by_test_id("withdraw-amount").fill(str(amount))
        self.page.get_by_test_id("withdraw-submit").click()

    # ---- transactions -----------------------------------------------------------------------------
    def rows(self, *, type_: str | None = None, status: str | None = None) -> Locator:
        """Transaction rows, optionally filtered by type and status."""
        selector = '[data-testid="tx-row"]'
        if type_:
            selector += f'[data-type="{type_}"]'
        if status:
            selector += f'[data-status="{status}"]'
        return self.page.locator(selector)

    def open_details(self, row: Locator) -> Locator:
        """Open a transaction's drawer; returns the drawer."""
        row.get_by_test_id("tx-details").click()
        drawer = self.page.get_by_test_id("tx-detail")
        expect(drawer).to_be_visible()
        expect(drawer.get_by_test_id("tx-detail-id")).to_be_visible()
        return drawer

    @property
    def errors(self) -> Locator:
        """Error messages currently shown."""
        return self.page.get_by_test_id("error-message")

    # ---- layout -----------------------------------------------------------------------------------
    def covered_controls(self, within: str = "body") -> list[str]:
        """Every visible control under ``within`` that something else covers, or that cannot be brought
        into the window: each is scrolled to the top (below the sticky bar) and to the middle of the
        window, and the element at its centre must be the control itself (or inside it)."""
        return list(self.page.evaluate(COVERED_CONTROLS_JS, within))

    def horizontal_overflow(self) -> int:
        """How many CSS pixels the page is wider than the window (0 when nothing sticks out)."""
        return int(self.page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))

    def visible_text(self, selector: str = "body") -> str:
        """The rendered text of the first element matching ``selector``."""
        return str(self.page.locator(selector).first.inner_text())


COVERED_CONTROLS_JS = """
(within) => {
  const describe = (el) => {
    if (!el) return "nothing";
    const id = el.dataset && el.dataset.testid ? `[data-testid=${el.dataset.testid}]` : "";
    const names = typeof el.className === "string" ? el.className : "";
    const cls = names ? `.${names.split(" ").join(".")}` : "";
    return `${el.tagName.toLowerCase()}${id}${cls} "${(el.textContent || "").trim().slice(0, 30)}"`;
  };
  const root = document.querySelector(within);
  const controls = [...root.querySelectorAll("button, input, select, textarea, a[href]")].filter((el) => {
    if (el.type === "hidden" || el.closest("[hidden]")) return false;
    const box = el.getBoundingClientRect();
    return box.width > 0 && box.height > 0 && getComputedStyle(el).visibility !== "hidden";
  });
  const problems = [];
  for (const el of controls) {
    for (const block of ["start", "center"]) {
      el.scrollIntoView({ block, inline: "nearest" });
      const box = el.getBoundingClientRect();
      const x = box.left + box.width / 2;
      const y = box.top + box.height / 2;
      if (x < 0 || y < 0 || x >= window.innerWidth || y >= window.innerHeight) {
        problems.push(`${describe(el)} cannot be scrolled into the window (${block})`);
        continue;
      }
      const hit = document.elementFromPoint(x, y);
      const inLabel = [...(el.labels || [])].some((label) => label.contains(hit));
      const own = hit && (hit === el || el.contains(hit) || inLabel);
      if (!own) problems.push(`${describe(el)} is covered by ${describe(hit)} (${block})`);
    }
  }
  window.scrollTo(0, 0);
  return [...new Set(problems)];
}
"""
