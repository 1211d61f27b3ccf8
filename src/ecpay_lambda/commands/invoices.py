"""``ecpay-lambda invoices``: run the e-invoice job by hand (issue 13).

Issues the invoices of paid deposits still ``pending`` (a crash, a timeout, an e-invoice service that
was down), voids or allows invoices after confirmed refunds, and reports what it did. The same job runs
in the background of ``serve`` and on AWS in the scheduled function. In sandbox mode without
``ECPAY_BASE_URL`` it uses the running ``serve``'s sandbox, store and settings (like ``reconcile``).
Exit status: 0 done, 1 some invoice failed (ECPay refused) or waits for a retry, 2 could not start.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_ERROR = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``invoices`` options."""
    parser.add_argument(
        "--store-url", metavar="URL", help="the store (default: $STORE_URL or the running serve's)"
    )
    parser.add_argument(
        "--data-dir", default=".data", help="where a running serve keeps its state (default .data)"
    )
    parser.add_argument("--limit", type=int, default=100, help="at most this many deposits (default 100)")
    parser.add_argument(
        "--now", action="store_true", help="ignore the backoff: retry every invoice with work pending now"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    """Run the invoice job once; print the report."""
    # Imported here: building the CLI parser stays cheap for every other command.
    from ..api.invoicing import invoice_client  # noqa: PLC0415
    from ..config import ConfigError, parse_settings  # noqa: PLC0415
    from ..local.preflight import PreflightError, open_checked_store  # noqa: PLC0415
    from ..wallet.invoices import InvoiceService  # noqa: PLC0415
    from .reconcile import sandbox_clock  # noqa: PLC0415

    if args.limit < 1:
        print("invoices: --limit must be at least 1", file=sys.stderr)
        return EXIT_ERROR
    env = dict(os.environ)
    if args.store_url:
        env["STORE_URL"] = args.store_url
    from_running_server = not env.get("ECPAY_BASE_URL")
    if from_running_server and not _use_running_server(env, Path(args.data_dir)):
        return EXIT_ERROR
    try:
        settings = parse_settings(env)
        if settings.invoicing is None:
            print("invoices: invoicing is off (set INVOICING=on and the e-invoice keys)", file=sys.stderr)
            return EXIT_ERROR
        store = open_checked_store(settings.store_url)
        # Local mode has one calendar: the sandbox's (movable) clock decides filing periods and backoffs.
        clock = (sandbox_clock(settings) if from_running_server else None) or (lambda: datetime.now(UTC))
        client = invoice_client(settings)
        assert client is not None
        job = InvoiceService(store, client, clock=clock, relate_prefix=settings.invoicing.relate_prefix)
        report = job.run(limit=args.limit, ignore_schedule=args.now)
    except (ConfigError, PreflightError, ValueError) as exc:
        print(f"invoices: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(
            f"invoices: {report.examined} examined, {report.issued} issued, {report.voided} voided, "
            f"{report.allowances} allowance(s), {report.retry} to retry, {report.failed} failed"
        )
    return EXIT_PARTIAL if report.failed or report.retry else EXIT_OK


def _use_running_server(env: dict[str, str], data_dir: Path) -> bool:
    """Take a running ``serve``'s settings (its sandbox, store, invoicing) when ECPAY_BASE_URL is unset."""
    if (env.get("ECPAY_ENV") or "sandbox").strip().lower() != "sandbox":
        return True
    from ..local.stack import running_server_state  # noqa: PLC0415

    state = running_server_state(data_dir)
    if state is None or not state.get("ECPAY_BASE_URL"):
        print(
            "invoices: no e-invoice service to call: start `ecpay-lambda serve` (its sandbox serves it), "
            "or set ECPAY_BASE_URL / INVOICE_BASE_URL",
            file=sys.stderr,
        )
        return False
    for name in ("ECPAY_ENV", "ECPAY_BASE_URL", "INVOICING", "INVOICE_BASE_URL"):
        if state.get(name) and not env.get(name):
            env[name] = state[name]
    if not env.get("STORE_URL") and state.get("STORE_URL"):
        env["STORE_URL"] = state["STORE_URL"]
    return True
