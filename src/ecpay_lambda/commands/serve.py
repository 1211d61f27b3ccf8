"""``ecpay-lambda serve``: the template-routed API, the ECPay sandbox and the dashboard on one port."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from ..local.invoice_worker import InvoiceWorker

from ..local.running import run_until_stopped, setup_logging

# Powertools and the lean entry points read this once, when the handlers are imported.
_QUIET_LOG_LEVEL = "CRITICAL"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``serve``."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", default=None, help="port (default $PORT or 3000; 0 picks a free one)")
    parser.add_argument("--template", default=None, help="SAM template to route by (default ./template.yaml)")
    parser.add_argument("--data-dir", default=".data", help="folder for the SQLite store and sandbox state")
    parser.add_argument("--dashboard-dir", default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--retry-delays",
        default="1,2,4,8",
        help="seconds between ECPay callback re-deliveries (default 1,2,4,8; ECPay waits minutes)",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="print only the start-up lines: no request or JSON log lines"
    )
    parser.epilog = (
        "Settings come from environment variables: STORE_URL (default: a SQLite file in the data "
        "folder), ECPAY_ENV (sandbox = the offline sandbox served here; stage = ECPay's test servers, "
        "with ECPAY_BASE_URL to override the host), FRONTEND_URL (where shoppers return after paying; "
        "default: the dashboard), API_TOKEN (required to listen on anything but 127.0.0.1). Bad "
        "settings, an unusable store or a busy port stop serve at once with one line saying why."
    )


def run(args: argparse.Namespace) -> int:
    """Check everything, start the stack and serve until Ctrl+C or SIGTERM."""
    from ..local.stack import (  # noqa: PLC0415 - the CLI imports every command to build its parser
        DEFAULT_PORT,
        StackError,
        TemplateError,
        build_stack,
        find_template,
        parse_delays,
        port_from,
        redact_url,
        remove_server_state,
        write_server_state,
    )

    setup_logging(args.quiet)
    if args.quiet:
        os.environ["POWERTOOLS_LOG_LEVEL"] = _QUIET_LOG_LEVEL
        # The metrics' EMF documents are JSON lines on stdout too (one or two per request).
        os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    try:
        port = port_from(args.port if args.port is not None else os.environ.get("PORT"), DEFAULT_PORT)
        stack = build_stack(
            host=args.host,
            port=port,
            template=find_template(args.template),
            data_dir=Path(args.data_dir),
            dashboard_dir=Path(args.dashboard_dir) if args.dashboard_dir else None,
            retry_delays=parse_delays(args.retry_delays),
            quiet=args.quiet,
        )
    except (StackError, TemplateError) as exc:
        print(f"ecpay-lambda serve: {exc}", file=sys.stderr)
        return 2
    assert stack.gateway is not None
    for problem in stack.gateway.preload():
        print(f"warning: handler not importable yet: {problem}", file=sys.stderr)
    url = stack.base_url
    env = stack.environment
    if stack.sandbox is not None:
        merchants = ", ".join(stack.sandbox.merchants)
        print(f"ecpay-lambda local stack — offline ECPay sandbox, merchant {merchants}")
    else:
        ecpay_url = env.get("ECPAY_BASE_URL") or "ECPay's own host"
        print(f"ecpay-lambda local stack — ECPay {env['ECPAY_ENV']} at {ecpay_url}")
    print(f"  Dashboard      {url}/")
    print(f"  API            {url}/users   (OpenAPI: {url}/openapi.json, docs: {url}/docs)")
    if stack.sandbox is not None:
        print(f"  ECPay sandbox  {url}/sandbox/   (control API: {url}/sandbox/api/trades)")
    print(f"  Store          {redact_url(env['STORE_URL'])}")
    if env["FRONTEND_URL"] != f"{url}/":
        print(f"  Front end      {env['FRONTEND_URL']}   (shoppers return here after paying)")
    if stack.sandbox is None and env["PUBLIC_BASE_URL"] == url:
        print(
            f"note: ECPay cannot call {url} back: set PUBLIC_BASE_URL to a public address of this "
            "server (a tunnel), or run `ecpay-lambda reconcile` to ask ECPay about payments",
            file=sys.stderr,
        )
    worker = _start_invoice_worker(url, sandbox=stack.sandbox is not None)
    if worker is False:
        stack.close()
        return 2
    write_server_state(stack)
    print(f"Listening on {url}  (Ctrl+C to stop)", flush=True)
    try:
        run_until_stopped(stack)
    finally:
        if worker is not None:
            worker.stop()
        remove_server_state(stack)
    return 0


def _start_invoice_worker(url: str, *, sandbox: bool) -> InvoiceWorker | Literal[False] | None:
    """Start local mode's e-invoice worker (issue 13) and say so; False when its settings are bad."""
    from ..config import ConfigError, load_settings  # noqa: PLC0415
    from ..local.invoice_worker import start_invoice_worker  # noqa: PLC0415

    try:
        worker = start_invoice_worker()
        invoicing = load_settings().invoicing
    except (ConfigError, ValueError) as exc:
        print(f"ecpay-lambda serve: {exc}", file=sys.stderr)
        return False
    if invoicing is not None:
        how = (
            f"every {worker.interval:g} s"
            if worker is not None
            else "worker off: run `ecpay-lambda invoices`"
        )
        print(f"  E-invoices     merchant {invoicing.merchant_id} at {invoicing.base_url} ({how})")
        if sandbox:
            print(f"                 offline e-invoice sandbox: {url}/sandbox/api/invoices")
    return worker
