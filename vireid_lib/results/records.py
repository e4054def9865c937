"""Result records: one JSON file per run, holding everything needed to trust a number.

A record says what was run (paper, method, dataset, the fully resolved configuration), on
what (``data_kind``: ``real`` or ``synthetic``), with what (package versions, git commit,
device, checkpoint path and sha256), how long it took, and what came out: the summary row of
every protocol and direction (mean and std over trials), every trial's row, the mean CMC
curves, and the best-on-test epoch beside the last-epoch result. Records are written
atomically into ``results/`` and never edited; the README's tables are generated from them.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

SCHEMA = 1
DATA_KINDS = ("real", "synthetic")
REQUIRED = ("schema", "paper", "method", "dataset", "data_kind", "created", "rows", "config", "versions")


class RecordError(ValueError):
    """A result record is malformed; the message names the file and the field."""


@dataclass
class RunInfo:
    """What a notebook knows about a run besides its scores."""

    paper: str
    method: str
    dataset: str
    data_kind: str
    config: dict
    device: str = "cpu"
    durations: dict = field(default_factory=dict)
    checkpoint: str | None = None
    best_on_test: dict | None = None
    extra: dict = field(default_factory=dict)  # e.g. the untrained model's rows, the loaded weights' origin


def _versions() -> dict:
    import torch
    import torchvision

    import vireid_lib

    return {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": np.__version__, "vireid": vireid_lib.__version__}


def git_commit(repo: Path | str = ".") -> dict:
    """The commit the code was run from, and whether the work tree had uncommitted changes."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {"sha": None, "dirty": None}
    if sha.returncode != 0:
        return {"sha": None, "dirty": None}
    return {"sha": sha.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def _jsonable(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, Path):
        return str(value)
    return value


def make_record(run: RunInfo, evaluation: object, repo: Path | str = ".") -> dict:
    """A record from a run's description and its :class:`~vireid_lib.eval.Evaluation`."""
    if run.data_kind not in DATA_KINDS:
        raise RecordError(f"data_kind={run.data_kind!r} must be one of {DATA_KINDS}.")
    from ..engine.checkpoint import sha256

    checkpoint = None
    if run.checkpoint is not None and Path(run.checkpoint).is_file():
        checkpoint = {"path": str(run.checkpoint), "sha256": sha256(run.checkpoint)}
    return _jsonable({
        "schema": SCHEMA,
        "paper": run.paper,
        "method": run.method,
        "dataset": run.dataset,
        "data_kind": run.data_kind,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "rows": evaluation.summary.to_dict(orient="records"),
        "per_trial": evaluation.per_trial.to_dict(orient="records"),
        "cmc": {f"{protocol} | {direction}": curve for (protocol, direction), curve in evaluation.cmc.items()},
        "best_on_test": run.best_on_test,
        "config": run.config,
        "versions": _versions(),
        "git": git_commit(repo),
        "device": run.device,
        "durations": run.durations,
        "checkpoint": checkpoint,
        **run.extra,
    })


def write_record(record: dict, results_dir: Path | str = "results") -> Path:
    """Write ``record`` atomically as ``results/<dataset>_<method>_<data_kind>_<time>.json``."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = record["created"].replace(":", "").replace("-", "").replace("+0000", "Z")
    path = results_dir / f"{record['dataset']}_{record['method']}_{record['data_kind']}_{stamp}.json"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return path


def load_records(results_dir: Path | str = "results") -> list[dict]:
    """Every record in ``results_dir``, oldest first; a malformed one is an error naming it."""
    records = []
    for path in sorted(Path(results_dir).glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise RecordError(f"result record {path} is not valid JSON ({err}); restore it from git or delete it.") from err
        missing = [k for k in REQUIRED if k not in record]
        if missing:
            raise RecordError(f"result record {path} lacks {missing}; it was not written by vireid (schema {SCHEMA}).")
        if record["data_kind"] not in DATA_KINDS:
            raise RecordError(f"result record {path}: data_kind={record['data_kind']!r} must be one of {DATA_KINDS}.")
        record["_path"] = str(path)
        records.append(record)
    return sorted(records, key=lambda r: r["created"])
