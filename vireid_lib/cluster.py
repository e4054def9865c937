"""The reproduction plan on a Slurm cluster: one Slurm job per planned run, submitted through submitit.

``python -m vireid_lib.reproduce --launcher slurm --partition gpu --sysu ROOT ...`` submits every planned run that is
not finished. Each job runs :func:`vireid_lib.reproduce.execute` (the run's notebook through papermill, exactly as
the local launcher runs it), which writes the same ledger entry, records and executed notebook; so a plan can be
finished by either launcher, and ``--status`` reads both.

Re-running the command is safe: a run whose job is queued or running (``sacct``) is not submitted again, a finished
run (its ledger entry) is skipped as locally, and a run whose job failed, was cancelled, timed out or was preempted
is submitted again; its notebook resumes from the last epoch's checkpoint (the engine writes one after every epoch,
atomically). On Slurm's warning signal before a time limit (``--signal USR2@<delay>``, which submitit asks for),
the job interrupts its notebook, the last finished epoch's checkpoint stays as it is, and submitit requeues the
job, which resumes from it; a job preempted without warning loses only its unfinished epoch. Where each run's job
is, ``<out>/jobs/<run>.json`` says (job id, resources, when it was submitted).

submitit is an optional dependency (``pip install -e ".[cluster]"``); nothing else of the workbook imports it.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from .reproduce import ReproduceError, job_path, write_json

# Slurm's job states (sacct), grouped by what the launcher does about them.
ACTIVE = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING",
          "SUSPENDED", "SIGNALING", "STAGE_OUT")
ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "PREEMPTED", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
         "DEADLINE")


class ClusterError(ReproduceError):
    """The cluster launcher cannot go on (submitit missing, sbatch refused a job); the message says what to do."""


def _submitit():
    try:
        import submitit
    except ImportError:
        raise ClusterError("--launcher slurm submits through submitit, which is not installed: "
                           "pip install -e \".[cluster]\" (or pip install submitit).") from None
    return submitit


@dataclass(frozen=True)
class Resources:
    """What every job asks Slurm for. ``hours``: the longest a job may hold its allocation (a run that needs longer
    is requeued at the limit and resumes); each job asks for its own estimate at ``rate`` with half again as margin,
    at least an hour, at most ``hours``."""

    partition: str = ""
    gpus_per_run: int = 1
    cpus_per_run: int = 8
    mem_gb: int = 64
    hours: float = 24.0
    account: str = ""
    qos: str = ""
    signal_delay_s: int = 120  # Slurm warns the job this long before its time limit (submitit's USR2)

    def minutes(self, training_images: int, rate: float) -> int:
        estimate = training_images / rate / 60.0 * 1.5
        return int(min(self.hours * 60, max(60, math.ceil(estimate))))

    def describe(self, training_images: int, rate: float) -> str:
        minutes = self.minutes(training_images, rate)
        return (f"partition {self.partition or '(default)'}, {self.gpus_per_run} GPU, {self.cpus_per_run} CPUs, "
                f"{self.mem_gb} GB, {minutes // 60}:{minutes % 60:02d} h")

    def parameters(self, name: str, training_images: int, rate: float) -> dict:
        """submitit's SlurmExecutor parameters of one job."""
        given = {"job_name": name, "time": self.minutes(training_images, rate), "cpus_per_task": self.cpus_per_run,
                 "mem": f"{self.mem_gb}G", "ntasks_per_node": 1, "nodes": 1, "signal_delay_s": self.signal_delay_s,
                 "partition": self.partition or None, "gpus_per_node": self.gpus_per_run or None,
                 "account": self.account or None, "qos": self.qos or None}
        return {k: v for k, v in given.items() if v is not None}


class NotebookJob:
    """What one Slurm job runs: the planned run's notebook through papermill (:func:`vireid_lib.reproduce.execute`),
    the same call the local launcher makes. A failed notebook fails the job (its log's last lines in the error).

    ``checkpoint`` is submitit's hook for Slurm's warning signal: it interrupts the notebook (SIGINT, as Ctrl-C:
    the engine stops, the last epoch's checkpoint intact), waits for it, and hands submitit the same call to
    requeue, which resumes from that checkpoint.
    """

    WAIT_S = 60.0  # how long the interrupted notebook gets to stop before the job is requeued anyway

    def __init__(self) -> None:
        self.children: dict = {}

    def __call__(self, run, out_dir: str, results_dir: str, extra: dict) -> list[str]:
        from . import reproduce
        from .paths import workbook_root
        from .results.records import git_commit

        job = {**extra, "job_id": os.environ.get("SLURM_JOB_ID"),
               "restarts": int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)}
        # the commit the job runs (the checkout may have moved on since the submission)
        done = reproduce.execute(run, Path(out_dir), Path(results_dir), git_commit(workbook_root()), None,
                                 self.children, extra=job)
        if done.status != "done":
            log = reproduce.log_path(run, Path(out_dir))
            tail = log.read_text(errors="replace")[-2000:] if log.is_file() else ""
            raise RuntimeError(f"{run.name}: the notebook failed (log {log}):\n{tail}")
        return done.records

    def checkpoint(self, *args, **kwargs):
        submitit = _submitit()
        for child in list(self.children.values()):
            try:
                child.send_signal(signal.SIGINT)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + self.WAIT_S
        while any(_running(child.pid) for child in self.children.values()) and time.monotonic() < deadline:
            time.sleep(0.5)
        return submitit.helpers.DelayedSubmission(NotebookJob(), *args, **kwargs)

    def __getstate__(self) -> dict:
        return {"children": {}}  # the processes of one run are never pickled into the next


def _running(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie waiting to be reaped counts as ended). Read from /proc: called from a
    signal handler while the launcher's own wait on the process may hold its lock."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True
    return state != "Z"


def read_job(out_dir: Path, name: str) -> dict | None:
    """A run's job entry (None: none); a corrupt one is an error naming the file."""
    path = job_path(out_dir, name)
    if not path.is_file():
        return None
    try:
        entry = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        entry = None
    if not isinstance(entry, dict) or (entry.get("launcher") == "slurm" and not {"job_id", "folder"} <= set(entry)):
        raise ClusterError(f"{path} is not a job entry (cut short or edited); delete it to submit {name} again.")
    return entry


def job_states(out_dir: Path, names: list[str]) -> dict[str, tuple[dict, str]]:
    """For each run of ``names`` that has a Slurm job entry: (the entry, its state from sacct; ``UNKNOWN`` when
    sacct does not know it)."""
    entries = {name: e for name in names if (e := read_job(out_dir, name)) and e.get("launcher") == "slurm"}
    if not entries:
        return {}
    submitit = _submitit()
    jobs = {name: submitit.SlurmJob(folder=e["folder"], job_id=str(e["job_id"])) for name, e in entries.items()}
    first = next(iter(jobs.values()))
    first.watcher.update()  # one sacct call for every registered job
    return {name: (entries[name], first.watcher.get_state(str(job.job_id), mode="cache").split()[0].rstrip("+"))
            for name, job in jobs.items()}


def ended_without_state(entry: dict) -> bool:
    """Whether a job sacct does not know has left submitit's result file (it ended; sacct forgot it)."""
    folder = Path(entry["folder"])
    return any(folder.glob(f"{entry['job_id']}_*_result.pkl"))


def submit(runs: list, out_dir: Path, results_dir: Path, resources: Resources, rate: float,
           report=print) -> dict[str, str]:
    """Submit every run of ``runs`` (the unfinished ones) whose job is not queued or running; returns
    ``{run: job id}`` of the jobs submitted now."""
    submitit = _submitit()
    folder = out_dir / "slurm"
    states = job_states(out_dir, [r.name for r in runs])
    submitted = {}
    for run in runs:
        entry, state = states.get(run.name, (None, ""))
        if entry is not None and (state in ACTIVE or (state not in ENDED and not ended_without_state(entry))):
            why = (f"{state.lower()} as job {entry['job_id']}" if state in ACTIVE else
                   f"job {entry['job_id']} is unknown to sacct and left no result; if it is gone, delete "
                   f"{job_path(out_dir, run.name)} to submit it again")
            report(f"{run.name}: {why}; not submitted again")
            run.status = f"{state.lower()} (job {entry['job_id']})" if state in ACTIVE else "unknown"
            continue
        executor = submitit.SlurmExecutor(folder=folder)
        executor.update_parameters(**resources.parameters(run.name, run.training_images, rate))
        extra = {"launcher": "slurm", "gpus": resources.gpus_per_run}
        try:
            job = executor.submit(NotebookJob(), run, str(out_dir), str(results_dir), extra)
        except Exception as err:  # sbatch refused it (a partition that does not exist, a limit): say which run
            raise ClusterError(f"{run.name}: sbatch refused the job: {err}".strip()) from err
        again = f" (again: job {entry['job_id']} ended {state or 'without a state'})" if entry else ""
        write_json(job_path(out_dir, run.name), {
            "launcher": "slurm", "job_id": job.job_id, "folder": str(folder),
            "submitted": datetime.now(timezone.utc).isoformat(timespec="seconds"), "parameters": run.parameters,
            "resources": asdict(resources), "minutes": resources.minutes(run.training_images, rate),
            "previous": entry.get("job_id") if entry else None})
        submitted[run.name] = job.job_id
        run.status = f"submitted (job {job.job_id})"
        report(f"{run.name}: submitted as job {job.job_id}{again}")
    return submitted
