"""The workbook's main job (``python3 workbook.py main``): a small but real run, and what it shows.

Runs ``notebooks/ivreid_baseline.ipynb`` through papermill on the synthetic SYSU-MM01 twin: AGW's
pipeline (reader, sampler, transforms, two-stream network, WRT + CE, the official protocol) with
a ResNet-18 at 64 x 32 and Adam, sized for 2 CPU cores in about a minute and a half. It ends
with a summary in the terminal: the untrained and the trained model's R1 / mAP beside chance
(every protocol scored on random features), where the executed notebook, the figures and the
result record are, and the command that runs the same notebook on a real dataset.

It is a **synthetic smoke run**, never a reproduction: the paper's settings (ResNet-50 from
ImageNet, 288 x 144, SGD, 81 epochs) are the notebook's defaults, which the command at the end
uses. Its record goes to ``runs/results/``, outside ``results/`` (which holds the runs the
README reports). Pass papermill-style overrides after ``main``, e.g. ``-p epochs 4``.

While it trains, the terminal shows one line per epoch (epoch k/N, step, loss, time left), read from the run's
``log.csv``, which the trainer rewrites after every epoch: the notebook's own bars stay in the notebook.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "notebooks/ivreid_baseline.ipynb"
# Small enough for 2 CPU cores in a minute and a half, big enough to learn clearly (see the summary).
SMOKE = {"dataset": "sysu", "method": "agw", "pretrained": False, "arch": "resnet18", "optimizer": "adam", "lr": 1e-3,
         "backbone_lr_factor": 1.0, "epochs": 16, "height": 64, "width": 32, "batches_per_epoch": 20, "num_ids": 4,
         "eval_trials": 10, "workers": 0, "seed": 0, "score_untrained": True, "resume": False,
         "out_dir": "runs", "results_dir": "runs/results"}


# ipykernel >= 7 warns at every start that its local TCP sockets are unencrypted. papermill's command line can ask
# neither for IPC sockets nor for Curve keys, so the workbook's own runs start their kernel with a filter for that
# one message (every other kernel message, and the notebook's own warnings, still show).
UNENCRYPTED_TCP = "Kernel is running over TCP without encryption"


class UnencryptedTransportNotice(logging.Filter):
    """Drops ipykernel's unencrypted-TCP warning from the kernel's log (see :func:`papermill_environment`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return UNENCRYPTED_TCP not in record.getMessage()


@contextmanager
def papermill_environment(base: Mapping[str, str] | None = None) -> Iterator[dict[str, str]]:
    """The environment for the workbook's papermill runs, valid while the context lasts: ``base`` (default
    ``os.environ``) with a ``python3`` kernelspec of the run's own first on ``JUPYTER_PATH``, the installed one
    plus a log filter that drops ipykernel's "running over TCP without encryption" warning."""
    env = dict(os.environ if base is None else base)
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        spec = KernelSpecManager().get_kernel_spec("python3")
        quiet = int(metadata.version("ipykernel").split(".")[0]) >= 7 and "ipykernel_launcher" in " ".join(spec.argv)
    except Exception:  # no kernelspec or no ipykernel: papermill says so itself
        quiet = False
    if not quiet:  # older ipykernels never print the warning
        yield env
        return
    with tempfile.TemporaryDirectory(prefix="vireid-kernel-") as folder:
        kernel = Path(folder) / "kernels" / "python3"
        kernel.mkdir(parents=True)
        logging_config = {"filters": {"unencrypted_tcp": {"()": "vireid_lib.main.UnencryptedTransportNotice"}},
                          "handlers": {"console": {"filters": ["unencrypted_tcp"]}}}
        (kernel / "quiet.json").write_text(json.dumps({"IPKernelApp": {"logging_config": logging_config}}))
        (kernel / "kernel.json").write_text(json.dumps(
            {**spec.to_dict(), "argv": [*spec.argv, f"--IPKernelApp.extra_config_file={kernel / 'quiet.json'}"]}))
        env["JUPYTER_PATH"] = os.pathsep.join(p for p in (folder, env.get("JUPYTER_PATH")) if p)
        yield env


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min {seconds % 60:02d} s"


class TrainingLog:
    """Follows a run's ``log.csv`` (rewritten atomically by the trainer after every epoch) under ``out_dir`` and
    says each new epoch in one line: epoch k/N, step, loss and the training time left.

    The time left is the wall time per epoch seen so far (scheduled evaluations included) times the epochs to go.
    Only a log written since ``since`` counts: an earlier run's log in the same folder is not this run's progress.
    """

    def __init__(self, out_dir: Path, since: float, epochs: int | None = None, batches_per_epoch: int | None = None):
        self.out_dir, self.since = Path(out_dir), since
        self.epochs, self.batches_per_epoch = epochs, batches_per_epoch
        self.shown = 0  # the last epoch said
        self.first: tuple[int, float] | None = None  # (epoch, time) of the first epoch seen

    def _rows(self) -> list[dict]:
        # runner.py's layout: out_dir / "<method>_<dataset>" / ("all" or "trial<k>") / log.csv
        logs = [p for p in self.out_dir.glob("*/*/log.csv") if p.stat().st_mtime >= self.since]
        if not logs:
            return []
        with open(max(logs, key=lambda p: p.stat().st_mtime), newline="") as file:
            return list(csv.DictReader(file))

    def line(self, row: Mapping[str, str], now: float, latest: bool = True) -> str:
        """One epoch's line, e.g. ``training: epoch 3/16, step 60/320, loss 3.2937, about 55 s left`` (the time left
        only for the ``latest`` epoch: when an earlier one finished is not known)."""
        epoch = int(row["epoch"])
        if self.first is None:
            self.first = (epoch - 1, now - float(row.get("seconds") or 0.0))
        parts = [f"epoch {epoch}" + (f"/{self.epochs}" if self.epochs else "")]
        if self.batches_per_epoch:
            parts.append(f"step {epoch * self.batches_per_epoch}"
                         + (f"/{self.epochs * self.batches_per_epoch}" if self.epochs else ""))
        if row.get("loss"):
            parts.append(f"loss {float(row['loss']):.4f}")
        if self.epochs and latest:
            first_epoch, started = self.first
            per_epoch = (now - started) / max(epoch - first_epoch, 1)
            left = self.epochs - epoch
            parts.append(f"about {_duration(left * per_epoch)} left" if left > 0
                         else f"done in {_duration(now - started)}")
        return "training: " + ", ".join(parts)

    def poll(self, now: float | None = None) -> list[str]:
        """The lines of the epochs finished since the last poll (none while the log is unchanged)."""
        now = time.time() if now is None else now
        try:
            rows = self._rows()
        except (OSError, ValueError):  # the log was replaced while being read: the next poll reads it
            return []
        new = [row for row in rows if str(row.get("epoch", "")).isdigit() and int(row["epoch"]) > self.shown]
        if self.first is None:  # a resumed run's log starts with the earlier epochs: only its latest is news
            new = new[-1:]
        lines = [self.line(row, now, latest=row is new[-1]) for row in new]
        if new:
            self.shown = int(new[-1]["epoch"])
        return lines


def _integer(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:  # "None": the paper's value, which the notebook resolves
        return None


def _run_papermill(command: list[str], env: Mapping[str, str], training: TrainingLog) -> int:
    """Run papermill, printing the training log's new epochs as they come; its return code."""
    # papermill's cell bar shares the terminal and ends without a line break: in a terminal, each epoch line
    # replaces it (the bar redraws below), as tqdm.write does in one process. Windows' console may not take ANSI.
    clear = "\r\x1b[K" if os.name != "nt" and sys.stdout.isatty() and sys.stderr.isatty() else ""
    with subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL, env=dict(env)) as process:
        try:
            while True:
                try:
                    returncode = process.wait(timeout=1.0)
                except subprocess.TimeoutExpired:
                    returncode = None
                for line in training.poll():
                    print(clear + line, flush=True)
                if returncode is not None:
                    return returncode
        except BaseException:  # Ctrl-C reached papermill too; it must not outlive this command
            process.kill()
            raise


def _newest_record(folder: Path, since: float) -> dict | None:
    paths = [p for p in folder.glob("*.json") if p.stat().st_mtime >= since]
    if not paths:
        return None
    path = max(paths, key=lambda p: p.stat().st_mtime)
    return {**json.loads(path.read_text()), "_path": str(path)}


def summary(record: dict, notebook: Path) -> str:
    """The terminal summary of a main-job record: untrained -> trained vs chance, and where things are."""
    untrained = {(r["protocol"], r["direction"]): r for r in record.get("untrained", [])}
    chance = {(r["protocol"], r["direction"]): r for r in record.get("chance", [])}
    params, train = record["config"]["params"], record["config"]["train"]
    transform = record["config"]["transform"]
    lines = ["", "=" * 96,
             f"SYNTHETIC SMOKE RUN, not a reproduction: {record['paper']} pipeline on the synthetic SYSU-MM01 twin, "
             f"{params['arch']} from scratch,",
             f"{transform['height']}x{transform['width']}, {train['epochs']} epochs of {params['batches_per_epoch']} steps "
             f"in {record['durations'].get('train_s', '?')} s on {record['device']}.",
             "",
             f"{'protocol':34s}{'R1: untrained -> trained (chance)':36s}{'mAP: untrained -> trained (chance)':34s}"]
    for row in record["last"]["rows"]:  # trained: the last epoch, what training itself changed
        key = (row["protocol"], row["direction"])
        before, luck = untrained.get(key, {}), chance.get(key, {})
        cells = [f"{before.get(m, float('nan')):5.1f} -> {row[m]:5.1f}  ({luck.get(m, float('nan')):4.1f})" for m in ("R1", "mAP")]
        lines.append(f"{row['protocol']:34s}{cells[0]:36s}{cells[1]:34s}")
    reported = record["rows"][0]
    lines += ["", f"The record reports {record['selection']['described']}",
              f"  {reported['protocol']}: R1 {reported['R1']:.1f}, mAP {reported['mAP']:.1f} "
              f"({reported['checkpoint']}, epoch {reported['epoch']})."]
    run_dir = Path(train["out_dir"])
    lines += ["",
              f"executed notebook: {notebook}",
              f"figures:           {run_dir / 'figures'}",
              f"result record:     {record['_path']}",
              "",
              "The same notebook at the paper's settings on the real dataset (ImageNet weights download once):",
              f"  papermill {NOTEBOOK} out.ipynb -p method agw -p data_root /data/SYSU-MM01",
              "=" * 96]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 workbook.py main", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="override a notebook parameter (as papermill's -p)")
    parser.add_argument("--executed", type=Path, default=ROOT / "runs" / "ivreid_baseline_main.ipynb",
                        help="where the executed notebook is written (default: runs/ivreid_baseline_main.ipynb)")
    args = parser.parse_args(argv)
    output = args.executed.resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    # The kernel starts in notebooks/, as JupyterLab starts it: relative paths still land in the root.
    command = [sys.executable, "-m", "papermill", str(ROOT / NOTEBOOK), str(output), "--cwd", str(ROOT / "notebooks")]
    overrides = dict(args.p)
    for name, value in {**{k: str(v) for k, v in SMOKE.items()}, **overrides}.items():
        command += ["-p", name, value]
    print("running:", " ".join(command[1:]), flush=True)
    from .paths import resolve

    parameters = {**SMOKE, **overrides}
    started = time.time()
    training = TrainingLog(resolve(str(parameters["out_dir"])), started, _integer(parameters["epochs"]),
                           _integer(parameters["batches_per_epoch"]))
    with papermill_environment() as env:
        returncode = _run_papermill(command, env, training)
    if returncode != 0:
        print(f"\nthe notebook stopped with an error; the executed notebook {output} shows the failing cell.")
        return returncode
    record = _newest_record(resolve(overrides.get("results_dir", SMOKE["results_dir"])), started)
    if record is None:
        print(f"\nexecuted notebook: {output} (no result record was written)")
        return 1
    print(summary(record, output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
