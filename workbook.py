#!/usr/bin/env python3
"""The README's two commands: set up if needed, then run the main job or the test suite.

    python3 workbook.py main     # install (first time only), then run the main job
    python3 workbook.py test     # install (first time only), then run every test
    python3 workbook.py lab      # install (first time only), then JupyterLab on your own copies of the notebooks

Needs only Python >= 3.10 and pip. It installs the workbook with ``pip install -e ".[test]"``
into the interpreter that runs it (activate a virtual or conda environment first if you want
one), and skips that step when everything is already installed. Extra arguments after
``test`` go to pytest (``python3 workbook.py test -k sysu``); after ``lab`` to JupyterLab.
"""

from __future__ import annotations

import importlib.metadata as metadata
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _requirements() -> list[str]:
    """Distribution names of pyproject.toml's dependencies and test extra (stdlib parsing only)."""
    text = (HERE / "pyproject.toml").read_text()
    names = []
    for block in re.findall(r"(?:dependencies|test)\s*=\s*\[(.*?)\]", text, flags=re.S):
        names += [re.split(r"[<>=!~ \[]", item)[0] for item in re.findall(r'"([^"]+)"', block)]
    return names


def _installed() -> bool:
    # The environment's own metadata, not the checkout's: from here the script's folder is first on sys.path, and the
    # build's ./vireid.egg-info there (no direct_url.json) would hide the installed record and reinstall every time.
    path = [p for p in sys.path if Path(p or ".").resolve() != HERE]
    records = list(metadata.distributions(name="vireid", path=path))
    try:
        for name in _requirements():
            next(iter(metadata.distributions(name=name, path=path)))
    except StopIteration:
        return False
    # An install from another checkout would import that checkout's code, not this one's.
    return any(HERE.as_uri() in (record.read_text("direct_url.json") or "") for record in records)


def setup() -> None:
    if _installed():
        return
    print("workbook: installing vireid and its dependencies (first run only) ...", flush=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-e", f"{HERE}[test]"], check=True)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("main", "test", "lab"):
        print(__doc__, file=sys.stderr)
        return 2
    setup()
    if argv[0] == "test":
        return subprocess.run([sys.executable, "-m", "pytest", *argv[1:]], cwd=HERE).returncode
    if argv[0] == "lab":  # the notebooks' own copies in workspace/ (ignored by git), not the tracked templates
        return subprocess.run([sys.executable, "-m", "vireid_lib.workspace", *argv[1:]], cwd=HERE).returncode
    return subprocess.run([sys.executable, "-m", "vireid_lib.main", *argv[1:]], cwd=HERE).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
