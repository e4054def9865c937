"""Session fixtures: synthetic datasets are generated once and shared by every test, and the smoke plan runs once."""

from __future__ import annotations

import contextlib
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


def _smoke_command(out: Path) -> list[str]:
    return [sys.executable, "-m", "vireid_lib.reproduce", "--smoke", "--out-dir", str(out), "--jobs", "2",
            "--runs", *helpers.ci_run_names()]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The tests that read the smoke plan run last, so that the rest of the suite runs while the plan does."""
    items.sort(key=lambda item: "smoke_plan" in getattr(item, "fixturenames", ()))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the smoke plan in the background as soon as the selected tests are known to need it: it takes minutes
    and keeps about one and a half cores busy, and the other tests use what is left meanwhile."""
    if not any("smoke_plan" in getattr(item, "fixturenames", ()) for item in session.items):
        return
    out = session.config._tmp_path_factory.mktemp("smoke")  # the session's own temporary folder
    stack = contextlib.ExitStack()
    log = stack.enter_context(open(out.parent / "smoke_plan_output.txt", "w+"))
    command = _smoke_command(out)
    # one CPU thread per notebook on any machine, so that tests/test_cluster.py's run can match its numbers
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = stack.enter_context(helpers.process_tree(command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log,
                                                       stderr=subprocess.STDOUT, env=env))
    session.config.stash[_SMOKE] = (out, command, process, log, stack)


def pytest_sessionfinish(session: pytest.Session) -> None:
    started = session.config.stash.get(_SMOKE, None)
    if started is not None:
        started[-1].close()  # kills the plan and its kernels if a test run ended before it did


_SMOKE = pytest.StashKey[tuple]()
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def smoke_plan(request: pytest.FixtureRequest) -> SmokePlan:
    """The whole smoke plan, run once per session as a user runs it (started when collection ends, see
    :func:`pytest_collection_finish`), then the comparison notebook on its records. A subprocess each: under
    pytest's output capture a kernel's widget messages can stall. Each is killed with the notebooks' kernels when it
    ends or times out (``helpers.process_tree``, ``helpers.run``)."""
    out, command, process, log, _ = request.config.stash[_SMOKE]
    try:
        process.wait(timeout=SMOKE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        helpers.kill_tree(process)
    log.seek(0)
    output = log.read()
    compare = out / "compare.ipynb"
    compared = helpers.run([sys.executable, "-m", "papermill", str(ROOT / "notebooks" / "compare.ipynb"),
                            str(compare), "-p", "results_dir", str(out / "results"), "--cwd", str(ROOT),
                            "--no-progress-bar", "--log-level", "ERROR"], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=600)
    return SmokePlan(out, command, process.returncode, output, compare,
                     compared.stderr[-3000:] if compared.returncode else "")
