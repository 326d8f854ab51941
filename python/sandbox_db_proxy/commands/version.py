"""`sandbox-db-proxy version`: package and native-core versions."""

from __future__ import annotations

import argparse
import sys

HELP = "print the version of the package and its native core"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON object")


def run(args: argparse.Namespace) -> int:
    from sandbox_db_proxy import __version__
    from sandbox_db_proxy import _native

    if args.json:
        import orjson

        sys.stdout.write(orjson.dumps({"version": __version__, "native": _native.__version__}).decode() + "\n")
    else:
        print(f"sandbox-db-proxy {__version__} (native core {_native.__version__})")
    return 0
