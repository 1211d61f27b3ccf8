"""``ecpay-lambda`` console script: dispatches to one module per command, imported only when used."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from . import __version__

# command name -> (module under ecpay_lambda.commands, one-line help). Each module defines
# ``add_arguments(parser: argparse.ArgumentParser) -> None`` and ``run(args: argparse.Namespace) -> int``.
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": (
        "serve",
        "run everything on this computer: the API, a pretend ECPay to pay on, and the dashboard",
    ),
    "sandbox": ("sandbox", "run only the pretend ECPay (the offline sandbox), for your own shop's tests"),
    "checkmac": ("checkmac", "work out or check an ECPay CheckMacValue, step by step with --explain"),
    "audit": ("audit", "check that every user's balance matches its ledger (exit 1 when one does not)"),
    "reconcile": ("reconcile", "ask ECPay about deposits still waiting for payment and record the answers"),
    "invoices": (
        "invoices",
        "issue the e-invoices of paid deposits now, and void or allow them after refunds",
    ),
    "token": ("token", "print a JWT for serve with AUTH_MODE=jwt: --user USER_ID or --operator (1 h)"),
}

DESCRIPTION = "A points wallet paid through ECPay (綠界): run it on this computer, check and repair its data."
EPILOG = """\
Start here:
  ecpay-lambda serve            then open http://127.0.0.1:3000/ (create a user, deposit, pay)
  ecpay-lambda COMMAND --help   what a command does and its options

Settings are environment variables (STORE_URL, ECPAY_ENV, API_TOKEN, FRONTEND_URL, ...): see README.md.
Exit status: 0 done, 1 a problem was found (audit, reconcile, checkmac --verify), 2 could not start.
"""


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per command."""
    parser = argparse.ArgumentParser(
        prog="ecpay-lambda",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")
    for name, (module_name, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        module = importlib.import_module(f"ecpay_lambda.commands.{module_name}")
        module.add_arguments(sub_parser)
        sub_parser.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    return int(args._module.run(args))


if __name__ == "__main__":
    sys.exit(main())
