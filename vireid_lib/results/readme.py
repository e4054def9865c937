"""The README's results tables, generated from ``results/`` (never typed by hand).

``python -m vireid_lib.results readme`` rewrites what lies between the two markers below:
a table of the papers' reported numbers beside the reproduced ones (records that say real data,
carry the published split sizes and ran at the paper's settings; the latest per method, dataset,
protocol and direction, and on RegDB the latest of each trial, averaged), then, apart and
labelled so, real runs at other settings (each naming what differs from the paper's), and the
synthetic smoke runs and runs on custom data. A reproduced number stands beside the paper's only
when it was chosen by the same rule (the checkpoint the official script's selection keeps, or the
authors' own file); the last epoch's number is shown beside it. "Latest" is by the time each
record was written (:func:`~.records.created_at`). Running it twice changes nothing.
"""

from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path

import numpy as np

from ..benchmarks import benchmark, benchmarks, names
from ..text import count
from .records import RecordError, per_trial, created_at, load_records, write_atomic

START = "<!-- vireid:results:start -->"
END = "<!-- vireid:results:end -->"

DATASETS = names()  # key -> the name tables print
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
    from ..data.provenance import is_published, published

    accepted, refused = [], []
    for record in records:
        if record["data_kind"] != "real":
            continue
        reader = benchmark(record["dataset"]).reader
        if is_published(reader, record.get("data_sizes")):
            accepted.append(record)
        else:
            refused.append(f"{record['_path']}: claims real {DATASETS[record['dataset']]} data, but its split sizes "
                           f"{record.get('data_sizes')} are not the published {published(reader)}; left out.")
    return accepted, refused


def at_paper_settings(record: dict) -> bool:
    """Whether the run used the paper's settings (every recipe value, the pretrained backbone, all epochs, the
    official epoch length, every evaluation trial): only such a run can stand beside the paper's number."""
    return record["settings"]["paper"] is True


def _key(record: dict, row: dict) -> tuple:
    return record["method"], record["dataset"], row["protocol"], row["direction"]


def same_rule(record: dict) -> bool:
    """Whether a record's rows were chosen by the paper's own rule: the checkpoints its script's selection keeps
    (``selection: official``, every row from a kept checkpoint; a paper whose script keeps none reports its last
    epoch), or the authors' file. A run that followed the rule but never reached a scheduled test reports its last
    epoch, which the rule did not choose."""
    selection = record["selection"]
    if selection.get("selection") == "loaded":
        return True
    if selection.get("selection") != "official":
        return False
    if (selection.get("rule") or {}).get("keeps") == []:
        return True
    return all(row.get("checkpoint") not in (None, "last") for row in record["rows"])


def _last_rows(record: dict) -> list[dict]:
    return [] if record["selection"].get("selection") == "loaded" else record["last"].get("rows") or []


def _reproduced(records: list[dict], rows_of=lambda record: record["rows"]) -> dict[tuple, dict]:
    """Per (method, dataset, protocol, direction): the cell values of the reproduced columns, from the rows
    ``rows_of(record)`` gives (the reported rows, or the last epoch's).

    SYSU-MM01 and HITSZ-VCM: the latest record (its rows already hold mean and std over trials).
    RegDB: every trial is its own model and record, so the latest record of each trial is taken
    and the trials' values averaged (mean, sample std, and how many trials).
    """
    latest: dict[tuple, dict] = {}
    for record in records:  # oldest first: later records win
        for row in rows_of(record):
            if row.get("reranked"):
                continue  # no paper here re-ranks: those rows never stand beside a paper's
            if per_trial(record["dataset"]):
                latest.setdefault(_key(record, row), {})[record.get("trial")] = (row, record)
            else:
                latest[_key(record, row)] = {None: (row, record)}
    cells = {}
    for key, by_trial in latest.items():
        rows = [row for row, _ in by_trial.values()]
        cell = {"record": by_trial[max(by_trial, key=lambda t: -1 if t is None else t)][1],
                "checkpoint": _checkpoints([(row, record) for row, record in by_trial.values()])}
        if per_trial(key[1]):
            for metric in ("R1", "mAP", "mINP"):
                values = [v for v in (_number(r.get(metric)) for r in rows) if v is not None]
                cell[metric] = (float(np.mean(values)) if values else None,
                                float(np.std(values, ddof=1)) if len(values) > 1 else None)
            cell["trials"] = f"{len(rows)} of {len(benchmark(key[1]).training_trials)} trials"
        else:
            row = rows[0]
            for metric in ("R1", "mAP", "mINP"):
                cell[metric] = (_number(row.get(metric)), _number(row.get(f"{metric}_std")))
            trials = row.get("trials")
            cell["trials"] = (count(int(trials), "trial") if isinstance(trials, (int, float)) else "? trials") \
                if benchmark(key[1]).gallery_trials > 1 else "1 run"
        cells[key] = cell
    return cells


def _checkpoints(rows: list[tuple[dict, dict]]) -> str:
    """Which checkpoint the rows come from, e.g. ``rank1, epoch 57 of 81`` (RegDB: the trials' epoch range)."""
    names = sorted({str(row.get("checkpoint", "?")) for row, _ in rows})
    if names == ["loaded"]:
        return "the authors' file"
    epochs = sorted({row["epoch"] for row, _ in rows if row.get("epoch") is not None})
    planned = sorted({(record["config"].get("train") or {}).get("epochs") for _, record in rows} - {None})
    span = "?" if not epochs else str(epochs[0]) if len(epochs) == 1 else f"{epochs[0]}-{epochs[-1]}"
    return f"{'/'.join(names)}, epoch {span}" + (f" of {planned[-1]}" if planned else "")


def _latest_rows(records: list[dict], key) -> dict[tuple, tuple[dict, dict]]:
    """Per ``key(record, row)``, the latest record's row and the record (``records`` oldest first: later ones win)."""
    latest: dict[tuple, tuple[dict, dict]] = {}
    for record in records:
        for row in record["rows"]:
            latest[key(record, row)] = (row, record)
    return latest


def _run_cells(row: dict, record: dict) -> str:
    """One run's scores as table cells: R1, mAP, mINP, its trials (RegDB: which one) and checkpoint."""
    trial = record.get("trial")
    trials = f"trial {trial}" if per_trial(record["dataset"]) and trial is not None else row.get("trials", "—")
    return (f"| {_cell(_number(row['R1']))} | {_cell(_number(row['mAP']))} | {_cell(_number(row.get('mINP')))} "
            f"| {trials} | {_checkpoints([(row, record)])} |")


def _smoke_size(record: dict) -> str:
    """What a smoke number was trained with, as table cells: the network, the input size (height x width) and the
    training steps, e.g. ``resnet18 | 64 x 32 | 2 x 2 = 4`` ("full" epochs: the official epoch length)."""
    config = record.get("config") or {}
    params, train, transform = (config.get(part) or {} for part in ("params", "train", "transform"))
    height, width = (transform.get(side) or params.get(side) for side in ("height", "width"))
    size = f"{height} x {width}" if height and width else "—"
    epochs, batches = train.get("epochs"), params.get("batches_per_epoch")
    steps = "—" if not epochs else f"{epochs} x {batches} = {epochs * batches}" if batches else f"{epochs} x full"
    return f"{params.get('arch') or '—'} | {size} | {steps}"


def render_tables(records: list[dict]) -> str:
    records = sorted(records, key=created_at)  # oldest first, by time: the latest record wins every cell
    accepted, _ = reproductions(records)
    paper_settings = [r for r in accepted if at_paper_settings(r)]
    real = _reproduced([r for r in paper_settings if same_rule(r)])
    last = _reproduced(paper_settings, _last_rows)
    lines = [
        "Reported: the paper's own numbers (source in `vireid_lib/results/reported.csv`). Same rule: this workbook's",
        "latest run on the real dataset (published split sizes checked) at the paper's settings (every recipe value,",
        "pretrained backbone, all epochs, every trial), scored with the checkpoint the paper's official script keeps",
        "(its rule in the recipes table below; chosen on the test set, as the paper did), or with the authors'",
        "released file; Δ = same rule - reported. Last: the same run's last epoch. Mean ± std over trials (RegDB:",
        "one model per trial, the latest record of each). Empty cells: not run yet.",
        "",
        "| paper | dataset | protocol | direction | R1 reported | R1 same rule | Δ R1 | R1 last | mAP reported | "
        "mAP same rule | Δ mAP | mAP last | mINP reported | mINP same rule | checkpoint | trials |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    shown = set()
    for paper in reported_numbers():
        key = (paper["method"], paper["dataset"], paper["protocol"], paper["direction"])
        shown.add(key)
        lines.append(_row(paper["paper"], key, real.get(key), last.get(key), paper))
    for key in sorted(set(real) | set(last)):
        if key not in shown:  # a reproduction without a reported number beside it
            cell = real.get(key) or last.get(key)
            lines.append(_row(cell["record"]["paper"], key, real.get(key), last.get(key), None))
    lines += ["", "**Real data at other settings — not the paper's numbers.** Runs on the real datasets (published",
              "split sizes) whose settings differ from the paper's (e.g. a smaller network, fewer epochs, another",
              "optimiser); each row names what differs. The latest run of each configuration.", ""]
    other = _latest_rows([r for r in accepted if not at_paper_settings(r)],
                         lambda record, row: (record["method"], record["dataset"], row["protocol"], row["direction"],
                                              record["settings"]["label"], record.get("trial")))
    if other:
        lines += ["| paper | dataset | protocol | direction | R1 | mAP | mINP | trials | checkpoint | "
                  "settings (what differs from the paper's) | run |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for (_, dataset, protocol, direction, label, _), (row, record) in sorted(other.items(), key=str):
            lines.append(f"| {record['paper']} | {DATASETS[dataset]} | {protocol} | {DIRECTIONS[direction]} "
                         f"{_run_cells(row, record)} {label.replace('|', '/')} | `{Path(record['_path']).name}` |")
    else:
        lines.append("(none yet)")
    lines += ["", "**Synthetic smoke runs and custom data — not reproductions.** Small models on the generated",
              "datasets (or on data without the published split sizes), run to show that every step works end to",
              "end; their numbers say nothing about any paper.", ""]
    latest = _latest_rows([r for r in records if r["data_kind"] in ("synthetic", "custom")],
                          lambda record, row: (record["method"], record["dataset"], record["data_kind"],
                                               row["protocol"], row["direction"], record.get("trial")))
    if latest:
        lines += ["| paper | dataset | protocol | direction | R1 | mAP | mINP | trials | checkpoint | network | input | "
                  "training steps (epochs x batches) | run |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for (_, dataset, kind, protocol, direction, _), (row, record) in sorted(latest.items(), key=str):
            lines.append(f"| {record['paper']} | {DATASETS[dataset]} ({kind}) | {protocol} | {DIRECTIONS[direction]} "
                         f"{_run_cells(row, record)} {_smoke_size(record)} | `{Path(record['_path']).name}` |")
    else:
        lines.append("(none yet)")
    return "\n".join(lines)


def _replace_block(text: str, start: str, end: str, content: str, readme: Path) -> str:
    if start not in text or end not in text or text.index(start) > text.index(end):
        raise RecordError(f"{readme} lacks the markers {start} ... {end}; put them where the table belongs.")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{content}\n{end}{tail}"


def _row(paper: str, key: tuple, cell: dict | None, last: dict | None, reported: dict | None) -> str:
    metrics = ("R1", "mAP", "mINP")
    ours = {m: cell[m] if cell else (None, None) for m in metrics}
    before = {m: last[m] if last else (None, None) for m in metrics}
    theirs = {m: _number(reported[m]) if reported else None for m in metrics}
    printed = {m: (reported[m] or "—") if reported else "—" for m in metrics}  # as the paper prints it
    trials = (cell or last or {}).get("trials", "—")
    return (f"| {paper} | {DATASETS[key[1]]} | {key[2]} | {DIRECTIONS[key[3]]} "
            f"| {printed['R1']} | {_cell(*ours['R1'])} | {_delta(ours['R1'][0], theirs['R1'])} | {_cell(*before['R1'])} "
            f"| {printed['mAP']} | {_cell(*ours['mAP'])} | {_delta(ours['mAP'][0], theirs['mAP'])} | {_cell(*before['mAP'])} "
            f"| {printed['mINP']} | {_cell(*ours['mINP'])} | {cell['checkpoint'] if cell else '—'} | {trials} |")


def update_readme(readme: Path | str = "README.md", results_dir: Path | str = "results") -> bool:
    """Rewrite the results tables between their markers, and the recipes table and the reproduce plan between their
    own where the README has them (:mod:`.recipes`, :func:`vireid_lib.reproduce.render_plan`); True if the README
    changed."""
    from .recipes import END as RECIPES_END
    from .recipes import START as RECIPES_START
    from .recipes import render_recipes

    readme = Path(readme)
    if not readme.is_file():
        raise RecordError(f"{readme} does not exist; pass the README whose tables to regenerate (--readme).")
    text = readme.read_text()
    new = _replace_block(text, START, END, render_tables(load_records(results_dir)), readme)
    if RECIPES_START in new or RECIPES_END in new:
        new = _replace_block(new, RECIPES_START, RECIPES_END, render_recipes(), readme)
    from ..reproduce import PLAN_END, PLAN_START, render_plan  # the plan's runs and GPU-hours, from the declarations

    if PLAN_START in new or PLAN_END in new:
        new = _replace_block(new, PLAN_START, PLAN_END, render_plan(), readme)
    if new == text:
        return False
    # a crash mid-write never leaves a half README
    write_atomic(readme.with_name(f".{readme.name}.tmp"), readme, new, "README")
    return True
