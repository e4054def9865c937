#!/usr/bin/env python3
"""The README's two commands: set up if needed, then run the main job or the test suite.

    python3 workbook.py main     # install (first time only), then run the main job
    python3 workbook.py test     # install (first time only), then run every test

Needs only Python >= 3.10 and pip. It installs the workbook with ``pip install -e ".[test]"``
into the interpreter that runs it (activate a virtual or conda environment first if you want
one), and skips that step when everything is already installed. Extra arguments after
``test`` go to pytest (``python3 workbook.py test -k sysu``).
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
    try:
        location = metadata.distribution("vireid").read_text("direct_url.json") or ""
        for name in _requirements():
            metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    # An install from another checkout would import that checkout's code, not this one's.
    return HERE.as_uri() in location


def setup() -> None:
    if _installed():
        return
    print("workbook: installing vireid and its dependencies (first run only) ...", flush=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-e", f"{HERE}[test]"], check=True)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("main", "test"):
        print(__doc__, file=sys.stderr)
        return 2
    setup()
    if argv[0] == "test":
        return subprocess.run([sys.executable, "-m", "pytest", *argv[1:]], cwd=HERE).returncode
    return subprocess.run([sys.executable, "-m", "vireid_lib.main", *argv[1:]], cwd=HERE).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
