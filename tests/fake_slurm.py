#!/usr/bin/env python3
"""A stand-in for Slurm's commands on one machine, for tests: ``sbatch``, ``sacct``, ``scancel``, ``scontrol`` and
``srun``, chosen by the name it is called under (:func:`install` links each name in a folder to put on ``PATH``).

What it keeps of Slurm is what a submitter sees: ``sbatch SCRIPT`` prints ``Submitted batch job N`` and runs the
script in the background (its ``#SBATCH --output`` / ``--error`` files, ``SLURM_*`` variables of a one-task job),
``sacct -j N -o JobID,State,NodeList --parsable2`` reports PENDING / RUNNING / COMPLETED / FAILED / CANCELLED,
``scontrol requeue N`` runs the job again under the same id once its current run ends (as submitit asks on a
time-out or preemption signal), ``scancel N`` ends it (``--signal SIG`` only signals its task, as Slurm's does),
``srun`` runs its command with the ``--output`` / ``--error`` files. Jobs live in ``$FAKE_SLURM_DIR/<id>.json``;
each job's ``#SBATCH`` flags are kept there so tests can check the resources a submitter asked for.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = ("sbatch", "sacct", "scancel", "scontrol", "srun")


def install(folder: Path, state: Path) -> dict[str, str]:
    """Link every command name in ``folder``; returns the environment (PATH first, FAKE_SLURM_DIR) to run under."""
    folder.mkdir(parents=True, exist_ok=True)
    state.mkdir(parents=True, exist_ok=True)
    for name in COMMANDS:
        link = folder / name
        if not link.exists():
            link.write_text(f"#!/bin/sh\nexec {sys.executable} {Path(__file__).resolve()} {name} \"$@\"\n")
            link.chmod(0o755)
    return {"PATH": f"{folder}{os.pathsep}{os.environ.get('PATH', '')}", "FAKE_SLURM_DIR": str(state)}


def _state() -> Path:
    return Path(os.environ["FAKE_SLURM_DIR"])


def _lock():
    handle = open(_state() / ".lock", "w")
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def read(job: str) -> dict:
    return json.loads((_state() / f"{job}.json").read_text())


def _update(job: str, **fields) -> dict:
    with _lock():
        entry = {**read(job), **fields}
        tmp = _state() / f".{job}.tmp"
        tmp.write_text(json.dumps(entry))
        os.replace(tmp, _state() / f"{job}.json")
    return entry


def _flags(script: str) -> dict[str, str]:
    flags = {}
    for line in script.splitlines():
        if line.startswith("#SBATCH --"):
            key, _, value = line[len("#SBATCH --"):].partition("=")
            flags[key] = value
    return flags


def sbatch(args: list[str]) -> int:
    script = Path(args[-1]).read_text()
    with _lock():
        counter = _state() / ".counter"
        job = str(int(counter.read_text()) + 1 if counter.exists() else 1000)
        counter.write_text(job)
        (_state() / f"{job}.json").write_text(json.dumps(
            {"id": job, "state": "PENDING", "script": args[-1], "flags": _flags(script), "runs": 0,
             "requeue": False, "cancelled": False, "pid": None}))
    subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "_job", job], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"Submitted batch job {job}")
    return 0


def _job(job: str) -> int:
    """The job's lifetime: run its script, again under the same id while a requeue was asked for."""
    while True:
        entry = read(job)
        out = entry["flags"].get("output", "/dev/null").replace("%j", job)
        err = entry["flags"].get("error", out).replace("%j", job)
        env = {**os.environ, "SLURM_JOB_ID": job, "SLURM_NTASKS": "1", "SLURM_JOB_NUM_NODES": "1", "SLURM_NODEID": "0",
               "SLURM_JOB_NODELIST": "localhost", "SLURM_PROCID": "0", "SLURM_LOCALID": "0",
               "SLURM_RESTART_COUNT": str(entry["runs"])}
        with open(out, "a") as stdout, open(err, "a") as stderr:
            child = subprocess.Popen(["bash", entry["script"]], env=env, stdout=stdout, stderr=stderr,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
            _update(job, state="RUNNING", pid=child.pid, runs=entry["runs"] + 1, requeue=False)
            code = child.wait()
        entry = read(job)
        if entry["requeue"] and not entry["cancelled"]:
            _update(job, state="PENDING", pid=None)
            continue
        state = "CANCELLED" if entry["cancelled"] else "COMPLETED" if code == 0 else "FAILED"
        _update(job, state=state, pid=None, exit_code=code)
        return 0


def sacct(args: list[str]) -> int:
    jobs = [args[i + 1] for i, a in enumerate(args) if a == "-j"]
    print("JobID|State|NodeList")
    for job in jobs:
        path = _state() / f"{job}.json"
        if path.is_file():
            print(f"{job}|{read(job)['state']}|localhost")
    return 0


def scancel(args: list[str]) -> int:
    name = next((a.split("=", 1)[1] for a in args if a.startswith("--signal=")), None)
    if "--signal" in args:
        name = args[args.index("--signal") + 1]
    jobs = [a for a in args if a.isdigit()]
    for job in jobs:
        entry = read(job)
        if entry["pid"] is None:
            continue
        if name:  # Slurm's --signal reaches the job's tasks: here the one srun task, the script's child
            for pid in _children(entry["pid"]):
                os.kill(pid, getattr(signal, name if name.startswith("SIG") else f"SIG{name}"))
        else:
            _update(job, cancelled=True)
            _kill_tree(entry["pid"], signal.SIGTERM)
    return 0


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _kill_tree(pid: int, sig: int) -> None:
    """``sig`` to ``pid`` and every descendant (Slurm ends a job's whole cgroup; Jupyter kernels leave the process
    group)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += _children(current)
    for target in found:
        try:
            os.kill(target, sig)
        except ProcessLookupError:
            pass


def scontrol(args: list[str]) -> int:
    if args[:1] == ["requeue"]:
        job = args[1]
        entry = _update(job, requeue=True)
        if entry["pid"] is not None:  # Slurm ends the running job and queues it again
            time.sleep(0.2)
            _kill_tree(entry["pid"], signal.SIGKILL)
        return 0
    print(f"fake scontrol: {args} not supported", file=sys.stderr)
    return 1


def srun(args: list[str]) -> int:
    files = {}
    while args and args[0].startswith("--"):
        flag = args.pop(0)
        if flag in ("--output", "--error"):
            files[flag] = args.pop(0).replace("%j", os.environ.get("SLURM_JOB_ID", "0")).replace("%t", "0")
    for flag, fd in (("--output", 1), ("--error", 2)):
        if flag in files:
            target = os.open(files[flag], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            os.dup2(target, fd)
    os.execvp(args[0], args)
    return 1


if __name__ == "__main__":
    command, rest = sys.argv[1], sys.argv[2:]
    sys.exit({"sbatch": sbatch, "sacct": sacct, "scancel": scancel, "scontrol": scontrol, "srun": srun,
              "_job": _job}[command](rest) if command != "_job" else _job(rest[0]))
