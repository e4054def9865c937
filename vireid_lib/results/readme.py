"""The README's results tables, generated from ``results/`` (never typed by hand).

``python -m vireid_lib.results readme`` rewrites what lies between the two markers below:
a table of the papers' reported numbers beside the reproduced ones (real-data records only,
the latest per method, dataset, protocol and direction), and, apart and labelled so, the
synthetic smoke runs. Running it twice changes nothing.
"""

from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path

from .records import RecordError, load_records

START = "<!-- vireid:results:start -->"
END = "<!-- vireid:results:end -->"
DATASETS = {"sysu": "SYSU-MM01", "regdb": "RegDB", "vcm": "HITSZ-VCM"}
DIRECTIONS = {"ir2rgb": "IR → VIS", "rgb2ir": "VIS → IR", "v2t": "VIS → T", "t2v": "T → VIS"}


def reported_numbers() -> list[dict]:
    """The papers' reported numbers, from the one data file that holds them."""
    text = resources.files("vireid_lib.results").joinpath("reported.csv").read_text()
    return list(csv.DictReader(text.splitlines()))


def _number(value: object) -> float | None:
    try:
        return None if value in ("", None) else float(value)
    except (TypeError, ValueError):
        return None


def _cell(value: float | None, std: float | None = None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}" + (f" ± {std:.2f}" if std is not None else "")


def _delta(ours: float | None, theirs: float | None) -> str:
    return "—" if ours is None or theirs is None else f"{ours - theirs:+.2f}"


def _latest_rows(records: list[dict], data_kind: str) -> dict[tuple, tuple[dict, dict]]:
    latest: dict[tuple, tuple[dict, dict]] = {}
    for record in records:  # oldest first, so later records win
        if record["data_kind"] != data_kind:
            continue
        for row in record["rows"]:
            if row.get("reranked"):
                continue  # no paper here re-ranks: those rows never stand beside a paper's
            key = (record["method"], record["dataset"], row["protocol"], row["direction"])
            latest[key] = (row, record)
    return latest


def render_tables(records: list[dict]) -> str:
    real = _latest_rows(records, "real")
    lines = [
        "Reported: the paper's own numbers (source in `vireid_lib/results/reported.csv`). Reproduced: this",
        "workbook's latest run on the real dataset, last epoch, mean ± std over trials. Empty cells: not run yet.",
        "",
        "| paper | dataset | protocol | direction | R1 reported | R1 reproduced | Δ R1 | mAP reported | mAP reproduced | Δ mAP | mINP reported | mINP reproduced |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    shown = set()
    for paper in reported_numbers():
        key = (paper["method"], paper["dataset"], paper["protocol"], paper["direction"])
        shown.add(key)
        row = real.get(key, (None, None))[0]
        ours = {m: (_number(row.get(m)), _number(row.get(f"{m}_std"))) if row else (None, None) for m in ("R1", "mAP", "mINP")}
        theirs = {m: _number(paper[m]) for m in ("R1", "mAP", "mINP")}
        printed = {m: paper[m] or "—" for m in ("R1", "mAP", "mINP")}  # as the paper prints it
        lines.append(
            f"| {paper['paper']} | {DATASETS[paper['dataset']]} | {paper['protocol']} | {DIRECTIONS[paper['direction']]} "
            f"| {printed['R1']} | {_cell(*ours['R1'])} | {_delta(ours['R1'][0], theirs['R1'])} "
            f"| {printed['mAP']} | {_cell(*ours['mAP'])} | {_delta(ours['mAP'][0], theirs['mAP'])} "
            f"| {printed['mINP']} | {_cell(*ours['mINP'])} |"
        )
    for key, (row, record) in sorted(real.items()):
        if key not in shown:  # a reproduction without a reported number beside it
            lines.append(
                f"| {record['paper']} | {DATASETS[record['dataset']]} | {row['protocol']} | {DIRECTIONS[row['direction']]} "
                f"| — | {_cell(_number(row['R1']), _number(row.get('R1_std')))} | — "
                f"| — | {_cell(_number(row['mAP']), _number(row.get('mAP_std')))} | — "
                f"| — | {_cell(_number(row['mINP']), _number(row.get('mINP_std')))} |"
            )
    synthetic = _latest_rows(records, "synthetic")
    lines += ["", "**Synthetic smoke runs — not reproductions.** Tiny models on the generated datasets, run to show",
              "that every step works end to end; their numbers say nothing about any paper.", ""]
    if synthetic:
        lines += ["| method | dataset | protocol | direction | R1 | mAP | mINP | trials | epochs | run |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for (method, dataset, protocol, direction), (row, record) in sorted(synthetic.items()):
            lines.append(
                f"| {method} | {DATASETS[dataset]} (synthetic) | {protocol} | {DIRECTIONS[direction]} "
                f"| {_cell(_number(row['R1']))} | {_cell(_number(row['mAP']))} | {_cell(_number(row['mINP']))} "
                f"| {row.get('trials', '—')} | {record['config'].get('epochs', '—')} | `{Path(record['_path']).name}` |"
            )
    else:
        lines.append("(none yet)")
    return "\n".join(lines)


def update_readme(readme: Path | str = "README.md", results_dir: Path | str = "results") -> bool:
    """Rewrite the tables between the markers; True if the README changed."""
    readme = Path(readme)
    text = readme.read_text()
    if START not in text or END not in text or text.index(START) > text.index(END):
        raise RecordError(f"{readme} lacks the markers {START} ... {END}; put them where the tables belong.")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{render_tables(load_records(results_dir))}\n{END}{tail}"
    if new == text:
        return False
    readme.write_text(new)
    return True
