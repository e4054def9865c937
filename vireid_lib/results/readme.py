"""The README's results tables, generated from ``results/`` (never typed by hand).

``python -m vireid_lib.results readme`` rewrites what lies between the two markers below:
a table of the papers' reported numbers beside the reproduced ones (records that say real data
and carry the published split sizes; the latest per method, dataset, protocol and direction,
and on RegDB the latest of each trial, averaged), and, apart and labelled so, the synthetic
smoke runs and runs on custom data. Running it twice changes nothing.
"""

from __future__ import annotations

import csv
import os
from importlib import resources
from pathlib import Path

import numpy as np

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


def reproductions(records: list[dict]) -> tuple[list[dict], list[str]]:
    """The records allowed beside a paper's numbers, and why each other real-claiming record is not.

    A record qualifies when it says ``data_kind: real`` *and* its stored split sizes are the
    dataset's published ones (vireid_lib.data.provenance): a record edited to claim real data,
    or a run on a subset, stays out of the reproduced columns.
    """
    from ..data.provenance import PUBLISHED, is_published

    accepted, refused = [], []
    for record in records:
        if record["data_kind"] != "real":
            continue
        if is_published(record["dataset"], record.get("data_sizes")):
            accepted.append(record)
        else:
            refused.append(f"{record['_path']}: claims real {DATASETS[record['dataset']]} data, but its split sizes "
                           f"{record.get('data_sizes')} are not the published {PUBLISHED[record['dataset']]}; left out.")
    return accepted, refused


def _key(record: dict, row: dict) -> tuple:
    return record["method"], record["dataset"], row["protocol"], row["direction"]


def _reproduced(records: list[dict]) -> dict[tuple, dict]:
    """Per (method, dataset, protocol, direction): the cell values of the reproduced columns.

    SYSU-MM01 and HITSZ-VCM: the latest record (its rows already hold mean and std over trials).
    RegDB: every trial is its own model and record, so the latest record of each trial is taken
    and the trials' values averaged (mean, sample std, and how many trials).
    """
    latest: dict[tuple, dict] = {}
    for record in records:  # oldest first: later records win
        for row in record["rows"]:
            if row.get("reranked"):
                continue  # no paper here re-ranks: those rows never stand beside a paper's
            if record["dataset"] == "regdb":
                latest.setdefault(_key(record, row), {})[record.get("trial")] = (row, record)
            else:
                latest[_key(record, row)] = {None: (row, record)}
    cells = {}
    for key, by_trial in latest.items():
        rows = [row for row, _ in by_trial.values()]
        cell = {"record": by_trial[max(by_trial, key=lambda t: -1 if t is None else t)][1]}
        if key[1] == "regdb":
            for metric in ("R1", "mAP", "mINP"):
                values = [v for v in (_number(r.get(metric)) for r in rows) if v is not None]
                cell[metric] = (float(np.mean(values)) if values else None,
                                float(np.std(values, ddof=1)) if len(values) > 1 else None)
            cell["trials"] = f"{len(rows)} of 10 trials"
        else:
            row = rows[0]
            for metric in ("R1", "mAP", "mINP"):
                cell[metric] = (_number(row.get(metric)), _number(row.get(f"{metric}_std")))
            cell["trials"] = f"{row.get('trials', '?')} trials" if key[1] == "sysu" else "1 run"
        cells[key] = cell
    return cells


def render_tables(records: list[dict]) -> str:
    accepted, _ = reproductions(records)
    real = _reproduced(accepted)
    lines = [
        "Reported: the paper's own numbers (source in `vireid_lib/results/reported.csv`). Reproduced: this",
        "workbook's latest run on the real dataset (published split sizes checked), last epoch, mean ± std over",
        "trials (RegDB: one model per trial, the latest record of each). Empty cells: not run yet.",
        "",
        "| paper | dataset | protocol | direction | R1 reported | R1 reproduced | Δ R1 | mAP reported | mAP reproduced | Δ mAP | mINP reported | mINP reproduced | trials |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    shown = set()
    for paper in reported_numbers():
        key = (paper["method"], paper["dataset"], paper["protocol"], paper["direction"])
        shown.add(key)
        cell = real.get(key)
        ours = {m: cell[m] if cell else (None, None) for m in ("R1", "mAP", "mINP")}
        theirs = {m: _number(paper[m]) for m in ("R1", "mAP", "mINP")}
        printed = {m: paper[m] or "—" for m in ("R1", "mAP", "mINP")}  # as the paper prints it
        lines.append(
            f"| {paper['paper']} | {DATASETS[paper['dataset']]} | {paper['protocol']} | {DIRECTIONS[paper['direction']]} "
            f"| {printed['R1']} | {_cell(*ours['R1'])} | {_delta(ours['R1'][0], theirs['R1'])} "
            f"| {printed['mAP']} | {_cell(*ours['mAP'])} | {_delta(ours['mAP'][0], theirs['mAP'])} "
            f"| {printed['mINP']} | {_cell(*ours['mINP'])} | {cell['trials'] if cell else '—'} |"
        )
    for key, cell in sorted(real.items()):
        if key not in shown:  # a reproduction without a reported number beside it
            record = cell["record"]
            lines.append(
                f"| {record['paper']} | {DATASETS[key[1]]} | {key[2]} | {DIRECTIONS[key[3]]} "
                f"| — | {_cell(*cell['R1'])} | — | — | {_cell(*cell['mAP'])} | — | — | {_cell(*cell['mINP'])} "
                f"| {cell['trials']} |"
            )
    others = [r for r in records if r["data_kind"] in ("synthetic", "custom")]
    lines += ["", "**Synthetic smoke runs and custom data — not reproductions.** Small models on the generated",
              "datasets (or on data without the published split sizes), run to show that every step works end to",
              "end; their numbers say nothing about any paper.", ""]
    latest: dict[tuple, tuple[dict, dict]] = {}
    for record in others:
        for row in record["rows"]:
            latest[(record["method"], record["dataset"], record["data_kind"], row["protocol"], row["direction"],
                    record.get("trial"))] = (row, record)
    if latest:
        lines += ["| method | dataset | protocol | direction | R1 | mAP | mINP | trials | epochs | run |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for (method, dataset, kind, protocol, direction, trial), (row, record) in sorted(latest.items(), key=str):
            epochs = (record["config"].get("train") or {}).get("epochs", "—")
            trials = f"trial {trial}" if dataset == "regdb" and trial is not None else row.get("trials", "—")
            lines.append(
                f"| {method} | {DATASETS[dataset]} ({kind}) | {protocol} | {DIRECTIONS[direction]} "
                f"| {_cell(_number(row['R1']))} | {_cell(_number(row['mAP']))} | {_cell(_number(row.get('mINP')))} "
                f"| {trials} | {epochs} | `{Path(record['_path']).name}` |"
            )
    else:
        lines.append("(none yet)")
    return "\n".join(lines)


def update_readme(readme: Path | str = "README.md", results_dir: Path | str = "results") -> bool:
    """Rewrite the tables between the markers; True if the README changed."""
    readme = Path(readme)
    if not readme.is_file():
        raise RecordError(f"{readme} does not exist; pass the README whose tables to regenerate (--readme).")
    text = readme.read_text()
    if START not in text or END not in text or text.index(START) > text.index(END):
        raise RecordError(f"{readme} lacks the markers {START} ... {END}; put them where the tables belong.")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{render_tables(load_records(results_dir))}\n{END}{tail}"
    if new == text:
        return False
    tmp = readme.with_name(f".{readme.name}.tmp")
    tmp.write_text(new)
    os.replace(tmp, readme)  # a crash mid-write never leaves a half README
    return True
