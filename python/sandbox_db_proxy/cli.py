"""`sandbox-db-proxy` command line. Each subcommand lives in its own module under
`commands/` exposing `HELP`, `add_arguments(parser)` and `run(args) -> int`; this file only
dispatches, so that importing the CLI stays cheap (modules load on use)."""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand name -> module under sandbox_db_proxy.commands
SUBCOMMANDS = {
    "serve": "serve",
    "check-config": "check_config",
    "healthcheck": "healthcheck",
    "demo": "demo",
    "classify": "classify",
    "version": "version",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sandbox-db-proxy",
                                     description="Read-only database proxy for AI agents.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in SUBCOMMANDS.items():
        try:
            module = importlib.import_module(f"sandbox_db_proxy.commands.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"sandbox_db_proxy.commands.{module_name}":
                raise
            continue  # subcommand not built yet
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
