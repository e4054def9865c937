"""One process of a ``torchrun`` job in tests/engine/test_distributed.py: the engine trains the tiny model of
tests/engine/test_trainer.py under DistributedDataParallel (gloo, CPU), as ``python -m vireid_lib.experiments`` does
under torchrun, and rank 0 saves the final weights.

    python -m tests.engine.ddp_worker OUT_DIR EPOCHS [--kill-rank R --kill-epoch E]

``--kill-rank R --kill-epoch E``: rank R kills itself (SIGKILL, no clean-up: a lost node or an out-of-memory kill)
at the start of 0-based epoch E, once (it leaves ``OUT_DIR/killed``): the job fails, and the same command again
resumes every rank from the last checkpoint.
"""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path

import torch
import torch.distributed as dist

from tests.engine.test_trainer import CrossEntropy, config, fresh_model, loader
from vireid_lib.engine import train


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("epochs", type=int)
    parser.add_argument("--kill-rank", type=int, default=-1)
    parser.add_argument("--kill-epoch", type=int, default=-1)
    args = parser.parse_args()
    dist.init_process_group("gloo")
    rank, marker = dist.get_rank(), args.out_dir / "killed"

    def on_epoch_start(epoch: int) -> None:
        if rank == args.kill_rank and epoch == args.kill_epoch and not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)

    try:
        model = fresh_model()
        result = train(model, CrossEntropy(), loader(), config(args.out_dir, epochs=args.epochs),
                       on_epoch_start=on_epoch_start)
        if rank == 0:
            torch.save({"weights": model.state_dict(), "resumed_from": result.resumed_from,
                        "world": dist.get_world_size()}, args.out_dir / "final.pt")
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
