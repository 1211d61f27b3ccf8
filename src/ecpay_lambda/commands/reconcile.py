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
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    """Run one reconciliation pass; print the report."""
    # Imported here: building the CLI parser stays cheap for every other command.
    from ..api.composition import build_service  # noqa: PLC0415
    from ..config import ConfigError, parse_settings  # noqa: PLC0415

    if args.limit < 1:
        print("reconcile: --limit must be at least 1", file=sys.stderr)
        return EXIT_ERROR
    if args.grace_minutes is not None and args.grace_minutes < 0:
        print("reconcile: --grace-minutes must not be negative", file=sys.stderr)
        return EXIT_ERROR
    env = dict(os.environ)
    if args.store_url:
        env["STORE_URL"] = args.store_url
    try:
        settings = parse_settings(env)
        service = build_service(settings)
        if args.grace_minutes is not None:
            service.reconcile_grace = timedelta(minutes=args.grace_minutes)
        report = service.reconcile(limit=args.limit)
    except (ConfigError, ValueError) as exc:
        print(f"reconcile: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps(asdict(report), indent=2, ensure_ascii=False))
    else:
        print(f"ECPay environment: {settings.ecpay_env}")
        for name, value in asdict(report).items():
            if isinstance(value, list):
                print(f"{name}: {len(value)}")
                for line in value:
                    print(f"  {line}")
            else:
                print(f"{name}: {value}")
    return EXIT_PARTIAL if report.errors else EXIT_OK
