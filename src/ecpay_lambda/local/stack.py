"""Composes the local stack: one server with the ECPay sandbox, the dashboard and the template-routed API.

The environment the handlers read is set here, after the port is bound (the URLs contain it) and
before any handler module is imported (handlers read their settings once, at cold start).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

from ..ecpay.credentials import MerchantCredentials
from .gateway import ApiGateway
from .sandbox import Sandbox, SandboxApp, SandboxSettings, TradeBook
from .server import LocalServer, is_loopback
from .static import StaticFiles
from .template_routes import RouteTable, TemplateError

DEFAULT_PORT = 3000
DEFAULT_SANDBOX_PORT = 3001
DEFAULT_RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0)
SANDBOX_STATE_FILE = "sandbox.json"
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


def redact_url(url: str) -> str:
    """A URL with any password replaced by ``***`` (safe to print)."""
    return re.sub(r"(//[^/:@]+):[^@/]*@", r"\1:***@", url)


def local_environment(base_url: str, data_dir: Path, env: Mapping[str, str]) -> dict[str, str]:
    """The variables ``serve`` sets for the in-process handlers (an existing STORE_URL is kept)."""
    return {
        "ECPAY_ENV": "sandbox",
        "ECPAY_BASE_URL": base_url,
        "PUBLIC_BASE_URL": base_url,
        "FRONTEND_URL": f"{base_url}/",
        "STORE_URL": env.get("STORE_URL") or f"sqlite:///{(data_dir / 'wallet.db').resolve()}",
    }


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
    sandbox: Sandbox
    gateway: ApiGateway | None = None
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return self.server.base_url

    def close(self) -> None:
        """Stop callbacks and the server."""
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
) -> LocalStack:
    """Bind the port, set the handlers' environment, then wire sandbox, dashboard and API."""
    env = os.environ if environ is None else environ
    check_bind_host(host, env)
    merchant = merchant_from_env(env)
    # CORS_ORIGINS plays the template's CorsOrigin parameter, as it does on AWS (one origin or *).
    overrides = {"CorsOrigin": env["CORS_ORIGINS"]} if env.get("CORS_ORIGINS") else None
    routes = RouteTable.from_file(template, overrides)  # fail before binding if the template is unusable
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    server = LocalServer(host, port, quiet=quiet)
    try:
        values = local_environment(server.base_url, data_dir, env)
        env.update(values)
        sandbox = _sandbox(data_dir, merchant, retry_delays)
        gateway = ApiGateway(routes)
        server.apps = [SandboxApp(sandbox), StaticFiles(dashboard_dir), gateway]
    except Exception:
        server.server_close()
        raise
    return LocalStack(server=server, sandbox=sandbox, gateway=gateway, environment=values)


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
    "StackError",
    "TemplateError",
    "build_sandbox_only",
    "build_stack",
    "check_bind_host",
    "find_template",
    "local_environment",
    "merchant_from_env",
    "parse_delays",
    "port_from",
    "redact_url",
]
