"""Train and evaluate an image paper from the command line, on one or several GPUs.

    python -m vireid_lib.experiments --method ivreid --dataset sysu --data-root /data/SYSU-MM01
    torchrun --nproc_per_node=4 -m vireid_lib.experiments --method agw --dataset sysu --data-root /data/SYSU-MM01

Under torchrun every process trains a replica on its share of each epoch's batches
(DistributedDataParallel, the samplers split by rank); rank 0 writes the checkpoints,
evaluates and writes the result record. The parameters are the notebook's.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.distributed as dist

from ..benchmarks import image_benchmarks
from ..data import DatasetError
from ..papers import papers
from ..engine import CheckpointError, ConfigError, TrainingDiverged
from ..engine.trainer import TrainingFailed, TrainingInterrupted
from ..engine.runlock import RunLocked
from ..eval.scoring import EvaluationError
from ..models import WeightsError
from ..results import RecordError
from .common import ExperimentError, check_folder
from .runner import prepare

# Errors whose message tells the user what to change; anything else is a bug and keeps its traceback.
USER_ERRORS = (ExperimentError, DatasetError, CheckpointError, ConfigError, TrainingDiverged, TrainingFailed, RunLocked,
               WeightsError, EvaluationError, RecordError)


def _optional(kind):
    return lambda text: None if text.lower() == "none" else kind(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vireid_lib.experiments", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    image_papers = sorted(m for m, p in papers().items() if not p.video)
    parser.add_argument("--method", default="ivreid", choices=image_papers)
    parser.add_argument("--dataset", default="sysu", choices=image_benchmarks())
    parser.add_argument("--data-root", default="", help="empty: the synthetic twin (not a reproduction)")
    parser.add_argument("--trial", type=int, default=1)
    for name, kind in (("epochs", int), ("lr", float), ("num-ids", int), ("num-per-modality", int), ("height", int),
                       ("width", int), ("batches-per-epoch", int), ("seed", int)):
        parser.add_argument(f"--{name}", type=_optional(kind), default=None, help="default: the paper's")
    parser.add_argument("--scale-schedule", action="store_true",
                        help="with --epochs other than the paper's, scale its warm-up and lr steps to the run's length "
                             "(default: the paper's, which a short run may never leave)")
    parser.add_argument("--no-pretrained", action="store_true", help="start from random weights")
    parser.add_argument("--weights-file", default="")
    parser.add_argument("--checkpoint", default="",
                        help="evaluate these weights instead of training: a vireid checkpoint, a state dict, or the "
                             "authors' released file (AGW's *_best.t, IV-ReID's saved model)")
    parser.add_argument("--arch", default="resnet50", choices=["resnet50", "resnet34", "resnet18"],
                        help="the papers use resnet50; the others are for quick experiments")
    parser.add_argument("--optimizer", default=None, choices=["sgd", "adam"], help="default: the paper's")
    parser.add_argument("--backbone-lr-factor", type=_optional(float), default=None, help="default: the paper's")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", default="off", choices=["off", "bf16", "fp16"])
    parser.add_argument("--channels-last", action="store_true",
                        help="train and extract image batches in the channels-last layout (faster convolutions)")
    parser.add_argument("--augment", default="auto", choices=["auto", "loader", "device"],
                        help="where training images are augmented: per image in the loader, or as whole uint8 batches "
                             "on the device (image papers; auto: the device under CUDA)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the training steps")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--eval-every", type=_optional(int), default=None,
                        help="run the selection test every k epochs; default: the paper's script's (0: none)")
    parser.add_argument("--selection", default="official", choices=["official", "last"],
                        help="report the checkpoint the official script keeps (chosen on the test set, as the paper "
                             "did; default) or the last epoch only")
    parser.add_argument("--out-dir", default="runs")
    parser.add_argument("--results-dir", default="results")
    parser.add_argument("--cross-dataset", action="store_true",
                        help="evaluate a --checkpoint trained on another dataset or RegDB trial on purpose (the record "
                             "says so; otherwise it is an error)")
    parser.add_argument("--no-resume", action="store_true",
                        help="start over in --out-dir instead of continuing the run found there")
    args = parser.parse_args(argv)

    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = args.device
    if world > 1:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        use_cuda = torch.cuda.is_available() and args.device in ("auto", "cuda")
        if use_cuda:
            torch.cuda.set_device(local_rank)
            device = f"cuda:{local_rank}"
        else:
            device = "cpu"
        dist.init_process_group("nccl" if use_cuda else "gloo")
    try:
        check_folder(args.results_dir, "--results-dir")  # before training, not after it
        run = prepare(method=args.method, dataset=args.dataset, data_root=args.data_root, trial=args.trial,
                      epochs=args.epochs, lr=args.lr, num_ids=args.num_ids, num_per_modality=args.num_per_modality,
                      height=args.height, width=args.width, batches_per_epoch=args.batches_per_epoch,
                      pretrained=not args.no_pretrained, weights_file=args.weights_file, device=device, amp=args.amp,
                      channels_last=args.channels_last, augment=args.augment, compile_model=args.compile,
                      seed=args.seed, workers=args.workers, eval_every=args.eval_every, selection=args.selection,
                      out_dir=args.out_dir,
                      checkpoint=args.checkpoint, arch=args.arch, optimizer=args.optimizer,
                      backbone_lr_factor=args.backbone_lr_factor, resume=not args.no_resume,
                      cross_dataset=args.cross_dataset, scale_schedule=args.scale_schedule or None)
        if args.checkpoint:
            print(f"evaluating {run.loaded.kind} from {run.loaded.path}", *run.loaded.notes, sep="\n  ")
        else:
            run.train()
        if not dist.is_initialized() or dist.get_rank() == 0:
            reported = run.evaluate()
            columns = ["protocol", "direction", "R1", "mAP", "mINP", "checkpoint", "epoch"]
            print("last epoch:\n" + run.last_evaluation.summary[columns].round(2).to_string(index=False))
            print(f"reported: {run.describe_selection()}\n" + reported.summary[columns].round(2).to_string(index=False))
            print("record:", run.record(args.results_dir))
    except USER_ERRORS as err:  # what a user can fix: say it plainly, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:  # Ctrl-C: where things are and how to go on, in one line
        print(f"stopped: {err}" if isinstance(err, TrainingInterrupted) else
              "stopped by Ctrl-C before training (nothing was trained); run the same command to start again.",
              file=sys.stderr)
        return 130
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
