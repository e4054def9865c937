"""Result records: one JSON file per run, holding everything needed to trust a number.

A record says what was run (paper, method, dataset, the fully resolved configuration, and
``settings``: whether that was the paper's settings and, if not, which fields differ), on
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

import errno
import json
import os
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..benchmarks import benchmark, benchmarks

SCHEMA = 3
DATA_KINDS = ("real", "synthetic", "custom")  # see vireid_lib.data.provenance
DIRECTIONS = ("ir2rgb", "rgb2ir", "v2t", "t2v")
METRICS = ("R1", "R5", "R10", "R20", "mAP", "mINP")  # percentages: 0..100, as their spread over trials
# field -> type(s) every record must have
FIELDS = {"schema": int, "paper": str, "method": str, "dataset": str, "data_kind": str, "created": str,
          "rows": list, "config": dict, "versions": dict, "data_sizes": dict, "selection": dict, "last": dict,
          "settings": dict}
# settings' parts -> type: {"paper": at the paper's settings, "differs": {field: {"paper", "run"}}, "label": the
# differences in words ("paper settings" when there are none)}
SETTINGS = {"paper": bool, "differs": dict, "label": str}


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


def package_checkout() -> Path:
    """The folder that holds the running ``vireid_lib`` package: the workbook's checkout for an editable install,
    ``site-packages`` for a regular one."""
    import vireid_lib

    return Path(vireid_lib.__file__).resolve().parents[1]


def git_commit(repo: Path | str | None = None) -> dict:
    """The commit the code was run from, and whether the code differed from it.

    ``repo`` defaults to the checkout holding the running package, not the working folder: a notebook run with its
    kernel in another repository must still name the workbook's commit. Where that folder is no git checkout (a pip
    install) there is no commit to name: ``{"sha": None, "dirty": None, "installed": True}``.

    ``changed`` lists the tracked files that differ from the commit; ``parameters_only`` those of them that are
    notebooks whose code cells are the commit's but for the parameters cell (and outputs): a parameter change, which
    the record's configuration already states, not a code change. ``dirty`` is whether any other file changed.
    """
    repo = Path(repo) if repo is not None else package_checkout()
    if not (repo / ".git").exists():  # a file in a git worktree, a folder in a clone
        return {"sha": None, "dirty": None, "installed": True}
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {"sha": None, "dirty": None}
    if sha.returncode != 0:
        return {"sha": None, "dirty": None}
    changed = sorted(line[3:].strip() for line in status.stdout.splitlines() if line.strip())
    parameters = [path for path in changed if _parameters_only(repo, path)]
    return {"sha": sha.stdout.strip(), "dirty": any(path not in parameters for path in changed),
            "changed": changed, "parameters_only": parameters}


def _parameters_only(repo: Path, path: str) -> bool:
    """Whether a changed notebook (``.ipynb``, or a jupytext ``.py`` beside one) has the commit's code cells but for
    the one tagged ``parameters``: an edit of its parameters in JupyterLab, not of its code."""
    file = repo / path
    if file.suffix not in (".ipynb", ".py") or not file.is_file() or (
            file.suffix == ".py" and not file.with_suffix(".ipynb").exists()):
        return False
    import jupytext

    committed = subprocess.run(["git", "show", f"HEAD:{path}"], cwd=repo, capture_output=True, text=True, timeout=10)
    if committed.returncode != 0:
        return False
    try:
        before = jupytext.reads(committed.stdout, fmt=file.suffix[1:] if file.suffix == ".ipynb" else "py:percent")
        after = jupytext.read(file, fmt=None if file.suffix == ".ipynb" else "py:percent")
    except Exception:  # noqa: BLE001 - an unreadable notebook is a code change, whatever broke it
        return False

    def code(notebook) -> list[tuple[str, str]]:
        return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells
                if "parameters" not in cell.metadata.get("tags", [])]

    return code(before) == code(after)


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


def make_record(run: RunInfo, evaluation: object, repo: Path | str | None = None) -> dict:
    """A record from a run's description and its :class:`~vireid_lib.eval.Evaluation`; its ``git`` entry names the
    commit of ``repo`` (default: the workbook checkout this package was imported from, :func:`git_commit`)."""
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


def write_atomic(tmp: Path, path: Path, text: str, what: str) -> None:
    """``text`` into ``path`` through ``tmp`` and a rename: a reader sees the old file or the new one, never half.
    A full disk is a :class:`RecordError` that says so; the temporary file is removed."""
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise RecordError(f"the disk is full: the {what} {path} could not be written "
                          f"({shutil.disk_usage(path.parent).free / 2**20:.0f} MiB free there); "
                          f"{'the previous one is intact. ' if path.exists() else ''}Free some space and run again.") from err
    finally:
        if tmp.exists():
            tmp.unlink()


def per_trial(dataset: str) -> bool:
    """Whether every training trial of ``dataset`` is its own model and record (RegDB's ten)."""
    return dataset in benchmarks() and bool(benchmark(dataset).training_trials)


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
    if record.get("trial") is not None and per_trial(record["dataset"]):
        parts.append(f"trial{record['trial']}")
    if record.get("identity"):
        parts.append(str(record["identity"]))
    path = results_dir / ("_".join(parts + [stamp, secrets.token_hex(2)]) + ".json")
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    write_atomic(tmp, path, json.dumps(record, indent=1, sort_keys=False) + "\n", "result record")
    return path


def created_at(record: dict) -> datetime:
    """When ``record`` was written, as a time: its ``created`` text parsed, so records written under different UTC
    offsets order by when they happened, not by how their text sorts (a time without an offset is taken as UTC)."""
    moment = datetime.fromisoformat(record["created"])
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def _check_scores(rows: object, where: str) -> None:
    """Every metric of ``rows`` is a number in 0..100 (a percentage), every spread over trials at least 0."""
    for index, row in enumerate(rows if isinstance(rows, list) else []):
        if not isinstance(row, dict):
            raise RecordError(f"{where}[{index}] is a {type(row).__name__}, not a row object.")
        for metric in METRICS:
            for name in (metric, f"{metric}_std"):
                value = row.get(name)
                if value is None:
                    continue
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise RecordError(f"{where}[{index}]: {name}={value!r} is not a number.")
                if not 0 <= value <= 100:  # also false for NaN
                    kind = "a spread over trials" if name.endswith("_std") else "a percentage"
                    raise RecordError(f"{where}[{index}] ({row.get('protocol')}, {row.get('direction')}): "
                                      f"{name}={value!r} is impossible for {kind} (0..100); the record was edited or "
                                      "written by a broken run: re-run it, or delete the record.")


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
    for name, allowed in (("dataset", tuple(benchmarks())), ("data_kind", DATA_KINDS)):
        if record[name] not in allowed:
            raise RecordError(f"result record {path}: {name}={record[name]!r} must be one of {allowed}.")
    try:
        created_at(record)
    except ValueError as err:
        raise RecordError(f"result record {path}: created={record['created']!r} is not an ISO time "
                          "(e.g. 2026-01-01T10:00:00+00:00); the tables take the latest record by it.") from err
    for name, kind in SETTINGS.items():
        if not isinstance(record["settings"].get(name), kind):
            raise RecordError(f"result record {path}: settings[{name!r}]={record['settings'].get(name)!r} is not a "
                              f"{kind.__name__}; 'settings' holds paper (true or false), differs and label.")
    if not record["rows"]:
        raise RecordError(f"result record {path}: 'rows' is empty; a record holds at least one protocol's scores.")
    for index, row in enumerate(record["rows"]):
        where = f"result record {path}: rows[{index}]"
        if not isinstance(row, dict) or not isinstance(row.get("protocol"), str):
            raise RecordError(f"{where} needs a text 'protocol'.")
        if row.get("direction") not in DIRECTIONS:
            raise RecordError(f"{where}: direction={row.get('direction')!r} must be one of {DIRECTIONS}.")
        for metric in ("R1", "mAP"):
            if row.get(metric) is None:
                raise RecordError(f"{where} lacks {metric!r}.")
    for name, rows in (("rows", record["rows"]), ("last.rows", record["last"].get("rows")),
                       ("per_trial", record.get("per_trial"))):
        _check_scores(rows, f"result record {path}: {name}")
    if not isinstance(record["config"].get("train"), dict) or not isinstance(record["config"].get("params"), dict):
        raise RecordError(f"result record {path}: 'config' needs the 'params' and 'train' objects the run resolved.")
    return record


def load_records(results_dir: Path | str = "results") -> list[dict]:
    """Every record in ``results_dir``, oldest first by the time each was written (:func:`created_at`); a malformed
    one is an error naming it."""
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
    return sorted(records, key=created_at)
