"""``ecpay-lambda`` console script: dispatches to one module per command, imported only when used."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# command name -> (module under ecpay_lambda.commands, one-line help). Each module defines
# ``add_arguments(parser: argparse.ArgumentParser) -> None`` and ``run(args: argparse.Namespace) -> int``.
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("serve", "run the local stack: API (routed by template.yaml), ECPay sandbox, dashboard"),
    "sandbox": ("sandbox", "run the offline ECPay sandbox alone"),
    "checkmac": ("checkmac", "compute or verify an ECPay CheckMacValue (with --explain)"),
    "audit": ("audit", "check that every user's ledger sums to its balance and held"),
    "reconcile": ("reconcile", "ask ECPay about deposits awaiting payment and apply the answers"),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per command."""
    parser = argparse.ArgumentParser(prog="ecpay-lambda", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
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
