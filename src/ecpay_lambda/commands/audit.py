"""``ecpay-lambda audit``: check the wallet against itself, and with ``--external`` against ECPay's records.

Ledger sums against every user's balance and held; per-transaction invariants (one credit per paid
deposit, refunds never above what was paid, every completed refund confirmed by ECPay); no closed user
holding money; with ``--external DATE[..DATE]``, ECPay's trade file for those payment dates (read only:
``reconcile --statement`` credits). Exits 1 on any problem (for cron and CI), 2 when it cannot start.
Deposits stuck awaiting payment and flagged transactions are listed but do not fail the audit.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

EXIT_OK = 0
EXIT_MISMATCH = 1
EXIT_ERROR = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``audit`` options."""
    parser.add_argument(
        "--store-url",
        metavar="URL",
        help="the store to audit (default: $STORE_URL, else sqlite:///.data/wallet.db); "
        "e.g. dynamodb://TableName for the deployed stack",
    )
    parser.add_argument(
        "--external",
        metavar="DATE[..DATE]",
        help="also compare with ECPay's trade file for these payment dates (needs ECPay credentials)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    """Audit the store; print the report."""
    # Imported here: building the CLI parser stays cheap for every other command.
    from ..api.composition import build_service  # noqa: PLC0415
    from ..config import ConfigError, parse_settings  # noqa: PLC0415
    from ..ecpay.errors import EcpayError  # noqa: PLC0415
    from ..local.preflight import PreflightError, describe_store_error, open_checked_store  # noqa: PLC0415
    from .reconcile import parse_date_range  # noqa: PLC0415

    env = dict(os.environ)
    external = None
    if args.external:
        try:
            external = parse_date_range(args.external)
        except ValueError as exc:
            print(f"audit: --external: {exc}", file=sys.stderr)
            return EXIT_ERROR
    else:
        # The plain audit reads the store only: it needs no ECPay credentials (and must not ask for them).
        env["ECPAY_CREDENTIALS"] = "none"
    if args.store_url:
        env["STORE_URL"] = args.store_url
    try:
        settings = parse_settings(env)
        # Read-only: no write probe, so an audit of a read replica works.
        store = open_checked_store(settings.store_url, write=False)
        report = build_service(settings, store=store).audit(external=external)
    except (ConfigError, PreflightError, ValueError) as exc:
        print(f"audit: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except EcpayError as exc:
        # ECPay refused or did not answer (e.g. the trade file's one-per-minute lock): one line.
        print(f"audit: ECPay: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:
        # The store failed half-way (connection lost, ...): one line, not the driver's traceback.
        if not _is_store_failure(exc):
            raise
        print(f"audit: the store failed: {describe_store_error(exc)}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(
            json.dumps(
                {
                    "clean": report.clean,
                    "users_checked": report.users_checked,
                    "mismatches": report.mismatches,
                    "problems": report.problems,
                    "external": report.external,
                    "flagged": report.flagged,
                    "stuck": report.stuck,
                },
                indent=2,
                ensure_ascii=False,
            )
        )
    else:
        print(f"users checked: {report.users_checked}")
        print(f"ledger mismatches: {len(report.mismatches)}")
        for line in report.mismatches:
            print(f"  MISMATCH {line}")
        print(f"transaction problems: {len(report.problems)}")
        for line in report.problems:
            print(f"  PROBLEM {line}")
        if args.external:
            print(f"differences from ECPay's trade file: {len(report.external)}")
            for line in report.external:
                print(f"  EXTERNAL {line}")
        print(f"flagged for an operator: {len(report.flagged)}")
        for line in report.flagged:
            print(f"  flagged {line}")
        print(f"deposits stuck awaiting payment: {len(report.stuck)}")
        for line in report.stuck:
            print(f"  stuck {line}")
        print("audit: clean" if report.clean else "audit: PROBLEMS FOUND")
    return EXIT_OK if report.clean else EXIT_MISMATCH


def _is_store_failure(exc: BaseException) -> bool:
    from ..api.errors import is_store_outage  # noqa: PLC0415

    return is_store_outage(exc) or any(cls.__name__ == "DBAPIError" for cls in type(exc).__mro__)
