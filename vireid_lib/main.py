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
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "notebooks/ivreid_baseline.ipynb"
# Small enough for 2 CPU cores in a minute and a half, big enough to learn clearly (see the summary).
SMOKE = {"dataset": "sysu", "method": "agw", "pretrained": False, "arch": "resnet18", "optimizer": "adam", "lr": 1e-3,
         "backbone_lr_factor": 1.0, "epochs": 16, "height": 64, "width": 32, "batches_per_epoch": 20, "num_ids": 4,
         "eval_trials": 10, "workers": 0, "seed": 0, "score_untrained": True, "resume": False,
         "out_dir": "runs", "results_dir": "runs/results"}


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
    started = time.time()
    done = subprocess.run(command, cwd=ROOT, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        print(f"\nthe notebook stopped with an error; the executed notebook {output} shows the failing cell.")
        return done.returncode
    from .paths import resolve

    record = _newest_record(resolve(overrides.get("results_dir", SMOKE["results_dir"])), started)
    if record is None:
        print(f"\nexecuted notebook: {output} (no result record was written)")
        return 1
    print(summary(record, output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
