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
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Settings
    from ..wallet.results import ReconcileReport

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
        help="ask about every awaiting deposit now, whatever its schedule, and end checkout attempts ECPay "
        "does not know only after M minutes (default 15); 0 checks all now",
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
    parser.add_argument(
        "--data-dir",
        default=".data",
        help="where a running `serve` keeps its state (default .data): with ECPAY_ENV=sandbox and no "
        "ECPAY_BASE_URL, reconcile asks that server's sandbox and uses its store",
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
    """Run one reconciliation pass; print the report (and, when nothing was checked, why)."""
    # Imported here: building the CLI parser stays cheap for every other command.
    from ..api.composition import build_service  # noqa: PLC0415
    from ..config import ConfigError, parse_settings  # noqa: PLC0415
    from ..ecpay.errors import EcpayError  # noqa: PLC0415
    from ..local.preflight import PreflightError, describe_store_error, open_checked_store  # noqa: PLC0415

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
    from_running_server = not env.get("ECPAY_BASE_URL")
    if not _use_running_server(env, Path(args.data_dir)):
        return EXIT_ERROR
    try:
        settings = parse_settings(env)
        store = open_checked_store(settings.store_url)
        clock = sandbox_clock(settings) if from_running_server else None
        service = build_service(settings, store=store, clock=clock)
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
            limit=args.limit,
            budget=timedelta(seconds=seconds),
            ignore_schedule=args.now or args.grace_minutes is not None,
        )
    except (ConfigError, PreflightError, ValueError) as exc:
        print(f"reconcile: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except EcpayError as exc:
        # ECPay refused or did not answer (e.g. the trade file's one-per-minute lock): one line.
        print(f"reconcile: ECPay: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:
        from ..api.errors import is_store_outage  # noqa: PLC0415

        if not (is_store_outage(exc) or any(c.__name__ == "DBAPIError" for c in type(exc).__mro__)):
            raise
        # The store failed half-way: one line, not the driver's traceback.
        print(f"reconcile: the store failed: {describe_store_error(exc)}", file=sys.stderr)
        return EXIT_ERROR
    note = why_nothing_was_checked(report)
    if args.json:
        print(json.dumps({**asdict(report), "note": note}, indent=2, ensure_ascii=False))
    else:
        print(f"ECPay environment: {settings.ecpay_env}")
        _print_report(report, as_json=False)
        if note:
            print(f"nothing checked: {note}")
        if report.stopped:
            print(
                f"stopped early ({report.stopped}): {report.skipped} deposit(s) and "
                f"{report.refunds_skipped} refund(s) due were not checked; the next run takes them first"
            )
    # Anything due but not checked (errors, or a run stopped early) is a partial run.
    return EXIT_PARTIAL if report.errors or report.stopped else EXIT_OK


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


def why_nothing_was_checked(report: ReconcileReport) -> str | None:
    """One sentence on why a run checked no deposit: none awaiting, or none due yet (None if it checked)."""
    if report.checked or report.errors or report.stopped:
        return None
    if report.next_due is None:
        return "no deposit is awaiting payment"
    return (
        f"no deposit awaiting payment is due before {report.next_due}: a deposit is first asked about a "
        "grace period after its checkout (ECPay's own notification usually arrives first), then less and "
        "less often; --now (or --grace-minutes 0) asks about all of them now"
    )


def sandbox_clock(settings: Settings) -> Callable[[], datetime] | None:
    """The running local server's sandbox clock: local mode has one calendar.

    A person may move the sandbox's simulated time (``clock_offset_seconds``); the local server's wallet
    follows it, so a command acting on the same store must too. Asked (briefly) only of the sandbox of a
    server found in the data folder. None: real time.
    """
    if settings.ecpay_env != "sandbox" or not settings.ecpay_base_url:
        return None
    from ..local.sandbox.client import SandboxClient  # noqa: PLC0415

    try:
        sandbox = SandboxClient(settings.ecpay_base_url, timeout=2.0)
        offset = float(sandbox.settings().get("clock_offset_seconds") or 0)
    except Exception:
        return None
    if not offset:
        return None
    return lambda: datetime.now(UTC) + timedelta(seconds=offset)
