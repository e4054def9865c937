"""The benchmark interface: a dataset is a declaration (vireid_lib.benchmarks). A benchmark declared in a test plugs in
and a paper trains, is scored by the declared protocol and is recorded without any edit to the runner; the runner,
plan and tables branch on no dataset's name."""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from vireid_lib import benchmarks, papers
from vireid_lib.benchmarks import Benchmark
from vireid_lib.data.sysu import SYSUMM01
from vireid_lib.eval import run_sysu
from vireid_lib.eval.scoring import removed_mask
from vireid_lib.experiments import prepare
from vireid_lib.results import load_records

from .test_paper_interface import TOY

ROOT = Path(__file__).resolve().parents[2]


class ToySet(SYSUMM01):
    """SYSU-MM01's layout under another name: a collection a user brings in that layout."""

    NAME = "Toy set"


def _report(reader, extract, trial, gallery_trials, metric):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_sysu(reader, extract, modes=("all",), shots=(1,), trials=range(gallery_trials), metric=metric,
                        rule="regdb")  # no camera filter: this collection's own rule


TOYSET = Benchmark(key="toyset", video=False, reader=ToySet, rule="regdb", directions=("ir2rgb",),
                   published_train=(100, 100), report=_report, select=benchmarks.benchmark("sysu").select,
                   describe_selection=lambda rule: "the toy set's first gallery",
                   example=benchmarks.benchmark("sysu").example, gallery_trials=2, order=99)


def test_a_declared_benchmark_plugs_in_without_touching_the_runner(synthetic_sysu: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(benchmarks._REGISTERED, "toyset", TOYSET)
    monkeypatch.setitem(papers._REGISTERED, "toy_on_toyset", replace(TOY, method="toy_on_toyset", datasets=("toyset",)))
    run = prepare(method="toy_on_toyset", dataset="toyset", data_root=str(synthetic_sysu), pretrained=False, epochs=1,
                  batches_per_epoch=1, device="cpu", workers=0, eval_trials=2, progress=False, out_dir=str(tmp_path))
    assert run.dataset_name == "Toy set" and run.benchmark is TOYSET
    run.train()
    summary = run.evaluate().summary
    # the declared report ran: all-search only, two galleries, scored by the declared rule
    assert list(summary["protocol"]) == ["all-search, single-shot, scored by the regdb rule"]
    assert list(summary["trials"]) == [2] and set(summary["dataset"]) == {"Toy set"}
    assert run.settings()["differs"].get("eval_trials") is None  # the declared gallery count is the paper setting
    query, gallery, _, removed = run.ranking_example()
    assert removed.shape == (len(query), len(gallery)) and not removed.any()  # the regdb rule removes nothing
    path = run.record(tmp_path / "results")
    record = json.loads(path.read_text())
    assert record["dataset"] == "toyset" and record["data_kind"] == "synthetic"
    assert [r["dataset"] for r in load_records(tmp_path / "results")] == ["toyset"]  # a known dataset to the tables


def test_a_benchmark_without_a_twin_asks_for_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(benchmarks._REGISTERED, "toyset", TOYSET)
    monkeypatch.setitem(papers._REGISTERED, "toy_on_toyset", replace(TOY, method="toy_on_toyset", datasets=("toyset",)))
    with pytest.raises(ValueError, match=r"Toy set has no synthetic twin: pass data_root=<its folder>"):
        prepare(method="toy_on_toyset", dataset="toyset", device="cpu", out_dir=str(tmp_path))


def test_the_runner_plan_and_tables_name_no_dataset() -> None:
    """What differs between datasets is in their declarations: no comparison with a dataset's key is left in the
    runner, the engine, the result tables, the plan or the selection rule."""
    keys = sorted(benchmarks.benchmarks())
    pattern = re.compile(r"(==|!=| in) *[(\[{]?['\"](" + "|".join(keys) + r")['\"]")
    files = [p for folder in ("engine", "experiments", "results") for p in (ROOT / "vireid_lib" / folder).glob("*.py")]
    files += [ROOT / "vireid_lib" / name for name in ("reproduce.py", "selection.py")]
    for path in files:
        hits = [line.strip() for line in path.read_text().splitlines() if pattern.search(line)]
        assert hits == [], f"{path.relative_to(ROOT)} branches on a dataset's name: {hits[:2]}"


def test_the_benchmarks_are_found_in_the_fields_order_with_their_readers_names() -> None:
    assert benchmarks.names() == {"sysu": "SYSU-MM01", "regdb": "RegDB", "llcm": "LLCM", "vcm": "HITSZ-VCM",
                                  "bupt": "BUPTCampus"}
    assert benchmarks.image_benchmarks() == ("sysu", "regdb", "llcm")
    assert benchmarks.video_benchmarks() == ("vcm", "bupt")
    assert benchmarks.benchmark("regdb").training_trials == tuple(range(1, 11))
    assert [k for k, b in benchmarks.benchmarks().items() if b.gallery_trials == 10] == ["sysu", "llcm"]


@pytest.mark.parametrize("rule, expected", [
    # queries (pid, cam): (1, 3), (2, 1); gallery: (1, 2), (1, 3), (2, 1), (3, 2)
    ("sysu", [[1, 0, 0, 1], [0, 0, 0, 0]]),  # a camera-3 query loses every camera-2 item
    ("llcm", [[0, 1, 0, 0], [0, 0, 1, 0]]),  # its own identity seen by its own camera
    ("vcm", [[0, 1, 0, 0], [0, 0, 1, 0]]),
    ("regdb", [[0, 0, 0, 0], [0, 0, 0, 0]]),
    ("bupt", [[0, 0, 0, 0], [0, 0, 0, 0]]),
])
def test_the_ranked_lists_mark_what_each_rule_removes(rule: str, expected: list) -> None:
    mask = removed_mask(rule, np.array([1, 2]), np.array([3, 1]), np.array([1, 1, 2, 3]), np.array([2, 3, 1, 2]))
    assert mask.tolist() == [[bool(v) for v in row] for row in expected]


def test_every_paper_builds_its_criterion_on_every_dataset_it_declares() -> None:
    """A paper that declares a dataset can train on it (IV-ReID declared LLCM with no margin for it)."""
    for method, paper in papers.workbook_papers().items():
        for dataset in paper.datasets:
            assert dataset in benchmarks.benchmarks(), f"{method} declares {dataset!r}, which no benchmark declares"
            paper.criterion(4, paper.recipe_for(dataset), dataset)


def test_a_deviation_declared_for_one_dataset_shows_only_on_it() -> None:
    from vireid_lib.results.recipes import render_recipes

    rows = {tuple(cell.strip() for cell in line.split("|")[1:3]): line for line in render_recipes().splitlines()}
    assert "STAR's code has no BUPTCampus" in rows[("STAR", "BUPTCampus")]
    assert "STAR's code has no BUPTCampus" not in rows[("STAR", "HITSZ-VCM")]


def test_the_notebooks_readme_lists_every_dataset_each_notebook_runs_on() -> None:
    rows = {line.split("|")[1].strip(" `"): line.split("|")[3] for line in
            (ROOT / "notebooks" / "README.md").read_text().splitlines() if line.startswith("| `")}
    for method, paper in papers.workbook_papers().items():
        if paper.notebook:
            names = [benchmarks.benchmark(d).name for d in paper.datasets]
            assert all(name in rows[paper.notebook] for name in names), (paper.notebook, names)
