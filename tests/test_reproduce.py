"""``python -m vireid_lib.reproduce``: the plan from the declarations, its estimate, the skip rule, and the whole smoke
plan, run once (the session fixture ``smoke_plan``) with the comparison notebook on its records."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from tests import helpers
from vireid_lib import reproduce
from vireid_lib.papers import papers


def test_the_dry_run_plans_every_paper_with_a_notebook_on_every_dataset(capsys: pytest.CaptureFixture) -> None:
    assert reproduce.main(["--dry-run"]) == 0
    text = capsys.readouterr().out
    with_notebooks = {m: p for m, p in papers().items() if p.notebook}
    assert {"ivreid", "agw", "mmn", "mce", "cst", "star"} <= set(with_notebooks)  # a new paper adds to them
    expected = sum(10 if d == "regdb" else 1 for p in with_notebooks.values() for d in p.datasets)
    assert f"{expected} runs" in text
    assert "cst+mitml" in text and "star+star_baseline" in text and "mce_regdb_trial10" in text
    assert "GPU-hours at an assumed 1000 images/s" in text
    # the per-paper sums add up to the plan: every run counted once, under its own paper
    per_paper = {line.split()[0]: line.split() for line in text.splitlines() if line.startswith("  ") and "GPU-h" in line}
    assert set(per_paper) == set(with_notebooks)
    assert sum(int(row[1]) for row in per_paper.values()) == expected
    total = sum(reproduce.estimated_images(m, d) for p in with_notebooks.values() for d in p.datasets
                for m in (p.method, *p.trains_also) for _ in range(10 if d == "regdb" else 1))
    assert sum(int(row[3].replace(",", "")) for row in per_paper.values()) == total
    # MMN: SYSU-MM01, each of RegDB's 10 trials and LLCM; STAR: HITSZ-VCM and BUPTCampus
    assert int(per_paper["mmn"][1]) == 1 + 10 + 1 and int(per_paper["star"][1]) == 2


def test_the_training_image_estimate_follows_the_recipe() -> None:
    # AGW on SYSU-MM01: 81 epochs x (22,258 visible // (8 x 4) + 1) batches x 32 pairs x 2 views
    assert reproduce.estimated_images("agw", "sysu") == 81 * (22258 // 32 + 1) * 32 * 2
    # MCE's [V, I, CA] batch has three views; STAR's keypoints are no view; video counts frames
    assert reproduce.estimated_images("mce", "sysu") == 160 * (22258 // 32 + 1) * 32 * 3
    # STAR's (and MITML's) sampler: int(min(5,460 visible, 4,291 infrared tracklets) / (8 x 2)) batches
    assert reproduce.estimated_images("star", "vcm") == 201 * (4291 // 16) * 16 * 2 * 12
    # CST: 4 identities x 2 tracklets, two visible views and one infrared, S = 14 (its own SE gate per frame)
    assert reproduce.estimated_images("cst", "vcm") == 200 * (4291 // 8) * 8 * 3 * 14


def test_the_smoke_plan_passes_each_notebook_only_what_it_takes() -> None:
    runs = {r.name: r for r in reproduce.plan({}, smoke=True, out_dir="o", results_dir="r")}
    assert "ivreid_regdb_trial1" in runs and "ivreid_regdb_trial2" not in runs  # one RegDB trial in the smoke plan
    assert runs["cst_vcm"].parameters["tube"] == "(2, 2, 1)" and runs["cst_vcm"].parameters["mitml_confusion_epoch"] == 1
    assert "method" not in runs["mmn_sysu"].parameters and runs["agw_sysu"].parameters["method"] == "agw"
    assert runs["star_vcm"].parameters["dataset"] == "vcm" and runs["star_bupt"].parameters["dataset"] == "bupt"
    assert all(r.parameters["data_root"] == "" and r.parameters["arch"] == "resnet18" for r in runs.values())
    # every setting a declaration adds reaches its notebook (a misspelt one would be dropped), per dataset where given
    for run in runs.values():
        declared = papers()[run.method].smoke
        wanted = {k: v for k, v in {**declared, **declared.get(run.dataset, {})}.items() if k not in reproduce.DATASETS}
        assert wanted.items() <= run.parameters.items(), run.name
    assert runs["mmn_regdb_trial1"].parameters["fix_dc_head"] is True
    assert "fix_dc_head" not in runs["mmn_sysu"].parameters  # the official frozen head
    assert runs["mmn_sysu"].parameters["epochs"] == 10 and runs["mmn_regdb_trial1"].parameters["epochs"] == 2
    assert runs["mce_sysu"].parameters["eval_first"] == 2 and runs["mce_regdb_trial1"].parameters["eval_first"] == 1
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


# ------------------------------------------------------------------ the smoke plan, run once (tests/conftest.py)

def test_the_smoke_plan_runs_every_planned_notebook_once_and_records_every_model(smoke_plan) -> None:
    out = smoke_plan.out_dir
    planned = helpers.ci_plan(out_dir=str(out / "runs"), results_dir=str(out / "results"))
    assert smoke_plan.returncode == 0 and f"done: {len(planned)} ran, 0 skipped, 0 failed" in smoke_plan.output, \
        smoke_plan.output[-3000:]
    for number, run in enumerate(planned, 1):
        assert f"[{number}/{len(planned)}] {run.name}: done in" in smoke_plan.output
        entry = smoke_plan.ledger(run.name)
        assert entry["parameters"] == run.parameters  # the declarations' smoke settings reached the notebook
        assert entry["notebook"] == str(out / "notebooks" / f"{run.name}.ipynb") and Path(entry["notebook"]).is_file()
        assert len(entry["records"]) == len(run.models)
        assert all(Path(p).parent == out / "results" for p in entry["records"])
    assert len(list((out / "results").glob("*.json"))) == sum(len(r.models) for r in planned)
    assert not (out / "logs").exists()  # only failed runs leave a log


def test_a_second_invocation_skips_the_finished_runs(smoke_plan, monkeypatch, capsys: pytest.CaptureFixture) -> None:
    ledger = smoke_plan.out_dir / "ledger" / "ivreid_regdb_trial1.json"
    entry = smoke_plan.ledger("ivreid_regdb_trial1")
    before = ledger.read_bytes(), Path(entry["notebook"]).stat().st_mtime_ns
    # The same command again at the commit the plan ran from, clean (a work tree with uncommitted edits reruns every
    # run, as test_a_run_counts_as_finished_only_at_the_same_clean_commit_with_its_records checks); only IV-ReID on
    # RegDB, to keep it quick.
    monkeypatch.setattr(reproduce, "git_commit", lambda root: {"sha": entry["commit"], "dirty": False})
    assert reproduce.main([*smoke_plan.command[3:], "--only", "ivreid", "--datasets", "regdb"]) == 0
    text = capsys.readouterr().out
    assert "1 run planned, 1 already finished, 0 to run" in text and "done: 0 ran, 1 skipped, 0 failed" in text
    assert (ledger.read_bytes(), Path(entry["notebook"]).stat().st_mtime_ns) == before  # nothing was run or rewritten


def test_the_comparison_notebook_puts_every_smoke_record_in_the_synthetic_section(smoke_plan) -> None:
    assert not smoke_plan.compare_error, smoke_plan.compare_error
    planned = helpers.ci_plan()
    models = [m for run in planned for m in run.models]
    executed = nbformat.read(smoke_plan.compare, as_version=4)
    text = json.dumps([c.get("outputs", []) for c in executed.cells])
    assert f"{len(models)} records in" in text and f"0 real, 0 custom, {len(models)} synthetic" in text
    assert text.count("_No real records yet._") == 1 and text.count("_No custom records yet._") == 1
    (synthetic,) = [c for c in executed.cells if 'section("synthetic"' in c.source]
    tables = [o["data"]["text/html"] for o in synthetic.outputs if "text/html" in o.get("data", {})]
    comparison = next(t for t in tables if "official rule" in t)  # last epoch and, where kept, the script's choice
    assert "last epoch" in comparison and all(f">{papers()[m].title}<" in comparison for m in models)
    # a CMC overlay per dataset, then the trial spread
    assert sum("image/png" in o.get("data", {}) for o in synthetic.outputs) == len({r.dataset for r in planned}) + 1


def test_the_readme_gives_the_cst_smoke_parameters_the_plan_passes() -> None:
    """The README's CI hint for CST is copied by hand: every parameter the smoke plan passes must be in it."""
    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    (run,) = [r for r in reproduce.plan({}, smoke=True, out_dir="o", results_dir="r") if r.name == "cst_vcm"]
    hint = readme[readme.index("--smoke --only cst"):][:600]
    for name, value in run.parameters.items():
        if name in ("method", "data_root", "out_dir", "results_dir") or value in ("", None):  # method: the default
            continue
        shown = f'"{value}"' if isinstance(value, str) and " " in value else value
        assert f"-p {name} {shown}" in hint, f"-p {name} {shown}"


def test_runs_picks_planned_runs_by_name_and_names_a_typo(capsys: pytest.CaptureFixture) -> None:
    assert reproduce.main(["--dry-run", "--smoke", "--runs", "agw_llcm", "star_bupt"]) == 0
    lines = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line and not line.startswith(" ")]
    assert lines[1:3] == ["agw_llcm", "star_bupt"] and "agw_sysu" not in lines
    with pytest.raises(SystemExit):
        reproduce.main(["--dry-run", "--smoke", "--runs", "agw_sysuu"])
    assert "--runs agw_sysuu: not a planned run" in capsys.readouterr().err


def test_the_dry_run_says_where_an_unpublished_training_size_comes_from(capsys: pytest.CaptureFixture) -> None:
    assert reproduce.main(["--dry-run", "--datasets", "llcm", "sysu", "--only", "agw"]) == 0
    text = capsys.readouterr().out
    assert "LLCM's training size: an estimate from LLCM's README totals" in text
    assert "SYSU-MM01's training size" not in text  # published: nothing to say
