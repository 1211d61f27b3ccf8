"""Composes the local stack: one server with the ECPay sandbox, the dashboard and the template-routed API.

The environment the handlers read is set here, after the port is bound (the URLs contain it) and
before any handler module is imported (handlers read their settings once, at cold start).
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import json
import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

from ..api.composition import set_clock
from ..config import ENVIRONMENTS, ConfigError, parse_settings
from ..ecpay.credentials import MerchantCredentials
from .gateway import ApiGateway
from .http import App, Request, Response, text_response
from .issuer import load_key
from .preflight import PreflightError, open_checked_store, redact_url
from .sandbox import Sandbox, SandboxApp, SandboxSettings, TradeBook
from .sandbox.app import PREFIXES as SANDBOX_PREFIXES
from .server import LocalServer, is_loopback
from .static import StaticFiles
from .template_routes import RouteTable, TemplateError

DEFAULT_PORT = 3000
DEFAULT_SANDBOX_PORT = 3001
DEFAULT_RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0)
SANDBOX_STATE_FILE = "sandbox.json"
# Written by ``serve`` while it runs, so that ``reconcile`` (and other commands) find its sandbox and store.
SERVER_STATE_FILE = "server.json"
MERCHANT_VARS = ("ECPAY_MERCHANT_ID", "ECPAY_HASH_KEY", "ECPAY_HASH_IV")


class StackError(RuntimeError):
    """The stack cannot start as configured; the message says what to change."""


def port_from(value: str | int | None, default: int) -> int:
    """A TCP port from an option or the ``PORT`` variable (0 = any free port)."""
    if value is None or value == "":
        return default
    try:
        port = int(value)
    except ValueError:
        raise StackError(f"port must be a number, got {value!r}") from None
    if not 0 <= port <= 65535:
        raise StackError(f"port must be 0 to 65535, got {port}")
    return port


def parse_delays(text: str) -> tuple[float, ...]:
    """``"1,2,4,8"`` -> (1.0, 2.0, 4.0, 8.0): gaps between callback deliveries, in seconds."""
    try:
        delays = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise StackError(f"retry delays must be comma-separated seconds, got {text!r}") from None
    if not delays or any(d < 0 or d > 3600 for d in delays):
        raise StackError("retry delays must be 1 to 4 numbers of seconds between 0 and 3600")
    return delays


def merchant_from_env(env: Mapping[str, str]) -> MerchantCredentials:
    """ECPAY_MERCHANT_ID/ECPAY_HASH_KEY/ECPAY_HASH_IV, all three or none (the public stage test merchant)."""
    values = [env.get(name, "") for name in MERCHANT_VARS]
    if not any(values):
        return MerchantCredentials.stage_test_merchant()
    if not all(values):
        missing = [name for name, value in zip(MERCHANT_VARS, values, strict=True) if not value]
        raise StackError(f"set all of {', '.join(MERCHANT_VARS)} or none (missing {', '.join(missing)})")
    return MerchantCredentials(*values)


def find_template(explicit: str | None = None) -> Path:
    """``--template``, else ./template.yaml, else the repository's template next to ``src/``."""
    candidates = [Path(explicit)] if explicit else [Path.cwd() / "template.yaml"]
    if not explicit:
        candidates.append(Path(__file__).resolve().parents[3] / "template.yaml")
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise StackError(
        f"template.yaml not found (looked at {', '.join(str(c) for c in candidates)}); use --template"
    )


def ecpay_environment(env: Mapping[str, str]) -> str:
    """``ECPAY_ENV`` (default ``sandbox``), refused in one line when it is not one we know."""
    value = (env.get("ECPAY_ENV") or "").strip()
    name = value.lower() or "sandbox"
    if name not in ENVIRONMENTS:
        raise StackError(
            f"ECPAY_ENV={value!r} is not known: use sandbox (the offline sandbox, the default), "
            "stage (ECPay's test servers) or production"
        )
    return name


def local_environment(base_url: str, data_dir: Path, env: Mapping[str, str]) -> dict[str, str]:
    """The variables ``serve`` sets for the in-process handlers; the developer's own values win.

    ``ECPAY_ENV=sandbox`` (default) points ECPay at the embedded sandbox; ``stage``/``production`` keep
    ``ECPAY_BASE_URL`` as given (or ECPay's own host). ``STORE_URL``, ``PUBLIC_BASE_URL`` and
    ``FRONTEND_URL`` (the seed's front end, say) are kept when set.
    """
    name = ecpay_environment(env)
    values = {
        "ECPAY_ENV": name,
        "PUBLIC_BASE_URL": env.get("PUBLIC_BASE_URL") or base_url,
        "FRONTEND_URL": env.get("FRONTEND_URL") or f"{base_url}/",
        "STORE_URL": env.get("STORE_URL") or f"sqlite:///{(data_dir / 'wallet.db').resolve()}",
        # The wallet events the deployed stack publishes from its table's stream (store/outbox.py).
        "EVENTS_OUTBOX": env.get("EVENTS_OUTBOX") or str((data_dir / "events.jsonl").resolve()),
    }
    ecpay_base = env.get("ECPAY_BASE_URL") or (base_url if name == "sandbox" else "")
    if ecpay_base:
        values["ECPAY_BASE_URL"] = ecpay_base
    if name == "sandbox":
        # E-invoices are on by default offline (issue 13): test merchant 2000132 on the sandbox's
        # /B2CInvoice endpoints, this same port (config.py derives INVOICE_BASE_URL from ECPAY_BASE_URL).
        values["INVOICING"] = env.get("INVOICING") or "on"
    return values


def check_configuration(values: Mapping[str, str], env: Mapping[str, str]) -> None:
    """Parse the handlers' settings now, so a bad variable stops ``serve`` instead of every request."""
    try:
        parse_settings({**env, **values})
    except ConfigError as exc:
        raise StackError(str(exc)) from None


def check_store(store_url: str) -> None:
    """Open the store, migrate it and write its health record (within seconds), or raise StackError."""
    try:
        store = open_checked_store(store_url)
    except PreflightError as exc:
        raise StackError(str(exc)) from None
    dispose = getattr(store, "dispose", None)
    if callable(dispose):
        dispose()  # the handlers open their own; this one was only the check


def listen(host: str, port: int, *, quiet: bool) -> LocalServer:
    """Bind ``host:port``; a port in use (or a bad address) is a StackError that says what to do."""
    try:
        return LocalServer(host, port, quiet=quiet)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise StackError(
                f"port {port} on {host} is already in use (another ecpay-lambda serve?): "
                "choose another with --port N (or PORT=N make run), or stop the other server"
            ) from None
        raise StackError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _token_digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", errors="surrogatepass")).digest()


class SandboxGuard:
    """On a non-loopback bind: the sandbox answers this machine's own requests, or a request with the token.

    The offline sandbox lets anyone pay a deposit, list trades, drop callbacks or make the server POST
    to any URL, so on a public address it is guarded like the API: a request to a sandbox path must come
    from loopback without a proxy's forwarding headers (a proxy on this machine would make every client
    look local), or carry ``Authorization: Bearer <API_TOKEN>``. Everything else is refused with 403
    before the sandbox sees it.
    """

    def __init__(self, token: str) -> None:
        self._digest = _token_digest(token)

    def allowed(self, request: Request) -> bool:
        """True when ``request`` may reach the sandbox."""
        forwarded = request.header("X-Forwarded-For") or request.header("Forwarded")
        if is_loopback(request.client_ip) and not forwarded:
            return True
        scheme, _, presented = request.header("Authorization").strip().partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return False
        return hmac.compare_digest(_token_digest(presented.strip()), self._digest)

    def handle(self, request: Request) -> Response | None:
        """403 for a sandbox path this client may not use; None lets the sandbox (or the next app) answer."""
        if not request.path.startswith(SANDBOX_PREFIXES) or self.allowed(request):
            return None
        return text_response(
            403,
            "The offline ECPay sandbox answers only this machine (or a request with the API token): "
            "it can mark any deposit paid.\n",
        )


def check_bind_host(host: str, env: Mapping[str, str], *, allow_remote: bool = False) -> None:
    """Refuse a non-loopback address unless API_TOKEN protects the API (or the caller allows it)."""
    if is_loopback(host) or allow_remote:
        return
    if not env.get("API_TOKEN"):
        raise StackError(
            f"refusing to listen on {host}: without API_TOKEN the API would be open to the network; "
            "set API_TOKEN or use 127.0.0.1"
        )


@dataclass
class LocalStack:
    """A running (or ready to run) local server and its parts."""

    server: LocalServer
    sandbox: Sandbox | None
    gateway: ApiGateway | None = None
    environment: dict[str, str] = field(default_factory=dict)
    data_dir: Path | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return self.server.base_url

    def close(self) -> None:
        """Stop callbacks and the server."""
        if self.sandbox is not None:
            self.sandbox.close()
        self.server.stop()


def _sandbox(data_dir: Path | None, merchant: MerchantCredentials, delays: tuple[float, ...]) -> Sandbox:
    book = TradeBook(data_dir / SANDBOX_STATE_FILE if data_dir else None)
    return Sandbox(merchant, book=book, settings=SandboxSettings(retry_delays=delays))


def build_stack(
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    template: Path,
    data_dir: Path,
    dashboard_dir: Path | None = None,
    retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS,
    quiet: bool = False,
    environ: MutableMapping[str, str] | None = None,
    check: bool = True,
) -> LocalStack:
    """Check the configuration and the store, bind the port, set the handlers' environment, wire the apps.

    Every check runs before "Listening": a bad ``ECPAY_ENV``, an unusable ``STORE_URL`` or a port in
    use raise :class:`StackError` with one line saying what to change (``check=False`` skips the
    store check, for tests that bring their own).
    """
    env = os.environ if environ is None else environ
    check_bind_host(host, env)
    merchant = merchant_from_env(env)
    # CORS_ORIGINS plays the template's CorsOrigin parameter, as it does on AWS (one origin or *).
    overrides = {"CorsOrigin": env["CORS_ORIGINS"]} if env.get("CORS_ORIGINS") else None
    routes = RouteTable.from_file(template, overrides)  # fail before binding if the template is unusable
    data_dir = data_dir.resolve()
    preview = local_environment(f"http://127.0.0.1:{port or DEFAULT_PORT}", data_dir, env)
    check_configuration(preview, env)
    data_dir.mkdir(parents=True, exist_ok=True)
    if check:
        check_store(preview["STORE_URL"])
    server = listen(host, port, quiet=quiet)
    try:
        values = local_environment(server.base_url, data_dir, env)
        check_configuration(values, env)
        env.update(values)
        # The embedded sandbox plays ECPay only in sandbox mode; with stage/production ECPay is ECPay.
        sandbox = _sandbox(data_dir, merchant, retry_delays) if values["ECPAY_ENV"] == "sandbox" else None
        # One calendar for the whole local stack: the wallet reads the sandbox's (movable) clock.
        set_clock(sandbox.now if sandbox is not None else None)
        # AUTH_MODE=jwt: the gateway plays the template's JWT authorizer with the local issuer's key.
        jwt_key = load_key(data_dir) if (env.get("AUTH_MODE") or "").strip().lower() == "jwt" else None
        gateway = ApiGateway(routes, jwt_key=jwt_key)
        apps: list[App] = []
        if sandbox is not None:
            if not is_loopback(host):
                apps.append(SandboxGuard(env.get("API_TOKEN", "")))
            apps.append(SandboxApp(sandbox))
        apps += [StaticFiles(dashboard_dir), gateway]
        server.apps = apps
    except Exception:
        server.server_close()
        raise
    return LocalStack(server=server, sandbox=sandbox, gateway=gateway, environment=values, data_dir=data_dir)


def write_server_state(stack: LocalStack) -> Path | None:
    """Record the running server (pid, URLs, store) in DATA_DIR/server.json for other commands; owner-only."""
    if stack.data_dir is None:
        return None
    path = stack.data_dir / SERVER_STATE_FILE
    state = {"pid": os.getpid(), "base_url": stack.base_url, **stack.environment}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # STORE_URL may hold a password
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(state, handle, indent=2)
    return path


def remove_server_state(stack: LocalStack) -> None:
    """Forget the record of this server (it stopped)."""
    if stack.data_dir is not None:
        path = stack.data_dir / SERVER_STATE_FILE
        try:
            if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
                path.unlink()
        except (OSError, ValueError):
            pass


def running_server_state(data_dir: Path) -> dict[str, str] | None:
    """The environment of a ``serve`` running from ``data_dir`` (None if none is running there)."""
    try:
        state = json.loads((data_dir / SERVER_STATE_FILE).read_text(encoding="utf-8"))
        pid = int(state["pid"])
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {str(k): str(v) for k, v in state.items() if isinstance(v, str)}


def build_sandbox_only(
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_SANDBOX_PORT,
    data_dir: Path | None = None,
    merchant: MerchantCredentials | None = None,
    retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS,
    quiet: bool = False,
) -> LocalStack:
    """A server with only the ECPay sandbox (``ecpay-lambda sandbox``, the ``ecpay_sandbox`` fixture)."""
    sandbox = _sandbox(
        data_dir.resolve() if data_dir else None, merchant or merchant_from_env(os.environ), retry_delays
    )
    try:
        server = LocalServer(host, port, [SandboxApp(sandbox)], quiet=quiet)
    except OSError:
        sandbox.close()
        raise
    return LocalStack(server=server, sandbox=sandbox)


__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_SANDBOX_PORT",
    "LocalStack",
    "SandboxGuard",
    "StackError",
    "TemplateError",
    "build_sandbox_only",
    "build_stack",
    "check_bind_host",
    "check_store",
    "ecpay_environment",
    "find_template",
    "local_environment",
    "merchant_from_env",
    "parse_delays",
    "port_from",
    "redact_url",
    "remove_server_state",
    "running_server_state",
    "write_server_state",
]
