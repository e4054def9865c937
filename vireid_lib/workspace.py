"""Your own copies of the notebooks, to explore in JupyterLab without touching the workbook's source.

The notebooks in ``notebooks/`` are the workbook's templates: tracked by git, paired with their
``.py`` sources, committed without outputs. JupyterLab autosaves whatever is open, so editing a
template's parameters there would rewrite the tracked files (and mark every record written
afterwards as made from changed code). ``python3 workbook.py lab`` (or ``python -m
vireid_lib.workspace``) copies the templates into ``workspace/`` (ignored by git), never over a
copy that is already there, and starts JupyterLab in that folder: edit, run and save your copies
freely. A copy's ``out_dir`` and ``results_dir`` point into the workspace too, so exploring leaves
``git status`` clean; set ``results_dir = "results"`` in a copy whose run belongs in the README's
tables. ``--refresh NAME`` replaces a copy with the current template.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

from .paths import workbook_root

FOLDER = "workspace"
# Where a copy's runs and records go, so exploring writes nothing git tracks or lists.
COPY_DEFAULTS = {"out_dir": f"{FOLDER}/runs", "results_dir": f"{FOLDER}/results"}
README = """# Your workspace (ignored by git)

Copies of the workbook's notebooks (`notebooks/` holds the templates). Edit, run and save these freely:
their runs and records go to `workspace/runs` and `workspace/results`. Set `results_dir = "results"` in a
copy whose run belongs in the README's tables. `python -m vireid_lib.workspace --refresh mmn` replaces a
copy with the current template.
"""


def workspace(root: Path | None = None) -> Path:
    """The workspace folder of the workbook at ``root`` (default: this workbook)."""
    return (root or workbook_root()) / FOLDER


def prepare(root: Path | None = None, refresh: tuple[str, ...] = ()) -> list[Path]:
    """Copy every template notebook into the workspace unless a copy is there (or its name is in ``refresh``);
    returns the copies written."""
    root = root or workbook_root()
    target = workspace(root)
    target.mkdir(exist_ok=True)
    if not (target / "README.md").exists():
        (target / "README.md").write_text(README)
    written = []
    templates = sorted((root / "notebooks").glob("*.ipynb"))
    unknown = sorted(set(refresh) - {t.stem for t in templates})
    if unknown:
        raise SystemExit(f"--refresh {', '.join(unknown)}: no such notebook; there are "
                         f"{', '.join(t.stem for t in templates)}.")
    for template in templates:
        copy = target / template.name
        if copy.exists() and template.stem not in refresh:
            continue
        write_copy(template, copy)
        written.append(copy)
    return written


def write_copy(template: Path, copy: Path) -> None:
    """The template as a plain notebook (no pairing) whose run folders lie in the workspace."""
    notebook = nbformat.read(template, as_version=4)
    notebook.metadata.pop("jupytext", None)
    for cell in notebook.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            for name, value in COPY_DEFAULTS.items():
                line = f'{name} = "{value}"'
                if re.search(rf"^{name} = ", cell.source, flags=re.M):
                    cell.source = re.sub(rf"^{name} = \"[^\"]*\"", line, cell.source, flags=re.M)
                else:  # a shared parameter the template does not list: the copy lists it, set to the workspace
                    cell.source = cell.source.rstrip("\n") + f"\n{line.ljust(26)} # the workspace's folder"
    nbformat.write(notebook, copy)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vireid_lib.workspace", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--refresh", nargs="+", default=[], metavar="NAME",
                        help="replace these copies with the current templates (e.g. mmn cst_vcm)")
    parser.add_argument("--no-lab", action="store_true", help="only make the copies, do not start JupyterLab")
    args, lab_arguments = parser.parse_known_args(argv)
    written = prepare(refresh=tuple(args.refresh))
    folder = workspace()
    print(f"workspace: {folder} ({len(written)} notebook{'s' if len(written) != 1 else ''} copied from the templates; "
          "copies already there were kept)")
    if args.no_lab:
        return 0
    if shutil.which("jupyter") is None and subprocess.run([sys.executable, "-m", "jupyter", "--version"],
                                                          capture_output=True).returncode != 0:
        print("JupyterLab is not installed in this environment: run `python3 workbook.py lab`, which installs it.",
              file=sys.stderr)
        return 1
    return subprocess.run([sys.executable, "-m", "jupyter", "lab", f"--ServerApp.root_dir={folder}",
                           *lab_arguments]).returncode


if __name__ == "__main__":
    sys.exit(main())
