"""``python -m vireid_lib.data.synthetic {sysu,regdb,vcm,all} OUT [--ids N] [--seed S] ...``"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .writers import DEFAULT_CONFIGS, WRITERS, SyntheticConfig, write_vcm


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vireid_lib.data.synthetic", description=__doc__)
    parser.add_argument("kind", choices=[*WRITERS, "all"], help="which dataset layout to write")
    parser.add_argument("out", type=Path, help="output folder (for 'all': one subfolder per dataset)")
    parser.add_argument("--ids", type=int, help="number of identities (default: 40 for sysu/regdb, 24 for vcm)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", default="64x128", help="image size WIDTHxHEIGHT (default 64x128)")
    parser.add_argument("--vcm-tree", choices=["merged", "split"], default="merged",
                        help="VCM images in one tree (MITML) or under Train/ and Test/")
    parser.add_argument("--vcm-info", choices=["info", "root"], default="info", help="VCM info files in info/ or at the root")
    args = parser.parse_args(argv)
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size {args.size!r} must look like 64x128")
    if width < 16 or height < 16:
        parser.error(f"--size {args.size!r}: width and height must be at least 16 pixels")
    if args.ids is not None and args.ids < 1:
        parser.error(f"--ids {args.ids} must be a positive number of identities (leave it out for the default)")
    kinds = list(WRITERS) if args.kind == "all" else [args.kind]
    for kind in kinds:
        out = args.out / kind if args.kind == "all" else args.out
        if out.exists() and any(out.iterdir()):
            parser.error(f"{out} is not empty; choose a new folder so no existing data is overwritten")
        config = SyntheticConfig(ids=DEFAULT_CONFIGS[kind].ids if args.ids is None else args.ids, seed=args.seed, width=width, height=height)
        start = time.perf_counter()
        try:
            if kind == "vcm":
                summary = write_vcm(out, config, tree=args.vcm_tree, info=args.vcm_info)
            else:
                summary = WRITERS[kind](out, config)
        except ValueError as err:  # e.g. too few identities for the layout
            parser.error(str(err))
        summary["seconds"] = round(time.perf_counter() - start, 2)
        print(f"{kind}: wrote {out}  {json.dumps(summary)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
