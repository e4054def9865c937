"""Kill a run after an epoch, resume it: it ends bit for bit where the uninterrupted run ends, whatever the loader workers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vireid_lib.engine import train
from vireid_lib.experiments import prepare


class Killed(RuntimeError):
    pass


def _run(root: Path, out: Path, workers: int):
    return prepare(method="agw", dataset="sysu", data_root=str(root), pretrained=False, arch="resnet18", height=64,
                   width=32, optimizer="adam", lr=1e-3, epochs=3, batches_per_epoch=2, num_ids=2, workers=workers,
                   device="cpu", eval_trials=1, progress=False, seed=5, out_dir=str(out))


@pytest.mark.parametrize("workers", [0, 2])
def test_kill_after_an_epoch_and_resume_is_exact(synthetic_sysu: Path, tmp_path: Path, workers: int) -> None:
    whole = _run(synthetic_sysu, tmp_path / "whole", workers)
    whole.train()

    interrupted = _run(synthetic_sysu, tmp_path / "cut", workers)

    def kill(epoch: int, step: int) -> None:
        if epoch == 1 and step == 1:  # mid-way through the second epoch: its checkpoint is never written
            raise Killed

    with pytest.raises(Killed):
        train(interrupted.model, interrupted.criterion, interrupted.loader, interrupted.train_config, on_step=kill)
    resumed = _run(synthetic_sysu, tmp_path / "cut", workers)  # a new process would build the run afresh
    result = resumed.train()
    assert result.resumed_from == 1

    mine, theirs = resumed.model.state_dict(), whole.model.state_dict()
    differing = [k for k in mine if not torch.equal(mine[k], theirs[k])]
    assert differing == [], f"{len(differing)} of {len(mine)} tensors differ, e.g. {differing[:3]}"
    assert [r["loss"] for r in result.history] == [r["loss"] for r in whole.train_result.history]
    after, before = resumed._protocols().summary, whole._protocols().summary
    assert after[["R1", "mAP", "mINP"]].equals(before[["R1", "mAP", "mINP"]])
