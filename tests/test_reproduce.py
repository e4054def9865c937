"""``python -m vireid_lib.reproduce``: the plan from the declarations, its estimate, the skip rule, and one smoke run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from vireid_lib import reproduce
from vireid_lib.papers import papers


def test_the_dry_run_plans_every_paper_with_a_notebook_on_every_dataset(capsys: pytest.CaptureFixture) -> None:
    assert reproduce.main(["--dry-run"]) == 0
    text = capsys.readouterr().out
    with_notebooks = {m: p for m, p in papers().items() if p.notebook}
    assert set(with_notebooks) == {"ivreid", "agw", "mmn", "mce", "cst", "star"}
    expected = sum(10 if d == "regdb" else 1 for p in with_notebooks.values() for d in p.datasets)
    assert f"{expected} runs" in text and expected == 46
    assert "cst+mitml" in text and "star+star_baseline" in text and "mce_regdb_trial10" in text
    assert "GPU-hours at an assumed 1000 images/s" in text


def test_the_training_image_estimate_follows_the_recipe() -> None:
    # AGW on SYSU-MM01: 81 epochs x (22,258 visible // (8 x 4) + 1) batches x 32 pairs x 2 views
    assert reproduce.estimated_images("agw", "sysu") == 81 * (22258 // 32 + 1) * 32 * 2
    # MCE's [V, I, CA] batch has three views; STAR's keypoints are no view; video counts frames
    assert reproduce.estimated_images("mce", "sysu") == 160 * (22258 // 32 + 1) * 32 * 3
    assert reproduce.estimated_images("star", "vcm") == 201 * (5460 // 16 + 1) * 16 * 2 * 12


def test_the_smoke_plan_passes_each_notebook_only_what_it_takes() -> None:
    runs = {r.name: r for r in reproduce.plan({}, smoke=True, out_dir="o", results_dir="r")}
    assert "ivreid_regdb_trial1" in runs and "ivreid_regdb_trial2" not in runs  # one RegDB trial in the smoke plan
    assert runs["cst_vcm"].parameters["tube"] == "(2, 2, 1)" and runs["cst_vcm"].parameters["mitml_confusion_epoch"] == 1
    assert "method" not in runs["mmn_sysu"].parameters and runs["agw_sysu"].parameters["method"] == "agw"
    assert "dataset" not in runs["star_vcm"].parameters and "eval_trials" not in runs["star_vcm"].parameters
    assert all(r.parameters["data_root"] == "" and r.parameters["arch"] == "resnet18" for r in runs.values())
    real = reproduce.plan({"regdb": "/data/RegDB"}, only=("mmn",))
    assert [r.trial for r in real] == list(range(1, 11)) and all(r.dataset == "regdb" for r in real)
    with pytest.raises(reproduce.ReproduceError, match="mitml.*not a paper with a notebook"):
        reproduce.plan({}, smoke=True, only=("mitml",))


def test_a_run_counts_as_finished_only_at_the_same_clean_commit_with_its_records(tmp_path: Path) -> None:
    (run,) = reproduce.plan({}, smoke=True, only=("ivreid",), datasets=("regdb",))
    record = tmp_path / "record.json"
    record.write_text("{}")
    ledger = tmp_path / "ledger" / f"{run.name}.json"
    ledger.parent.mkdir()
    ledger.write_text(json.dumps({"commit": "abc", "parameters": run.parameters, "records": [str(record)]}))
    clean = {"sha": "abc", "dirty": False}
    assert reproduce.finished(run, tmp_path, clean)
    assert not reproduce.finished(run, tmp_path, {"sha": "abc", "dirty": True})  # uncommitted code may differ
    assert not reproduce.finished(run, tmp_path, {"sha": "def", "dirty": False})
    run.parameters = {**run.parameters, "epochs": 3}
    assert not reproduce.finished(run, tmp_path, clean)
    run.parameters = {**run.parameters, "epochs": 2}
    record.unlink()
    assert not reproduce.finished(run, tmp_path, clean)


def test_a_smoke_run_executes_the_notebook_writes_its_record_is_then_skipped_and_compares(tmp_path: Path, monkeypatch,
                                                                                   capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    assert reproduce.main(["--smoke", "--only", "ivreid", "--datasets", "regdb", "--out-dir", str(out)]) == 0
    text = capsys.readouterr().out
    assert "[1/1] ivreid_regdb_trial1: done in" in text and "done: 1 ran, 0 skipped, 0 failed" in text
    entry = json.loads((out / "ledger" / "ivreid_regdb_trial1.json").read_text())
    (record,) = [json.loads(Path(p).read_text()) for p in entry["records"]]
    assert record["method"] == "ivreid" and record["dataset"] == "regdb" and record["data_kind"] == "synthetic"
    assert (out / "notebooks" / "ivreid_regdb_trial1.ipynb").is_file()
    # at the same clean commit the finished run is skipped, not run again
    monkeypatch.setattr(reproduce, "git_commit", lambda root: {"sha": entry["commit"], "dirty": False})
    runs = reproduce.plan({}, smoke=True, only=("ivreid",), datasets=("regdb",), out_dir=str(out / "runs"),
                          results_dir=str(out / "results"))
    lines = []
    reproduce.reproduce(runs, out, out / "results", report=lines.append)
    assert runs[0].status.startswith("skipped") and lines == ["1 runs planned, 1 already finished, 0 to run"]
    # the comparison notebook on the records the smoke plan wrote: synthetic numbers only in their own section
    output = tmp_path / "compare.ipynb"
    done = subprocess.run([sys.executable, "-m", "papermill", str(Path(reproduce.__file__).parents[1] / "notebooks" /
                                                                  "compare.ipynb"), str(output), "-p", "results_dir",
                           str(out / "results"), "--no-progress-bar", "--log-level", "ERROR"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    executed = nbformat.read(output, as_version=4)
    text = json.dumps([c.get("outputs", []) for c in executed.cells])
    assert "1 records in" in text and "0 real, 0 custom, 1 synthetic" in text
    assert text.count("_No real records yet._") == 1 and "IV-ReID baseline" in text and "last epoch" in text
    (synthetic,) = [c for c in executed.cells if 'section("synthetic"' in c.source]
    assert sum("image/png" in o.get("data", {}) for o in synthetic.outputs) == 2  # CMC overlay, trial spread
