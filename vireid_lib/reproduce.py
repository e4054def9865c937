"""Reproduce every paper with one command: ``python -m vireid_lib.reproduce --sysu ROOT --regdb ROOT --vcm ROOT``.

The plan comes from the papers' declarations (:mod:`vireid_lib.papers`): every paper with a
notebook, on every dataset it reports that was given a root, at the paper's settings; RegDB's
ten trials are ten models. Each planned run executes the paper's notebook through papermill
(so a reproduction is exactly what a reader runs by hand), which writes its executed notebook,
its result records and its checkpoints; the README's tables are regenerated at the end.

* **Resumable.** A run whose ledger entry (``<out>/ledger/<run>.json``) names the current
  commit (with a clean work tree), the same parameters and records that still exist is skipped;
  an interrupted run resumes from its checkpoint, as the notebooks do. Ctrl-C stops the runs in
  flight, names each with its log (``<out>/logs/<run>.txt``, written while it runs and removed once it
  succeeds) and prints the command that carries on (exit 130).
* **Several GPUs.** ``--gpus 0,1,2,3`` runs independent runs side by side, one per GPU
  (``CUDA_VISIBLE_DEVICES``); one run across GPUs stays ``torchrun``. ``--jobs N`` runs N side by side without
  GPU assignment (the smoke plan on a CPU: a notebook keeps about one core busy).
* **Dry run.** ``--dry-run`` prints the plan with an estimate of each run's training images
  (from the published training-set sizes and the paper's epochs, batch and views) and of its
  GPU-hours at ``--rate`` images/s, an assumption to replace with a measured figure
  (``benchmarks/train_bench.py``).
* **Smoke.** ``--smoke`` runs the same plan on the synthetic twins with tiny settings (ResNet-18,
  64 x 32, 2 epochs of 2 batches, one RegDB trial unless ``--trials`` says otherwise), changed where a
  paper's declaration says so (``Paper.smoke``, for every dataset or per dataset: MMN and MCE train long
  enough on SYSU-MM01 to beat chance); CI runs it and checks every executed notebook and record.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import nbformat

from . import papers as registry
from .benchmarks import benchmark, benchmarks
from .data.samplers import official_batches
from .text import count
from .experiments.params import SHARED, assigned_names
from .main import papermill_environment
from .paths import resolve, workbook_root
from .results.readme import update_readme
from .results.records import git_commit

DATASETS = tuple(benchmarks())
# RegDB's ten trials, each its own model (the one benchmark with training trials today); --trials picks among them.
TRIALS = tuple(sorted({t for b in benchmarks().values() for t in b.training_trials}))
INTERRUPTED = 130  # the exit status of a command stopped by Ctrl-C (128 + SIGINT), as shells report it
# After Ctrl-C, how long the notebooks in flight get to stop on their own (a terminal's Ctrl-C reaches them too, and
# papermill then shuts its kernel down) before each still running is sent one SIGINT (a `kill -INT` of this process).
GRACE_S = 10.0
# The smoke plan's settings, for every notebook that takes them; a paper's declaration adds its own (smoke_parameters).
SMOKE = {"pretrained": False, "arch": "resnet18", "epochs": 2, "height": 64, "width": 32, "batches_per_epoch": 2,
         "eval_trials": 2, "workers": 0, "num_ids": 4, "seq_len": 6}
DEFAULT_RATE = 1000.0  # training images (frames) per second assumed for the GPU-hour estimate


class ReproduceError(ValueError):
    """A bad request (an unknown paper, a missing root); the message says what to pass."""


@dataclass
class PlannedRun:
    """One notebook execution: a paper on a dataset (and a RegDB trial), with its papermill parameters."""

    method: str
    dataset: str
    trial: int | None
    notebook: str
    parameters: dict
    models: tuple[str, ...]  # the paper and what its notebook trains beside it
    training_images: int = 0  # estimated, at the paper's settings
    status: str = "planned"  # then running, done, failed, interrupted or skipped
    seconds: float = 0.0
    records: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.method}_{self.dataset}" + (f"_trial{self.trial}" if self.trial is not None else "")


def notebook_parameters(notebook: Path) -> set[str]:
    """The names the notebook's tagged parameters cell assigns."""
    cells = [c for c in nbformat.read(notebook, as_version=4).cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise ReproduceError(f"{notebook} has no cell tagged 'parameters'; papermill could not set it up.")
    return assigned_names(cells[0].source)


def smoke_parameters(paper: registry.Paper, dataset: str) -> dict:
    """The smoke plan's settings of ``paper`` on ``dataset``: :data:`SMOKE`, then the paper's ``smoke`` entries, then
    those it declares under the dataset's name (``smoke={"eval_every": 1, "regdb": {"synthetic_ids": 16}}``)."""
    shared = {k: v for k, v in paper.smoke.items() if k not in DATASETS}
    return {**SMOKE, **shared, **paper.smoke.get(dataset, {})}


def estimated_images(method: str, dataset: str) -> int:
    """Training images (frames for video) one full run of ``method`` on ``dataset`` passes forward and back:
    epochs x official batches per epoch (the paper's sampler rule, ``Recipe.epoch_rule``) x images per batch."""
    paper = registry.paper(method)
    recipe = paper.recipe_for(dataset)
    per_modality = recipe.num_ids * recipe.num_per_modality
    batches = official_batches(*benchmark(dataset).published_train, per_modality, recipe.epoch_rule)
    views = len(paper.batch_for(dataset, recipe).input_order()) - (2 if recipe.skeletons else 0)
    return recipe.epochs * batches * per_modality * views * max(recipe.seq_len, 1)


def plan(roots: dict[str, str], smoke: bool = False, only: tuple[str, ...] = (), trials: tuple[int, ...] | None = None,
         out_dir: str = "runs/reproduce", results_dir: str = "results",
         datasets: tuple[str, ...] | None = None) -> list[PlannedRun]:
    """Every paper with a notebook, on every dataset of ``datasets`` (default: every benchmark declared) it reports
    that has a root (any, with ``smoke``)."""
    datasets = tuple(benchmarks()) if datasets is None else datasets
    declared = registry.papers()
    unknown = [m for m in only if m not in declared or not declared[m].notebook]
    if unknown:
        runnable = sorted(m for m, p in declared.items() if p.notebook)
        raise ReproduceError(f"--only {', '.join(unknown)}: not a paper with a notebook; use some of {runnable}.")
    runs = []
    # every paper in the registry's order, or the --only ones in the order given
    for method, paper in ([(m, declared[m]) for m in dict.fromkeys(only)] if only else declared.items()):
        if not paper.notebook:
            continue
        notebook = workbook_root() / "notebooks" / paper.notebook
        accepted = notebook_parameters(notebook) | set(SHARED)  # its own cell's names and the shared ones
        for dataset in paper.datasets:
            if dataset not in datasets or (not smoke and not roots.get(dataset)):
                continue
            own = benchmark(dataset).training_trials
            chosen = trials or (own[:1] if smoke else own)
            for trial in (tuple(t for t in chosen if t in own) if own else (None,)):
                given = {"method": method, "dataset": dataset, "trial": trial, "data_root": "" if smoke else roots[dataset],
                         "out_dir": out_dir, "results_dir": results_dir}
                if smoke:
                    given.update(smoke_parameters(paper, dataset))
                parameters = {k: v for k, v in given.items() if k in accepted and v is not None}
                images = sum(estimated_images(m, dataset) for m in (method, *paper.trains_also))
                runs.append(PlannedRun(method, dataset, trial, paper.notebook, parameters, (method, *paper.trains_also),
                                       images))
    if not runs:
        raise ReproduceError("nothing to run: " + "; ".join(_why_not_planned(roots, smoke, only, datasets)) + ".")
    return runs


def _names(datasets: tuple[str, ...] | list[str]) -> str:
    return ", ".join(benchmark(d).name for d in datasets)


def _why_not_planned(roots: dict[str, str], smoke: bool, only: tuple[str, ...], datasets: tuple[str, ...]) -> list[str]:
    """Per selected paper, why :func:`plan` gave it no run: it reports none of ``datasets``, or none of its datasets
    was given a root."""
    reasons = []
    for method, paper in registry.papers().items():
        if not paper.notebook or (only and method not in only):
            continue
        chosen = [d for d in paper.datasets if d in datasets]
        if not chosen:
            reasons.append(f"{method} reports no {_names(datasets)} results; it runs on {_names(paper.datasets)}")
        elif not smoke:
            options = " or ".join(f"{benchmark(d).name} (--{d} ROOT)" for d in chosen)
            reasons.append(f"{method}: no dataset root given for {options}")
    return reasons or ["no paper selected"]


def check_roots(runs: list[PlannedRun], roots: dict[str, str]) -> None:
    """Every dataset root the plan reads is an existing folder: a typo stops the command before any run, instead of
    failing each run inside its notebook."""
    for dataset in dict.fromkeys(run.dataset for run in runs):
        root = Path(roots.get(dataset) or "").expanduser()
        if roots.get(dataset) and not root.is_dir():
            problem = "is a file, not a folder" if root.exists() else "does not exist"
            raise ReproduceError(f"--{dataset} {roots[dataset]}: {problem}; pass the folder that holds "
                                 f"{benchmark(dataset).name} (README, 'Pointing the workbook at a real dataset').")


def _ledger(run: PlannedRun, out_dir: Path) -> Path:
    return out_dir / "ledger" / f"{run.name}.json"


def finished(run: PlannedRun, out_dir: Path, commit: dict) -> bool:
    """Whether ``run`` already finished at this commit with these parameters (its records still there)."""
    path = _ledger(run, out_dir)
    if commit.get("dirty", True) or not commit.get("sha") or not path.is_file():
        return False
    try:
        entry = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        entry = err
    if not isinstance(entry, dict):  # cut short by a full disk or a kill mid-write, or edited
        raise ReproduceError(f"the ledger file {path} of {run.name} is not a ledger entry "
                             f"({entry if isinstance(entry, ValueError) else type(entry).__name__}); delete it to "
                             "rerun that run (it resumes from its checkpoints).")
    return (entry.get("commit") == commit["sha"] and entry.get("parameters") == run.parameters
            and bool(entry.get("records")) and all(Path(r).is_file() for r in entry["records"]))


KILLED = ("killed by the system (SIGKILL), most often for running out of memory: run fewer runs at once (--gpus), "
          "fewer loader workers, or on a machine with more memory; it resumes from its last checkpoint")


def log_path(run: PlannedRun, out_dir: Path) -> Path:
    """Where a run's notebook output goes while it runs (kept when it fails)."""
    return out_dir / "logs" / f"{run.name}.txt"


def execute(run: PlannedRun, out_dir: Path, results_dir: Path, commit: dict, gpu: str | None = None,
            children: dict[str, subprocess.Popen] | None = None, threads: int | None = None,
            extra: dict | None = None) -> PlannedRun:
    """Run the notebook through papermill (on ``gpu`` when given; with ``threads`` CPU threads when given) and write
    the ledger entry; every launcher runs a planned run through this call.

    Its output goes to its log while it runs (so an interrupted run leaves one); the log is removed once it succeeds.
    ``children`` holds the papermill process while it runs, for :func:`reproduce` to stop on Ctrl-C. ``extra``: what
    the ledger entry adds about where it ran (a Slurm job: its id and GPUs); without it the run is the local
    launcher's, and ``<out>/jobs/<run>.json`` names this process while it runs (for ``--status``).
    """
    executed = out_dir / "notebooks" / f"{run.name}.ipynb"
    executed.parent.mkdir(parents=True, exist_ok=True)
    before = set(results_dir.glob("*.json")) if results_dir.is_dir() else set()
    command = [sys.executable, "-m", "papermill", str(workbook_root() / "notebooks" / run.notebook), str(executed),
               "--cwd", str(workbook_root()), "--no-progress-bar", "--log-level", "ERROR"]
    for key, value in run.parameters.items():
        command += ["-p", key, str(value)]
    env = dict(os.environ)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)  # torch's intra-op threads: side-by-side runs share the cores
    log = log_path(run, out_dir)
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    marker = None if extra is not None else write_json(
        job_path(out_dir, run.name), {"launcher": "local", "pid": os.getpid(), "host": socket.gethostname(),
                                                "gpu": gpu, "started": _now()})
    # papermill_environment: the kernel leaves out ipykernel's unencrypted-TCP warning (see vireid_lib.main)
    try:
        with open(log, "w") as sink, papermill_environment(env) as env:
            child = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL)
            if children is not None:
                children[run.name] = child
            try:
                returncode = child.wait()
            finally:
                if children is not None:
                    children.pop(run.name, None)
    finally:
        if marker is not None:
            marker.unlink(missing_ok=True)
    run.seconds = time.perf_counter() - start
    if returncode != 0:
        run.status = "failed"
        if returncode in (-signal.SIGKILL, 128 + signal.SIGKILL):  # no traceback can say it: the kernel killed it
            with open(log, "a") as sink:
                sink.write(f"\n{KILLED}\n")
        return run
    log.unlink()
    # this run's records: new since it started, and of its models on its data (runs side by side share the folder)
    run.records = sorted(str(p) for p in set(results_dir.glob("*.json")) - before if _written_by(run, p))
    run.status = "done"
    entry = {"commit": commit.get("sha"), "parameters": run.parameters, "records": run.records,
             "notebook": str(executed), "seconds": round(run.seconds, 1), "gpu": gpu, **(extra or {})}
    write_json(_ledger(run, out_dir), entry)
    return run


def _written_by(run: PlannedRun, path: Path) -> bool:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(record, dict) and record.get("method") in run.models and record.get("dataset") == run.dataset
            and record.get("trial") in (run.trial, None))


def write_json(path: Path, entry: dict) -> Path:
    """``entry`` as ``path``, written atomically (a kill mid-write leaves the old file or none)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(entry, indent=1))
    os.replace(tmp, path)
    return path


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def describe(runs: list[PlannedRun], rate: float, resources=None) -> str:
    """The plan as a table: run, notebook, models, estimated training images and GPU-hours at ``rate``; with
    ``resources`` (:class:`vireid_lib.cluster.Resources`) what each Slurm job would ask for."""
    per_job = "  Slurm job" if resources is not None else ""
    lines = [f"{'run':<24} {'notebook':<22} {'models':<22} {'train images':>14} {'GPU-h':>7}{per_job}"]
    for run in runs:
        asked = f"  {resources.describe(run.training_images, rate)}" if resources is not None else ""
        lines.append(f"{run.name:<24} {run.notebook:<22} {'+'.join(run.models):<22} {run.training_images:>14,} "
                     f"{run.training_images / rate / 3600:>7.1f}{asked}")
    total = sum(r.training_images for r in runs)
    by_paper: dict[str, list[PlannedRun]] = {}
    for run in runs:
        by_paper.setdefault(run.method, []).append(run)
    lines.append("per paper (every dataset and RegDB trial it reports, with what its notebook trains beside it):")
    for method, own in by_paper.items():
        images = sum(r.training_images for r in own)
        lines.append(f"  {method:<22} {len(own):>3} run{'s' if len(own) != 1 else ' '} {images:>14,} images "
                     f"{images / rate / 3600:>7.1f} GPU-h")
    lines.append(f"{count(len(runs), 'run')}, {total:,} training images: about {total / rate / 3600:.1f} GPU-hours at an assumed "
                 f"{rate:g} images/s (training only; measure yours with benchmarks/train_bench.py and pass --rate)")
    for dataset in dict.fromkeys(run.dataset for run in runs):  # a training size the dataset does not publish
        declared = benchmark(dataset)
        if declared.published_train_source:
            lines.append(f"{declared.name}'s training size: {declared.published_train_source}")
    return "\n".join(lines)


def run_states(runs: list[PlannedRun], out_dir: Path, rate: float) -> list[dict]:
    """Where every planned run stands, from the ledger, the job entries and the logs, whichever launcher ran it:
    ``finished`` (its ledger entry and records; at another commit it says so), ``queued`` / ``running`` (a Slurm
    job by sacct, or a local run by its process), ``failed`` (with the last lines of its log), ``not started``."""
    commit = git_commit(workbook_root())
    slurm: dict = {}
    names = [r.name for r in runs]
    if any((e := _job_entry(out_dir, n)) and e.get("launcher") == "slurm" for n in names):
        from .cluster import job_states

        slurm = job_states(out_dir, names)
    rows = []
    for run in runs:
        row = {"run": run.name, "state": "not started", "job": "", "gpu_hours": 0.0,
               "left_gpu_hours": run.training_images / rate / 3600, "log": ""}
        ledger = _ledger(run, out_dir)
        entry = _job_entry(out_dir, run.name)
        log = log_path(run, out_dir)
        done = json.loads(ledger.read_text()) if ledger.is_file() else None
        if isinstance(done, dict) and done.get("records") and all(Path(r).is_file() for r in done["records"]):
            here = done.get("commit") == commit.get("sha") and not commit.get("dirty", True)
            row.update(state="finished" + ("" if here else " (at another commit)"), left_gpu_hours=0.0,
                       gpu_hours=done.get("seconds", 0.0) / 3600 * done.get("gpus", 1),
                       job=str(done.get("job_id") or ""))
        elif run.name in slurm:
            job, state = slurm[run.name]
            row["job"] = str(job["job_id"])
            if state == "PENDING":
                row["state"] = "queued"
            elif state in ("RUNNING", "COMPLETING", "CONFIGURING", "REQUEUED", "RESIZING", "SIGNALING", "STAGE_OUT"):
                row["state"] = "running"
            elif state == "UNKNOWN":
                row["state"] = "unknown to sacct"
            else:
                row["state"] = f"failed ({state})" if state != "COMPLETED" else "failed (its notebook wrote no ledger)"
                row["log"] = _tail(log if log.is_file() else Path(job["folder"]) / f"{job['job_id']}_0_log.err")
        elif entry is not None and entry.get("launcher") == "local":
            alive = entry.get("host") == socket.gethostname() and _alive(int(entry.get("pid", 0)))
            row.update(state="running" if alive else "interrupted", job=f"local pid {entry.get('pid')}")
            if not alive:
                row["log"] = _tail(log)
        elif log.is_file():
            row.update(state="failed", log=_tail(log))
        rows.append(row)
    return rows


def job_path(out_dir: Path, name: str) -> Path:
    """Where a run's job entry lives: its Slurm job (kept), or the local process running it (while it runs)."""
    return out_dir / "jobs" / f"{name}.json"


def _job_entry(out_dir: Path, name: str) -> dict | None:
    path = job_path(out_dir, name)
    try:
        entry = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) else None


def _alive(pid: int) -> bool:
    if pid <= 0:  # kill(0, ...) would signal this whole process group
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _tail(path: Path, lines: int = 3) -> str:
    if not path.is_file():
        return ""
    text = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return " | ".join(line.strip() for line in text[-lines:])


def describe_states(rows: list[dict], rate: float) -> str:
    """``--status`` as text: one line per run, then the GPU-hours spent and left."""
    lines = [f"{'run':<24} {'state':<34} {'job':<16} {'GPU-h':>6}"]
    for row in rows:
        lines.append(f"{row['run']:<24} {row['state']:<34} {row['job']:<16} {row['gpu_hours']:>6.1f}")
        if row["log"]:
            lines.append(f"    log: {row['log'][-300:]}")
    counts: dict[str, int] = {}
    for row in rows:
        key = row["state"].split(" (")[0]
        counts[key] = counts.get(key, 0) + 1
    spent = sum(r["gpu_hours"] for r in rows)
    left = sum(r["left_gpu_hours"] for r in rows)
    lines.append(", ".join(f"{n} {state}" for state, n in counts.items()) + f"; {spent:.1f} GPU-hours spent (finished "
                 f"runs, measured), about {left:.1f} left (unfinished runs, estimated at {rate:g} images/s)")
    return "\n".join(lines)


PLAN_START = "<!-- vireid:plan:start -->"
PLAN_END = "<!-- vireid:plan:end -->"


def render_plan(rate: float = DEFAULT_RATE) -> str:
    """The README's plan section, from the declarations: per paper (with what its notebook trains beside it) the
    runs on every dataset it reports, their training images and GPU-hours at ``rate``, and the total."""
    runs = plan({dataset: "<root>" for dataset in DATASETS})
    declared = registry.papers()
    lines = [f"| paper | runs | training images | GPU-hours at {rate:,.0f} images/s |", "|---|---|---|---|"]
    by_paper: dict[str, list[PlannedRun]] = {}
    for run in runs:
        by_paper.setdefault(run.method, []).append(run)
    for method, own in by_paper.items():
        beside = [declared[m].title for m in own[0].models[1:]]
        title = declared[method].title + (f" (+ {', '.join(beside)})" if beside else "")
        images = sum(r.training_images for r in own)
        lines.append(f"| {title} | {len(own)} | {images / 1e6:.1f} M | {images / rate / 3600:.1f} |")
    total = sum(r.training_images for r in runs)
    lines.append(f"| all | {len(runs)} | {total / 1e6:.1f} M | {total / rate / 3600:.1f} |")
    return "\n".join(lines)


def reproduce(runs: list[PlannedRun], out_dir: Path, results_dir: Path, gpus: tuple[str, ...] = (),
              report=print, jobs: int = 1) -> list[PlannedRun]:
    """Execute ``runs`` (skipping finished ones): one per GPU at a time when ``gpus`` are given, else ``jobs`` at a
    time (on the CPU, or sharing the one visible GPU), the cores split between them unless ``OMP_NUM_THREADS`` is
    set."""
    slots = list(gpus) if gpus else [None] * max(1, jobs)
    threads = (max(1, (os.cpu_count() or 1) // len(slots)) if not gpus and len(slots) > 1
               and "OMP_NUM_THREADS" not in os.environ else None)
    commit = git_commit(workbook_root())
    todo = [r for r in runs if not finished(r, out_dir, commit)]
    for run in runs:
        if run not in todo:
            run.status = "skipped (finished at this commit)"
    if any((e := _job_entry(out_dir, r.name)) and e.get("launcher") == "slurm" for r in todo):
        from .cluster import ACTIVE, job_states

        for name, (job, state) in job_states(out_dir, [r.name for r in todo]).items():
            if state in ACTIVE:  # a run queued or running on the cluster is that job's, not this launcher's
                run = next(r for r in todo if r.name == name)
                run.status = f"skipped ({state.lower()} as Slurm job {job['job_id']})"
                todo.remove(run)
    report(f"{count(len(runs), 'run')} planned, {len(runs) - len(todo)} already finished, {len(todo)} to run"
           + (f" on GPUs {', '.join(gpus)}" if gpus else f", {len(slots)} at a time" if len(slots) > 1 else ""))
    free: queue.Queue = queue.Queue()
    for gpu in slots:
        free.put(gpu)
    start, completed = time.perf_counter(), []

    children: dict[str, subprocess.Popen] = {}
    stopping = threading.Event()

    def work(run: PlannedRun) -> PlannedRun:
        gpu = free.get()
        run.status = "running"
        try:
            execute(run, out_dir, results_dir, commit, gpu, children, threads)
        except BaseException as err:
            run.status = "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"
            raise
        finally:
            free.put(gpu)
        if stopping.is_set() and run.status == "failed":
            run.status = "interrupted"  # its notebook was stopped by the Ctrl-C, not by an error of its own
        return run

    pool = ThreadPoolExecutor(len(slots))
    try:
        for run in pool.map(work, todo):
            completed.append(run)
            left = len(todo) - len(completed)
            per_run = (time.perf_counter() - start) / len(completed)
            killed = run.status == "failed" and KILLED in log_path(run, out_dir).read_text(errors="replace")[-400:]
            report(f"[{len(completed)}/{len(todo)}] {run.name}: {run.status} in {run.seconds:.0f} s"
                   + (f" (log {log_path(run, out_dir)})" if run.status == "failed" else "")
                   + (f": {KILLED}" if killed else "")
                   + f"; {left} left, about {left * per_run:.0f} s more")
    except KeyboardInterrupt:
        stopping.set()
        pool.shutdown(wait=False, cancel_futures=True)  # no queued run starts
        _stop(todo, children)
        pool.shutdown(wait=True)
        raise
    pool.shutdown(wait=True)
    try:
        (out_dir / "logs").rmdir()  # only failed runs leave a log; no run is writing one now
    except OSError:
        pass
    return runs


def _stop(runs: list[PlannedRun], children: dict[str, subprocess.Popen]) -> None:
    """Wait for the runs in flight to stop, sending each notebook still running after :data:`GRACE_S` one SIGINT."""
    deadline, signalled = time.monotonic() + GRACE_S, set()
    while any(run.status == "running" for run in runs):
        if time.monotonic() > deadline:
            for name, child in list(children.items()):
                if name not in signalled:
                    child.send_signal(signal.SIGINT)
                    signalled.add(name)
        time.sleep(0.1)


def interrupted_report(runs: list[PlannedRun], out_dir: Path, argv: list[str]) -> str:
    """What a Ctrl-C stopped: one line per interrupted run with its log, and the command that carries on."""
    lines = [f"interrupted: {run.name} (log {log_path(run, out_dir)})" for run in runs
             if run.status in ("running", "interrupted")]  # running: a second Ctrl-C cut the wait for it short
    lines.append(f"stopped by Ctrl-C; to carry on, run again: python -m vireid_lib.reproduce {shlex.join(argv)}")
    lines.append("(finished runs are skipped at the same clean commit; interrupted ones resume from their checkpoints)")
    return "\n".join(lines)


def _positive(text: str, what: str) -> float:
    """A positive finite number from the command line, or argparse's error saying it must be ``what``."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
    return value


def _rate(text: str) -> float:
    """``--rate``: training images per second."""
    return _positive(text, "a positive finite number of training images per second; measure it with "
                           f"benchmarks/train_bench.py (default {DEFAULT_RATE:g}).")


def _hours(text: str) -> float:
    """``--hours``: a job's time limit."""
    return _positive(text, "a positive number of hours (e.g. 24).")


def _jobs(text: str) -> int:
    """A positive whole number (``--jobs``, ``--gpus-per-run``, ``--cpus-per-run``, ``--mem-gb``)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number (e.g. 2).")
    return int(text)


def _trial(text: str) -> int:
    """``--trials``: a RegDB trial, 1 to 10."""
    try:
        trial = int(text)
    except ValueError:
        trial = 0
    if trial not in TRIALS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a RegDB trial; RegDB has trials {TRIALS[0]} to "
                                         f"{TRIALS[-1]}.")
    return trial


def _submit(runs: list[PlannedRun], out_dir: Path, results_dir: Path, resources, rate: float, argv: list[str]) -> int:
    """``--launcher slurm``: submit every unfinished run whose job is not queued or running; print the job ids."""
    from .cluster import ClusterError, submit

    commit = git_commit(workbook_root())
    todo = [r for r in runs if not finished(r, out_dir, commit)]
    print(f"{count(len(runs), 'run')} planned, {len(runs) - len(todo)} already finished, {len(todo)} to submit")
    try:
        submitted = submit(todo, out_dir, results_dir, resources, rate)
    except ClusterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rest = [a for a in argv if a not in ("--dry-run",)]
    print(f"submitted {count(len(submitted), 'job')}" + (f": {', '.join(submitted.values())}" if submitted else "")
          + f". Follow them with: python -m vireid_lib.reproduce {shlex.join([*rest, '--status'])}; when they are "
          "done, python -m vireid_lib.results readme regenerates the README's tables (the same command again "
          "submits what failed, and skips what is queued, running or finished).")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m vireid_lib.reproduce", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    for dataset in DATASETS:
        parser.add_argument(f"--{dataset}", metavar="ROOT", default="", help=f"the {dataset} dataset's folder")
    parser.add_argument("--only", nargs="+", default=(), metavar="METHOD", help="only these papers (method keys)")
    parser.add_argument("--datasets", nargs="+", default=DATASETS, choices=DATASETS, help="only these datasets")
    parser.add_argument("--runs", nargs="+", default=(), metavar="RUN",
                        help="only these planned runs, by the names the plan prints (e.g. agw_sysu mmn_regdb_trial3)")
    parser.add_argument("--trials", nargs="+", type=_trial, default=None,
                        help="RegDB trials, 1 to 10 (default all 10; smoke: 1)")
    parser.add_argument("--gpus", default="", help="GPU ids for side-by-side runs, e.g. 0,1,2,3")
    parser.add_argument("--jobs", type=_jobs, default=1,
                        help="without --gpus: runs side by side (CPU cores split between them; default 1)")
    parser.add_argument("--out-dir", default=None, help="executed notebooks, checkpoints, ledger (default runs/reproduce)")
    parser.add_argument("--results", default=None, help="result records (default results; smoke: <out-dir>/results)")
    parser.add_argument("--readme", default=None, help="README to regenerate (default README.md; smoke: none)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and its GPU-hour estimate, run nothing")
    parser.add_argument("--smoke", action="store_true", help="the same plan on the synthetic twins, tiny settings")
    parser.add_argument("--rate", type=_rate, default=DEFAULT_RATE, help="training images/s for the estimate (> 0)")
    parser.add_argument("--status", action="store_true",
                        help="list every planned run's state (finished, queued / running with its job, failed with "
                             "its log's last lines, not started) and the GPU-hours spent and left; runs nothing")
    cluster = parser.add_argument_group("on a Slurm cluster (--launcher slurm; needs the [cluster] extra)")
    cluster.add_argument("--launcher", default="local", choices=["local", "slurm"],
                         help="local: run here (default); slurm: submit one job per unfinished run through submitit")
    cluster.add_argument("--partition", default="", help="the Slurm partition (default: the cluster's)")
    cluster.add_argument("--gpus-per-run", type=_jobs, default=1, help="GPUs per job (default 1)")
    cluster.add_argument("--cpus-per-run", type=_jobs, default=8, help="CPU cores per job (loader workers; default 8)")
    cluster.add_argument("--mem-gb", type=_jobs, default=64, help="memory per job in GB (default 64)")
    cluster.add_argument("--hours", type=_hours, default=24.0,
                         help="the longest a job holds its allocation (default 24); a longer run is requeued at the "
                              "limit and resumes from its checkpoint")
    cluster.add_argument("--account", default="", help="the Slurm account to charge")
    cluster.add_argument("--qos", default="", help="the Slurm quality of service")
    args = parser.parse_args(argv)
    out_dir = resolve(args.out_dir or ("runs/reproduce-smoke" if args.smoke else "runs/reproduce"))
    results_dir = resolve(args.results or (str(out_dir / "results") if args.smoke else "results"))
    roots = {d: getattr(args, d) for d in DATASETS}
    if not args.smoke and not args.dry_run and not args.status and not any(roots.values()):
        parser.error(f"give at least one of {', '.join('--' + d for d in DATASETS)} (the datasets' folders), or --smoke / "
                     "--dry-run.")
    try:
        if (args.dry_run or args.status) and not any(roots.values()) and not args.smoke:
            roots = {d: f"<{d} root>" for d in DATASETS}  # the real plan, with placeholders for the roots
        trials = tuple(args.trials) if args.trials else None
        runs = plan(roots, args.smoke, tuple(args.only), trials, str(out_dir / "runs"), str(results_dir),
                    tuple(args.datasets))
        if args.runs:
            every = [r.name for r in plan(roots, args.smoke, (), trials)]
            unknown = [name for name in args.runs if name not in every]
            if unknown:
                raise ReproduceError(f"--runs {', '.join(unknown)}: not a planned run; the plan has {', '.join(every)}.")
            runs = [r for r in runs if r.name in args.runs]
            if not runs:
                raise ReproduceError("nothing to run: no run named by --runs is on the datasets and papers selected.")
    except ReproduceError as err:
        parser.error(str(err))
    if args.status:
        try:
            print(describe_states(run_states(runs, out_dir, args.rate), args.rate))
        except ReproduceError as err:  # a corrupt job entry, or Slurm entries without submitit installed
            print(f"error: {err}", file=sys.stderr)
            return 2
        return 0
    resources = None
    if args.launcher == "slurm":
        from .cluster import Resources

        resources = Resources(partition=args.partition, gpus_per_run=args.gpus_per_run, cpus_per_run=args.cpus_per_run,
                              mem_gb=args.mem_gb, hours=args.hours, account=args.account, qos=args.qos)
    print(describe(runs, args.rate, resources))
    try:
        if not args.smoke and any(getattr(args, d) for d in DATASETS):  # the user's roots, not the placeholders
            check_roots(runs, roots)
        if args.dry_run:
            return 0
        if resources is not None:
            return _submit(runs, out_dir, results_dir, resources, args.rate, argv)
        reproduce(runs, out_dir, results_dir, tuple(g for g in args.gpus.split(",") if g), jobs=args.jobs)
    except ReproduceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(interrupted_report(runs, out_dir, argv), file=sys.stderr)
        return INTERRUPTED
    readme = args.readme or (None if args.smoke else "README.md")
    if readme:
        changed = update_readme(resolve(readme), results_dir)
        print(f"{readme}: {'tables regenerated' if changed else 'already up to date'}")
    failed = [r.name for r in runs if r.status == "failed"]
    print(f"done: {sum(r.status == 'done' for r in runs)} ran, {sum(r.status.startswith('skipped') for r in runs)} "
          f"skipped, {len(failed)} failed" + (f" ({', '.join(failed)})" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
