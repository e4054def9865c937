"""The papers side by side, from the result records (``notebooks/compare.ipynb`` shows these tables).

Every function takes the records (:func:`vireid_lib.results.records.load_records`) and a
``kind`` (``"real"``, ``"synthetic"`` or ``"custom"``): numbers of different data kinds are
never mixed in one table, so a synthetic smoke number cannot stand beside a reported one as if
it were a reproduction. Nor are runs of different configurations (``settings["label"]``: the paper's settings, or
what differs from them, e.g. fewer epochs) ever pooled: each configuration is its own row, with how many runs
(records) and trials it holds. Trials are the unit of spread: SYSU-MM01's ten gallery draws within a
record, RegDB's ten records (one model per trial).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .readme import DATASETS, reported_numbers

METRICS = ("R1", "mAP", "mINP")
KEYS = ["dataset", "protocol", "direction"]


def check_metric(metric: str) -> str:
    """``metric`` if the tables and plots have it; otherwise an error naming the ones they have (a notebook's
    ``metric`` parameter is checked before anything is read or drawn)."""
    if metric not in METRICS:
        raise ValueError(f"metric={metric!r} is not a metric of the comparison; use one of {', '.join(METRICS)} "
                         f"(e.g. -p metric mAP).")
    return metric


def of_kind(records: list[dict], kind: str) -> list[dict]:
    return [r for r in records if r["data_kind"] == kind]


def configuration(record: dict) -> str:
    """The run's configuration in words: "paper settings", or what differs (``settings["label"]``)."""
    return record["settings"]["label"]


def shown_name(record: dict) -> str:
    """The paper's title, followed by what differs from its settings when the run did not use them (plot labels)."""
    return record["paper"] if record["settings"]["paper"] else f"{record['paper']} ({configuration(record)})"


SELECTIONS = {"last": "last epoch", "selected": "official rule (chosen on the test set)"}


def per_trial(records: list[dict], kind: str, selection: str = "last") -> pd.DataFrame:
    """One row per (paper, configuration, record, dataset, protocol, direction, trial): the last epoch's per-trial
    scores (``selection="last"``), or those of the checkpoint the official script's rule selected on the test set
    (``"selected"``, from records that followed that rule)."""
    if selection not in SELECTIONS:
        raise ValueError(f"selection={selection!r} is not one of {tuple(SELECTIONS)}.")
    rows = []
    for number, record in enumerate(of_kind(records, kind)):
        if selection == "selected":
            source = record["per_trial"] if record["selection"].get("on_test_set") else []
        else:
            source = record["last"].get("per_trial") or []
        for row in source:
            trial = record["trial"] if record["trial"] is not None else row.get("trial", 0)
            rows.append({"paper": record["paper"], "method": record["method"], "settings": configuration(record),
                         "record": record.get("_path", number), "dataset": row["dataset"],
                         "protocol": row["protocol"], "direction": row["direction"], "trial": trial,
                         **{m: row.get(m) for m in METRICS}})
    return pd.DataFrame(rows, columns=["paper", "method", "settings", "record", *KEYS, "trial", *METRICS])


def trial_spread(records: list[dict], kind: str) -> pd.DataFrame:
    """:func:`per_trial` (last epoch) for :func:`vireid_lib.viz.plot_trial_spread`, each run under its
    :func:`shown_name`, so runs of another configuration get their own box instead of joining the paper's."""
    names = {record.get("_path", number): shown_name(record) for number, record in enumerate(of_kind(records, kind))}
    trials = per_trial(records, kind)
    return trials.assign(paper=trials["record"].map(names))


def comparison(records: list[dict], kind: str = "real") -> pd.DataFrame:
    """Per dataset, protocol and direction, every paper's mean ± std over trials (last epoch, and the checkpoint its
    script's rule selected on the test set, where the record followed it) beside its reported R1 and mAP; one row per
    configuration (``settings``), with how many runs (records) and trials it pools."""
    parts = []
    for selection, label in SELECTIONS.items():
        trials = per_trial(records, kind, selection)
        if trials.empty:
            continue
        grouped = trials.groupby(["paper", "method", "settings", *KEYS], sort=False)
        table = grouped[list(METRICS)].agg(["mean", "std"])
        table.columns = [f"{m} {s}" for m, s in table.columns]
        table["runs"] = grouped["record"].nunique()
        table["trials"] = grouped.size()
        table["selection"] = label
        parts.append(table.reset_index())
    if not parts:
        return pd.DataFrame(columns=["paper", *KEYS, "settings", "selection", "runs", "trials"])
    table = pd.concat(parts, ignore_index=True)
    reported = pd.DataFrame(reported_numbers())
    reported = reported.assign(**{f"{m} reported": pd.to_numeric(reported[m], errors="coerce") for m in ("R1", "mAP")})
    reported["dataset"] = reported["dataset"].map(DATASETS)
    table = table.merge(reported[["method", *KEYS, "R1 reported", "mAP reported"]], on=["method", *KEYS], how="left")
    for metric in METRICS:
        mean, std = table.pop(f"{metric} mean"), table.pop(f"{metric} std")
        table[metric] = [_mean_std(m, s) for m, s in zip(mean, std)]
    order = ["dataset", "protocol", "direction", "paper", "settings", "selection", "runs", "trials", *METRICS,
             "R1 reported", "mAP reported"]
    table = table[order].sort_values(["dataset", "protocol", "direction", "paper", "settings", "selection"],
                                     kind="stable")
    return table.reset_index(drop=True)


def _mean_std(mean: float, std: float) -> str:
    if mean is None or np.isnan(mean):
        return "—"
    return f"{mean:.2f}" if std is None or np.isnan(std) else f"{mean:.2f} ± {std:.2f}"


def cmc_curves(records: list[dict], kind: str, dataset: str) -> dict[tuple[str, str], np.ndarray]:
    """Each paper's mean CMC curve per (protocol, direction) of ``dataset`` (its display name, e.g. "RegDB"),
    keyed ``(f"{paper} {protocol}", direction)`` for :func:`vireid_lib.viz.plot_cmc`; a run at other settings is its
    own curve, named with what differs (:func:`shown_name`)."""
    gathered: dict[tuple[str, str], list] = {}
    for record in of_kind(records, kind):
        if DATASETS.get(record["dataset"], record["dataset"]) != dataset:
            continue
        for key, curves in record["cmc"].items():
            protocol, _, direction = key.partition(" | ")
            stacked = np.asarray(curves, dtype=float)
            gathered.setdefault((f"{shown_name(record)} {protocol}", direction), []).extend(
                stacked if stacked.ndim == 2 else [stacked])
    return {key: np.mean(curves, axis=0) for key, curves in gathered.items()}


def _exact(value: object) -> object:
    """A number as written, 3.5e-4 as "0.00035" (a table's two decimals would show 0.00), anything else as it is."""
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def configurations(records: list[dict], kind: str) -> pd.DataFrame:
    """What each paper's runs were trained with, side by side, one row per configuration (``settings``): input size,
    epochs, batch, optimiser, lr, network, parameters, records, training time and GPU-hours (training seconds on a
    CUDA device; RegDB's trials summed)."""
    rows = {}
    for record in of_kind(records, kind):
        params, train = record["config"]["params"], record["config"]["train"]
        recipe = params.get("recipe", {})
        key = (record["paper"], record["dataset"], configuration(record))
        seconds = float(record["durations"].get("train_s") or 0.0)
        cuda = str(record.get("device", "")).startswith("cuda")
        row = rows.setdefault(key, {
            "paper": record["paper"], "dataset": record["dataset"], "settings": configuration(record),
            "input": f"{params.get('height', recipe.get('height'))} x {params.get('width', recipe.get('width'))}",
            "frames": recipe.get("seq_len") or "—", "epochs": train.get("epochs"),
            "batch (ids x per modality)": f"{recipe.get('num_ids')} x {recipe.get('num_per_modality')}",
            "optimiser": train.get("optimizer"), "lr": _exact(train.get("lr")), "network": params.get("arch"),
            "parameters (M)": round(record.get("parameters", {}).get("network", 0) / 1e6, 1) or "—",
            "records": 0, "training h": 0.0, "GPU-h": 0.0})
        row["records"] += 1
        row["training h"] = round(row["training h"] + seconds / 3600, 3)
        row["GPU-h"] = round(row["GPU-h"] + (seconds / 3600 if cuda else 0.0), 3)
    return pd.DataFrame(list(rows.values()))
