"""Keep every notebook and its percent-format script (the reviewable source) in step.

    python tools/notebooks.py sync     # after editing either side: bring the other in line, strip outputs
    python tools/notebooks.py check    # fail if a pair differs or a committed .ipynb carries outputs

``sync`` takes, for each pair in ``notebooks/``, whichever file was saved last (an edit in
JupyterLab touches the ``.ipynb``, an edit in an editor the ``.py``), strips outputs and
execution counts, numbers the cells' ids (so an unchanged notebook rewrites to the same
bytes), and writes both files. ``check`` is what the test suite runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
TEXT_FORMAT = "py:percent"


def pairs(folder: Path = NOTEBOOKS) -> list[tuple[Path, Path]]:
    """Every (notebook, script) pair, including halves whose partner is missing."""
    stems = sorted({p.stem for p in folder.glob("*.ipynb")} | {p.stem for p in folder.glob("*.py")})
    return [(folder / f"{stem}.ipynb", folder / f"{stem}.py") for stem in stems]


def _cells(notebook: nbformat.NotebookNode) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", []))) for c in notebook.cells]


def _clean(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    for index, cell in enumerate(notebook.cells):
        cell.id = f"cell-{index:02d}"
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.metadata = {"tags": cell.metadata["tags"]} if cell.metadata.get("tags") else {}
    return notebook


def sync(folder: Path = NOTEBOOKS) -> list[str]:
    """Write both halves of every pair from the newer one; returns what was written."""
    written = []
    for ipynb, script in pairs(folder):
        newer = script if not ipynb.exists() or (script.exists() and script.stat().st_mtime > ipynb.stat().st_mtime) else ipynb
        notebook = _clean(jupytext.read(newer))
        nbformat.write(notebook, ipynb)
        jupytext.write(notebook, script, fmt=TEXT_FORMAT)
        written.append(f"{newer.name} -> {ipynb.name}, {script.name}")
    return written


def problems(folder: Path = NOTEBOOKS) -> list[str]:
    """What is out of step: a missing half, differing cells, outputs in a committed notebook."""
    found = []
    for ipynb, script in pairs(folder):
        if not ipynb.exists() or not script.exists():
            found.append(f"{(ipynb if ipynb.exists() else script).name} has no paired "
                         f"{(script if ipynb.exists() else ipynb).name}: run `python tools/notebooks.py sync`.")
            continue
        notebook = nbformat.read(ipynb, as_version=4)
        if any(c.cell_type == "code" and (c.outputs or c.execution_count) for c in notebook.cells):
            found.append(f"{ipynb.name} carries outputs (saved from JupyterLab?). Exploring: restore the template with "
                         f"`git checkout -- notebooks/{ipynb.stem}.*` and work in your own copy "
                         "(`python3 workbook.py lab`, in workspace/); changing the template: `python tools/notebooks.py "
                         "sync` strips them.")
        text_cells, notebook_cells = _cells(jupytext.read(script)), _cells(notebook)
        if text_cells != notebook_cells:
            differing = next((i for i, (a, b) in enumerate(zip(text_cells, notebook_cells)) if a != b),
                             min(len(text_cells), len(notebook_cells)))
            found.append(f"{ipynb.name} and {script.name} differ from cell {differing} on "
                         f"({len(notebook_cells)} vs {len(text_cells)} cells): edit one, then `python tools/notebooks.py sync`.")
    return found


def main(argv: list[str]) -> int:
    if argv[:1] == ["sync"]:
        print("\n".join(sync()) or "no notebooks")
        return 0
    if argv[:1] == ["check"]:
        found = problems()
        print("\n".join(found) or "every notebook is in step with its script and free of outputs")
        return 1 if found else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
