"""Bad input to the tooling around the runs: ``python -m vireid_lib.reproduce`` (its options, dataset roots, ledger,
Ctrl-C) and the comparison notebook's parameters. Nothing here trains: a run's notebook is replaced where one would
start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests import helpers
from vireid_lib import reproduce
from vireid_lib.papers import papers

ROOT = Path(__file__).resolve().parents[2]
# Two smoke runs, IV-ReID's then AGW's, on RegDB: enough to see a finished run beside an interrupted one.
TWO_RUNS = ["--smoke", "--only", "ivreid", "agw", "--datasets", "regdb"]


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf", "fast"])
def test_the_rate_must_be_a_positive_finite_number(value: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as stopped:
        reproduce.main(["--dry-run", "--rate", value])
    assert stopped.value.code == 2
    assert (f"argument --rate: {value!r} is not a positive finite number of training images per second"
            in capsys.readouterr().err)


@pytest.mark.parametrize("value", ["0", "11", "-1", "one"])
def test_regdb_trials_are_1_to_10(value: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as stopped:
        reproduce.main(["--dry-run", "--trials", "1", value])
    assert stopped.value.code == 2
    assert f"argument --trials: {value!r} is not a RegDB trial; RegDB has trials 1 to 10" in capsys.readouterr().err


def test_a_selection_that_plans_nothing_says_why(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for argv, expected in (
            (["--dry-run", "--only", "agw", "--datasets", "vcm"],
             "nothing to run: agw reports no HITSZ-VCM results; it runs on SYSU-MM01, RegDB, LLCM."),
            (["--vcm", str(tmp_path), "--only", "agw"],
             "nothing to run: agw: no dataset root given for SYSU-MM01 (--sysu ROOT) or RegDB (--regdb ROOT) or LLCM "
             "(--llcm ROOT).")):
        with pytest.raises(SystemExit) as stopped:
            reproduce.main(argv)
        assert stopped.value.code == 2 and expected in capsys.readouterr().err


def test_a_dataset_root_that_is_no_folder_stops_before_any_run(tmp_path: Path, monkeypatch,
                                                               capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(reproduce, "execute", lambda *args, **kwargs: pytest.fail("a run started"))
    a_file = tmp_path / "RegDB.zip"
    a_file.write_bytes(b"")
    for root, problem in ((tmp_path / "RegBD", "does not exist"), (a_file, "is a file, not a folder")):
        argv = ["--regdb", str(root), "--only", "agw", "--out-dir", str(tmp_path / "out"), "--readme", "none.md"]
        assert reproduce.main(argv) == 2
        assert f"error: --regdb {root}: {problem}; pass the folder that holds RegDB" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content", ['{"commit": "abc", "parame', "", "[1, 2]", "\udcff"])
def test_a_broken_ledger_file_is_named_with_what_to_do(content: str, tmp_path: Path, monkeypatch,
                                                       capsys: pytest.CaptureFixture) -> None:
    """A ledger entry cut short (a full disk, a kill mid-write) or edited: a message, not a JSONDecodeError."""
    monkeypatch.setattr(reproduce, "git_commit", lambda root: {"sha": "abc", "dirty": False})
    monkeypatch.setattr(reproduce, "execute", lambda *args, **kwargs: pytest.fail("a run started"))
    ledger = tmp_path / "ledger" / "ivreid_regdb_trial1.json"
    ledger.parent.mkdir()
    ledger.write_bytes(content.encode("utf-8", "surrogateescape"))
    assert reproduce.main([*TWO_RUNS, "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"error: the ledger file {ledger} of ivreid_regdb_trial1 is not a ledger entry" in err
    assert "delete it to rerun that run" in err and "Traceback" not in err


def test_ctrl_c_names_each_interrupted_run_and_the_command_that_carries_on(tmp_path: Path, monkeypatch,
                                                                         capsys: pytest.CaptureFixture) -> None:
    def execute(run, out_dir, *args, **kwargs):
        if run.method == "ivreid":
            run.status = "done"
            return run
        raise KeyboardInterrupt  # Ctrl-C while AGW's notebook runs

    monkeypatch.setattr(reproduce, "execute", execute)
    argv = [*TWO_RUNS, "--out-dir", str(tmp_path)]
    assert reproduce.main(argv) == reproduce.INTERRUPTED == 130
    out, err = capsys.readouterr()
    assert "[1/2] ivreid_regdb_trial1: done" in out
    assert err.splitlines() == [
        f"interrupted: agw_regdb_trial1 (log {tmp_path / 'logs' / 'agw_regdb_trial1.txt'})",
        f"stopped by Ctrl-C; to carry on, run again: python -m vireid_lib.reproduce {' '.join(argv)}",
        "(finished runs are skipped at the same clean commit; interrupted ones resume from their checkpoints)"]


def test_ctrl_c_stops_the_notebook_in_flight_and_starts_no_other(tmp_path: Path, monkeypatch,
                                                                capsys: pytest.CaptureFixture) -> None:
    """The real path: SIGINT reaches this process (as `kill -INT` would, not the notebook's) while the first run's
    papermill (here a sleeping stand-in) runs; it is stopped, keeps its log, and the second run never starts."""
    started, children = [], []
    real_popen = subprocess.Popen

    def popen(command, **kwargs):
        if "papermill" not in command:
            return real_popen(command, **kwargs)  # git, asked for the commit
        started.append(command)
        child = real_popen([sys.executable, "-c", "import time; print('epoch 1 of 81', flush=True); time.sleep(120)"],
                           **kwargs)
        children.append(child)
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
        return child

    monkeypatch.setattr(reproduce.subprocess, "Popen", popen)
    monkeypatch.setattr(reproduce, "GRACE_S", 0.5)
    try:
        assert reproduce.main([*TWO_RUNS, "--out-dir", str(tmp_path)]) == 130
    finally:  # the stand-in, should the plan not have stopped it
        for child in children:
            helpers.kill_tree(child)
    err = capsys.readouterr().err
    log = tmp_path / "logs" / "ivreid_regdb_trial1.txt"
    assert err.startswith(f"interrupted: ivreid_regdb_trial1 (log {log})\nstopped by Ctrl-C")
    assert len(started) == 1 and "epoch 1 of 81" in log.read_text()
    assert not (tmp_path / "ledger").exists()


def test_an_unknown_metric_stops_the_compare_notebook_in_its_first_cell(tmp_path: Path) -> None:
    """An unknown ``metric`` stops the notebook in its first cell, naming R1, mAP and mINP, before any record is read
    (the folder below does not even exist)."""
    executed = tmp_path / "compare.ipynb"
    done = helpers.run([sys.executable, "-m", "papermill", str(ROOT / "notebooks" / "compare.ipynb"), str(executed),
                        "-p", "metric", "foo", "-p", "results_dir", str(tmp_path / "no-results"), "--cwd", str(ROOT),
                        "--no-progress-bar", "--log-level", "ERROR"], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=300)
    assert done.returncode != 0
    assert "metric='foo' is not a metric of the comparison; use one of R1, mAP, mINP" in done.stderr
    cells = json.loads(executed.read_text())["cells"]
    (failed,) = [c for c in cells if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert "check_notebook_parameters(globals())" in "".join(failed["source"])


def test_a_full_disk_while_writing_a_record_or_the_readme_says_so(tmp_path: Path, monkeypatch) -> None:
    """The record or README is written to a temporary file first: on a full disk the message says so, the temporary
    file is removed and the previous README stays whole."""
    import errno

    from vireid_lib.results.records import RecordError, write_atomic

    readme = tmp_path / "README.md"
    readme.write_text("the old tables\n")

    def full(self, text, *args, **kwargs):
        Path.write_bytes(self, text.encode()[:10])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(RecordError, match=r"the disk is full: the README .*README.md could not be written .*MiB free.*"
                                          r"the previous one is intact"):
        write_atomic(tmp_path / ".README.md.tmp", readme, "new tables", "README")
    monkeypatch.undo()
    assert readme.read_text() == "the old tables\n" and sorted(p.name for p in tmp_path.iterdir()) == ["README.md"]


def test_a_run_the_system_killed_says_so(tmp_path: Path, monkeypatch, capsys: pytest.CaptureFixture) -> None:
    """A notebook killed by SIGKILL (the out-of-memory killer) leaves no traceback: the plan says what happened."""
    real_popen = subprocess.Popen

    def popen(command, **kwargs):
        if "papermill" not in command:
            return real_popen(command, **kwargs)
        return real_popen([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"], **kwargs)

    monkeypatch.setattr(reproduce.subprocess, "Popen", popen)
    assert reproduce.main([*TWO_RUNS, "--out-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "ivreid_regdb_trial1: failed" in out and "killed by the system (SIGKILL), most often for running out of " \
                                                    "memory" in out
    assert reproduce.KILLED in (tmp_path / "logs" / "ivreid_regdb_trial1.txt").read_text()


def test_a_dry_run_checks_the_roots_it_was_given(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A dry run plans for the roots given: one that does not exist is an error there too (the placeholder plan
    without roots stays a plain estimate)."""
    assert reproduce.main(["--dry-run", "--sysu", str(tmp_path / "SYSU-MM01")]) == 2
    assert f"--sysu {tmp_path / 'SYSU-MM01'}: does not exist" in capsys.readouterr().err
    planned = sum(10 if d == "regdb" else 1 for p in papers().values() if p.notebook for d in p.datasets)
    assert reproduce.main(["--dry-run"]) == 0 and f"{planned} runs" in capsys.readouterr().out
