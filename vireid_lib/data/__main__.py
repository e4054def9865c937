"""Print a dataset's exact split as JSON, or a summary table of its splits.

    python -m vireid_lib.data splits {sysu,regdb,llcm,vcm,bupt} ROOT [--mode all|indoor] [--trial N]
        [--shot 1|10] [--direction ir2rgb|rgb2ir|v2t|t2v] [--seq-len S]
    python -m vireid_lib.data summary {sysu,regdb,llcm,vcm,bupt} ROOT [--check-images]

``--check-images`` decodes every image the dataset's splits use (with a progress bar) and
lists the corrupt or missing ones, exiting 2 when there are any; without it only the layout
and the metadata are read (a corrupt image is then reported when a run first reads it).

The JSON is ``{"query": [...], "gallery": [...]}``, each item ``{"paths": [...], "pid": int,
"camid": int}`` with paths relative to ROOT in protocol order (the sampled test frames for a
tracklet), so it can be diffed against any other implementation of the protocols.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import READERS, open_dataset
from .errors import DatasetError
from .splits import split_to_json
from .summary import check_images, summarise


def _split(args: argparse.Namespace) -> dict:
    dataset = open_dataset(args.dataset, args.root)
    split = dataset.cli_split(args.trial, args.direction, args.mode, args.shot)
    sampler = getattr(dataset, "test_frame_sampler", None)  # tracklets: the test frames the official code samples
    return split_to_json(split, dataset.root, sampler(args.seq_len) if sampler else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vireid_lib.data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    splits = commands.add_parser("splits", help="print the exact query / gallery split as JSON")
    summary = commands.add_parser("summary", help="print a table of the dataset's splits")
    for sub in (splits, summary):
        sub.add_argument("dataset", choices=sorted(READERS))
        sub.add_argument("root", type=Path)
        sub.add_argument("--trial", type=int, help="sysu, llcm: 0..9 (default 0); regdb: 1..10 (default 1)")
    for sub in (splits, summary):
        sub.add_argument("--check-images", action="store_true",
                         help="decode every image the splits use and report the corrupt or missing ones")
    splits.add_argument("--mode", choices=["all", "indoor"], default="all", help="sysu search mode")
    splits.add_argument("--shot", type=int, choices=[1, 10], default=1, help="sysu gallery images per identity and camera")
    splits.add_argument("--direction", choices=list(dict.fromkeys(d for r in READERS.values() for d in r.DIRECTIONS)),
                        help="vcm, llcm: ir2rgb (default) or rgb2ir; regdb: v2t (default) or t2v")
    splits.add_argument("--seq-len", type=int, default=None,
                        help="vcm, bupt: test frames sampled per tracklet (default 6 for vcm, 10 for bupt)")
    args = parser.parse_args(argv)
    valid = READERS[args.dataset].DIRECTIONS
    if getattr(args, "direction", None) and args.direction not in valid:
        parser.error(f"--direction {args.direction} does not apply to {args.dataset}; "
                     + (f"use one of {valid}" if valid else "sysu queries are infrared and its gallery visible"))
    try:
        if args.check_images:
            broken = check_images(args.dataset, args.root, args.trial)
            for path, reason in broken:
                print(f"corrupt: {path}: {reason}", file=sys.stderr)
            if broken:
                print(f"error: {len(broken)} image(s) of {args.root} cannot be decoded (listed above); extract them "
                      "again from the dataset archive.", file=sys.stderr)
                return 2
        if args.command == "splits":
            json.dump(_split(args), sys.stdout)
            sys.stdout.write("\n")
        else:
            print(summarise(args.dataset, args.root, args.trial).to_string(index=False))
    except DatasetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
