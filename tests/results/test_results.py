"""Result records and the README tables generated from them."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from vireid_lib.data import RegDB
from vireid_lib.eval import run_regdb
from vireid_lib.results import END, START, RecordError, RunInfo, load_records, make_record, render_tables, update_readme, write_record

ROOT = Path(__file__).resolve().parents[2]


def evaluation(root: Path):
    rng = np.random.default_rng(0)

    def extract(records):
        return np.stack([np.eye(64)[r.pid % 64] + 0.8 * rng.normal(size=64) for r in records])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_regdb(RegDB(root), lambda trial: extract, trials=[1, 2])


def test_record_round_trip(synthetic_regdb: Path, tmp_path: Path) -> None:
    checkpoint = tmp_path / "last.pt"
    checkpoint.write_bytes(b"weights")
    run = RunInfo("AGW", "agw", "regdb", "synthetic", {"params": {}, "train": {"epochs": 3, "lr": 0.1}},
                  checkpoint=str(checkpoint), durations={"train_s": 1.5}, best_on_test={"epoch": 2, "metrics": {"mAP": 0.4}},
                  data_sizes={"train_ids": 8}, trial=2, identity="abc123")
    record = make_record(run, evaluation(synthetic_regdb), repo=ROOT)
    path = write_record(record, tmp_path / "results")
    assert path.name.startswith("regdb_agw_synthetic_trial2_abc123_") and not list((tmp_path / "results").glob(".*tmp*"))
    (loaded,) = load_records(tmp_path / "results")
    assert loaded["rows"] == json.loads(json.dumps(record["rows"]))
    assert [row["direction"] for row in loaded["rows"]] == ["v2t", "t2v"] and loaded["rows"][0]["trials"] == 2
    assert len(loaded["cmc"]["standard | v2t"]) == 20
    assert loaded["checkpoint"]["sha256"] == __import__("hashlib").sha256(b"weights").hexdigest()
    assert set(loaded["versions"]) >= {"python", "torch", "torchvision", "numpy", "vireid"}
    assert len(loaded["git"]["sha"] or "") in (0, 40)
    with pytest.raises(RecordError, match="data_kind='fake'"):
        make_record(RunInfo("AGW", "agw", "regdb", "fake", {}), evaluation(synthetic_regdb))


def crafted(method: str, dataset: str, kind: str, created: str, rows: list[dict]) -> dict:
    from vireid_lib.data.provenance import PUBLISHED

    return {"schema": 2, "paper": method.upper(), "method": method, "dataset": dataset, "data_kind": kind, "created": created,
            "rows": rows, "config": {"params": {}, "train": {"epochs": 2}}, "versions": {},
            "data_sizes": PUBLISHED[dataset] if kind == "real" else {}, "trial": 1 if dataset == "regdb" else None}


def row(protocol: str, direction: str, r1: float, map_: float, minp: float) -> dict:
    return {"protocol": protocol, "direction": direction, "reranked": False, "trials": 10, "R1": r1, "R1_std": 1.0,
            "mAP": map_, "mAP_std": 0.5, "mINP": minp, "mINP_std": 0.25}


def test_tables_put_real_runs_beside_the_papers_and_synthetic_runs_apart(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    write_record(crafted("agw", "regdb", "real", "2026-01-01T00:00:00+00:00", [row("standard", "v2t", 60.0, 60.0, 40.0)]), results)
    write_record(crafted("agw", "regdb", "real", "2026-02-01T00:00:00+00:00", [row("standard", "v2t", 71.05, 65.37, 51.19)]), results)
    write_record(crafted("agw", "sysu", "synthetic", "2026-03-01T00:00:00+00:00",
                         [row("all-search, single-shot", "ir2rgb", 99.0, 98.0, 97.0)]), results)
    table = render_tables(load_records(results))
    real_part, synthetic_part = table.split("Synthetic smoke runs")
    # the latest real record of the trial, beside AGW's reported 70.05 / 66.37 / 50.19 (one trial: no spread yet)
    assert ("| AGW | RegDB | standard | VIS → T | 70.05 | 71.05 | +1.00 | 66.37 | 65.37 | -1.00 | 50.19 | 51.19 "
            "| 1 of 10 trials |") in real_part
    assert "60.00" not in table
    # the synthetic run never stands beside a paper's number
    assert "99.00" not in real_part and "| agw | SYSU-MM01 (synthetic) | all-search, single-shot | IR → VIS | 99.00 |" in synthetic_part
    assert "| AGW | SYSU-MM01 | all-search, single-shot | IR → VIS | 47.50 | — | — |" in real_part


def test_readme_regeneration_is_idempotent_and_needs_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# t\n\nbefore\n{START}\nstale table\n{END}\nafter\n")
    (tmp_path / "results").mkdir()
    assert update_readme(readme, tmp_path / "results") is True
    once = readme.read_text()
    assert "stale table" not in once and once.startswith("# t\n\nbefore\n") and once.endswith("after\n")
    assert update_readme(readme, tmp_path / "results") is False and readme.read_text() == once
    readme.write_text("no markers here")
    with pytest.raises(RecordError, match="lacks the markers"):
        update_readme(readme, tmp_path / "results")


def test_malformed_records_are_named(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(RecordError, match="broken.json is not valid JSON"):
        load_records(tmp_path)
    (tmp_path / "broken.json").write_text(json.dumps({"schema": 2}))
    with pytest.raises(RecordError, match="broken.json lacks"):
        load_records(tmp_path)


def test_the_committed_readme_tables_match_the_committed_records() -> None:
    """The README's tables are generated, never typed: they must equal what the command writes."""
    text = (ROOT / "README.md").read_text()
    current = text.split(START, 1)[1].split(END, 1)[0].strip()
    assert current == render_tables(load_records(ROOT / "results")).strip()
    done = subprocess.run([sys.executable, "-m", "vireid_lib.results", "readme", "--readme", str(ROOT / "README.md"),
                           "--results", str(ROOT / "results")], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and "already up to date" in done.stdout
