"""Exploring in JupyterLab leaves the workbook's source alone: notebooks are edited, run and saved in the workspace
copies (ignored by git), saved the way JupyterLab saves them (jupytext's contents manager, which pairs the templates
with their scripts), and the record says the code is the commit's. A template edited in place anyway is told apart:
a parameter change, not a code change."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from vireid_lib import workspace
from vireid_lib.experiments.params import SHARED

ROOT = Path(__file__).resolve().parents[1]
# Tiny: this checks where things are written, not what is learned.
EDITS = {"method": '"agw"', "arch": '"resnet18"', "epochs": "1", "batches_per_epoch": "1", "height": "64",
         "width": "32", "pretrained": "False", "eval_trials": "1", "workers": "0", "synthetic_ids": "16"}


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The workbook as it is now (tracked files, committed), in a repository of its own."""
    repo = tmp_path_factory.mktemp("workbook")
    for name in _git(ROOT, "ls-files").splitlines():
        if (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    _git(repo, "init", "-q")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "the workbook")
    return repo


def _lab_manager(root: Path):
    """The contents manager JupyterLab saves with when jupytext is installed (pairing from jupytext.toml)."""
    from jupytext.async_contentsmanager import AsyncTextFileContentsManager

    return AsyncTextFileContentsManager(root_dir=str(root))


def _edit_parameters(notebook: nbformat.NotebookNode) -> None:
    """Edit the tagged cell as a user does: change the values it lists, add the shared parameters it does not."""
    (cell,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    lines = cell.source.splitlines()
    listed = set()
    for index, line in enumerate(lines):
        name = line.split("=")[0].strip()
        if name in EDITS:
            lines[index] = f"{name} = {EDITS[name]}"
            listed.add(name)
    lines += [f"{name} = {value}" for name, value in EDITS.items() if name in SHARED and name not in listed]
    cell.source = "\n".join(lines)


def _open_edit_run_save(manager, name: str, folder: Path) -> None:
    model = asyncio.run(manager.get(name, content=True))
    notebook = nbformat.from_dict(model["content"])
    _edit_parameters(notebook)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    asyncio.run(manager.save({"type": "notebook", "content": notebook}, name))


def test_exploring_a_copy_in_jupyterlab_leaves_git_status_clean(checkout: Path, monkeypatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(checkout))  # the kernel (it inherits the environment) imports the checkout
    monkeypatch.setenv("VIREID_ROOT", str(checkout))
    env = dict(os.environ)
    written = subprocess.run([sys.executable, "-m", "vireid_lib.workspace", "--no-lab"], cwd=checkout, env=env,
                             capture_output=True, text=True, timeout=120)
    assert written.returncode == 0, written.stderr
    copies = checkout / "workspace"
    assert (copies / "ivreid_baseline.ipynb").is_file() and (copies / "mmn.ipynb").is_file()
    _open_edit_run_save(_lab_manager(copies), "ivreid_baseline.ipynb", copies)
    saved = nbformat.read(copies / "ivreid_baseline.ipynb", as_version=4)
    assert any(cell.get("outputs") for cell in saved.cells)
    assert not (copies / "ivreid_baseline.py").exists()  # the copies are plain notebooks (no pairing in workspace/)
    assert _git(checkout, "status", "--porcelain") == ""  # nothing tracked changed, nothing new to list
    (record,) = (copies / "results").glob("*.json")
    git = json.loads(record.read_text())["git"]
    assert git["sha"] == _git(checkout, "rev-parse", "HEAD").strip() and git["dirty"] is False
    # a second start keeps the user's copy
    again = subprocess.run([sys.executable, "-m", "vireid_lib.workspace", "--no-lab"], cwd=checkout, env=env,
                           capture_output=True, text=True, timeout=120)
    assert "0 notebooks copied" in again.stdout and nbformat.read(copies / "ivreid_baseline.ipynb", as_version=4) == saved


def test_a_template_edited_in_place_is_a_parameter_change_not_a_code_change(checkout: Path) -> None:
    from vireid_lib.results.records import git_commit

    manager = _lab_manager(checkout / "notebooks")
    model = asyncio.run(manager.get("mmn.ipynb", content=True))
    notebook = nbformat.from_dict(model["content"])
    _edit_parameters(notebook)
    asyncio.run(manager.save({"type": "notebook", "content": notebook}, "mmn.ipynb"))
    git = git_commit(checkout)
    assert git["changed"] == ["notebooks/mmn.ipynb", "notebooks/mmn.py"]  # JupyterLab wrote both halves
    assert git["parameters_only"] == git["changed"] and git["dirty"] is False
    script = checkout / "notebooks" / "mmn.py"
    script.write_text(script.read_text().replace("run.summary()", "run.summary().head()"))
    git = git_commit(checkout)
    assert git["dirty"] is True and git["parameters_only"] == ["notebooks/mmn.ipynb"]
    _git(checkout, "checkout", "--", "notebooks")


def test_a_second_test_command_does_not_reinstall() -> None:
    """From the checkout, the build's ./vireid.egg-info (no direct_url.json) must not hide the installed record."""
    probe = ("import subprocess, sys; sys.path.insert(0, '.'); import workbook; calls = []; "
             "workbook.subprocess.run = lambda *a, **k: calls.append(a); workbook.setup(); print(calls)")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", "workbook.py would reinstall: " + done.stdout
