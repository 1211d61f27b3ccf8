// The wallet dashboard: plain ES module, no build step, no framework.
// It only talks to the HTTP API (design §3) and renders what the API answers: no business rules here
// (the server decides what is allowed; the buttons shown are hints, the API has the last word).

import { initialLanguage, language, setLanguage, has, t } from "./i18n.js";

// ---------------------------------------------------------------------------------------------
// Settings and constants
// ---------------------------------------------------------------------------------------------

const STORAGE = {
  lang: "ecpayWallet.lang",
  token: "ecpayWallet.token",
  apiBase: "ecpayWallet.apiBase",
  selectedUser: "ecpayWallet.selectedUser",
  usersPage: "ecpayWallet.usersPage",
  payments: "ecpayWallet.payments", // transaction_id -> user_id of checkouts started here
};
const USERS_PAGE_SIZE = 8;
const TX_PAGE_SIZE = 10;
const POLL_MS = 2000; // while something awaits payment
const HEALTH_MS = 30000;
const PAYMENT_METHODS = ["Credit", "ATM", "CVS", "BARCODE", "ALL"];
const AWAITING = new Set(["awaiting_payment", "awaiting_offline_payment"]);
const UNSETTLED = new Set(["pending", "awaiting_payment", "awaiting_offline_payment"]);
const PAYABLE = new Set(["pending", "failed", "awaiting_payment"]);
const REFUNDABLE = new Set(["paid", "partially_refunded"]);
// Known keys of payment_info (ECPay's names, and snake_case variants), shown in this order.
const INFO_KEYS = ["BankCode", "vAccount", "PaymentNo", "Barcode1", "Barcode2", "Barcode3", "ExpireDate", "PaymentType"];
const INFO_ALIASES = {
  bank_code: "BankCode",
  v_account: "vAccount",
  virtual_account: "vAccount",
  payment_no: "PaymentNo",
  payment_code: "PaymentNo",
  barcode1: "Barcode1",
  barcode_1: "Barcode1",
  barcode2: "Barcode2",
  barcode_2: "Barcode2",
  barcode3: "Barcode3",
  barcode_3: "Barcode3",
  expire_date: "ExpireDate",
  payment_type: "PaymentType",
};

function readStorage(key, fallback = "") {
  try {
    return localStorage.getItem(key) ?? fallback;
  } catch {
    return fallback;
  }
}

function writeStorage(key, value) {
  try {
    if (value === null || value === undefined || value === "") localStorage.removeItem(key);
    else localStorage.setItem(key, value);
  } catch {
    // Storage may be disabled (private mode): the dashboard still works for this page view.
  }
}

const state = {
  token: readStorage(STORAGE.token),
  apiBase: readStorage(STORAGE.apiBase),
  users: { page: 1, total: 0, items: [] },
  selectedUserId: null,
  user: null,
  tx: { page: 1, total: 0, items: [] },
  detailId: null,
  detail: null,
  returnInfo: null, // {transactionId, userId, status, settled}
  polling: false,
};

// ---------------------------------------------------------------------------------------------
// Small DOM helpers (never innerHTML with data: usernames and API messages are untrusted text)
// ---------------------------------------------------------------------------------------------

const $ = (selector, root = document) => root.querySelector(selector);

function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "testid") el.dataset.testid = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

function formatMoney(amount, { signed = false } = {}) {
  const n = Number(amount);
  if (!Number.isFinite(n)) return t("common.none");
  const digits = Math.abs(n).toLocaleString(language());
  const sign = n < 0 ? "−" : signed && n > 0 ? "+" : "";
  return `${sign}NT$${digits}`;
}

function formatDate(value) {
  if (!value) return t("common.none");
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return date.toLocaleString(language(), { dateStyle: "medium", timeStyle: "short" });
}

function statusLabel(status) {
  return has(`status.${status}`) ? t(`status.${status}`) : String(status ?? "");
}

function statusBadge(status, testid = "tx-status") {
  return h("span", { class: `badge status status-${status}`, testid, "data-status": status }, statusLabel(status));
}

// Notification outcomes: "applied", "duplicate", "rejected:<check>", "ignored:<reason>", "flagged:<flag>".
function outcomeBadge(outcome) {
  const text = String(outcome || "");
  const [kind, ...rest] = text.split(":");
  const reason = rest.join(":");
  const label = has(`outcome.${kind}`) ? t(`outcome.${kind}`) : kind;
  return h("span", { class: `badge outcome outcome-${kind}`, title: text }, reason ? `${label}: ${reason}` : label);
}

function methodLabel(method) {
  if (!method) return t("common.none");
  return has(`method.${method}`) ? t(`method.${method}`) : String(method);
}

function newIdempotencyKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes); // works outside secure contexts too (unlike randomUUID)
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// ---------------------------------------------------------------------------------------------
// API client
// ---------------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(code, message, status, details = []) {
    super(message || code);
    this.code = code;
    this.status = status;
    this.details = Array.isArray(details) ? details : [];
  }
}

// Field names in validation errors -> the label the user sees next to that field.
const FIELD_LABELS = {
  username: "users.username",
  email: "users.email",
  amount: "wallet.amount",
  payment_method: "wallet.method",
  transaction_type: "tx.type",
};

function apiUrl(path, query) {
  const base = (state.apiBase || "").replace(/\/+$/, "");
  const url = new URL(base + path, window.location.href);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null) url.searchParams.set(key, String(value));
  }
  return url.toString();
}

async function api(method, path, { body, query, headers = {} } = {}) {
  const requestHeaders = { Accept: "application/json", ...headers };
  if (body !== undefined) requestHeaders["Content-Type"] = "application/json";
  if (state.token) requestHeaders.Authorization = `Bearer ${state.token}`;
  let response;
  try {
    response = await fetch(apiUrl(path, query), {
      method,
      headers: requestHeaders,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch {
    setHealth("down");
    throw new ApiError("network", "", 0);
  }
  setHealth("ok");
  const contentType = response.headers.get("Content-Type") || "";
  let data = null;
  if (contentType.includes("json")) {
    try {
      data = await response.json();
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const error = data && typeof data.error === "object" && data.error ? data.error : {};
    const code = error.code || (response.status === 401 ? "unauthorized" : `http_${response.status}`);
    const message = error.message || (typeof data?.message === "string" ? data.message : "");
    throw new ApiError(code, message, response.status, error.details);
  }
  return data;
}

const userPath = (userId) => `/users/${encodeURIComponent(userId)}`;
const txPath = (userId, txId) => `${userPath(userId)}/transactions/${encodeURIComponent(txId)}`;

// ---------------------------------------------------------------------------------------------
// Messages: readable errors and confirmations
// ---------------------------------------------------------------------------------------------

function errorTexts(error) {
  if (error instanceof ApiError) {
    if (error.code === "network") return { title: t("errors.network"), detail: "" };
    const known = has(`errors.${error.code}`);
    const title = known
      ? t(`errors.${error.code}`)
      : error.status >= 500
        ? t("errors.internal_error")
        : error.status
          ? t("errors.http", { status: error.status })
          : t("errors.generic");
    const fields = error.details
      .map((item) => (Array.isArray(item?.loc) ? item.loc[item.loc.length - 1] : null))
      .filter((name) => typeof name === "string")
      .map((name) => (FIELD_LABELS[name] ? t(FIELD_LABELS[name]) : name));
    if (fields.length > 0) return { title, detail: t("errors.fields", { fields: [...new Set(fields)].join(", ") }) };
    const detail = error.message && error.message !== error.code && error.message !== title ? error.message : "";
    return { title, detail };
  }
  return { title: t("errors.generic"), detail: error && error.message ? String(error.message) : "" };
}

function toast(kind, title, detail = "", code = "") {
  const box = $("#toasts");
  const item = h(
    "div",
    {
      class: `toast toast-${kind}`,
      role: kind === "error" ? "alert" : "status",
      testid: kind === "error" ? "error-message" : "notice-message",
      "data-code": code || null,
    },
    h("div", { class: "toast-text" }, h("strong", {}, title), detail ? h("span", { class: "toast-detail" }, detail) : null),
    h("button", { type: "button", class: "toast-close", "aria-label": t("common.close"), onclick: () => item.remove() }, "×"),
  );
  box.prepend(item);
  while (box.children.length > 4) box.lastElementChild.remove();
  if (kind !== "error") setTimeout(() => item.remove(), 6000);
}

function showError(error) {
  const { title, detail } = errorTexts(error);
  toast("error", title, detail, error instanceof ApiError ? error.code : "");
}

function showNotice(text) {
  toast("success", text);
}

// Runs an action with its button disabled; errors become readable messages.
async function withBusy(button, action) {
  if (button) {
    if (button.disabled) return;
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
  }
  try {
    await action();
  } catch (error) {
    showError(error);
  } finally {
    if (button && button.isConnected) {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  }
}

// Destructive actions need a second click on the same button.
function confirmThen(button, action) {
  if (button.dataset.confirming === "1") {
    delete button.dataset.confirming;
    button.classList.remove("confirming");
    button.textContent = button.dataset.label || button.textContent;
    return withBusy(button, action);
  }
  button.dataset.label = button.textContent;
  button.dataset.confirming = "1";
  button.classList.add("confirming");
  button.textContent = t("common.confirm");
  setTimeout(() => {
    if (button.dataset.confirming === "1") {
      delete button.dataset.confirming;
      button.classList.remove("confirming");
      button.textContent = button.dataset.label;
    }
  }, 5000);
  return Promise.resolve();
}

// ---------------------------------------------------------------------------------------------
// Health
// ---------------------------------------------------------------------------------------------

function setHealth(health) {
  const el = $('[data-testid="health"]');
  el.dataset.state = health;
  $(".health-text", el).textContent = t(`health.${health}`);
}

async function checkHealth() {
  try {
    const response = await fetch(apiUrl("/healthz"), { cache: "no-store", headers: { Accept: "application/json" } });
    setHealth(response.ok ? "ok" : "down");
  } catch {
    setHealth("down");
  }
}

// ---------------------------------------------------------------------------------------------
// Language
// ---------------------------------------------------------------------------------------------

function applyLanguage(lang) {
  setLanguage(lang);
  writeStorage(STORAGE.lang, language());
  document.documentElement.lang = language();
  document.title = t("app.title");
  for (const el of document.querySelectorAll("[data-i18n]")) {
    if (el.dataset.confirming === "1") continue;
    el.textContent = t(el.dataset.i18n);
  }
  for (const el of document.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of document.querySelectorAll("[data-i18n-aria]")) el.setAttribute("aria-label", t(el.dataset.i18nAria));
  for (const button of document.querySelectorAll(".lang-switch [data-lang]")) {
    button.setAttribute("aria-pressed", String(button.dataset.lang === language()));
  }
  setHealth($('[data-testid="health"]').dataset.state || "checking");
  renderMethodOptions($('[data-testid="deposit-method"]'));
  renderAll();
}

function renderMethodOptions(select, selected) {
  const value = selected || select.value || PAYMENT_METHODS[0];
  select.replaceChildren(...PAYMENT_METHODS.map((m) => h("option", { value: m }, methodLabel(m))));
  select.value = PAYMENT_METHODS.includes(value) ? value : PAYMENT_METHODS[0];
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

async function loadUsers() {
  const data = await api("GET", "/users", { query: { page: state.users.page, pageSize: USERS_PAGE_SIZE, include_closed: true } });
  state.users.items = Array.isArray(data?.users) ? data.users : [];
  state.users.total = Number(data?.total ?? state.users.items.length);
  const pages = Math.max(1, Math.ceil(state.users.total / USERS_PAGE_SIZE));
  if (state.users.page > pages) {
    state.users.page = pages;
    return loadUsers();
  }
  writeStorage(STORAGE.usersPage, String(state.users.page));
  renderUsers();
}

// A new user is on the first page (newest first) or the last one (oldest first): show that page.
async function showUserInList(userId) {
  state.users.page = 1;
  await loadUsers();
  if (state.users.items.some((user) => user.user_id === userId)) return;
  const last = Math.max(1, Math.ceil(state.users.total / USERS_PAGE_SIZE));
  if (last > 1) {
    state.users.page = last;
    await loadUsers();
  }
}

async function loadUser() {
  if (!state.selectedUserId) return;
  const id = state.selectedUserId;
  try {
    const user = await api("GET", userPath(id));
    if (state.selectedUserId !== id) return;
    state.user = user;
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      selectUser(null);
      return;
    }
    throw error;
  }
  renderUserDetail();
}

async function loadTransactions() {
  if (!state.selectedUserId) return;
  const id = state.selectedUserId;
  const data = await api("GET", `${userPath(id)}/transactions`, {
    query: { page: state.tx.page, pageSize: TX_PAGE_SIZE },
  });
  if (state.selectedUserId !== id) return;
  state.tx.items = Array.isArray(data?.transactions) ? data.transactions : [];
  state.tx.total = Number(data?.total ?? state.tx.items.length);
  renderTransactions();
}

async function loadDetail() {
  if (!state.selectedUserId || !state.detailId) return;
  const userId = state.selectedUserId;
  const txId = state.detailId;
  const data = await api("GET", txPath(userId, txId));
  if (state.detailId !== txId) return;
  state.detail = normalizeDetail(data);
  renderDrawer();
}

// The API answers a transaction with its ledger and notifications alongside (or, defensively,
// nested under "transaction").
function normalizeDetail(data) {
  const tx = data && typeof data.transaction === "object" && data.transaction ? data.transaction : data || {};
  return {
    ...tx,
    ledger: Array.isArray(data?.ledger) ? data.ledger : Array.isArray(tx.ledger) ? tx.ledger : [],
    notifications: Array.isArray(data?.notifications)
      ? data.notifications
      : Array.isArray(tx.notifications)
        ? tx.notifications
        : [],
  };
}

async function loadReturned() {
  const info = state.returnInfo;
  if (!info || info.settled || !info.userId) return;
  const data = normalizeDetail(await api("GET", txPath(info.userId, info.transactionId)));
  info.status = data.status;
  info.settled = !UNSETTLED.has(data.status);
  renderBanner();
}

async function refreshSelected() {
  await Promise.all([loadUser(), loadTransactions(), loadDetail()]);
}

function selectUser(userId) {
  state.selectedUserId = userId;
  state.user = null;
  state.tx = { page: 1, total: 0, items: [] };
  closeDrawer();
  writeStorage(STORAGE.selectedUser, userId);
  renderUsers();
  renderUserDetail();
  renderTransactions();
  if (userId) {
    Promise.all([loadUser(), loadTransactions()]).catch(showError);
  }
}

// ---------------------------------------------------------------------------------------------
// Live updates: poll while something waits for ECPay
// ---------------------------------------------------------------------------------------------

function needsPolling() {
  return (
    state.tx.items.some((tx) => AWAITING.has(tx.status)) ||
    (state.detail !== null && AWAITING.has(state.detail.status)) ||
    (state.returnInfo !== null && !state.returnInfo.settled && Boolean(state.returnInfo.userId))
  );
}

async function poll() {
  if (state.polling || document.hidden || !needsPolling()) return;
  state.polling = true;
  try {
    await Promise.all([loadReturned(), refreshSelected(), loadUsers()]);
  } catch {
    // A failed poll is retried on the next tick; the health indicator shows a lost connection.
  } finally {
    state.polling = false;
    renderLive();
  }
}

function renderLive() {
  $('[data-testid="live-indicator"]').hidden = !needsPolling();
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

function renderAll() {
  renderUsers();
  renderUserDetail();
  renderTransactions();
  renderDrawer();
  renderBanner();
}

function renderPager(prefix, page, total, pageSize) {
  const pages = Math.max(1, Math.ceil(total / pageSize));
  $(`[data-testid="${prefix}-page"]`).textContent =
    `${t("common.pageOf", { page, pages })} · ${t("common.totalItems", { total })}`;
  $(`[data-testid="${prefix}-prev"]`).disabled = page <= 1;
  $(`[data-testid="${prefix}-next"]`).disabled = page >= pages;
}

function renderUsers() {
  const list = $("#user-list");
  if (state.users.items.length === 0) {
    list.replaceChildren(h("li", { class: "empty", testid: "users-empty" }, t("users.empty")));
  } else {
    list.replaceChildren(
      ...state.users.items.map((user) => {
        const selected = user.user_id === state.selectedUserId;
        return h(
          "li",
          { testid: "user-item", "data-user-id": user.user_id, "data-username": user.username },
          h(
            "button",
            {
              type: "button",
              class: `user-row${selected ? " selected" : ""}${user.status === "closed" ? " closed" : ""}`,
              "aria-current": selected ? "true" : null,
              onclick: () => selectUser(user.user_id),
            },
            h("span", { class: "avatar", "aria-hidden": "true" }, (user.username || "?").slice(0, 1).toUpperCase()),
            h(
              "span",
              { class: "user-row-main" },
              h("span", { class: "user-row-name" }, user.username),
              h("span", { class: "user-row-email" }, user.email),
            ),
            h(
              "span",
              { class: "user-row-side" },
              h("span", { class: "user-row-balance", testid: "user-item-balance", "data-value": user.balance }, formatMoney(user.balance)),
              user.status === "closed" ? h("span", { class: "badge badge-muted" }, t("users.status.closed")) : null,
            ),
          ),
        );
      }),
    );
  }
  renderPager("users", state.users.page, state.users.total, USERS_PAGE_SIZE);
}

function renderUserDetail() {
  const hasUser = Boolean(state.selectedUserId);
  $("#empty-state").hidden = hasUser;
  $("#user-detail").hidden = !hasUser;
  if (!hasUser) return;
  const user = state.user;
  const loading = !user;
  $('[data-testid="user-name"]').textContent = loading ? t("common.loading") : user.username;
  $('[data-testid="user-email"]').textContent = loading ? "" : user.email;
  $('[data-testid="user-since"]').textContent = loading ? "" : t("users.since", { date: formatDate(user.created_at) });
  const statusEl = $('[data-testid="user-status"]');
  statusEl.textContent = loading ? "" : t(`users.status.${user.status}`);
  statusEl.className = `badge ${user?.status === "closed" ? "badge-muted" : "badge-ok"}`;
  statusEl.dataset.status = user?.status || "";
  const balance = $('[data-testid="balance"]');
  balance.textContent = loading ? "…" : formatMoney(user.balance);
  balance.dataset.value = loading ? "" : String(user.balance);
  const held = $('[data-testid="held"]');
  held.textContent = loading ? "…" : formatMoney(user.held);
  held.dataset.value = loading ? "" : String(user.held);
  const closed = user?.status === "closed";
  $('[data-testid="closed-notice"]').hidden = !closed;
  $('[data-testid="money-actions"]').hidden = closed;
  $('[data-testid="close-user"]').closest(".danger-zone").hidden = closed || loading;
}

function txRowActions(tx) {
  const actions = [];
  if (tx.transaction_type === "deposit" && PAYABLE.has(tx.status)) {
    actions.push(
      h(
        "button",
        { type: "button", class: "btn btn-primary btn-small", testid: "tx-pay", onclick: (e) => withBusy(e.currentTarget, () => pay(tx)) },
        t("tx.pay"),
      ),
    );
  }
  if (tx.transaction_type === "withdraw" && tx.status === "pending") {
    actions.push(
      h(
        "button",
        { type: "button", class: "btn btn-secondary btn-small", testid: "tx-complete", onclick: (e) => withBusy(e.currentTarget, () => updateWithdraw(tx, "complete")) },
        t("tx.complete"),
      ),
      h(
        "button",
        { type: "button", class: "btn btn-ghost btn-small", testid: "tx-cancel", onclick: (e) => withBusy(e.currentTarget, () => updateWithdraw(tx, "cancel")) },
        t("tx.cancelShort"),
      ),
    );
  }
  actions.push(
    h("button", { type: "button", class: "btn btn-ghost btn-small", testid: "tx-details", onclick: () => openDrawer(tx.transaction_id) }, t("tx.details")),
  );
  return actions;
}

function renderTransactions() {
  const body = $("#tx-body");
  if (!state.selectedUserId) {
    body.replaceChildren();
    return;
  }
  if (state.tx.items.length === 0) {
    body.replaceChildren(h("tr", {}, h("td", { colspan: 6, class: "empty", testid: "tx-empty" }, t("tx.empty"))));
  } else {
    body.replaceChildren(
      ...state.tx.items.map((tx) =>
        h(
          "tr",
          {
            testid: "tx-row",
            "data-transaction-id": tx.transaction_id,
            "data-status": tx.status,
            "data-type": tx.transaction_type,
            class: state.returnInfo?.transactionId === tx.transaction_id ? "highlight" : null,
          },
          h("td", { class: "nowrap" }, formatDate(tx.created_at)),
          h("td", {}, has(`type.${tx.transaction_type}`) ? t(`type.${tx.transaction_type}`) : tx.transaction_type),
          h("td", { class: "num", testid: "tx-amount" }, formatMoney(tx.amount)),
          h("td", {}, methodLabel(tx.payment_method)),
          h("td", {}, statusBadge(tx.status)),
          h("td", { class: "actions-col" }, h("div", { class: "row-actions" }, txRowActions(tx))),
        ),
      ),
    );
  }
  renderPager("tx", state.tx.page, state.tx.total, TX_PAGE_SIZE);
  renderLive();
}

function detailRow(label, value, testid) {
  return [h("dt", {}, label), h("dd", { testid }, value ?? t("common.none"))];
}

// Payment instructions (ATM/CVS/BARCODE) in a fixed order; the deadline comes from expires_at
// when the payment info itself does not carry ECPay's ExpireDate.
function paymentInfoEntries(info, expiresAt) {
  const entries = new Map();
  for (const [rawKey, value] of Object.entries(info || {})) {
    if (value === null || value === undefined || value === "") continue;
    const key = INFO_ALIASES[rawKey] || INFO_ALIASES[rawKey.toLowerCase()] || rawKey;
    entries.set(key, String(value));
  }
  if (entries.size > 0 && expiresAt && !entries.has("ExpireDate")) entries.set("ExpireDate", formatDate(expiresAt));
  const ordered = INFO_KEYS.filter((k) => entries.has(k)).map((k) => [k, entries.get(k)]);
  const rest = [...entries].filter(([k]) => !INFO_KEYS.includes(k));
  return [...ordered, ...rest];
}

function renderDrawer() {
  const drawer = $("#tx-drawer");
  const tx = state.detail;
  if (!state.detailId) return;
  const title = $('[data-testid="tx-detail-title"]');
  const body = $("#tx-drawer-body");
  if (!tx) {
    title.textContent = t("tx.details");
    body.replaceChildren(h("p", { class: "hint" }, t("common.loading")));
    return;
  }
  drawer.dataset.status = tx.status;
  title.textContent = `${has(`type.${tx.transaction_type}`) ? t(`type.${tx.transaction_type}`) : tx.transaction_type} · ${formatMoney(tx.amount)}`;

  const parts = [];
  parts.push(h("div", { class: "drawer-status" }, statusBadge(tx.status, "tx-detail-status")));
  for (const flag of Array.isArray(tx.flags) ? tx.flags : []) {
    parts.push(h("p", { class: "notice notice-warn", testid: "tx-flag" }, has(`tx.flag.${flag}`) ? t(`tx.flag.${flag}`) : flag));
  }

  const info = paymentInfoEntries(tx.payment_info, tx.expires_at);
  if (info.length > 0 && (tx.status === "awaiting_offline_payment" || tx.status === "expired")) {
    parts.push(
      h(
        "section",
        { class: "payment-info", testid: "payment-info" },
        h("h4", {}, t("tx.paymentInfo")),
        tx.status === "awaiting_offline_payment" ? h("p", { class: "hint" }, t("tx.paymentInfoHint")) : null,
        h("dl", { class: "kv" }, info.map(([k, v]) => detailRow(has(`info.${k}`) ? t(`info.${k}`) : k, h("code", {}, v), `info-${k}`))),
      ),
    );
  }

  const rows = [
    ...detailRow(t("tx.id"), h("code", {}, tx.transaction_id), "tx-detail-id"),
    ...detailRow(t("tx.status"), statusLabel(tx.status)),
    ...detailRow(t("tx.amount"), formatMoney(tx.amount)),
    ...detailRow(t("tx.method"), methodLabel(tx.payment_method)),
    ...detailRow(t("tx.created"), formatDate(tx.created_at)),
    ...detailRow(t("tx.updated"), formatDate(tx.updated_at)),
  ];
  if (tx.merchant_trade_no) rows.push(...detailRow(t("tx.merchantTradeNo"), h("code", {}, tx.merchant_trade_no), "tx-detail-mtn"));
  if (tx.trade_no) rows.push(...detailRow(t("tx.tradeNo"), h("code", {}, tx.trade_no)));
  if (Number(tx.refunded_amount) > 0) rows.push(...detailRow(t("tx.refunded"), formatMoney(tx.refunded_amount), "tx-refunded"));
  if (tx.expires_at) rows.push(...detailRow(t("tx.expires"), formatDate(tx.expires_at)));
  if (tx.related_transaction_id) rows.push(...detailRow(t("tx.related"), h("code", {}, tx.related_transaction_id)));
  parts.push(h("dl", { class: "kv" }, rows));

  parts.push(drawerActions(tx));

  parts.push(
    h("h4", {}, t("tx.ledger")),
    tx.ledger.length === 0
      ? h("p", { class: "hint", testid: "ledger-empty" }, t("tx.ledgerEmpty"))
      : h(
          "table",
          { class: "table table-compact", testid: "ledger" },
          h("thead", {}, h("tr", {}, h("th", {}, t("tx.created")), h("th", {}, t("tx.kind")), h("th", { class: "num" }, t("tx.deltaBalance")), h("th", { class: "num" }, t("tx.deltaHeld")))),
          h(
            "tbody",
            {},
            tx.ledger.map((entry) =>
              h(
                "tr",
                { testid: "ledger-entry", "data-kind": entry.kind },
                h("td", { class: "nowrap" }, formatDate(entry.created_at)),
                h("td", { title: entry.kind }, has(`kind.${entry.kind}`) ? t(`kind.${entry.kind}`) : h("code", {}, entry.kind)),
                h("td", { class: "num", testid: "ledger-delta-balance" }, formatMoney(entry.delta_balance, { signed: true })),
                h("td", { class: "num" }, formatMoney(entry.delta_held, { signed: true })),
              ),
            ),
          ),
        ),
    h("h4", {}, t("tx.notifications")),
    tx.notifications.length === 0
      ? h("p", { class: "hint", testid: "notifications-empty" }, t("tx.notificationsEmpty"))
      : h(
          "table",
          { class: "table table-compact", testid: "notifications" },
          h("thead", {}, h("tr", {}, h("th", {}, t("tx.receivedAt")), h("th", {}, t("tx.route")), h("th", {}, t("tx.outcome")))),
          h(
            "tbody",
            {},
            tx.notifications.map((n) =>
              h(
                "tr",
                { testid: "notification", "data-outcome": n.outcome },
                h("td", { class: "nowrap" }, formatDate(n.received_at)),
                h("td", { title: n.route }, has(`route.${n.route}`) ? t(`route.${n.route}`) : h("code", {}, n.route)),
                h("td", {}, outcomeBadge(n.outcome)),
              ),
            ),
          ),
        ),
  );
  body.replaceChildren(...parts);
}

function drawerActions(tx) {
  const box = h("div", { class: "drawer-actions", testid: "tx-detail-actions" });
  if (tx.transaction_type === "deposit" && PAYABLE.has(tx.status)) {
    const select = h("select", { testid: "pay-method", "aria-label": t("wallet.method") });
    renderMethodOptions(select, tx.payment_method);
    box.append(
      h(
        "div",
        { class: "inline-form" },
        h("label", { class: "field" }, h("span", {}, t("wallet.method")), select),
        h(
          "button",
          { type: "button", class: "btn btn-primary", testid: "detail-pay", onclick: (e) => withBusy(e.currentTarget, () => pay(tx, select.value)) },
          tx.status === "pending" ? t("tx.pay") : t("tx.payAgain"),
        ),
      ),
    );
  }
  if (tx.transaction_type === "deposit" && AWAITING.has(tx.status)) {
    box.append(
      h("button", { type: "button", class: "btn btn-secondary", testid: "detail-sync", onclick: (e) => withBusy(e.currentTarget, () => syncTx(tx)) }, t("tx.sync")),
    );
  }
  if (tx.transaction_type === "withdraw" && tx.status === "pending") {
    box.append(
      h("button", { type: "button", class: "btn btn-primary", testid: "detail-complete", onclick: (e) => withBusy(e.currentTarget, () => updateWithdraw(tx, "complete")) }, t("tx.complete")),
      h("button", { type: "button", class: "btn btn-ghost", testid: "detail-cancel", onclick: (e) => withBusy(e.currentTarget, () => updateWithdraw(tx, "cancel")) }, t("tx.cancel")),
    );
  }
  if (tx.transaction_type === "deposit" && REFUNDABLE.has(tx.status) && tx.payment_method === "Credit") {
    const remaining = Number(tx.amount) - Number(tx.refunded_amount || 0);
    const amount = h("input", { type: "number", min: 1, max: remaining, step: 1, inputmode: "numeric", testid: "refund-amount", placeholder: String(remaining) });
    box.append(
      h(
        "div",
        { class: "inline-form" },
        h("label", { class: "field" }, h("span", {}, t("tx.refundAmount")), amount),
        h("button", { type: "button", class: "btn btn-danger", testid: "detail-refund", onclick: (e) => refundTx(e.currentTarget, tx, amount.value) }, t("tx.refund")),
      ),
    );
  }
  return box.children.length ? box : null;
}

function renderBanner() {
  const banner = $("#return-banner");
  const info = state.returnInfo;
  if (!info) {
    banner.hidden = true;
    banner.replaceChildren();
    return;
  }
  banner.hidden = false;
  banner.dataset.status = info.status || "";
  const waiting = info.userId && !info.settled;
  banner.className = `banner banner-${info.settled ? (["paid", "completed"].includes(info.status) ? "ok" : "warn") : "info"}`;
  banner.replaceChildren(
    h(
      "div",
      { class: "banner-text" },
      h("strong", {}, t("return.title")),
      h("span", {}, t("return.message", { id: info.transactionId })),
      info.status ? statusBadge(info.status, "return-status") : null,
      waiting ? h("span", { class: "hint" }, info.status === "awaiting_offline_payment" ? t("return.offline") : t("return.waiting")) : null,
      info.userId ? null : h("span", { class: "hint" }, t("return.unknownUser")),
    ),
    h(
      "div",
      { class: "banner-actions" },
      info.userId && info.userId === state.selectedUserId
        ? h("button", { type: "button", class: "btn btn-ghost btn-small", testid: "return-details", onclick: () => openDrawer(info.transactionId) }, t("tx.details"))
        : null,
      h(
        "button",
        {
          type: "button",
          class: "btn btn-ghost btn-small",
          testid: "return-dismiss",
          onclick: () => {
            state.returnInfo = null;
            renderBanner();
            renderTransactions();
          },
        },
        t("return.dismiss"),
      ),
    ),
  );
}

// ---------------------------------------------------------------------------------------------
// Drawer (one transaction: details, ledger, notifications, actions)
// ---------------------------------------------------------------------------------------------

function openDrawer(txId) {
  state.detailId = txId;
  state.detail = null;
  $("#tx-drawer").hidden = false;
  $("#drawer-backdrop").hidden = false;
  renderDrawer();
  loadDetail().catch(showError);
}

function closeDrawer() {
  state.detailId = null;
  state.detail = null;
  $("#tx-drawer").hidden = true;
  $("#drawer-backdrop").hidden = true;
}

// ---------------------------------------------------------------------------------------------
// Actions
// ---------------------------------------------------------------------------------------------

function rememberPayment(txId, userId) {
  let map = {};
  try {
    map = JSON.parse(readStorage(STORAGE.payments, "{}")) || {};
  } catch {
    map = {};
  }
  map[txId] = userId;
  const keys = Object.keys(map);
  for (const key of keys.slice(0, Math.max(0, keys.length - 50))) delete map[key];
  writeStorage(STORAGE.payments, JSON.stringify(map));
}

function paymentOwner(txId) {
  try {
    return (JSON.parse(readStorage(STORAGE.payments, "{}")) || {})[txId] || null;
  } catch {
    return null;
  }
}

// Checkout: the API answers {action, fields}; posting them as a form takes the browser to ECPay
// (or the offline sandbox), which sends it back to FRONTEND_URL with ?transaction_id=&status=.
async function pay(tx, method) {
  const userId = tx.user_id || state.selectedUserId;
  const body = method ? { payment_method: method } : undefined;
  const checkout = await api("POST", `${txPath(userId, tx.transaction_id)}/requestPayment`, { body });
  if (!checkout || typeof checkout.action !== "string" || typeof checkout.fields !== "object") {
    throw new ApiError("invalid_response", "", 0);
  }
  rememberPayment(tx.transaction_id, userId);
  showNotice(t("wallet.redirecting"));
  const form = h("form", { method: "POST", action: checkout.action, class: "hidden-form", testid: "checkout-form" });
  for (const [name, value] of Object.entries(checkout.fields)) {
    form.append(h("input", { type: "hidden", name, value: value === null || value === undefined ? "" : String(value) }));
  }
  document.body.append(form);
  form.submit();
}

async function updateWithdraw(tx, action) {
  await api("PATCH", txPath(tx.user_id || state.selectedUserId, tx.transaction_id), { body: { action } });
  showNotice(action === "complete" ? t("tx.completed") : t("tx.cancelled"));
  await Promise.all([refreshSelected(), loadUsers()]);
}

async function syncTx(tx) {
  const result = await api("POST", `${txPath(tx.user_id || state.selectedUserId, tx.transaction_id)}/sync`);
  const status = result?.status ?? result?.transaction?.status;
  showNotice(t("tx.synced", { status: statusLabel(status) }));
  await Promise.all([refreshSelected(), loadUsers()]);
}

function refundTx(button, tx, rawAmount) {
  const text = String(rawAmount || "").trim();
  let body;
  if (text !== "") {
    const amount = Number(text);
    if (!Number.isInteger(amount) || amount <= 0) {
      toast("error", t("errors.amountPositive"));
      return;
    }
    body = { amount };
  }
  confirmThen(button, async () => {
    await api("POST", `${txPath(tx.user_id || state.selectedUserId, tx.transaction_id)}/refund`, { body: body ?? {} });
    showNotice(t("tx.refundDone"));
    await Promise.all([refreshSelected(), loadUsers()]);
  });
}

function parseAmount(input) {
  const text = String(input.value || "").trim();
  const amount = Number(text);
  if (text === "" || !Number.isInteger(amount) || amount <= 0) {
    toast("error", t("errors.amountPositive"), "", "amount");
    input.focus();
    return null;
  }
  return amount;
}

async function createTransaction(type, amount, paymentMethod) {
  const body = { transaction_type: type, amount };
  if (paymentMethod) body.payment_method = paymentMethod;
  return api("POST", `${userPath(state.selectedUserId)}/transactions`, {
    body,
    headers: { "Idempotency-Key": newIdempotencyKey() },
  });
}

function wireForms() {
  $("#create-user-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const username = form.username.value.trim();
    const email = form.email.value.trim();
    if (!username || !email) {
      toast("error", t("errors.required"), "", "required");
      return;
    }
    withBusy($('[data-testid="create-user"]'), async () => {
      const user = await api("POST", "/users", { body: { username, email } });
      form.reset();
      showNotice(t("users.created", { name: user.username }));
      await showUserInList(user.user_id);
      selectUser(user.user_id);
    });
  });

  $("#deposit-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const amount = parseAmount(form.amount);
    if (amount === null) return;
    const method = form.payment_method.value;
    withBusy($('[data-testid="deposit-submit"]'), async () => {
      const tx = await createTransaction("deposit", amount, method);
      form.amount.value = "";
      await loadTransactions().catch(() => {});
      await pay({ ...tx, user_id: tx.user_id || state.selectedUserId }, method);
    });
  });

  $("#withdraw-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const amount = parseAmount(form.amount);
    if (amount === null) return;
    withBusy($('[data-testid="withdraw-submit"]'), async () => {
      await createTransaction("withdraw", amount);
      form.amount.value = "";
      showNotice(t("wallet.withdrawCreated", { amount: formatMoney(amount) }));
      state.tx.page = 1;
      await Promise.all([loadUser(), loadTransactions(), loadUsers()]);
    });
  });

  $('[data-testid="close-user"]').addEventListener("click", (event) => {
    const user = state.user;
    if (!user) return;
    confirmThen(event.currentTarget, async () => {
      await api("DELETE", userPath(user.user_id));
      showNotice(t("users.closed", { name: user.username }));
      await Promise.all([loadUser(), loadUsers()]);
    });
  });

  $("#settings-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    state.token = form.token.value.trim();
    state.apiBase = form.apiBase.value.trim();
    writeStorage(STORAGE.token, state.token);
    writeStorage(STORAGE.apiBase, state.apiBase);
    showNotice(t("settings.saved"));
    reloadEverything();
  });
  $('[data-testid="settings-clear"]').addEventListener("click", () => {
    const form = $("#settings-form");
    form.token.value = "";
    form.apiBase.value = "";
    form.requestSubmit();
  });
  $('[data-testid="settings-toggle"]').addEventListener("click", (event) => {
    const panel = $("#settings");
    panel.hidden = !panel.hidden;
    event.currentTarget.setAttribute("aria-expanded", String(!panel.hidden));
    if (!panel.hidden) {
      const form = $("#settings-form");
      form.token.value = state.token;
      form.apiBase.value = state.apiBase;
    }
  });

  for (const button of document.querySelectorAll(".lang-switch [data-lang]")) {
    button.addEventListener("click", () => applyLanguage(button.dataset.lang));
  }

  const pagers = [
    ["users-prev", () => { state.users.page -= 1; return loadUsers(); }],
    ["users-next", () => { state.users.page += 1; return loadUsers(); }],
    ["tx-prev", () => { state.tx.page -= 1; return loadTransactions(); }],
    ["tx-next", () => { state.tx.page += 1; return loadTransactions(); }],
  ];
  for (const [testid, go] of pagers) {
    const button = $(`[data-testid="${testid}"]`);
    button.addEventListener("click", () => withBusy(button, go));
  }
  const refresh = $('[data-testid="users-refresh"]');
  refresh.addEventListener("click", () => withBusy(refresh, reloadEverything));

  $('[data-testid="tx-detail-close"]').addEventListener("click", closeDrawer);
  $("#drawer-backdrop").addEventListener("click", closeDrawer);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && state.detailId) closeDrawer();
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) poll();
  });
  // Coming back with the browser's Back button (e.g. from ECPay's page) may restore a stale page.
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) reloadEverything().catch(showError);
  });
}

async function reloadEverything() {
  await checkHealth();
  await Promise.all([loadUsers(), refreshSelected(), loadReturned()]);
}

// ---------------------------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------------------------

function readReturnFromEcpay() {
  const params = new URLSearchParams(window.location.search);
  const transactionId = params.get("transaction_id") || params.get("transactionId");
  if (!transactionId) return;
  const userId = params.get("user_id") || params.get("userId") || paymentOwner(transactionId);
  state.returnInfo = { transactionId, userId, status: params.get("status") || "", settled: !userId };
  // Keep the address clean: a reload should not show the banner again.
  window.history.replaceState(null, "", window.location.pathname + window.location.hash);
  if (userId) state.selectedUserId = userId;
}

function start() {
  setLanguage(initialLanguage(readStorage(STORAGE.lang), navigator.languages));
  state.selectedUserId = readStorage(STORAGE.selectedUser) || null;
  state.users.page = Math.max(1, Number.parseInt(readStorage(STORAGE.usersPage, "1"), 10) || 1);
  readReturnFromEcpay();
  wireForms();
  applyLanguage(language());
  if (state.selectedUserId) writeStorage(STORAGE.selectedUser, state.selectedUserId);
  checkHealth();
  const selected = state.selectedUserId;
  Promise.all([loadUsers(), refreshSelected(), loadReturned()])
    .then(async () => {
      if (selected && !state.users.items.some((user) => user.user_id === selected)) await showUserInList(selected);
    })
    .catch(showError)
    .finally(() => {
      document.body.dataset.ready = "true";
    });
  setInterval(poll, POLL_MS);
  setInterval(checkHealth, HEALTH_MS);
}

start();
