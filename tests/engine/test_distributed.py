"""Two CPU processes with the gloo backend train a few steps under DistributedDataParallel."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.engine.test_trainer import CrossEntropy, config, fresh_model, loader
from vireid_lib.engine import load_checkpoint, train


def _replica(rank: int, world: int, init_file: str, out_dir: str, report: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        model = fresh_model()  # the same initial weights on every rank
        initial = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
        data = loader()
        assert data.sampler.num_replicas == world  # the sampler read the process group
        train(model, CrossEntropy(), data, config(Path(out_dir), epochs=2))
        weights = torch.cat([p.detach().flatten() for p in model.parameters()])
        gathered = [torch.zeros_like(weights) for _ in range(world)]
        dist.all_gather(gathered, weights)
        if rank == 0:
            torch.save({"identical": all(torch.equal(gathered[0], g) for g in gathered),
                        "trained": not torch.equal(initial, weights),
                        "batches": len(data)}, report)
    finally:
        dist.destroy_process_group()


def test_replicas_stay_identical_under_ddp(tmp_path: Path) -> None:
    report = tmp_path / "report.pt"
    mp.spawn(_replica, args=(2, str(tmp_path / "init"), str(tmp_path / "run"), str(report)), nprocs=2, join=True)
    outcome = torch.load(report, weights_only=True)
    assert outcome["identical"] and outcome["trained"]
    # each replica saw half of the batches a single process would
    single = loader()
    assert outcome["batches"] == -(-len(single) // 2)
    assert load_checkpoint(tmp_path / "run/last.pt")["epoch"] == 1
