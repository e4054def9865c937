"""Session fixtures: synthetic datasets are generated once and shared by every test, and the smoke plan runs once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from tests import helpers
from vireid_lib.data.synthetic import SyntheticConfig, write_regdb, write_sysu, write_vcm

SMALL = SyntheticConfig(ids=16, seed=3)


@pytest.fixture(scope="session")
def synthetic_sysu(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sysu")
    write_sysu(root, SMALL)
    return root


@pytest.fixture(scope="session")
def synthetic_regdb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("regdb")
    write_regdb(root, SyntheticConfig(ids=8, seed=3))
    return root


@pytest.fixture(scope="session")
def synthetic_vcm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("vcm")
    write_vcm(root, SyntheticConfig(ids=10, seed=3))
    return root



@dataclass
class SmokePlan:
    """What ``python -m vireid_lib.reproduce --smoke`` left in ``out_dir``, and the comparison notebook run on it."""

    out_dir: Path
    command: list[str]
    returncode: int
    output: str
    compare: Path  # the executed comparison notebook
    compare_error: str  # papermill's stderr when the comparison notebook failed

    @property
    def results(self) -> Path:
        return self.out_dir / "results"

    def ledger(self, name: str) -> dict:
        """The ledger entry of the planned run ``name`` (e.g. ``mmn_regdb_trial1``); fails with its log if it did not
        finish."""
        path = self.out_dir / "ledger" / f"{name}.json"
        if not path.is_file():
            log = self.out_dir / "logs" / f"{name}.txt"
            pytest.fail(f"the smoke plan did not finish {name}: " + (log.read_text()[-3000:] if log.is_file() else
                                                                     self.output[-3000:]))
        return json.loads(path.read_text())

    def run(self, name: str) -> tuple[nbformat.NotebookNode, str, list[dict]]:
        """The executed notebook of the planned run ``name``, its outputs as JSON text, and the records it wrote."""
        entry = self.ledger(name)
        executed = nbformat.read(entry["notebook"], as_version=4)
        text = json.dumps([c.get("outputs", []) for c in executed.cells])
        return executed, text, [json.loads(Path(p).read_text()) for p in entry["records"]]


SMOKE_TIMEOUT_S = 3600
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def smoke_plan(tmp_path_factory: pytest.TempPathFactory) -> SmokePlan:
    """The smoke plan, run once per session as a user runs it (two notebooks at a time, one CPU thread each, so that
    tests/test_cluster.py's run can match its numbers on any machine), then the comparison notebook on its records.
    A subprocess each: under pytest's output capture a kernel's widget messages can stall. Each is killed with the
    notebooks' kernels when it ends or times out (``helpers.run``). (Run beside the other tests instead, it slowed
    the two-thread ones four times over: the cores were oversubscribed.)"""
    out = tmp_path_factory.mktemp("smoke")
    command = [sys.executable, "-m", "vireid_lib.reproduce", "--smoke", "--out-dir", str(out), "--jobs", "2",
               "--runs", *helpers.ci_run_names()]
    done = helpers.run(command, capture_output=True, text=True, cwd=ROOT, stdin=subprocess.DEVNULL,
                       timeout=SMOKE_TIMEOUT_S, env={**os.environ, "OMP_NUM_THREADS": "1"})
    compare = out / "compare.ipynb"
    compared = helpers.run([sys.executable, "-m", "papermill", str(ROOT / "notebooks" / "compare.ipynb"),
                            str(compare), "-p", "results_dir", str(out / "results"), "--cwd", str(ROOT),
                            "--no-progress-bar", "--log-level", "ERROR"], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=600)
    return SmokePlan(out, command, done.returncode, done.stdout + done.stderr, compare,
                     compared.stderr[-3000:] if compared.returncode else "")
