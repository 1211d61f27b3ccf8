"""``ecpay-lambda serve``: the template-routed API, the ECPay sandbox and the dashboard on one port."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..local.running import run_until_stopped, setup_logging


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``serve``."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", default=None, help="port (default $PORT or 3000; 0 picks a free one)")
    parser.add_argument("--template", default=None, help="SAM template to route by (default ./template.yaml)")
    parser.add_argument("--data-dir", default=".data", help="SQLite store and sandbox state (default .data)")
    parser.add_argument("--dashboard-dir", default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--retry-delays",
        default="1,2,4,8",
        help="seconds between ECPay callback re-deliveries (default 1,2,4,8; ECPay waits minutes)",
    )
    parser.add_argument("--quiet", action="store_true", help="no request log")


def run(args: argparse.Namespace) -> int:
    """Start the stack and serve until Ctrl+C or SIGTERM."""
    from ..local.stack import (  # noqa: PLC0415 - the CLI imports every command to build its parser
        DEFAULT_PORT,
        StackError,
        TemplateError,
        build_stack,
        find_template,
        parse_delays,
        port_from,
        redact_url,
    )

    setup_logging(args.quiet)
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
    except OSError as exc:
        print(f"ecpay-lambda serve: cannot listen on {args.host}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    assert stack.gateway is not None
    for problem in stack.gateway.preload():
        print(f"warning: handler not importable yet: {problem}", file=sys.stderr)
    url = stack.base_url
    merchant = stack.sandbox.merchants
    print(f"ecpay-lambda local stack — ECPay sandbox mode, merchant {', '.join(merchant)}")
    print(f"  Dashboard      {url}/")
    print(f"  API            {url}/users   (OpenAPI: {url}/openapi.json, docs: {url}/docs)")
    print(f"  ECPay sandbox  {url}/sandbox/   (control API: {url}/sandbox/api/trades)")
    print(f"  Store          {redact_url(stack.environment['STORE_URL'])}")
    print(f"Listening on {url}  (Ctrl+C to stop)", flush=True)
    run_until_stopped(stack)
    return 0
