"""``ecpay-lambda sandbox``: the offline ECPay sandbox alone (checkout, queries, refunds, control API)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..local.running import run_until_stopped, setup_logging


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``sandbox``."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", default=None, help="port (default $PORT or 3001; 0 picks a free one)")
    parser.add_argument("--data-dir", default=None, help="keep trades in DIR/sandbox.json (default: memory)")
    parser.add_argument("--retry-delays", default="1,2,4,8", help="seconds between callback re-deliveries")
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host (anyone could mark trades paid)",
    )
    parser.add_argument("--quiet", action="store_true", help="no request log")


def run(args: argparse.Namespace) -> int:
    """Serve the sandbox until Ctrl+C or SIGTERM."""
    from ..local.stack import (  # noqa: PLC0415 - the CLI imports every command to build its parser
        DEFAULT_SANDBOX_PORT,
        StackError,
        build_sandbox_only,
        check_bind_host,
        parse_delays,
        port_from,
    )

    setup_logging(args.quiet)
    try:
        # The sandbox has no API token: a public one lets anyone mark trades paid.
        check_bind_host(args.host, {}, allow_remote=args.allow_remote)
        port = port_from(args.port if args.port is not None else os.environ.get("PORT"), DEFAULT_SANDBOX_PORT)
        stack = build_sandbox_only(
            host=args.host,
            port=port,
            data_dir=Path(args.data_dir) if args.data_dir else None,
            retry_delays=parse_delays(args.retry_delays),
            quiet=args.quiet,
        )
    except StackError as exc:
        print(f"ecpay-lambda sandbox: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"ecpay-lambda sandbox: cannot listen on {args.host}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    assert stack.sandbox is not None
    url = stack.base_url
    merchants = ", ".join(stack.sandbox.merchants)
    print(f"ECPay sandbox (merchant {merchants}): use {url} instead of https://payment-stage.ecpay.com.tw")
    print(f"  Checkout       {url}/Cashier/AioCheckOut/V5")
    print(f"  Trades         {url}/sandbox/   (control API: {url}/sandbox/api/trades)")
    print(f"Listening on {url}  (Ctrl+C to stop)", flush=True)
    run_until_stopped(stack)
    return 0
