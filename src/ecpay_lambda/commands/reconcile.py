"""``ecpay-lambda reconcile``: ask ECPay (QueryTradeInfo) about deposits still awaiting payment.

The same use case as the scheduled Lambda function, for a laptop or a one-off run against the
deployed table. Exits 1 when some deposits could not be checked, 2 when it cannot start.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..wallet.service import WalletService

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_ERROR = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``reconcile`` options."""
    parser.add_argument(
        "--store-url",
        metavar="URL",
        help="the store (default: $STORE_URL, else sqlite:///.data/wallet.db)",
    )
    parser.add_argument(
        "--limit", type=int, default=100, metavar="N", help="check at most N deposits (default 100)"
    )
    parser.add_argument(
        "--grace-minutes",
        type=float,
        default=None,
        metavar="M",
        help="only deposits untouched for M minutes (default: the service's, 15); 0 checks all now",
    )
    parser.add_argument(
        "--data-dir",
        default=".data",
        help="where a running `serve` keeps its state (default .data): with ECPAY_ENV=sandbox and no "
        "ECPAY_BASE_URL, reconcile asks that server's sandbox and uses its store",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    """Run one reconciliation pass; print the report (and, when nothing was checked, why)."""
    # Imported here: building the CLI parser stays cheap for every other command.
    from ..api.composition import build_service  # noqa: PLC0415
    from ..config import ConfigError, parse_settings  # noqa: PLC0415
    from ..local.preflight import PreflightError, describe_store_error, open_checked_store  # noqa: PLC0415

    if args.limit < 1:
        print("reconcile: --limit must be at least 1", file=sys.stderr)
        return EXIT_ERROR
    if args.grace_minutes is not None and args.grace_minutes < 0:
        print("reconcile: --grace-minutes must not be negative", file=sys.stderr)
        return EXIT_ERROR
    env = dict(os.environ)
    if args.store_url:
        env["STORE_URL"] = args.store_url
    if not _use_running_server(env, Path(args.data_dir)):
        return EXIT_ERROR
    try:
        settings = parse_settings(env)
        store = open_checked_store(settings.store_url)
        service = build_service(settings, store=store)
        if args.grace_minutes is not None:
            service.reconcile_grace = timedelta(minutes=args.grace_minutes)
        report = service.reconcile(limit=args.limit)
        note = _why_nothing_was_checked(service) if report.checked == 0 and not report.errors else None
    except (ConfigError, PreflightError, ValueError) as exc:
        print(f"reconcile: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:
        from ..api.errors import is_store_outage  # noqa: PLC0415

        if not (is_store_outage(exc) or any(c.__name__ == "DBAPIError" for c in type(exc).__mro__)):
            raise
        # The store failed half-way: one line, not the driver's traceback.
        print(f"reconcile: the store failed: {describe_store_error(exc)}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps({**asdict(report), "note": note}, indent=2, ensure_ascii=False))
    else:
        print(f"ECPay environment: {settings.ecpay_env}")
        for name, value in asdict(report).items():
            if isinstance(value, list):
                print(f"{name}: {len(value)}")
                for line in value:
                    print(f"  {line}")
            else:
                print(f"{name}: {value}")
        if note:
            print(f"nothing checked: {note}")
    return EXIT_PARTIAL if report.errors else EXIT_OK


def _use_running_server(env: dict[str, str], data_dir: Path) -> bool:
    """Sandbox mode without ECPAY_BASE_URL: take the running ``serve``'s sandbox and store (False: none)."""
    from ..local.stack import running_server_state  # noqa: PLC0415

    if env.get("ECPAY_BASE_URL") or (env.get("ECPAY_ENV") or "sandbox").strip().lower() != "sandbox":
        return True
    state = running_server_state(data_dir)
    if state is None or not state.get("ECPAY_BASE_URL"):
        print(
            "reconcile: no ECPay to ask: the offline sandbox is served by `make run` "
            f"(none is running from {data_dir}); start it, or set ECPAY_BASE_URL, "
            "or ECPAY_ENV=stage for ECPay's test servers",
            file=sys.stderr,
        )
        return False
    env["ECPAY_ENV"] = state.get("ECPAY_ENV", "sandbox")
    env["ECPAY_BASE_URL"] = state["ECPAY_BASE_URL"]
    if not env.get("STORE_URL") and state.get("STORE_URL"):
        env["STORE_URL"] = state["STORE_URL"]
    print(f"reconcile: using the local server's ECPay sandbox at {state['ECPAY_BASE_URL']}", file=sys.stderr)
    return True


def _why_nothing_was_checked(service: WalletService) -> str:
    """One sentence on why a run checked no deposit: none awaiting, or all within the grace period."""
    awaiting = service.store.list_awaiting_payment(
        updated_before=service.now() + timedelta(days=1), limit=1000
    )
    if not awaiting:
        return "no deposit is awaiting payment"
    minutes = service.reconcile_grace.total_seconds() / 60
    count = f"{len(awaiting)}{'+' if len(awaiting) == 1000 else ''}"
    return (
        f"{count} deposit(s) awaiting payment changed less than {minutes:g} minutes ago: the grace "
        "period leaves ECPay's own notification time to arrive; --grace-minutes 0 checks them now"
    )
