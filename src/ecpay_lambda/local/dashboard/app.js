// The wallet dashboard: plain ES module, no build step, no framework.
// It only talks to the HTTP API (design §3) and renders what the API answers: no business rules here
// (the server decides what is allowed; the buttons shown are hints, the API has the last word).
//
// Live refresh patches the page instead of rebuilding it: lists are keyed (a row is rebuilt only when
// its data changed), a rebuilt part keeps what the user typed and where the focus was, and a pending
// confirmation lives in `pendingConfirm`, not in a button, so no refresh can drop it.

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
  wallets: "ecpayWallet.wallets", // sign-in subject -> the wallet it opened (end users, AUTH_MODE=jwt)
};
const USERS_PAGE_SIZE = 8;
const TX_PAGE_SIZE = 10;
const POLL_MS = 2000; // while something awaits payment
const HEALTH_MS = 30000; // while the API is healthy
const HEALTH_RETRY_MS = 5000; // while it is not: notice the recovery soon
const CONFIRM_MS = 8000; // how long a "click again to confirm" stays armed
const NOTICE_MS = 5000;
const ERROR_MS = 20000;
const PAYMENT_METHODS = ["Credit", "ATM", "CVS", "BARCODE", "ALL"];
const AWAITING = new Set(["awaiting_payment", "awaiting_offline_payment"]);
const UNSETTLED = new Set(["pending", "awaiting_payment", "awaiting_offline_payment"]);
const PAYABLE = new Set(["pending", "failed", "awaiting_payment"]);
// Unpaid deposits the user may try to cancel (the API refuses while an attempt can still be paid).
const CANCELLABLE_DEPOSIT = new Set(["pending", "failed", "awaiting_payment", "awaiting_offline_payment"]);
const REFUNDABLE = new Set(["paid", "partially_refunded"]);
// 5xx answers that say the API itself is unwell (502 is ECPay failing, reported as such).
const UNHEALTHY_STATUS = new Set([500, 503, 504]);
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
  missingWallet: null, // an end user's wallet id the API answered 404 to (shown as "not found")
  events: { available: true, items: [] }, // GET /events (local outbox; 404 events_on_bus on AWS)
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

// One amount format everywhere (the sandbox's pages use the same): "NT$1,500", "−NT$100".
function formatMoney(amount, { signed = false } = {}) {
  const n = Number(amount);
  if (amount === null || amount === undefined || amount === "" || !Number.isFinite(n)) return t("common.none");
  const digits = Math.abs(n).toLocaleString("en-US");
  const sign = n < 0 ? "−" : signed && n > 0 ? "+" : "";
  return `${sign}NT$${digits}`;
}

function formatDate(value) {
  if (!value) return t("common.none");
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return date.toLocaleString(language(), { dateStyle: "medium", timeStyle: "short" });
}

function text(value) {
  return value === null || value === undefined || value === "" ? t("common.none") : String(value);
}

function statusLabel(status) {
  if (!status) return t("common.none");
  return has(`status.${status}`) ? t(`status.${status}`) : String(status);
}

function statusBadge(status, testid = "tx-status") {
  return h("span", { class: `badge status status-${status}`, testid, "data-status": status }, statusLabel(status));
}

function typeLabel(type) {
  return has(`type.${type}`) ? t(`type.${type}`) : text(type);
}

// Notification outcomes: "applied", "duplicate", "rejected:<check>", "ignored:<reason>", "flagged:<flag>".
function outcomeBadge(outcome) {
  const raw = String(outcome || "");
  const [kind, ...rest] = raw.split(":");
  const reason = rest.join(":");
  const label = has(`outcome.${kind}`) ? t(`outcome.${kind}`) : kind;
  let reasonText = reason;
  if (reason.startsWith("status_")) reasonText = t("reason.status", { status: statusLabel(reason.slice(7)) });
  else if (has(`reason.${reason}`)) reasonText = t(`reason.${reason}`);
  return h("span", { class: `badge outcome outcome-${kind}`, title: raw }, reason ? `${label}: ${reasonText}` : label);
}

function methodLabel(method) {
  if (!method) return t("common.none");
  return has(`method.${method}`) ? t(`method.${method}`) : String(method);
}

function shortId(id) {
  const value = String(id || "");
  return value.length > 12 ? `…${value.slice(-8)}` : value;
}

function newIdempotencyKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes); // works outside secure contexts too (unlike randomUUID)
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// ---------------------------------------------------------------------------------------------
// Patching: rebuild only what changed, and keep what the user was doing
// ---------------------------------------------------------------------------------------------

// Inputs and selects the user changed (their value differs from what was rendered).
function isDirty(field) {
  if (field instanceof HTMLSelectElement) return field.dataset.initial !== undefined && field.value !== field.dataset.initial;
  return field.value !== field.defaultValue;
}

// A freshly rendered `fresh` takes over from `old`: typed values, focus and caret move across
// (matched by data-testid), so a refresh never empties a field or steals the focus.
function carryOver(old, fresh) {
  const active = document.activeElement;
  for (const field of old.querySelectorAll("input[data-testid], select[data-testid], textarea[data-testid]")) {
    const twin = fresh.querySelector(`[data-testid="${field.dataset.testid}"]`);
    if (!twin || twin.tagName !== field.tagName) continue;
    if (isDirty(field) || field === active) twin.value = field.value;
  }
  if (active && old.contains(active) && active.dataset.testid) {
    const twin = fresh.querySelector(`[data-testid="${active.dataset.testid}"]`);
    if (twin) {
      queueMicrotask(() => {
        if (!twin.isConnected) return;
        twin.focus({ preventScroll: true });
        if (typeof active.selectionStart === "number" && typeof twin.setSelectionRange === "function") {
          try {
            twin.setSelectionRange(active.selectionStart, active.selectionEnd);
          } catch {
            // number inputs have no selection API; the value and the focus are what matter.
          }
        }
      });
    }
  }
}

// Makes `container`'s children the given parts, in order. A part is {key, sig, render}: the existing
// child with the same key is kept as it is when its signature is unchanged, else rebuilt and the old
// one's inputs and focus carried over.
function patchChildren(container, parts) {
  const existing = new Map();
  for (const child of container.children) if (child.dataset.key) existing.set(child.dataset.key, child);
  const next = parts.map(({ key, sig, render }) => {
    const old = existing.get(key);
    if (old && old.dataset.sig === sig) return old;
    const fresh = render();
    fresh.dataset.key = key;
    fresh.dataset.sig = sig;
    if (old) {
      carryOver(old, fresh);
      old.replaceWith(fresh); // in place: the page does not jump
    }
    return fresh;
  });
  const keep = new Set(next);
  for (const child of [...container.children]) if (!keep.has(child)) child.remove();
  next.forEach((el, index) => {
    if (container.children[index] !== el) container.insertBefore(el, container.children[index] || null);
  });
}

const sig = (...values) => JSON.stringify([language(), session.role, ...values]);

// ---------------------------------------------------------------------------------------------
// Confirmations: a destructive action needs a second click on the same button; the first click
// says exactly what the second will do (e.g. the amount of a refund).
// ---------------------------------------------------------------------------------------------

let pendingConfirm = null; // {key, payload, text, timer}

function applyConfirmState(button) {
  const armed = pendingConfirm !== null && pendingConfirm.key === button.dataset.confirmKey;
  if (armed) {
    button.dataset.confirming = "1";
    button.classList.add("confirming");
    button.textContent = pendingConfirm.text;
  } else {
    delete button.dataset.confirming;
    button.classList.remove("confirming");
    button.textContent = button.dataset.i18n ? t(button.dataset.i18n) : button.dataset.label || button.textContent;
  }
}

function refreshConfirmButtons() {
  for (const button of document.querySelectorAll("[data-confirm-key]")) applyConfirmState(button);
}

function clearConfirm(key) {
  if (!pendingConfirm || (key && pendingConfirm.key !== key)) return;
  clearTimeout(pendingConfirm.timer);
  pendingConfirm = null;
  refreshConfirmButtons();
}

// Wires `button` for a confirmed action. `prepare()` runs on the first click and returns
// {payload, text} (or null to stop, e.g. an invalid amount); the second click runs action(payload).
function confirmable(button, key, prepare, action) {
  button.dataset.confirmKey = key;
  if (!button.dataset.i18n) button.dataset.label = button.textContent;
  applyConfirmState(button);
  button.addEventListener("click", () => {
    if (pendingConfirm && pendingConfirm.key === key) {
      const { payload } = pendingConfirm;
      clearConfirm();
      withBusy(button, () => action(payload));
      return;
    }
    const prepared = prepare();
    if (!prepared) return;
    clearConfirm();
    pendingConfirm = { key, payload: prepared.payload, text: prepared.text, timer: setTimeout(() => clearConfirm(key), CONFIRM_MS) };
    refreshConfirmButtons();
  });
  return button;
}

// ---------------------------------------------------------------------------------------------
// API client
// ---------------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(code, message, status, details) {
    super(message || code);
    this.code = code;
    this.status = status;
    // Validation errors carry a list of {loc, msg}; domain errors may carry an object
    // (e.g. {"transactions": [...]} of a user that cannot be closed).
    this.fieldErrors = Array.isArray(details) ? details : [];
    this.info = details && typeof details === "object" && !Array.isArray(details) ? details : {};
  }
}

// Field names in validation errors -> the label the user sees next to that field.
const FIELD_LABELS = {
  username: "users.username",
  email: "users.email",
  amount: "wallet.amount",
  payment_method: "wallet.method",
  transaction_type: "tx.type",
  action: "tx.actions",
};

function apiUrl(path, query) {
  const base = (state.apiBase || "").replace(/\/+$/, "");
  const url = new URL(base + path, window.location.href);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null) url.searchParams.set(key, String(value));
  }
  return url.toString();
}

// `sidePanel`: a side panel's call (events) reports its failures to the health indicator, but its
// success does not clear a failure the main calls met meanwhile.
async function api(method, path, { body, query, headers = {}, sidePanel = false } = {}) {
  const requestHeaders = { Accept: "application/json", ...headers };
  if (body !== undefined) requestHeaders["Content-Type"] = "application/json";
  if (state.token && tokenExpired(decodeClaims(state.token))) {
    handleUnauthorized(); // never send a token known to be expired: sign in again instead
    throw new ApiError("unauthorized", "", 401);
  }
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
    noteUnreachable();
    throw new ApiError("network", "", 0);
  }
  if (!(sidePanel && response.ok)) noteAnswer(response.status);
  const contentType = response.headers.get("Content-Type") || "";
  let data = null;
  if (contentType.includes("json")) {
    try {
      data = await response.json();
    } catch {
      data = null;
    }
  }
  if (response.status === 401) handleUnauthorized();
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
// Sign-in and roles (AUTH_MODE=jwt). The token's claims are read here only to say who is signed
// in and until when; what a role may do is what the API answers: GET /users is an operator's route,
// so its 200 makes the page an operator's and its 404 an end user's. Other panels ask roleAllows().
// ---------------------------------------------------------------------------------------------

// What an end user may not do (the API answers 404 to them on these); everything else is theirs.
const OPERATOR_ACTIONS = new Set([
  "listUsers",
  "createUser",
  "closeUser",
  "reopenUser",
  "completeWithdrawal",
  "cancelWithdrawal",
  "cancelDeposit",
  "refund",
  "events",
]);

// role: null (not known yet: the page shows everything, the API has the last word), "operator",
// "user" (one wallet) or "signed-out" (the API wants a token). message: an i18n key for the sign-in.
const session = { role: null, message: "" };

function roleAllows(action) {
  if (session.role === "signed-out") return false;
  if (session.role === "user") return !OPERATOR_ACTIONS.has(action);
  return true;
}

// The claims of a JWT (never verified here: the API does that), or null for any other token.
function decodeClaims(token) {
  const parts = String(token || "").split(".");
  if (parts.length !== 3) return null;
  try {
    const base64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
    const claims = JSON.parse(new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0))));
    return claims && typeof claims === "object" && !Array.isArray(claims) ? claims : null;
  } catch {
    return null;
  }
}

function tokenExpired(claims) {
  return Boolean(claims) && typeof claims.exp === "number" && claims.exp * 1000 <= Date.now();
}

function signedInClaims() {
  return decodeClaims(state.token);
}

// Wallets this browser opened, by sign-in subject: a wallet bound to a sign-in has its own id.
function rememberWallet(userId) {
  const subject = signedInClaims()?.sub;
  if (typeof subject !== "string" || !subject) return;
  let map = {};
  try {
    map = JSON.parse(readStorage(STORAGE.wallets, "{}")) || {};
  } catch {
    map = {};
  }
  map[subject] = userId;
  const keys = Object.keys(map);
  for (const key of keys.slice(0, Math.max(0, keys.length - 20))) delete map[key];
  writeStorage(STORAGE.wallets, JSON.stringify(map));
}

// The ids an end user's wallet may have: the one opened here, then the usual user-id claims.
function walletCandidates() {
  const claims = signedInClaims() || {};
  let remembered = null;
  try {
    remembered = (JSON.parse(readStorage(STORAGE.wallets, "{}")) || {})[claims.sub] || null;
  } catch {
    remembered = null;
  }
  const ids = [remembered, claims["custom:wallet_user_id"], claims.wallet_user_id, claims.user_id, claims.sub];
  return [...new Set(ids.filter((id) => typeof id === "string" && id.length > 0 && id.length <= 64))];
}

let expiryTimer = null;

// A page left open signs out when its token runs out, not at the next click.
function watchExpiry() {
  clearTimeout(expiryTimer);
  const exp = signedInClaims()?.exp;
  if (typeof exp !== "number") return;
  const wait = exp * 1000 - Date.now();
  if (wait > 2 ** 31 - 1) return; // beyond what setTimeout can wait (24.8 days)
  expiryTimer = setTimeout(() => {
    if (state.token && tokenExpired(signedInClaims())) handleUnauthorized();
  }, Math.max(0, wait) + 250);
}

function forgetToken() {
  clearTimeout(expiryTimer);
  state.token = "";
  writeStorage(STORAGE.token, "");
}

// The API refused the credentials (or the token ran out): back to the sign-in, saying why.
function handleUnauthorized() {
  const reason = state.token ? "signin.expired" : session.message || "signin.required";
  forgetToken();
  if (session.role === "signed-out" && session.message === reason) return;
  session.role = "signed-out";
  session.message = reason;
  state.users = { page: 1, total: 0, items: [] };
  selectUser(null);
  renderSession();
}

// GET /users answered 404 route_not_found: an end user's token. Their page is one wallet.
async function becomeUser() {
  if (session.role === "user") return;
  session.role = "user";
  state.users = { page: 1, total: 0, items: [] };
  renderSession();
  renderAll();
  // A wallet asked for by id and not found stays "not found" (no other wallet replaces it unasked).
  if (!state.selectedUserId && !state.missingWallet) await openOwnWallet();
}

function becomeOperator() {
  if (session.role === "operator") return;
  session.role = "operator";
  renderSession();
  renderAll();
}

// An end user's wallet: the first candidate id the API lets them read, else the "open your wallet" form.
async function openOwnWallet() {
  for (const id of walletCandidates()) {
    try {
      const user = await api("GET", userPath(id));
      if (session.role !== "user") return;
      selectUser(user.user_id);
      return;
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) throw error;
    }
  }
  state.missingWallet = null;
  renderUserDetail();
}

function sessionWho(claims) {
  if (!claims) return t("session.apiToken");
  for (const name of ["email", "cognito:username", "username", "preferred_username", "sub"]) {
    if (typeof claims[name] === "string" && claims[name]) return claims[name];
  }
  return t("common.none");
}

function renderSession() {
  const signedOut = session.role === "signed-out";
  const signin = $("#signin");
  signin.hidden = !signedOut;
  const message = $('[data-testid="signin-message"]');
  message.hidden = !signedOut || !session.message;
  message.textContent = session.message ? t(session.message) : "";
  message.dataset.reason = session.message || "";
  $("#layout").hidden = signedOut;
  $("#layout").dataset.role = session.role || "";
  $(".users-card").hidden = !roleAllows("listUsers");
  const chip = $('[data-testid="session"]');
  const known = session.role === "operator" || session.role === "user";
  chip.hidden = !(known && state.token);
  if (!chip.hidden) {
    const claims = signedInClaims();
    const role = $('[data-testid="session-role"]');
    role.textContent = t(session.role === "user" ? "session.user" : "session.operator");
    role.dataset.role = session.role;
    const who = $('[data-testid="session-who"]');
    who.textContent = sessionWho(claims);
    who.title = claims && typeof claims.exp === "number" ? t("session.until", { time: formatDate(claims.exp * 1000) }) : "";
  }
}

function signOut() {
  forgetToken();
  session.role = null;
  session.message = "signin.signedOut";
  state.users = { page: 1, total: 0, items: [] };
  state.events = { available: true, items: [] };
  state.returnInfo = null;
  selectUser(null);
  renderSession();
  // Without a token the API says what it needs: an open local server answers, a jwt one asks to sign in.
  return reloadEverything();
}

function signIn(token) {
  forgetToken();
  state.token = token;
  writeStorage(STORAGE.token, token);
  watchExpiry();
  session.role = null;
  session.message = "";
  state.users = { page: 1, total: 0, items: [] };
  state.events = { available: true, items: [] };
  state.returnInfo = null;
  selectUser(null);
  renderSession();
  return reloadEverything();
}

function wireSession() {
  $("#signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const token = form.token.value.trim().replace(/^Bearer\s+/i, "");
    if (!token) {
      toast("error", t("signin.empty"), "", "signin");
      return;
    }
    if (tokenExpired(decodeClaims(token))) {
      session.message = "signin.expired";
      renderSession();
      return;
    }
    withBusy($('[data-testid="signin-submit"]'), async () => {
      await signIn(token);
      if (session.role === "signed-out") return;
      form.reset();
      showNotice(t("signin.welcome"));
    });
  });
  const out = $('[data-testid="sign-out"]');
  out.addEventListener("click", () => withBusy(out, signOut));
  $("#own-wallet-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const username = form.username.value.trim();
    const email = form.email.value.trim();
    if (!username || !email) {
      toast("error", t("errors.required"), "", "required");
      return;
    }
    withBusy($('[data-testid="own-wallet-submit"]'), async () => {
      const user = await api("POST", "/users", { body: { username, email } });
      rememberWallet(user.user_id);
      form.reset();
      showNotice(t("own.opened"));
      selectUser(user.user_id);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Health: /healthz says whether the API and its store work; failing calls say so too.
// ---------------------------------------------------------------------------------------------

const health = { probe: "checking", store: null, callsFailing: false, timer: null };

function renderHealth() {
  const el = $('[data-testid="health"]');
  let shown = health.probe;
  let key = `health.${health.probe}`;
  if (health.probe === "degraded") key = health.store === false ? "health.store" : "health.degraded";
  else if (health.probe !== "down" && health.callsFailing) {
    shown = "degraded";
    key = "health.errors";
  }
  el.dataset.state = shown;
  el.title = t(key);
  $(".health-text", el).textContent = t(key);
}

function scheduleHealth(ms) {
  clearTimeout(health.timer);
  health.timer = setTimeout(checkHealth, ms);
}

function noteUnreachable() {
  health.probe = "down";
  renderHealth();
  scheduleHealth(HEALTH_RETRY_MS);
}

function noteAnswer(status) {
  const failing = UNHEALTHY_STATUS.has(status);
  if (failing === health.callsFailing && health.probe !== "down") return;
  health.callsFailing = failing;
  if (health.probe === "down") health.probe = "checking";
  renderHealth();
  // A failing call may be a store outage: ask /healthz now rather than in 30 s.
  if (failing || health.probe === "checking") scheduleHealth(300);
}

async function checkHealth() {
  clearTimeout(health.timer);
  try {
    const response = await fetch(apiUrl("/healthz"), { cache: "no-store", headers: { Accept: "application/json" } });
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    const ok = response.ok && data !== null && (data.status === undefined || data.status === "ok") && data.store !== false;
    health.probe = ok ? "ok" : "degraded";
    health.store = data && typeof data.store === "boolean" ? data.store : null;
  } catch {
    health.probe = "down";
    health.store = null;
  }
  renderHealth();
  if (health.probe === "ok" && health.callsFailing) {
    // /healthz is fine again: one light call tells whether the other routes are too.
    await api("GET", "/users", { query: { page: 1, pageSize: 1 } }).catch(() => {});
  }
  scheduleHealth(health.probe === "ok" && !health.callsFailing ? HEALTH_MS : HEALTH_RETRY_MS);
}

// ---------------------------------------------------------------------------------------------
// Messages: readable errors and confirmations. They sit in the page's flow (under the top bar, or
// at the top of the open details panel), never floating over buttons.
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
    const fields = error.fieldErrors
      .map((item) => (Array.isArray(item?.loc) ? item.loc[item.loc.length - 1] : null))
      .filter((name) => typeof name === "string")
      .map((name) => (FIELD_LABELS[name] ? t(FIELD_LABELS[name]) : name));
    if (fields.length > 0) return { title, detail: t("errors.fields", { fields: [...new Set(fields)].join(", ") }) };
    const range = error.info;
    if (Number.isFinite(Number(range.min)) && Number.isFinite(Number(range.max)) && range.min !== null && range.max !== null) {
      return { title, detail: t("errors.range", { method: methodLabel(range.payment_method), min: formatMoney(range.min), max: formatMoney(range.max) }) };
    }
    // The server's message is English: it adds facts in English, and is left out in other languages
    // (the translated title says what happened; blocking transactions are listed separately).
    const english = language() === "en";
    const detail = english && error.message && error.message !== error.code && error.message !== title ? error.message : "";
    return { title, detail };
  }
  return { title: t("errors.generic"), detail: "" };
}

// Transactions an error names as blocking (a user that cannot be closed, a deposit still payable).
function blockingIds(error) {
  if (!(error instanceof ApiError)) return [];
  const ids = [];
  for (const key of ["transactions", "transaction_ids", "blocking"]) {
    const value = error.info[key];
    if (Array.isArray(value)) ids.push(...value.map((item) => (typeof item === "object" && item ? item.transaction_id : item)));
  }
  return [...new Set(ids.filter((id) => typeof id === "string" && id))];
}

function blockingAttempts(error) {
  if (!(error instanceof ApiError)) return [];
  const value = error.info.attempts;
  if (!Array.isArray(value)) return [];
  return value.map((item) => (typeof item === "object" && item ? item.merchant_trade_no : item)).filter((v) => typeof v === "string" && v);
}

function messageHost() {
  return state.detailId ? $("#drawer-messages") : $("#toasts");
}

function toast(kind, title, detail = "", code = "", extra = null) {
  const host = messageHost();
  // The same error twice replaces the first rather than piling up.
  if (code) for (const old of host.querySelectorAll(`.toast[data-code="${CSS.escape(code)}"]`)) old.remove();
  const item = h(
    "div",
    {
      class: `toast toast-${kind}`,
      role: kind === "error" ? "alert" : "status",
      testid: kind === "error" ? "error-message" : "notice-message",
      "data-code": code || null,
    },
    h("div", { class: "toast-text" }, h("strong", {}, title), detail ? h("span", { class: "toast-detail" }, detail) : null, extra),
    h("button", { type: "button", class: "toast-close", "aria-label": t("common.close"), onclick: () => item.remove() }, "×"),
  );
  host.prepend(item);
  while (host.children.length > 3) host.lastElementChild.remove();
  setTimeout(() => item.remove(), kind === "error" ? ERROR_MS : NOTICE_MS);
}

function showError(error) {
  // Refused credentials: the sign-in says why, in place of an error message.
  if (error instanceof ApiError && error.status === 401 && session.role === "signed-out") return;
  const { title, detail } = errorTexts(error);
  const ids = blockingIds(error);
  const attempts = blockingAttempts(error);
  let extra = null;
  if (ids.length > 0 || attempts.length > 0) {
    extra = h(
      "span",
      { class: "toast-detail blocking", testid: "blocking" },
      t("errors.blocking"),
      " ",
      ids.map((id) =>
        h(
          "button",
          { type: "button", class: "link-button", testid: "blocking-transaction", "data-transaction-id": id, title: id, onclick: () => openDrawer(id) },
          shortId(id),
        ),
      ),
      attempts.map((mtn) => h("code", { class: "blocking-attempt", testid: "blocking-attempt" }, mtn)),
    );
  }
  toast("error", title, detail, error instanceof ApiError ? error.code : "", extra);
}

function showNotice(message) {
  toast("success", message);
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
  renderHealth();
  renderMethodOptions($('[data-testid="deposit-method"]'));
  renderAll();
}

function renderMethodOptions(select, selected) {
  const value = selected || select.value || PAYMENT_METHODS[0];
  select.replaceChildren(...PAYMENT_METHODS.map((m) => h("option", { value: m }, methodLabel(m))));
  select.value = PAYMENT_METHODS.includes(value) ? value : PAYMENT_METHODS[0];
  select.dataset.initial = select.value;
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

async function loadUsers() {
  if (!roleAllows("listUsers")) return;
  let data;
  try {
    data = await api("GET", "/users", { query: { page: state.users.page, pageSize: USERS_PAGE_SIZE, include_closed: true } });
  } catch (error) {
    // The operators' route answers an end user as if it did not exist.
    if (error instanceof ApiError && error.status === 404 && error.code === "route_not_found") return becomeUser();
    throw error;
  }
  becomeOperator();
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
  if (!roleAllows("listUsers")) return;
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
      if (state.selectedUserId !== id) return;
      selectUser(null);
      // An end user asking for a wallet that is not theirs (or none): "not found", as the API says.
      // The role may not be known yet (GET /users answers in parallel): an operator never sees it.
      if (session.role !== "operator") {
        state.missingWallet = id;
        renderUserDetail();
      }
      return;
    }
    throw error;
  }
  renderUserDetail();
}

async function loadTransactions() {
  if (!state.selectedUserId) return;
  const id = state.selectedUserId;
  let data;
  try {
    data = await api("GET", `${userPath(id)}/transactions`, {
      query: { page: state.tx.page, pageSize: TX_PAGE_SIZE },
    });
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return; // loadUser says "not found"
    throw error;
  }
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
  const list = (name) => (Array.isArray(data?.[name]) ? data[name] : Array.isArray(tx[name]) ? tx[name] : []);
  return { ...tx, ledger: list("ledger"), notifications: list("notifications"), attempts: list("attempts") };
}

async function loadReturned() {
  const info = state.returnInfo;
  if (!info || info.settled || !info.userId) return;
  const data = normalizeDetail(await api("GET", txPath(info.userId, info.transactionId)));
  info.status = data.status;
  info.settled = !UNSETTLED.has(data.status);
  renderBanner();
}

// The selected wallet, and the events its changes made (operators).
async function refreshSelected() {
  await Promise.all([loadUser(), loadTransactions(), loadDetail(), loadEvents()]);
}

function selectUser(userId) {
  state.selectedUserId = userId;
  state.missingWallet = null;
  state.user = null;
  state.tx = { page: 1, total: 0, items: [] };
  closeDrawer();
  clearConfirm();
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
    (state.returnInfo !== null && !state.returnInfo.settled && Boolean(state.returnInfo.userId)) ||
    invoicesPending()
  );
}

async function poll() {
  if (state.polling || document.hidden || !needsPolling()) return;
  state.polling = true;
  try {
    await Promise.all([loadReturned(), refreshSelected(), loadUsers()]);
    // The last round ran its reads side by side: the user (balance) may have been read just before the
    // payment that settled the transactions. Nothing polls after this, so read the balances once more.
    if (!needsPolling()) await Promise.all([loadUser(), loadUsers()]);
  } catch {
    // A failed poll is retried on the next tick; the health indicator shows what is wrong.
  } finally {
    state.polling = false;
    renderLive();
  }
}

function renderLive() {
  $('[data-testid="live-indicator"]').hidden = !needsPolling();
}

// ---------------------------------------------------------------------------------------------
// Events (operators): GET /events, the outbox local mode keeps of what the stack publishes
// ---------------------------------------------------------------------------------------------

const EVENTS_SHOWN = 10;

async function loadEvents() {
  if (!roleAllows("events") || !state.events.available) return;
  try {
    const data = await api("GET", "/events", { query: { limit: EVENTS_SHOWN }, sidePanel: true });
    state.events.items = Array.isArray(data?.events) ? data.events.slice().reverse() : [];
  } catch (error) {
    // Deployed, events go to the EventBridge bus (404 events_on_bus); an end user gets 404 too.
    if (error instanceof ApiError && error.status === 404) {
      state.events.available = error.code !== "events_on_bus";
      state.events.items = [];
    } else {
      throw error;
    }
  }
  renderEvents();
}

function eventItem(event) {
  return h(
    "li",
    { class: "event-row", testid: "event", "data-name": event.name, "data-transaction-id": event.transaction_id },
    h("code", { class: "event-name" }, text(event.name)),
    h("span", { class: "event-amount" }, formatMoney(event.amount)),
    h("span", { class: "event-user", title: event.user_id }, shortId(event.user_id)),
    h("span", { class: "event-time" }, formatDate(event.occurred_at)),
  );
}

function renderEvents() {
  const card = $("#events-card");
  card.hidden = !roleAllows("events") || !state.events.available || session.role === null;
  if (card.hidden) return;
  const list = $("#event-list");
  if (state.events.items.length === 0) {
    patchChildren(list, [{ key: "empty", sig: sig("empty"), render: () => h("li", { class: "empty", testid: "events-empty" }, t("events.empty")) }]);
    return;
  }
  patchChildren(
    list,
    state.events.items.map((event) => ({
      key: `event:${event.transaction_id}:${event.version}:${event.name}`,
      sig: sig(event),
      render: () => eventItem(event),
    })),
  );
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

function renderAll() {
  renderSession();
  renderEvents();
  renderUsers();
  renderUserDetail();
  renderTransactions();
  renderDrawer();
  renderBanner();
  refreshConfirmButtons();
}

function renderPager(prefix, page, total, pageSize) {
  const pages = Math.max(1, Math.ceil(total / pageSize));
  $(`[data-testid="${prefix}-page"]`).textContent =
    `${t("common.pageOf", { page, pages })} · ${t("common.totalItems", { total })}`;
  $(`[data-testid="${prefix}-prev"]`).disabled = page <= 1;
  $(`[data-testid="${prefix}-next"]`).disabled = page >= pages;
}

function userItem(user, selected) {
  return h(
    "li",
    { testid: "user-item", "data-user-id": user.user_id, "data-username": user.username },
    h(
      "button",
      {
        type: "button",
        class: `user-row${selected ? " selected" : ""}${user.status === "closed" ? " closed" : ""}`,
        "aria-current": selected ? "true" : null,
        testid: "user-select",
        onclick: () => selectUser(user.user_id),
      },
      h("span", { class: "avatar", "aria-hidden": "true" }, (user.username || "?").slice(0, 1).toUpperCase()),
      h(
        "span",
        { class: "user-row-main" },
        h("span", { class: "user-row-name" }, text(user.username)),
        h("span", { class: "user-row-email" }, text(user.email)),
      ),
      h(
        "span",
        { class: "user-row-side" },
        h("span", { class: "user-row-balance", testid: "user-item-balance", "data-value": user.balance }, formatMoney(user.balance)),
        user.status === "closed" ? h("span", { class: "badge badge-muted" }, t("users.status.closed")) : null,
      ),
    ),
  );
}

function renderUsers() {
  const list = $("#user-list");
  if (state.users.items.length === 0) {
    patchChildren(list, [{ key: "empty", sig: sig("empty"), render: () => h("li", { class: "empty", testid: "users-empty" }, t("users.empty")) }]);
  } else {
    patchChildren(
      list,
      state.users.items.map((user) => {
        const selected = user.user_id === state.selectedUserId;
        return { key: `user:${user.user_id}`, sig: sig(user, selected), render: () => userItem(user, selected) };
      }),
    );
  }
  renderPager("users", state.users.page, state.users.total, USERS_PAGE_SIZE);
}

function renderUserDetail() {
  const hasUser = Boolean(state.selectedUserId);
  // An end user without a wallet on screen is offered theirs (the API binds it to their sign-in).
  const ownWallet = !hasUser && session.role === "user";
  $("#empty-state").hidden = hasUser || ownWallet;
  $("#own-wallet").hidden = !ownWallet;
  const missing = $('[data-testid="wallet-not-found"]');
  missing.hidden = !state.missingWallet;
  missing.textContent = state.missingWallet ? t("own.notFound", { id: state.missingWallet }) : "";
  $("#user-detail").hidden = !hasUser;
  if (!hasUser) return;
  const user = state.user;
  const loading = !user;
  $('[data-testid="user-name"]').textContent = loading ? t("common.loading") : text(user.username);
  $('[data-testid="user-email"]').textContent = loading ? "" : text(user.email);
  $('[data-testid="user-since"]').textContent = loading ? "" : t("users.since", { date: formatDate(user.created_at) });
  const statusEl = $('[data-testid="user-status"]');
  statusEl.textContent = loading ? "" : has(`users.status.${user.status}`) ? t(`users.status.${user.status}`) : text(user.status);
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
  $('[data-testid="close-user"]').closest(".danger-zone").hidden = closed || loading || !roleAllows("closeUser");
  renderInvoiceSettings();
}

function completeButton(tx, small) {
  const button = h(
    "button",
    { type: "button", class: `btn btn-primary${small ? " btn-small" : ""}`, testid: small ? "tx-complete" : "detail-complete" },
    t("tx.complete"),
  );
  return confirmable(
    button,
    `complete:${tx.transaction_id}`,
    () => ({ payload: null, text: t("tx.completeConfirm", { amount: formatMoney(tx.amount) }) }),
    () => updateWithdraw(tx, "complete"),
  );
}

function cancelDepositButton(tx, small) {
  const button = h(
    "button",
    { type: "button", class: `btn btn-danger${small ? " btn-small" : ""}`, testid: small ? "tx-cancel-deposit" : "detail-cancel-deposit" },
    t("tx.cancelDeposit"),
  );
  return confirmable(
    button,
    `cancel-deposit:${tx.transaction_id}`,
    () => ({ payload: null, text: t("tx.cancelDepositConfirm", { amount: formatMoney(tx.amount) }) }),
    () => cancelDeposit(tx),
  );
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
  if (tx.transaction_type === "withdraw" && tx.status === "pending" && roleAllows("completeWithdrawal")) {
    actions.push(
      completeButton(tx, true),
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

function txRow(tx, highlight) {
  return h(
    "tr",
    {
      testid: "tx-row",
      "data-transaction-id": tx.transaction_id,
      "data-status": tx.status,
      "data-type": tx.transaction_type,
      class: highlight ? "highlight" : null,
    },
    h("td", { class: "nowrap", "data-label": t("tx.created") }, formatDate(tx.created_at)),
    h("td", { "data-label": t("tx.type") }, typeLabel(tx.transaction_type)),
    h("td", { class: "num", testid: "tx-amount", "data-label": t("tx.amount") }, formatMoney(tx.amount)),
    h("td", { "data-label": t("tx.method") }, methodLabel(tx.payment_method)),
    h("td", { "data-label": t("tx.status") }, statusBadge(tx.status), invoiceBadge(tx)),
    h("td", { class: "actions-col" }, h("div", { class: "row-actions" }, txRowActions(tx))),
  );
}

function renderTransactions() {
  const body = $("#tx-body");
  if (!state.selectedUserId) {
    body.replaceChildren();
    return;
  }
  if (state.tx.items.length === 0) {
    patchChildren(body, [
      { key: "empty", sig: sig("empty"), render: () => h("tr", {}, h("td", { colspan: 6, class: "empty", testid: "tx-empty" }, t("tx.empty"))) },
    ]);
  } else {
    patchChildren(
      body,
      state.tx.items.map((tx) => {
        const highlight = state.returnInfo?.transactionId === tx.transaction_id;
        return { key: `tx:${tx.transaction_id}`, sig: sig(tx, highlight), render: () => txRow(tx, highlight) };
      }),
    );
  }
  renderPager("tx", state.tx.page, state.tx.total, TX_PAGE_SIZE);
  renderLive();
}

function detailRow(label, value, testid) {
  return [h("dt", {}, label), h("dd", { testid }, value === null || value === undefined || value === "" ? t("common.none") : value)];
}

// Payment instructions (ATM/CVS/BARCODE) in a fixed order; the deadline comes from expires_at
// when the payment info itself does not carry ECPay's ExpireDate.
function paymentInfoEntries(info, expiresAt) {
  const entries = new Map();
  for (const [rawKey, value] of Object.entries(info && typeof info === "object" ? info : {})) {
    if (value === null || value === undefined || value === "") continue;
    const key = INFO_ALIASES[rawKey] || INFO_ALIASES[rawKey.toLowerCase()] || rawKey;
    entries.set(key, String(value));
  }
  if (entries.size > 0 && expiresAt && !entries.has("ExpireDate")) entries.set("ExpireDate", formatDate(expiresAt));
  const ordered = INFO_KEYS.filter((k) => entries.has(k)).map((k) => [k, entries.get(k)]);
  const rest = [...entries].filter(([k]) => !INFO_KEYS.includes(k));
  return [...ordered, ...rest];
}

function infoLabel(key) {
  return has(`info.${key}`) ? t(`info.${key}`) : key;
}

function scrollTable(table) {
  return h("div", { class: "table-wrap" }, table);
}

// The drawer's parts, each rebuilt only when its own data changed (see patchChildren).
function drawerParts(tx) {
  const parts = [];
  const flags = Array.isArray(tx.flags) ? tx.flags : [];
  parts.push({
    key: "status",
    sig: sig(tx.status, flags),
    render: () =>
      h(
        "div",
        { class: "drawer-status" },
        statusBadge(tx.status, "tx-detail-status"),
        flags.map((flag) => h("p", { class: "notice notice-warn", testid: "tx-flag", "data-flag": flag }, has(`tx.flag.${flag}`) ? t(`tx.flag.${flag}`) : t("tx.flag.other"))),
      ),
  });

  const recurring = recurringPart(tx);
  if (recurring) parts.push(recurring);

  const info = paymentInfoEntries(tx.payment_info, tx.expires_at);
  if (info.length > 0 && (tx.status === "awaiting_offline_payment" || tx.status === "expired")) {
    parts.push({
      key: "payment-info",
      sig: sig(tx.status, info),
      render: () =>
        h(
          "section",
          { class: "payment-info", testid: "payment-info" },
          h("h4", {}, t("tx.paymentInfo")),
          tx.status === "awaiting_offline_payment" ? h("p", { class: "hint" }, t("tx.paymentInfoHint")) : null,
          h("dl", { class: "kv" }, info.map(([k, v]) => detailRow(infoLabel(k), h("code", {}, v), `info-${k}`))),
        ),
    });
  }

  parts.push({
    key: "fields",
    sig: sig(tx.transaction_id, tx.status, tx.amount, tx.payment_method, tx.created_at, tx.updated_at, tx.merchant_trade_no, tx.trade_no, tx.refunded_amount, tx.expires_at, tx.related_transaction_id),
    render: () => {
      const rows = [
        ...detailRow(t("tx.id"), h("code", {}, text(tx.transaction_id)), "tx-detail-id"),
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
      return h("dl", { class: "kv" }, rows);
    },
  });

  if (tx.attempts.length > 0) {
    parts.push({ key: "attempts", sig: sig(tx.attempts), render: () => attemptsSection(tx.attempts) });
  }
  parts.push(...invoiceParts(tx));

  const actions = drawerActionKinds(tx);
  if (actions.length > 0) {
    const remaining = Number(tx.amount) - Number(tx.refunded_amount || 0);
    parts.push({
      key: `actions:${tx.transaction_id}`,
      sig: sig(actions, remaining, tx.payment_method, tx.status),
      render: () => drawerActions(tx, actions, remaining),
    });
  }

  parts.push({
    key: "ledger",
    sig: sig(tx.ledger),
    render: () =>
      h(
        "section",
        {},
        h("h4", {}, t("tx.ledger")),
        tx.ledger.length === 0
          ? h("p", { class: "hint", testid: "ledger-empty" }, t("tx.ledgerEmpty"))
          : scrollTable(
              h(
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
                      h("td", { title: entry.kind }, has(`kind.${entry.kind}`) ? t(`kind.${entry.kind}`) : h("code", {}, text(entry.kind))),
                      h("td", { class: "num", testid: "ledger-delta-balance" }, formatMoney(entry.delta_balance, { signed: true })),
                      h("td", { class: "num" }, formatMoney(entry.delta_held, { signed: true })),
                    ),
                  ),
                ),
              ),
            ),
      ),
  });

  parts.push({
    key: "notifications",
    sig: sig(tx.notifications),
    render: () =>
      h(
        "section",
        {},
        h("h4", {}, t("tx.notifications")),
        tx.notifications.length === 0
          ? h("p", { class: "hint", testid: "notifications-empty" }, t("tx.notificationsEmpty"))
          : scrollTable(
              h(
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
                      h("td", { title: n.route }, has(`route.${n.route}`) ? t(`route.${n.route}`) : h("code", {}, text(n.route))),
                      h("td", {}, outcomeBadge(n.outcome)),
                    ),
                  ),
                ),
              ),
            ),
      ),
  });
  return parts;
}

// Every ECPay checkout attempt of a deposit (oldest first); an earlier ATM/CVS code may still be paid.
function attemptsSection(attempts) {
  return h(
    "section",
    { class: "attempts", testid: "attempts" },
    h("h4", {}, t("tx.attempts")),
    h(
      "ol",
      { class: "attempt-list" },
      attempts.map((attempt) => {
        const info = paymentInfoEntries(attempt?.payment_info, attempt?.expires_at);
        const state_ = attempt?.state;
        return h(
          "li",
          { class: "attempt", testid: "attempt", "data-state": state_ || "" },
          h(
            "div",
            { class: "attempt-head" },
            h("code", {}, text(attempt?.merchant_trade_no)),
            h("span", {}, methodLabel(attempt?.payment_method)),
            state_ ? statusBadge(state_, "attempt-state") : null,
          ),
          h(
            "dl",
            { class: "kv kv-compact" },
            attempt?.created_at ? detailRow(t("tx.created"), formatDate(attempt.created_at)) : null,
            attempt?.trade_no ? detailRow(t("tx.tradeNo"), h("code", {}, attempt.trade_no)) : null,
            attempt?.expires_at ? detailRow(t("tx.expires"), formatDate(attempt.expires_at)) : null,
            info.filter(([k]) => k !== "ExpireDate").map(([k, v]) => detailRow(infoLabel(k), h("code", {}, v))),
          ),
        );
      }),
    ),
  );
}

// ---------------------------------------------------------------------------------------------
// Recurring top-ups (ECPay periodic card orders): the deposit form's monthly option, the plan's
// section in the drawer (state, charges, declined charges, cancel), a charge's link to its plan.
// ---------------------------------------------------------------------------------------------

// The form's plan: null for a one-time deposit, undefined (after a toast) when the count is invalid.
function recurringFromForm(form) {
  if (!form.recurring.checked) return null;
  const months = Number(form.months.value);
  if (!Number.isInteger(months) || months < 2 || months > 999) {
    toast("error", t("recurring.monthsInvalid"), "", "invalid_recurring_plan");
    return undefined;
  }
  return { period_type: "M", frequency: 1, exec_times: months };
}

function wireRecurringForm() {
  const form = $("#deposit-form");
  const method = $('[data-testid="deposit-method"]');
  form.recurring.addEventListener("change", () => {
    const on = form.recurring.checked;
    $('[data-testid="deposit-months-field"]').hidden = !on;
    // Periodic orders are card only: the method is fixed while the option is on.
    if (on) method.value = "Credit";
    method.disabled = on;
  });
}

function recurringPart(tx) {
  const plan = tx.recurring;
  const planId = tx.payment_info?.plan_transaction_id;
  if (!plan && !planId) return null;
  if (!plan) {
    return {
      key: "recurring",
      sig: sig(planId, tx.payment_info?.period),
      render: () =>
        h(
          "section",
          { class: "recurring", testid: "recurring-charge" },
          h("p", {}, t("recurring.chargeOf", { period: tx.payment_info?.period ?? "?" })),
          h("button", { type: "button", class: "btn btn-ghost btn-small", testid: "recurring-open-plan", onclick: () => openDrawer(planId) }, t("recurring.openPlan")),
        ),
    };
  }
  return {
    key: "recurring",
    sig: sig(tx.status, plan.state, plan.charges_done, plan.charge_transaction_ids, plan.failed_charges.length),
    render: () =>
      h(
        "section",
        { class: "recurring", testid: "recurring", "data-state": plan.state },
        h("h4", {}, t("recurring.title")),
        h(
          "p",
          {},
          h("span", { class: `badge badge-${plan.state}`, testid: "recurring-state" }, t(`recurring.state.${plan.state}`)),
          " ",
          h("span", { testid: "recurring-count" }, t("recurring.charges", { done: plan.charges_done, planned: plan.charges_planned })),
        ),
        plan.charge_transaction_ids.length === 0
          ? h("p", { class: "hint" }, t("recurring.noCharges"))
          : h(
              "ol",
              { class: "recurring-charges", testid: "recurring-charges", start: 2 },
              plan.charge_transaction_ids.map((id) =>
                h("li", {}, h("button", { type: "button", class: "btn btn-ghost btn-small", testid: "recurring-charge-link", onclick: () => openDrawer(id) }, h("code", {}, id))),
              ),
            ),
        plan.failed_charges.length === 0
          ? null
          : h(
              "ul",
              { class: "recurring-failed", testid: "recurring-failed" },
              plan.failed_charges.map((f) =>
                h("li", { class: "notice notice-warn" }, t("recurring.failedCharge", { period: f.period, code: f.rtn_code, date: formatDate(f.at) })),
              ),
            ),
        plan.state === "active" && tx.status === "paid" ? cancelPlanButton(tx) : null,
      ),
  };
}

function cancelPlanButton(tx) {
  const button = h("button", { type: "button", class: "btn btn-danger", testid: "recurring-cancel" }, t("recurring.cancel"));
  return confirmable(
    button,
    `cancel-plan:${tx.transaction_id}`,
    () => ({ payload: null, text: t("recurring.cancelConfirm") }),
    () => cancelPlan(tx),
  );
}

async function cancelPlan(tx) {
  await api("POST", `${txPath(tx.user_id || state.selectedUserId, tx.transaction_id)}/recurring`, { body: { action: "cancel" } });
  showNotice(t("recurring.cancelled"));
  await refreshSelected();
}

function drawerActionKinds(tx) {
  const kinds = [];
  if (tx.transaction_type === "deposit" && PAYABLE.has(tx.status)) kinds.push("pay");
  if (tx.transaction_type === "deposit" && AWAITING.has(tx.status)) kinds.push("sync");
  if (tx.transaction_type === "deposit" && CANCELLABLE_DEPOSIT.has(tx.status)) kinds.push("cancel-deposit");
  if (tx.transaction_type === "withdraw" && tx.status === "pending") kinds.push("complete", "cancel");
  if (tx.transaction_type === "deposit" && REFUNDABLE.has(tx.status) && tx.payment_method === "Credit") kinds.push("refund");
  const needs = { "cancel-deposit": "cancelDeposit", complete: "completeWithdrawal", cancel: "cancelWithdrawal", refund: "refund" };
  return kinds.filter((kind) => !needs[kind] || roleAllows(needs[kind]));
}

function drawerActions(tx, kinds, remaining) {
  const box = h("div", { class: "drawer-actions", testid: "tx-detail-actions" });
  if (kinds.includes("pay")) {
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
  if (kinds.includes("sync")) {
    box.append(
      h("button", { type: "button", class: "btn btn-secondary", testid: "detail-sync", onclick: (e) => withBusy(e.currentTarget, () => syncTx(tx)) }, t("tx.sync")),
    );
  }
  if (kinds.includes("complete")) box.append(completeButton(tx, false));
  if (kinds.includes("cancel")) {
    box.append(
      h("button", { type: "button", class: "btn btn-ghost", testid: "detail-cancel", onclick: (e) => withBusy(e.currentTarget, () => updateWithdraw(tx, "cancel")) }, t("tx.cancel")),
    );
  }
  if (kinds.includes("cancel-deposit")) box.append(cancelDepositButton(tx, false));
  if (kinds.includes("refund")) {
    const key = `refund:${tx.transaction_id}`;
    const amount = h("input", { type: "number", min: 1, max: remaining, step: 1, inputmode: "numeric", testid: "refund-amount", placeholder: String(remaining) });
    // Editing the amount disarms a pending confirmation: what is confirmed is what is sent.
    amount.addEventListener("input", () => clearConfirm(key));
    const button = h("button", { type: "button", class: "btn btn-danger", testid: "detail-refund" }, t("tx.refund"));
    confirmable(button, key, () => prepareRefund(amount, remaining), (payload) => refundTx(tx, payload));
    box.append(
      h(
        "div",
        { class: "inline-form" },
        h("label", { class: "field" }, h("span", {}, t("tx.refundAmount")), amount),
        button,
      ),
    );
  }
  return box;
}

function renderDrawer() {
  const drawer = $("#tx-drawer");
  const tx = state.detail;
  if (!state.detailId) return;
  const title = $('[data-testid="tx-detail-title"]');
  const body = $("#tx-drawer-body");
  if (!tx) {
    title.textContent = t("tx.details");
    patchChildren(body, [{ key: "loading", sig: sig("loading"), render: () => h("p", { class: "hint" }, t("common.loading")) }]);
    return;
  }
  drawer.dataset.status = tx.status;
  title.textContent = `${typeLabel(tx.transaction_type)} · ${formatMoney(tx.amount)}`;
  patchChildren(body, drawerParts(tx));
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
// Drawer (one transaction: details, attempts, actions, ledger, notifications)
// ---------------------------------------------------------------------------------------------

function openDrawer(txId) {
  if (state.detailId !== txId) {
    state.detail = null;
    $("#tx-drawer-body").replaceChildren();
    $("#drawer-messages").replaceChildren();
  }
  state.detailId = txId;
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
  $("#tx-drawer-body").replaceChildren();
  $("#drawer-messages").replaceChildren();
  if (pendingConfirm && !document.querySelector(`[data-confirm-key="${CSS.escape(pendingConfirm.key)}"]`)) clearConfirm();
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

async function cancelDeposit(tx) {
  await api("PATCH", txPath(tx.user_id || state.selectedUserId, tx.transaction_id), { body: { action: "cancel" } });
  showNotice(t("tx.depositCancelled"));
  await Promise.all([refreshSelected(), loadUsers()]);
}

async function syncTx(tx) {
  const result = await api("POST", `${txPath(tx.user_id || state.selectedUserId, tx.transaction_id)}/sync`);
  const status = result?.status ?? result?.transaction?.status;
  showNotice(t("tx.synced", { status: statusLabel(status) }));
  await Promise.all([refreshSelected(), loadUsers()]);
}

// The first click of "Refund": read and check the amount, and say what the second click will refund.
function prepareRefund(input, remaining) {
  const raw = String(input.value || "").trim();
  if (raw === "") return { payload: { amount: null }, text: t("tx.refundConfirmAll", { amount: formatMoney(remaining) }) };
  const amount = Number(raw);
  if (!Number.isInteger(amount) || amount <= 0) {
    toast("error", t("errors.amountPositive"), "", "amount");
    input.focus();
    return null;
  }
  return { payload: { amount }, text: t("tx.refundConfirm", { amount: formatMoney(amount) }) };
}

async function refundTx(tx, { amount }) {
  const body = amount === null ? {} : { amount };
  await api("POST", `${txPath(tx.user_id || state.selectedUserId, tx.transaction_id)}/refund`, { body });
  showNotice(amount === null ? t("tx.refundDone") : t("tx.refundDoneAmount", { amount: formatMoney(amount) }));
  await Promise.all([refreshSelected(), loadUsers()]);
}

function parseAmount(input) {
  const raw = String(input.value || "").trim();
  const amount = Number(raw);
  if (raw === "" || !Number.isInteger(amount) || amount <= 0) {
    toast("error", t("errors.amountPositive"), "", "amount");
    input.focus();
    return null;
  }
  return amount;
}

async function createTransaction(type, amount, paymentMethod, recurring = null) {
  const body = { transaction_type: type, amount };
  if (paymentMethod) body.payment_method = paymentMethod;
  if (recurring) body.recurring = recurring;
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
    const recurring = recurringFromForm(form);
    if (recurring === undefined) return;
    const method = recurring ? "Credit" : form.payment_method.value;
    withBusy($('[data-testid="deposit-submit"]'), async () => {
      const tx = await createTransaction("deposit", amount, method, recurring);
      form.amount.value = "";
      await loadTransactions().catch(() => {});
      await pay({ ...tx, user_id: tx.user_id || state.selectedUserId }, method);
    });
  });

  wireRecurringForm();

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
      await Promise.all([loadUser(), loadTransactions(), loadUsers(), loadEvents()]);
    });
  });

  confirmable(
    $('[data-testid="close-user"]'),
    "close-user",
    () => (state.user ? { payload: state.user, text: t("users.closeConfirm", { name: state.user.username }) } : null),
    async (user) => {
      await api("DELETE", userPath(user.user_id));
      showNotice(t("users.closed", { name: user.username }));
      await Promise.all([loadUser(), loadUsers()]);
    },
  );

  $("#settings-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    state.token = form.token.value.trim();
    state.apiBase = form.apiBase.value.trim();
    writeStorage(STORAGE.token, state.token);
    writeStorage(STORAGE.apiBase, state.apiBase);
    watchExpiry();
    showNotice(t("settings.saved"));
    // New credentials or another API: its answers decide the role again.
    session.role = null;
    session.message = "";
    state.events = { available: true, items: [] };
    reloadEverything().catch(showError);
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
  const refreshEvents = $('[data-testid="events-refresh"]');
  refreshEvents.addEventListener("click", () => withBusy(refreshEvents, loadEvents));

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
  // The users card sticks under the top bar on wide screens, and scrolling to a control stops below
  // the bar: both need the bar's current height (messages make it taller), or the bar would cover
  // controls. A ResizeObserver alone reports at the next rendering frame, so for a frame (longer on a
  // busy machine) a new message covered what sat under it; the MutationObserver publishes the height
  // before anything else can run after the change. The ResizeObserver still catches a resized window.
  const top = $(".top-sticky");
  const publishHeight = () => document.documentElement.style.setProperty("--top-height", `${top.offsetHeight}px`);
  new ResizeObserver(publishHeight).observe(top);
  new MutationObserver(publishHeight).observe(top, { childList: true, subtree: true, characterData: true, attributes: true });
  publishHeight();
}

async function reloadEverything() {
  await Promise.all([checkHealth(), loadUsers(), refreshSelected(), loadReturned()]);
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
  wireSession();
  watchExpiry();
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
}

// ---------------------------------------------------------------------------------------------
// E-invoices (issue 13): the invoice of each paid deposit, and the buyer's invoice settings
// ---------------------------------------------------------------------------------------------

const INVOICE_KINDS = ["email", "mobile_barcode", "citizen_certificate", "ecpay_member", "donation", "company"];
// Which fields each kind uses (the API checks the rules and explains a refusal).
const INVOICE_KIND_FIELDS = {
  email: ["email"],
  mobile_barcode: ["carrier_num", "email"],
  citizen_certificate: ["carrier_num", "email"],
  ecpay_member: ["email"],
  donation: ["love_code", "email"],
  company: ["tax_id", "name", "address", "email"],
};
const INVOICE_FIELDS = ["carrier_num", "love_code", "tax_id", "name", "address", "email"];

// A paid deposit whose invoice the background job has not issued yet: keep refreshing until it has.
function invoicesPending() {
  return state.tx.items.some((tx) => tx.invoice && tx.invoice.status === "pending" && !tx.invoice.error);
}

function invoiceStatusLabel(status) {
  return has(`invoice.status.${status}`) ? t(`invoice.status.${status}`) : String(status);
}

// A small badge under a deposit's status: its invoice number (or state while there is none).
function invoiceBadge(tx) {
  const inv = tx.invoice;
  if (!inv || tx.transaction_type !== "deposit" || inv.status === "requested") return null;
  const warn = inv.status === "failed" || inv.status === "pending";
  return h(
    "span",
    {
      class: `invoice-badge ${warn ? "invoice-warn" : ""}`,
      testid: "tx-invoice",
      "data-invoice-status": inv.status,
      "data-invoice-number": inv.number || "",
      title: t("invoice.title"),
    },
    inv.number ? `${inv.number} · ${invoiceStatusLabel(inv.status)}` : invoiceStatusLabel(inv.status),
  );
}

function invoiceParts(tx) {
  const inv = tx.invoice;
  if (!inv) return [];
  return [
    {
      key: "invoice",
      sig: sig(inv),
      render: () => {
        const rows = [
          ...detailRow(t("invoice.state"), invoiceStatusLabel(inv.status), "invoice-state"),
        ];
        if (inv.number) rows.push(...detailRow(t("invoice.number"), h("code", {}, inv.number), "invoice-number"));
        if (inv.date) rows.push(...detailRow(t("invoice.date"), formatDate(inv.date)));
        if (inv.random_number) rows.push(...detailRow(t("invoice.random"), h("code", {}, inv.random_number)));
        for (const allowance of inv.allowances || []) {
          rows.push(...detailRow(t("invoice.allowance"), `${formatMoney(allowance.amount)} ${allowance.allowance_no || ""}`, "invoice-allowance"));
        }
        if (inv.error) rows.push(...detailRow(t("invoice.error"), h("code", {}, inv.error), "invoice-error"));
        return h(
          "section",
          { class: "invoice", testid: "invoice" },
          h("h4", {}, t("invoice.title")),
          inv.status === "requested" ? h("p", { class: "hint" }, t("invoice.requestedHint")) : null,
          h("dl", { class: "kv" }, rows),
        );
      },
    },
  ];
}

// The buyer's settings form in the user's panel; rebuilt only when the user or the language changes,
// so a half-typed form survives the live refresh.
function renderInvoiceSettings() {
  const host = $("#invoice-settings");
  if (!host) return;
  const user = state.user;
  if (!user) {
    host.hidden = true;
    return;
  }
  host.hidden = false;
  const key = sig(user.user_id, user.invoice_settings);
  if (host.dataset.sig === key || host.contains(document.activeElement)) return;
  host.dataset.sig = key;
  const saved = user.invoice_settings || {};
  const kind = h(
    "select",
    { name: "kind", testid: "invoice-kind" },
    INVOICE_KINDS.map((value) => h("option", { value, selected: (saved.kind || "email") === value }, t(`invoice.kind.${value}`))),
  );
  const inputs = Object.fromEntries(
    INVOICE_FIELDS.map((name) => [name, h("input", { name, testid: `invoice-${name}`, value: saved[name] || "", autocomplete: "off" })]),
  );
  const fieldRows = INVOICE_FIELDS.map((name) =>
    h("label", { class: "field", "data-invoice-field": name }, h("span", {}, t(`invoice.field.${name}`)), inputs[name]),
  );
  const showFields = () => {
    const used = INVOICE_KIND_FIELDS[kind.value] || [];
    for (const row of fieldRows) row.hidden = !used.includes(row.dataset.invoiceField);
  };
  kind.addEventListener("change", showFields);
  showFields();
  const save = h("button", { type: "submit", class: "btn btn-primary", testid: "invoice-save" }, t("invoice.save"));
  const form = h(
    "form",
    {
      class: "invoice-form",
      testid: "invoice-form",
      onsubmit: (event) => {
        event.preventDefault();
        const body = { kind: kind.value };
        for (const name of INVOICE_KIND_FIELDS[kind.value] || []) {
          const value = inputs[name].value.trim();
          if (value) body[name] = value;
        }
        withBusy(save, async () => {
          const updated = await api("PUT", `${userPath(user.user_id)}/invoice-settings`, { body });
          state.user = updated;
          host.dataset.sig = "";
          showNotice(t("invoice.saved"));
          renderUserDetail();
        });
      },
    },
    h("label", { class: "field" }, h("span", {}, t("invoice.kindLabel")), kind),
    fieldRows,
    h("p", { class: "hint" }, t("invoice.hint")),
    save,
  );
  host.replaceChildren(h("h3", {}, t("invoice.settingsTitle")), form);
}

start();
