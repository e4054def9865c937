"""Result records and the README tables generated from them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from vireid_lib.data import RegDB
from vireid_lib.eval import run_regdb
from vireid_lib.results import records
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
                  checkpoint=str(checkpoint), durations={"train_s": 1.5},
                  selection={"selection": "official", "kept": {"rank1": {"epoch": 2}}, "on_test_set": True},
                  last={"epoch": 3, "rows": [], "per_trial": [], "cmc": {}},
                  data_sizes={"train_ids": 8}, trial=2, identity="abc123", extra={"settings": SMALL})
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
    assert loaded["selection"]["kept"]["rank1"]["epoch"] == 2 and loaded["last"]["epoch"] == 3
    assert loaded["settings"] == SMALL
    with pytest.raises(RecordError, match="data_kind='fake'"):
        make_record(RunInfo("AGW", "agw", "regdb", "fake", {}), evaluation(synthetic_regdb))


PAPER_SETTINGS = {"paper": True, "differs": {}, "label": "paper settings"}
SMALL = {"paper": False, "differs": {"arch": {"paper": "resnet50", "run": "resnet18"}, "epochs": {"paper": 81, "run": 1},
                                     "optimizer": {"paper": "sgd", "run": "adam"}},
         "label": "arch resnet18 (paper resnet50), epochs 1 (paper 81), optimizer adam (paper sgd)"}


def crafted(method: str, dataset: str, kind: str, created: str, rows: list[dict], selection: str = "official",
            last: list[dict] | None = None, epoch: int = 57, settings: dict = PAPER_SETTINGS) -> dict:
    """A record as a run writes it: ``rows`` from the checkpoint its selection reports (``official``: the script's
    kept ``rank1`` of ``epoch``; ``last``: the last epoch), ``last`` the last epoch's rows (default: ``rows`` minus 5),
    run at ``settings`` (default: the paper's)."""
    from vireid_lib.benchmarks import benchmark

    name = "rank1" if selection == "official" else "last"
    rows = [{**r, "checkpoint": name, "epoch": epoch if selection == "official" else 81} for r in rows]
    last = last if last is not None else [{**r, "R1": r["R1"] - 5, "mAP": r["mAP"] - 5, "checkpoint": "last",
                                           "epoch": 81} for r in rows]
    return {"schema": 3, "paper": method.upper(), "method": method, "dataset": dataset, "data_kind": kind,
            "created": created, "rows": rows, "config": {"params": {}, "train": {"epochs": 81}}, "versions": {},
            "data_sizes": benchmark(dataset).published if kind == "real" else {}, "trial": 1 if dataset == "regdb" else None,
            "selection": {"selection": selection, "on_test_set": selection == "official"},
            "last": {"epoch": 81, "rows": last}, "settings": settings}


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
    # the latest real record of the trial, chosen by AGW's rule (its kept rank-1 checkpoint), beside AGW's reported
    # 70.05 / 66.37 / 50.19 and its own last epoch (one trial: no spread yet)
    assert ("| AGW | RegDB | standard | VIS → T | 70.05 | 71.05 | +1.00 | 66.05 | 66.37 | 65.37 | -1.00 | 60.37 "
            "| 50.19 | 51.19 | rank1, epoch 57 of 81 | 1 of 10 trials |") in real_part
    assert "60.00" not in table
    # the synthetic run never stands beside a paper's number
    assert "99.00" not in real_part and "| AGW | SYSU-MM01 (synthetic) | all-search, single-shot | IR → VIS | 99.00 |" in synthetic_part
    assert "| AGW | SYSU-MM01 | all-search, single-shot | IR → VIS | 47.50 | — | — | — |" in real_part


def test_a_smoke_run_names_its_paper_network_input_and_training_steps(tmp_path: Path) -> None:
    """A synthetic number is only readable beside what produced it: the paper's name (as every other table), the
    network, the input size and the steps it trained (epochs x batches per epoch), and the run file."""
    results = tmp_path / "results"
    smoke = crafted("star_baseline", "vcm", "synthetic", "2026-03-01T00:00:00+00:00",
                    [row("video", "ir2rgb", 12.5, 20.25, 8.0)], epoch=2)
    smoke["paper"] = "STAR baseline"
    smoke["config"] = {"params": {"arch": "resnet18", "batches_per_epoch": 2, "height": 64, "width": 32},
                       "train": {"epochs": 2}, "transform": {"height": 64, "width": 32}}
    full = crafted("agw", "regdb", "custom", "2026-03-02T00:00:00+00:00", [row("standard", "v2t", 30.0, 31.0, 9.0)])
    full["config"] = {"params": {"arch": "resnet50", "batches_per_epoch": None}, "train": {"epochs": 3},
                      "transform": {"height": 288, "width": 144}}
    write_record(smoke, results)
    write_record(full, results)
    synthetic = render_tables(load_records(results)).split("**Synthetic smoke runs")[1]
    assert ("| paper | dataset | protocol | direction | R1 | mAP | mINP | trials | checkpoint | network | input | "
            "training steps (epochs x batches) | run |") in synthetic
    names = {r["method"]: Path(r["_path"]).name for r in load_records(results)}
    assert (f"| STAR baseline | HITSZ-VCM (synthetic) | video | IR → VIS | 12.50 | 20.25 | 8.00 | 10 "
            f"| rank1, epoch 2 of 2 | resnet18 | 64 x 32 | 2 x 2 = 4 | `{names['star_baseline']}` |") in synthetic
    assert f"| AGW | RegDB (custom) | standard | VIS → T | 30.00 |" in synthetic
    assert f"| resnet50 | 288 x 144 | 3 x full | `{names['agw']}` |" in synthetic
    assert "star_baseline |" not in synthetic


def test_a_last_epoch_run_never_stands_in_the_same_rule_column(tmp_path: Path) -> None:
    """A run that reported its last epoch (selection="last") was not chosen by the paper's rule: its numbers fill the
    last-epoch column only, and a run chosen by the rule keeps the same-rule column even when it is older."""
    results = tmp_path / "results"
    results.mkdir()
    write_record(crafted("mmn", "sysu", "real", "2026-01-01T00:00:00+00:00",
                         [row("all-search, single-shot", "ir2rgb", 69.6, 66.0, 50.0)], epoch=63), results)
    write_record(crafted("mmn", "sysu", "real", "2026-02-01T00:00:00+00:00",
                         [row("all-search, single-shot", "ir2rgb", 68.0, 64.0, 48.0)], selection="last",
                         last=[row("all-search, single-shot", "ir2rgb", 68.0, 64.0, 48.0)]), results)
    table = render_tables(load_records(results))
    line = next(l for l in table.splitlines() if l.startswith("| MMN | SYSU-MM01 | all-search, single-shot"))
    assert line.startswith("| MMN | SYSU-MM01 | all-search, single-shot | IR → VIS | 70.6 | 69.60 ± 1.00 | -1.00 "
                           "| 68.00 ± 1.00 | 66.9 | 66.00 ± 0.50 | -0.90 | 64.00 ± 0.50 |")
    assert "rank1, epoch 63 of 81" in line


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
    (tmp_path / "broken.json").write_text(json.dumps({"schema": 3}))
    with pytest.raises(RecordError, match="broken.json lacks"):
        load_records(tmp_path)
    (tmp_path / "broken.json").write_text(json.dumps({"schema": 2}))  # before records said which checkpoint they hold
    with pytest.raises(RecordError, match="broken.json: schema=2, this vireid reads schema 3; re-run"):
        load_records(tmp_path)


def test_the_committed_readme_tables_match_the_committed_records() -> None:
    """The README's tables are generated, never typed: they must equal what the command writes (the results from the
    records, the recipes table from the papers' declarations)."""
    from vireid_lib.results import recipes

    text = (ROOT / "README.md").read_text()
    current = text.split(START, 1)[1].split(END, 1)[0].strip()
    assert current == render_tables(load_records(ROOT / "results")).strip()
    assert text.split(recipes.START, 1)[1].split(recipes.END, 1)[0].strip() == recipes.render_recipes().strip()
    done = subprocess.run([sys.executable, "-m", "vireid_lib.results", "readme", "--readme", str(ROOT / "README.md"),
                           "--results", str(ROOT / "results")], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and "already up to date" in done.stdout


def test_a_run_that_never_reached_a_scheduled_test_is_not_the_rules_number(tmp_path: Path) -> None:
    """Following the rule but stopped before its first test, a run reports its last epoch: the rule chose nothing."""
    results = tmp_path / "results"
    results.mkdir()
    record = crafted("agw", "sysu", "real", "2026-01-01T00:00:00+00:00",
                     [row("all-search, single-shot", "ir2rgb", 40.0, 41.0, 30.0)])
    record["rows"] = [{**r, "checkpoint": "last", "epoch": 2} for r in record["rows"]]
    record["selection"]["rule"] = {"keeps": [{"name": "rank1", "metric": "R1", "direction": "", "ties": "first"}]}
    write_record(record, results)
    line = next(l for l in render_tables(load_records(results)).splitlines()
                if l.startswith("| AGW | SYSU-MM01 | all-search, single-shot"))
    assert line.startswith("| AGW | SYSU-MM01 | all-search, single-shot | IR → VIS | 47.50 | — | — | 35.00 ± 1.00 |")


def test_a_real_run_at_other_settings_stays_out_of_the_reproduced_column(tmp_path: Path) -> None:
    """The issue's case: AGW on real RegDB with ResNet-18, one epoch and Adam, chosen by AGW's own rule, is not AGW's
    reproduction; it is listed apart, naming what differs, and the paper-settings run keeps the column."""
    results = tmp_path / "results"
    small = crafted("agw", "regdb", "real", "2026-02-01T00:00:00+00:00", [row("standard", "v2t", 12.34, 11.11, 5.55)],
                    settings=SMALL)
    write_record(small, results)
    table = render_tables(load_records(results))
    main, rest = table.split("**Real data at other settings")
    other, synthetic = rest.split("**Synthetic smoke runs")
    assert "12.34" not in main and "7.34" not in main  # neither the rule's number nor its last epoch
    assert "| AGW | RegDB | standard | VIS → T | 70.05 | — | — | — | 66.37 | — |" in main
    assert (f"| AGW | RegDB | standard | VIS → T | 12.34 | 11.11 | 5.55 | trial 1 | rank1, epoch 57 of 81 "
            f"| {SMALL['label']} | `{Path(load_records(results)[0]['_path']).name}` |") in other
    assert "(none yet)" in synthetic
    # an older run at the paper's settings still fills the column; the newer small run does not displace it
    write_record(crafted("agw", "regdb", "real", "2026-01-01T00:00:00+00:00", [row("standard", "v2t", 71.05, 65.37, 51.19)]),
                 results)
    main = render_tables(load_records(results)).split("**Real data at other settings")[0]
    assert "| AGW | RegDB | standard | VIS → T | 70.05 | 71.05 | +1.00 | 66.05 |" in main


def test_runs_of_two_configurations_are_two_rows_apart_from_the_papers(tmp_path: Path) -> None:
    results = tmp_path / "results"
    for epochs, r1 in ((1, 10.0), (3, 20.0)):
        settings = {"paper": False, "differs": {"epochs": {"paper": 81, "run": epochs}},
                    "label": f"epochs {epochs} (paper 81)"}
        write_record(crafted("agw", "sysu", "real", f"2026-01-0{epochs}T00:00:00+00:00",
                             [row("all-search, single-shot", "ir2rgb", r1, r1, r1)], settings=settings), results)
    other = render_tables(load_records(results)).split("**Real data at other settings")[1].split("**Synthetic")[0]
    assert "| 10.00 |" in other and "epochs 1 (paper 81)" in other
    assert "| 20.00 |" in other and "epochs 3 (paper 81)" in other


def test_the_latest_record_is_the_latest_in_time_whatever_its_offset(tmp_path: Path) -> None:
    """10:00 at UTC+5 is 05:00 UTC: earlier than 06:00 UTC, though its text sorts later."""
    results = tmp_path / "results"
    write_record(crafted("agw", "sysu", "real", "2026-01-01T06:00:00+00:00",
                         [row("all-search, single-shot", "ir2rgb", 48.5, 48.0, 35.0)]), results)
    write_record(crafted("agw", "sysu", "real", "2026-01-01T10:00:00+05:00",
                         [row("all-search, single-shot", "ir2rgb", 40.0, 40.0, 30.0)]), results)
    loaded = load_records(results)
    assert [r["created"] for r in loaded] == ["2026-01-01T10:00:00+05:00", "2026-01-01T06:00:00+00:00"]
    table = render_tables(list(reversed(loaded)))  # whatever order the caller passes
    assert "| AGW | SYSU-MM01 | all-search, single-shot | IR → VIS | 47.50 | 48.50 ± 1.00 | +1.00 |" in table
    record = crafted("agw", "sysu", "real", "yesterday", [row("all-search, single-shot", "ir2rgb", 1.0, 1.0, 1.0)])
    (results / "edited.json").write_text(json.dumps(record))
    with pytest.raises(RecordError, match="edited.json: created='yesterday' is not an ISO time"):
        load_records(results)


@pytest.mark.parametrize("where, name, value", [("rows", "R1", 101.0), ("rows", "mAP", -0.5), ("rows", "mINP", 250),
                                                ("rows", "R1_std", -1.0), ("rows", "R5", float("nan")),
                                                ("last.rows", "mAP", 140.0), ("rows", "mAP_std", 101.0)])
def test_impossible_metrics_are_refused_naming_the_file_row_and_value(tmp_path: Path, where: str, name: str,
                                                                       value: float) -> None:
    record = crafted("agw", "sysu", "real", "2026-01-01T00:00:00+00:00",
                     [row("all-search, single-shot", "ir2rgb", 48.5, 48.0, 35.0)])
    rows = record["rows"] if where == "rows" else record["last"]["rows"]
    rows[0][name] = value
    (tmp_path / "edited.json").write_text(json.dumps(record))  # json writes NaN as NaN, which it reads back
    with pytest.raises(RecordError, match=rf"edited.json: {re.escape(where)}\[0\] \(all-search, single-shot, ir2rgb\): "
                                          rf"{name}={re.escape(repr(value))} is impossible"):
        load_records(tmp_path)
    rows[0][name] = 100 if not name.endswith("_std") else 0.0  # the bounds themselves are possible
    (tmp_path / "edited.json").write_text(json.dumps(record))
    assert load_records(tmp_path)


def test_records_need_their_settings(tmp_path: Path) -> None:
    record = crafted("agw", "sysu", "real", "2026-01-01T00:00:00+00:00",
                     [row("all-search, single-shot", "ir2rgb", 48.5, 48.0, 35.0)])
    for broken, expected in ((lambda r: r.pop("settings"), "lacks the field 'settings'"),
                             (lambda r: r["settings"].update(paper="yes"), r"settings\['paper'\]='yes' is not a bool")):
        bad = json.loads(json.dumps(record))
        broken(bad)
        (tmp_path / "edited.json").write_text(json.dumps(bad))
        with pytest.raises(RecordError, match=rf"edited.json.*{expected}"):
            load_records(tmp_path)


def _evaluation() -> SimpleNamespace:
    """The least an Evaluation gives make_record: one summary row, its trials and its CMC curve."""
    rows = [{"protocol": "standard", "direction": "v2t", "R1": 50.0, "mAP": 40.0}]
    return SimpleNamespace(summary=pd.DataFrame(rows), per_trial=pd.DataFrame([{**rows[0], "trial": 1}]),
                           cmc={("standard", "v2t"): [0.5] * 20})


def test_a_record_names_the_workbooks_commit_from_any_working_folder(tmp_path: Path, monkeypatch) -> None:
    """A notebook whose kernel runs inside another git repository still records the workbook's commit."""
    other = tmp_path / "other"
    other.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], cwd=other, check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "another repository"], cwd=other, check=True)
    monkeypatch.chdir(other)
    run = RunInfo("AGW", "agw", "regdb", "synthetic", {"params": {}, "train": {}}, extra={"settings": SMALL})
    record = make_record(run, _evaluation())
    workbook = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert record["git"]["sha"] == workbook.stdout.strip() and "installed" not in record["git"]
    # a package installed outside any checkout has no commit to name, and says why
    monkeypatch.setattr(records, "package_checkout", lambda: tmp_path / "site-packages")
    assert make_record(run, _evaluation())["git"] == {"sha": None, "dirty": None, "installed": True}
