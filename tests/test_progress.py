"""What a run shows of its progress: one bar per loop in a saved notebook, plain text in a terminal, one line per
epoch of the main job in the terminal, and no kernel transport warning in the workbook's papermill runs."""

from __future__ import annotations

import csv
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from vireid_lib.main import UNENCRYPTED_TCP, TrainingLog, UnencryptedTransportNotice, papermill_environment
from vireid_lib.progress import progress

LOOPS = """\
import time
from vireid_lib.progress import NotebookBar, progress

for step in progress(range(50), desc="epoch 1/2", unit="step"):
    time.sleep(0.06)  # 3 s: the bar is redrawn in between (at most every 2 s)
bar = NotebookBar(total=50, desc="epoch 2/2", unit="step", mininterval=0)  # a redraw at every step
for step in range(50):
    bar.update(1)
    bar.set_postfix(loss=f"{1 / (step + 1):.4f}")
bar.close()
print("trained")
"""


def _notebook(source: str) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook


def test_a_saved_notebook_keeps_one_output_per_bar_in_its_final_state(tmp_path: Path) -> None:
    """Each bar is one display output updated in place (nbclient applies the updates to the notebook it saves, as
    papermill does), not one stream output per redraw: 100 steps and 50+ redraws leave two outputs and the print."""
    notebook = _notebook(LOOPS)
    NotebookClient(notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = notebook.cells[0].outputs
    assert [o.output_type for o in outputs] == ["display_data", "display_data", "stream"]
    first, second = (o.data["text/plain"] for o in outputs[:2])
    assert first.startswith("epoch 1/2: 100%") and "50/50" in first
    assert second.startswith("epoch 2/2: 100%") and "50/50" in second and "loss=0.0200" in second
    assert outputs[2].text == "trained\n"


def test_a_bar_outside_a_notebook_is_plain_text_on_stderr(capsys: pytest.CaptureFixture) -> None:
    for _ in progress(range(3), desc="epoch 1/1", unit="step"):
        pass
    captured = capsys.readouterr()
    assert captured.out == "" and "epoch 1/1: 100%" in captured.err and "3/3" in captured.err


def _write_log(path: Path, epochs: int, seconds: float = 4.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=["epoch", "lr", "seconds", "loss"])
        writer.writeheader()
        writer.writerows({"epoch": e, "lr": 0.001, "seconds": seconds, "loss": 5.0 / e} for e in range(1, epochs + 1))


def test_the_main_job_says_each_epoch_once_with_its_step_loss_and_time_left(tmp_path: Path) -> None:
    log = tmp_path / "agw_sysu" / "all" / "log.csv"
    _write_log(tmp_path / "agw_sysu" / "old" / "log.csv", 3)
    old = time.time() - 3600
    os.utime(tmp_path / "agw_sysu" / "old" / "log.csv", (old, old))  # an earlier run's log is not this run's progress
    training = TrainingLog(tmp_path, since=time.time() - 1, epochs=16, batches_per_epoch=20)
    assert training.poll() == []
    start = time.time()
    _write_log(log, 1)
    assert training.poll(now=start) == ["training: epoch 1/16, step 20/320, loss 5.0000, about 1 min 00 s left"]
    assert training.poll(now=start + 1) == []  # nothing new, nothing said
    _write_log(log, 3)  # 14 s for 3 epochs (tests included); when epoch 2 ended is not known, so it has no estimate
    assert training.poll(now=start + 10) == ["training: epoch 2/16, step 40/320, loss 2.5000",
                                             "training: epoch 3/16, step 60/320, loss 1.6667, about 1 min 01 s left"]
    _write_log(log, 16)
    assert training.poll(now=start + 75)[-1] == "training: epoch 16/16, step 320/320, loss 0.3125, done in 1 min 19 s"


def test_a_resumed_run_starts_from_its_latest_epoch(tmp_path: Path) -> None:
    _write_log(tmp_path / "agw_sysu" / "all" / "log.csv", 5)
    training = TrainingLog(tmp_path, since=time.time() - 1, epochs=None, batches_per_epoch=None)
    assert training.poll() == ["training: epoch 5, loss 1.0000"]


def test_only_the_unencrypted_tcp_warning_is_dropped() -> None:
    notice = UnencryptedTransportNotice()
    record = logging.LogRecord("IPKernelApp", logging.WARNING, __file__, 1, UNENCRYPTED_TCP + ". All communication...",
                               None, None)
    other = logging.LogRecord("IPKernelApp", logging.WARNING, __file__, 1, "Unknown message type", None, None)
    assert not notice.filter(record) and notice.filter(other)


def test_the_workbooks_papermill_runs_do_not_print_the_kernels_transport_warning(tmp_path: Path) -> None:
    notebook = tmp_path / "tiny.ipynb"
    nbformat.write(_notebook("import warnings\nwarnings.warn('the notebook still warns')"), notebook)
    command = [sys.executable, "-m", "papermill", str(notebook), str(tmp_path / "out.ipynb"), "--cwd", str(tmp_path)]
    with papermill_environment() as env:
        quiet = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert quiet.returncode == 0, quiet.stderr
    assert UNENCRYPTED_TCP not in quiet.stderr and "Executing notebook with kernel: python3" in quiet.stderr
    saved = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert "the notebook still warns" in saved.cells[0].outputs[0].text  # the notebook's own warnings are kept
    assert not any(Path(p).name.startswith("vireid-kernel-") and Path(p).exists()
                   for p in env.get("JUPYTER_PATH", "").split(os.pathsep))  # the kernelspec lived as long as the run
