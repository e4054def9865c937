"""Two CPU processes with the gloo backend train a few steps under DistributedDataParallel; two torchrun "nodes" on
one machine rendezvous, lose a rank, restart and resume exactly."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests import helpers
from tests.engine.test_trainer import CrossEntropy, config, fresh_model, loader
from vireid_lib.engine import load_checkpoint, train

ROOT = Path(__file__).resolve().parents[2]


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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _reference(rank: int, world: int, init_file: str, out_dir: str, epochs: int) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        model = fresh_model()
        train(model, CrossEntropy(), loader(), config(Path(out_dir), epochs=epochs))
        if rank == 0:
            torch.save({"weights": model.state_dict()}, Path(out_dir) / "final.pt")
    finally:
        dist.destroy_process_group()


def test_two_nodes_rendezvous_a_killed_rank_fails_the_job_and_the_same_command_resumes_it_exactly(tmp_path: Path) -> None:
    """The README's multi-node command on one machine: two torchrun agents (--nnodes 2, --nproc-per-node 1, c10d
    rendezvous at one endpoint). Rank 1 is killed (SIGKILL) at the start of epoch 3: the job fails on both nodes; the
    same two commands again resume every rank from the epoch-2 checkpoint, and the weights end bit for bit where an
    uninterrupted two-process run's do."""
    epochs, out = 4, tmp_path / "nodes"

    def agents(port: int) -> list[str]:
        outputs, codes = [], []
        commands = [[sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
                     "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "vireid-test",
                     "--rdzv-conf", f"is_host={host}", "--max-restarts", "0", "-m", "tests.engine.ddp_worker", str(out),
                     str(epochs), "--kill-rank", "1", "--kill-epoch", "2"] for host in ("true", "false")]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               "OMP_NUM_THREADS": "1"}
        with helpers.process_tree(commands[0], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as a, \
                helpers.process_tree(commands[1], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT) as b:
            for agent in (a, b):
                outputs.append(agent.communicate(timeout=180)[0].decode(errors="replace")[-3000:])
                codes.append(agent.returncode)
        return codes, outputs

    codes, outputs = agents(_free_port())
    assert all(code != 0 for code in codes) and (out / "killed").exists(), outputs  # the lost rank failed the job
    assert load_checkpoint(out / "last.pt")["epoch"] == 1  # epochs 0 and 1 are on disk
    codes, outputs = agents(_free_port())
    assert codes == [0, 0], "\n".join(outputs)
    final = torch.load(out / "final.pt", weights_only=True)
    assert final["world"] == 2 and final["resumed_from"] == 2
    reference = tmp_path / "reference"
    mp.spawn(_reference, args=(2, str(tmp_path / "init"), str(reference), epochs), nprocs=2, join=True)
    expected = torch.load(reference / "final.pt", weights_only=True)["weights"]
    assert all(torch.equal(final["weights"][k], expected[k]) for k in expected)
