"""The two install routes (pip's pyproject.toml, conda's environment.yml) must agree."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = {"torch", "torchvision", "jupyterlab", "papermill", "matplotlib", "seaborn", "pandas",
            "ipywidgets", "tqdm", "h5py", "pillow", "numpy", "pytest", "jupytext"}


def _split(spec: str) -> tuple[str, str]:
    name, _, bound = re.match(r"([A-Za-z0-9_.\-]+)\s*(>=)?\s*(.*)", spec.strip()).groups()
    return name.lower(), bound


def pip_requirements() -> dict[str, str]:
    """The core dependencies and every extra: the conda environment installs them all."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + [s for extra in project["optional-dependencies"].values() for s in extra]
    return dict(_split(s) for s in specs)


def conda_requirements() -> dict[str, str]:
    specs = {}
    text = (ROOT / "environment.yml").read_text()
    for line in text[text.index("\ndependencies:"):].splitlines():
        item = re.match(r"\s*-\s+([^#]+)", line)
        if not item or item.group(1).strip() in ("pip", "pip:", "-e .") or item.group(1).startswith("python="):
            continue
        name, bound = _split(item.group(1))
        specs[name] = bound
    return specs


def test_pip_and_conda_list_the_same_packages_and_bounds() -> None:
    pip, conda = pip_requirements(), conda_requirements()
    assert pip == conda
    assert REQUIRED <= set(pip)


def test_pose_estimation_stays_an_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extra = dict(_split(s) for s in project["optional-dependencies"]["skeletons"])
    assert {"rtmlib", "onnxruntime"} <= set(extra)
    assert not set(extra) & {_split(s)[0] for s in project["dependencies"]}  # the core install never needs them


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    command = "python3 workbook.py test"
    assert f"\n{command}\n" in readme
    assert command in (ROOT / ".ci/run").read_text().splitlines()


def test_workbook_script_rejects_unknown_commands() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "workbook.py"), "deploy"], capture_output=True, text=True)
    assert done.returncode == 2 and "python3 workbook.py test" in done.stderr
