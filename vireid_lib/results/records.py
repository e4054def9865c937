"""Result records: one JSON file per run, holding everything needed to trust a number.

A record says what was run (paper, method, dataset, the fully resolved configuration), on
what (``data_kind``: ``real`` or ``synthetic``), with what (package versions, git commit,
device, checkpoint path and sha256), how long it took, and what came out: the summary row of
every protocol and direction (mean and std over trials), every trial's row and the mean CMC
curves of what the run reports (``rows``: each row names its ``checkpoint``, the official
rule's kept one or ``"last"``, and its ``epoch``), the same for the last epoch (``last``), and
how the reported checkpoint was chosen (``selection``: the declared rule, every kept checkpoint
with its epoch and selection-test scores, whether the choice was made on the test set).
Records are written atomically into ``results/`` and never edited; the README's tables are
generated from them.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

SCHEMA = 3
DATA_KINDS = ("real", "synthetic", "custom")  # see vireid_lib.data.provenance
DATASETS = ("sysu", "regdb", "vcm")
DIRECTIONS = ("ir2rgb", "rgb2ir", "v2t", "t2v")
METRICS = ("R1", "R5", "R10", "R20", "mAP", "mINP")
# field -> type(s) every record must have
FIELDS = {"schema": int, "paper": str, "method": str, "dataset": str, "data_kind": str, "created": str,
          "rows": list, "config": dict, "versions": dict, "data_sizes": dict, "selection": dict, "last": dict}


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
    selection: dict = field(default_factory=dict)  # how the reported checkpoint was chosen (PaperRun.selection_record)
    last: dict = field(default_factory=dict)  # the last epoch's {"epoch", "rows", "per_trial", "cmc"}
    data_sizes: dict = field(default_factory=dict)  # the measured split sizes (vireid_lib.data.provenance)
    trial: int | None = None  # RegDB: which trial's model this is
    identity: str = ""  # a short hash of the run's identity and training configuration
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
        "created": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
        "data_sizes": run.data_sizes,
        "trial": run.trial,
        "identity": run.identity,
        "rows": evaluation.summary.to_dict(orient="records"),
        "per_trial": evaluation.per_trial.to_dict(orient="records"),
        "cmc": {f"{protocol} | {direction}": curve for (protocol, direction), curve in evaluation.cmc.items()},
        "selection": run.selection,
        "last": run.last,
        "config": run.config,
        "versions": _versions(),
        "git": git_commit(repo),
        "device": run.device,
        "durations": run.durations,
        "checkpoint": checkpoint,
        **run.extra,
    })


def write_record(record: dict, results_dir: Path | str = "results") -> Path:
    """Write ``record`` atomically into ``results_dir`` under a name no other record can take.

    ``<dataset>_<method>_<data kind>[_trialK]_<identity>_<time to the microsecond>_<random>.json``:
    two runs finishing in the same second, or the ten RegDB trials, never overwrite each other.
    """
    import secrets

    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = re.sub(r"[^0-9T]", "", record["created"].split("+")[0])
    parts = [record["dataset"], record["method"], record["data_kind"]]
    if record.get("trial") is not None and record["dataset"] == "regdb":
        parts.append(f"trial{record['trial']}")
    if record.get("identity"):
        parts.append(str(record["identity"]))
    path = results_dir / ("_".join(parts + [stamp, secrets.token_hex(2)]) + ".json")
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return path


def validate(record: object, path: Path | str) -> dict:
    """``record`` checked against the schema; any problem is a :class:`RecordError` naming the file and field."""
    if not isinstance(record, dict):
        raise RecordError(f"result record {path} holds a {type(record).__name__}, not a record object.")
    if record.get("schema") != SCHEMA:
        raise RecordError(f"result record {path}: schema={record.get('schema')!r}, this vireid reads schema {SCHEMA}; "
                          "re-run the notebook to write a current record, or delete this one.")
    for name, kind in FIELDS.items():
        if name not in record:
            raise RecordError(f"result record {path} lacks the field {name!r}; it was not written by vireid (schema {SCHEMA}).")
        if not isinstance(record[name], kind) or isinstance(record[name], bool):
            raise RecordError(f"result record {path}: field {name!r} is a {type(record[name]).__name__}, "
                              f"not a {kind.__name__}.")
    for name, allowed in (("dataset", DATASETS), ("data_kind", DATA_KINDS)):
        if record[name] not in allowed:
            raise RecordError(f"result record {path}: {name}={record[name]!r} must be one of {allowed}.")
    if not record["rows"]:
        raise RecordError(f"result record {path}: 'rows' is empty; a record holds at least one protocol's scores.")
    for index, row in enumerate(record["rows"]):
        where = f"result record {path}: rows[{index}]"
        if not isinstance(row, dict) or not isinstance(row.get("protocol"), str):
            raise RecordError(f"{where} needs a text 'protocol'.")
        if row.get("direction") not in DIRECTIONS:
            raise RecordError(f"{where}: direction={row.get('direction')!r} must be one of {DIRECTIONS}.")
        for metric in METRICS:
            value = row.get(metric)
            if metric in ("R1", "mAP") and value is None:
                raise RecordError(f"{where} lacks {metric!r}.")
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise RecordError(f"{where}: {metric}={value!r} is not a number.")
    if not isinstance(record["config"].get("train"), dict) or not isinstance(record["config"].get("params"), dict):
        raise RecordError(f"result record {path}: 'config' needs the 'params' and 'train' objects the run resolved.")
    return record


def load_records(results_dir: Path | str = "results") -> list[dict]:
    """Every record in ``results_dir``, oldest first; a malformed one is an error naming it."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise RecordError(f"results folder {results_dir} does not exist; pass the folder the notebooks write "
                          "records to (results/ in the workbook root).")
    records = []
    for path in sorted(results_dir.glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise RecordError(f"result record {path} is not valid JSON ({err}); restore it from git or delete it.") from err
        record = validate(record, path)
        record["_path"] = str(path)
        records.append(record)
    return sorted(records, key=lambda r: r["created"])
