"""``ecpay-lambda reconcile``: ask ECPay about deposits still awaiting payment, or match its trade file.

The same use cases as the scheduled Lambda function, for a laptop or a one-off run against the
deployed table. ``--statement YYYY-MM-DD[..YYYY-MM-DD]`` downloads ECPay's trade file (TradeNoAio) for
those payment dates, credits paid trades the wallet missed (each confirmed by QueryTradeInfo) and
prints every discrepancy it could not resolve. Exits 1 when some deposits could not be checked or a
discrepancy is left, 2 when it cannot start.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from datetime import date, timedelta

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
        "--deadline-seconds",
        type=float,
        default=None,
        metavar="S",
        help="stop starting ECPay queries after S seconds (default: $RECONCILE_DEADLINE_SECONDS, 240)",
    )
    parser.add_argument(
        "--now",
        action="store_true",
        help="ignore the next-check schedule: every awaiting deposit is due now (most overdue first)",
    )
    parser.add_argument(
        "--statement",
        metavar="DATE[..DATE]",
        help="match ECPay's trade file for these payment dates (YYYY-MM-DD, Asia/Taipei) with the wallet",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def parse_date_range(text: str) -> tuple[date, date]:
    """``YYYY-MM-DD`` or ``YYYY-MM-DD..YYYY-MM-DD`` -> (begin, end); ValueError with a readable message."""
    first, _, last = text.partition("..")
    try:
        begin = date.fromisoformat(first.strip())
        end = date.fromisoformat(last.strip()) if last else begin
    except ValueError:
        raise ValueError(f"{text!r} is not YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD") from None
    if end < begin:
        raise ValueError(f"{text!r} ends before it begins")
    return begin, end


def _print_report(report: object, as_json: bool) -> None:
    summary = asdict(report)  # type: ignore[call-overload]
    if as_json:
        print(json.dumps(summary, indent=2, ensure_ascii=False, default=str))
        return
    for name, value in summary.items():
        if isinstance(value, list):
            print(f"{name}: {len(value)}")
            for line in value:
                print(f"  {line}")
        else:
            print(f"{name}: {value}")


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
    if args.deadline_seconds is not None and args.deadline_seconds <= 0:
        print("reconcile: --deadline-seconds must be positive", file=sys.stderr)
        return EXIT_ERROR
    statement_range: tuple[date, date] | None = None
    if args.statement:
        try:
            statement_range = parse_date_range(args.statement)
        except ValueError as exc:
            print(f"reconcile: --statement: {exc}", file=sys.stderr)
            return EXIT_ERROR
    env = dict(os.environ)
    if args.store_url:
        env["STORE_URL"] = args.store_url
    try:
        settings = parse_settings(env)
        service = build_service(settings)
        if args.grace_minutes is not None:
            service.reconcile_grace = timedelta(minutes=args.grace_minutes)
        if statement_range is not None:
            statement = service.reconcile_statement(*statement_range, apply=True)
            if not args.json:
                print(f"ECPay environment: {settings.ecpay_env}")
            _print_report(statement, args.json)
            if not args.json:
                print("statement: clean" if statement.clean else "statement: DISCREPANCIES LEFT")
            return EXIT_OK if statement.clean else EXIT_PARTIAL
        seconds = args.deadline_seconds if args.deadline_seconds is not None else settings.reconcile_deadline
        report = service.reconcile(
            limit=args.limit, budget=timedelta(seconds=seconds), ignore_schedule=args.now
        )
    except (ConfigError, ValueError) as exc:
        print(f"reconcile: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if not args.json:
        print(f"ECPay environment: {settings.ecpay_env}")
    _print_report(report, args.json)
    if not args.json and report.checked == 0 and report.next_due:
        print(
            f"nothing was due: the next deposit is due at {report.next_due} "
            "(deposits are first checked a grace period after checkout; --now checks them all)"
        )
    return EXIT_PARTIAL if report.errors else EXIT_OK
