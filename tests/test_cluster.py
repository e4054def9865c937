"""``python -m vireid_lib.reproduce --launcher slurm``: the Slurm path end to end on this machine, through submitit and
a stand-in for Slurm's commands on PATH (tests/fake_slurm.py): submission, the safe re-run (nothing queued, running or
finished is submitted again), a job killed mid-training and submitted again, Slurm's warning signal that checkpoints
and requeues a job, ``--status``, and a ledger and records that match a local run's."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest
import submitit  # noqa: F401  (the test extra installs it: a missing install fails here, it is never skipped)

from tests import fake_slurm
from vireid_lib import cluster, reproduce

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fake Slurm's commands first on PATH; returns its job folder."""
    state = tmp_path / "slurm-state"
    for key, value in fake_slurm.install(tmp_path / "bin", state).items():
        monkeypatch.setenv(key, value)
    # the jobs import this checkout whatever the install points at
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return state


def _plan(out: Path) -> reproduce.PlannedRun:
    (run,) = reproduce.plan({}, smoke=True, only=("ivreid",), datasets=("regdb",), out_dir=str(out / "runs"),
                            results_dir=str(out / "results"))
    return run


def _wait(condition, what: str, timeout: float = 240.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def _epochs_done(out: Path) -> int:
    log = out / "runs" / "ivreid_regdb" / "trial1" / "log.csv"
    return max(0, len(log.read_text().splitlines()) - 1) if log.is_file() else 0


def _job(state: Path, job: str) -> dict:
    return json.loads((state / f"{job}.json").read_text())


def test_the_dry_run_prints_what_each_job_asks_for(capsys: pytest.CaptureFixture) -> None:
    assert reproduce.main(["--dry-run", "--launcher", "slurm", "--partition", "gpu", "--gpus-per-run", "2",
                           "--hours", "12"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    # the long run is capped at --hours; the short one asks for its estimate x 1.5, at least an hour
    assert lines["cst_vcm"].endswith("partition gpu, 2 GPU, 8 CPUs, 64 GB, 12:00 h")
    assert lines["agw_regdb_trial1"].endswith("partition gpu, 2 GPU, 8 CPUs, 64 GB, 1:00 h")


def test_without_submitit_the_slurm_launcher_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "submitit", None)  # what `import submitit` meets when it is not installed
    with pytest.raises(cluster.ClusterError, match=r'pip install -e "\.\[cluster\]"'):
        cluster.submit([], Path("."), Path("."), cluster.Resources(), 1000.0)


def test_a_killed_job_resubmits_a_signalled_one_requeues_and_both_end_with_the_local_runs_numbers(
        slurm: Path, smoke_plan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """IV-ReID on RegDB at the smoke plan's settings, on the stand-in Slurm; the smoke plan ran the same run with the
    local launcher (one CPU thread per notebook, as here), which the cluster's ledger and numbers must match."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out, resources = tmp_path / "cluster", cluster.Resources(partition="debug", gpus_per_run=1, hours=2)
    run = _plan(out)
    first = cluster.submit([run], out, out / "results", resources, 1000.0)
    job = first[run.name]
    flags = _job(slurm, job)["flags"]
    assert (flags["partition"], flags["gpus-per-node"], flags["time"], flags["signal"]) == ("debug", "1", "60",
                                                                                            "USR2@120")
    # Run again while it runs: nothing is submitted twice
    _wait(lambda: _job(slurm, job)["state"] == "RUNNING", "the job to start")
    assert cluster.submit([_plan(out)], out, out / "results", resources, 1000.0) == {}
    assert f"running as job {job}; not submitted again" in capsys.readouterr().out

    # A node failure: the whole job dies (SIGKILL) once its first epoch is on disk
    _wait(lambda: _epochs_done(out) >= 1, "the first epoch")
    fake_slurm._kill_tree(_job(slurm, job)["pid"], signal.SIGKILL)
    _wait(lambda: _job(slurm, job)["state"] == "FAILED", "the killed job to fail")
    (row,) = reproduce.run_states([_plan(out)], out, 1000.0)
    assert row["state"] == "failed (FAILED)" and row["job"] == job
    killed_at = _epochs_done(out)

    # The same command again: the failed run is submitted again
    log = out / "logs" / f"{run.name}.txt"  # the killed job's notebook log, rewritten when the next one starts
    stale = log.stat().st_mtime_ns
    second = cluster.submit([_plan(out)], out, out / "results", resources, 1000.0)[run.name]
    assert second != job and f"(again: job {job} ended FAILED)" in capsys.readouterr().out
    # Slurm's warning signal before a time limit, once its notebook runs (submitit's handler is in place by then): the
    # job stops the notebook and is requeued under the same id, and the requeued job resumes from the last checkpoint
    _wait(lambda: log.is_file() and log.stat().st_mtime_ns != stale, "the notebook to start")
    assert fake_slurm.scancel(["--signal", "USR2", second]) == 0
    _wait(lambda: _job(slurm, second)["state"] == "COMPLETED", "the requeued job to complete", timeout=300)
    assert _job(slurm, second)["runs"] == 2  # requeued once
    ledger = json.loads((out / "ledger" / f"{run.name}.json").read_text())
    assert ledger["launcher"] == "slurm" and ledger["job_id"] == second and ledger["restarts"] == 1
    (record,) = [json.loads(Path(p).read_text()) for p in ledger["records"]]
    assert record["method"] == "ivreid" and record["resumed_from"] >= killed_at >= 1

    # Finished at this commit: not submitted again, and --status says so
    monkeypatch.setattr(reproduce, "git_commit", lambda root: {"sha": ledger["commit"], "dirty": False})
    assert reproduce.finished(_plan(out), out, {"sha": ledger["commit"], "dirty": False})
    (row,) = reproduce.run_states([_plan(out)], out, 1000.0)
    assert row["state"] == "finished" and row["job"] == second and row["left_gpu_hours"] == 0

    # The local launcher's run of the same plan (the smoke plan's, uninterrupted): the same ledger but where it ran,
    # and the same numbers
    here = smoke_plan.ledger(run.name)
    moved = {"out_dir": str(smoke_plan.out_dir / "runs"), "results_dir": str(smoke_plan.results)}
    assert here["parameters"] == {**ledger["parameters"], **moved}
    assert set(ledger) - set(here) == {"launcher", "gpus", "job_id", "restarts"}
    (theirs,) = [json.loads(Path(p).read_text()) for p in here["records"]]
    assert [(r["protocol"], r["direction"], r["R1"], r["mAP"], r["mINP"]) for r in record["rows"]] == \
        [(r["protocol"], r["direction"], r["R1"], r["mAP"], r["mINP"]) for r in theirs["rows"]]


def test_status_lists_every_state_and_the_gpu_hours(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """--status from the ledger, the job entries and the logs: finished, a local run still running, an interrupted
    one (its process gone) with its log's last lines, a failed one, and not started."""
    out = tmp_path / "out"
    names = {r.name: r for r in reproduce.plan({}, smoke=True, only=("agw",))}
    finished, running, interrupted = "agw_sysu", "agw_regdb_trial1", "agw_llcm"
    record = tmp_path / "record.json"
    record.write_text("{}")
    reproduce.write_json(out / "ledger" / f"{finished}.json", {"commit": "abc", "records": [str(record)],
                                                                 "seconds": 7200.0, "gpus": 2})
    host = socket.gethostname()
    reproduce.write_json(reproduce.job_path(out, running), {"launcher": "local", "pid": os.getpid(), "host": host})
    reproduce.write_json(reproduce.job_path(out, interrupted), {"launcher": "local", "pid": 2 ** 22 + 7, "host": host})
    log = reproduce.log_path(names[interrupted], out)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("epoch 1\nKeyboardInterrupt: stopped in epoch 2\n")
    rows = {r["run"]: r for r in reproduce.run_states(list(names.values()), out, 1000.0)}
    assert rows[finished]["state"] == "finished (at another commit)" and rows[finished]["gpu_hours"] == 4.0
    assert rows[running]["state"] == "running" and rows[running]["job"] == f"local pid {os.getpid()}"
    assert rows[interrupted]["state"] == "interrupted" and "stopped in epoch 2" in rows[interrupted]["log"]
    assert {r["state"] for r in reproduce.run_states(list(names.values()), tmp_path / "new", 1000.0)} == {"not started"}
    assert rows[finished]["left_gpu_hours"] == 0 and rows[running]["left_gpu_hours"] > 0
    text = reproduce.describe_states(list(rows.values()), 1000.0)
    assert "1 finished, 1 running, 1 interrupted" in text and "4.0 GPU-hours spent" in text
    # a Slurm job entry cut short: --status names the file instead of a traceback
    broken = reproduce.write_json(reproduce.job_path(out, running), {"launcher": "slurm"})
    assert reproduce.main(["--status", "--smoke", "--only", "agw", "--out-dir", str(out)]) == 2
    assert f"{broken} is not a job entry" in capsys.readouterr().err
