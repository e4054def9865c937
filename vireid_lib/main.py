"""The workbook's main job (``python3 workbook.py main``).

Until the first paper notebook lands, it generates the three synthetic datasets (once; they
are kept in the cache folder) and prints a summary of their splits, so a fresh machine shows
at once that every reader works end to end.
"""

from __future__ import annotations

import argparse
import sys
import time

from .data.synthetic import KINDS, ensure_synthetic
from .data.summary import summarise

NAMES = {"sysu": "SYSU-MM01", "regdb": "RegDB", "vcm": "HITSZ-VCM"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 workbook.py main", description=__doc__)
    parser.parse_args(argv)
    for kind in KINDS:
        start = time.perf_counter()
        root = ensure_synthetic(kind)
        print(f"\n== synthetic {NAMES[kind]} (not real data; numbers on it are no reproduction) ==")
        print(f"root: {root}  (ready in {time.perf_counter() - start:.1f} s)")
        print(summarise(kind, root).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
