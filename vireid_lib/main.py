"""The workbook's main job (``python3 workbook.py main``).

Runs the first paper notebook, ``notebooks/ivreid_baseline.ipynb``, through papermill on the
synthetic SYSU-MM01 twin with small CPU-sized parameters: data, training, every protocol,
the table beside the paper's, figures, and a result record (labelled synthetic, in
``runs/results/``). The executed notebook lands in ``runs/``. Pass papermill-style overrides after ``main``, e.g.
``python3 workbook.py main -p data_root /data/SYSU-MM01 -p pretrained True -p epochs None``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Small enough for 2 CPU cores in a few minutes; nothing here is a reproduction.
SMOKE = {"dataset": "sysu", "method": "ivreid", "pretrained": False, "epochs": 4, "height": 64, "width": 32,
         "batches_per_epoch": 6, "eval_trials": 10, "workers": 0, "num_ids": 4,
         # a smoke record stays out of results/, which holds the runs the README reports
         "out_dir": "runs", "results_dir": "runs/results"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 workbook.py main", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="override a notebook parameter (as papermill's -p)")
    args = parser.parse_args(argv)
    output = ROOT / "runs" / "ivreid_baseline_main.ipynb"
    output.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "papermill", str(ROOT / "notebooks" / "ivreid_baseline.ipynb"), str(output),
               "--cwd", str(ROOT)]
    overrides = dict(args.p)
    for name, value in {**{k: str(v) for k, v in SMOKE.items()}, **overrides}.items():
        command += ["-p", name, value]
    print("running:", " ".join(command[1:]), flush=True)
    done = subprocess.run(command, cwd=ROOT, stdin=subprocess.DEVNULL)
    if done.returncode == 0:
        print(f"\nexecuted notebook: {output}\nresult record: {overrides.get('results_dir', SMOKE['results_dir'])}/")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
