"""``python -m vireid_lib.results readme [--readme README.md] [--results results]``: regenerate the tables.

Relative paths are taken in the workbook root (:mod:`vireid_lib.paths`), where the notebooks
write their records, so the command works from any folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..paths import resolve
from .readme import reproductions, update_readme
from .records import RecordError, load_records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vireid_lib.results", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    readme = commands.add_parser("readme", help="regenerate the README's results tables from results/")
    readme.add_argument("--readme", type=Path, default=Path("README.md"))
    readme.add_argument("--results", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    try:
        changed = update_readme(resolve(args.readme), resolve(args.results))
        _, refused = reproductions(load_records(resolve(args.results)))
    except RecordError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for reason in refused:
        print(f"warning: {reason}", file=sys.stderr)
    print(f"{args.readme}: {'tables regenerated' if changed else 'already up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
