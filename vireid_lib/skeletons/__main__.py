"""Precompute COCO-17 skeletons for every frame of a dataset.

    python -m vireid_lib.skeletons extract vcm ROOT [OUT.h5] [--model FILE_OR_URL]
        [--estimator rtmpose|package.module:ClassName] [--device cpu|cuda] [--batch-size 32]
        [--min-score 0.3] [--read-threads 4] [--no-progress] [--overwrite]

Run ``python -m vireid_lib.skeletons extract --help`` for the real-data steps.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..data.errors import DatasetError
from ..data.skeletons import FILE_NAME
from .estimators import INSTALL_HINT, RTMPOSE_M_URL, EstimatorError, load_estimator
from .extract import FRAME_LISTS, ExtractConfig, extract, format_summary

EXTRACT_HELP = f"""\
Run a 2-D pose estimator on every frame of a dataset and write COCO-17 keypoints (x, y, score,
in pixels of the stored image) to the HDF5 skeleton store that skeleton-guided models (STAR) read.

ROOT is the HITSZ-VCM folder the workbook's reader takes (vireid_lib.data.HITSZVCM): the one
holding the identity folders (or Train/ and Test/) and the info files (at the root or in info/).
Every frame listed in train_name.txt and test_name.txt is processed, including the frames of
tracklets shorter than 12 frames, which the reader's splits drop.

OUT defaults to ROOT/{FILE_NAME}, where the workbook looks by default; if ROOT is
read-only, pass another path and point the workbook's skeleton store at it.

The model: RTMPose-m, COCO-17 keypoints, 256x192 input, the ONNX export that rtmlib runs
(install with: {INSTALL_HINT}). Either download it once (with internet) from
    {RTMPOSE_M_URL}
unzip it and pass --model path/to/end2end.onnx, or pass that URL as --model (the default),
which rtmlib downloads on first use (needs internet) and keeps as
~/.cache/rtmlib/hub/checkpoints/<zip name>.onnx; that file, passed as --model later, continues
the same store. Each frame is one person crop, so the whole image is the person box; no
detector runs.

GPU: onnxruntime's CUDA execution provider is used when it is there (pip install
onnxruntime-gpu in place of onnxruntime); otherwise the CPU. --device forces one.

Resumption: keypoints are appended to OUT and flushed after every batch, so a run that is
stopped (Ctrl-C, a killed job) loses at most the batch in flight. Rerun the same command to
continue: frames already in OUT are skipped, never written twice. OUT remembers its dataset,
its estimator and a fingerprint of the frames it is extracted from (names, sizes and the
content of 16 frames; moving or copying the dataset keeps it); continuing it with another
--estimator or --model, or on another copy of the dataset (other images under the same
names), is refused. --overwrite deletes OUT and starts it again.

Other estimators: --estimator package.module:ClassName imports that class and builds it with
the keyword arguments model=MODEL and device=DEVICE for the options given (none: no arguments).
It must have string attributes `name` and `device` and map a list of HxWx3 uint8 RGB images to
[N, 17, 3] float32 keypoints (vireid_lib.skeletons.PoseEstimator).

At the end a summary is printed: frames written now and in OUT, mean score per modality (ir,
rgb), frames with no joint scoring --min-score or more, seconds and frames/s.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vireid_lib.skeletons", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    sub = commands.add_parser("extract", help="run a pose estimator over every frame and write the skeleton store",
                              description=EXTRACT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub.add_argument("dataset", choices=sorted(FRAME_LISTS), help="the dataset layout of ROOT")
    sub.add_argument("root", type=Path, metavar="ROOT", help="the dataset folder the workbook's reader takes")
    sub.add_argument("out", type=Path, nargs="?", metavar="OUT.h5", help=f"the skeleton store (default: ROOT/{FILE_NAME})")
    sub.add_argument("--estimator", default="rtmpose", help="'rtmpose' (default) or 'package.module:ClassName'")
    sub.add_argument("--model", help="rtmpose: a local .onnx file or its URL (default: the RTMPose-m COCO 256x192 URL)")
    sub.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when onnxruntime has it, else cpu")
    sub.add_argument("--batch-size", type=int, default=ExtractConfig.batch_size, help="frames per estimator call (default 32)")
    sub.add_argument("--min-score", type=float, default=ExtractConfig.min_score,
                     help="summary: a frame with no joint scoring this much has no confident joint (default 0.3)")
    sub.add_argument("--read-threads", type=int, default=ExtractConfig.read_threads,
                     help="threads decoding the next batch while the estimator runs (default 4; 0: none)")
    sub.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    sub.add_argument("--overwrite", action="store_true",
                     help="delete OUT first and extract every frame again (e.g. OUT belongs to another copy of the data)")
    args = parser.parse_args(argv)
    out = args.out if args.out is not None else args.root / FILE_NAME
    try:
        config = ExtractConfig(batch_size=args.batch_size, min_score=args.min_score,
                               read_threads=args.read_threads, show_progress=not args.no_progress)
        estimator = load_estimator(args.estimator, args.model, args.device)
        summary = extract(args.dataset, args.root, out, estimator, config, overwrite=args.overwrite)
    except (DatasetError, EstimatorError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: every finished batch is in {out}; rerun the same command to continue.", file=sys.stderr)
        return 130
    print(format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
