"""The table beside the paper: a difference only where the numbers can be read together."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from vireid_lib.experiments import prepare


@pytest.fixture(scope="module")
def run(synthetic_sysu: Path, tmp_path_factory):
    run = prepare(method="agw", dataset="sysu", data_root=str(synthetic_sysu), pretrained=False, arch="resnet18",
                  height=64, width=32, device="cpu", workers=0, eval_trials=2, progress=False,
                  out_dir=str(tmp_path_factory.mktemp("runs")))
    run.evaluate()
    return run


def test_on_synthetic_data_the_paper_is_shown_without_a_difference(run) -> None:
    assert run.data_kind == "synthetic"
    table = run.compare_with_paper()
    assert "R1 paper" in table and not any("Δ" in c for c in table.columns)
    assert "No difference is computed" in table.attrs["caption"]
    assert list(table.columns[:4]) == ["protocol", "direction", "R1 ours", "R1 paper"]  # what a reader needs first
    reported = table.set_index("protocol").loc["all-search, single-shot", "R1 paper"]
    assert reported == 47.50


def test_on_real_data_each_metric_gets_its_difference(run, monkeypatch) -> None:
    monkeypatch.setattr(run, "data_kind", "real")
    table = run.compare_with_paper().set_index("protocol")
    row = table.loc["all-search, single-shot"]
    assert row["R1 Δ"] == pytest.approx(row["R1 ours"] - 47.50, abs=0.011)
    assert pd.isna(table.loc["indoor-search, single-shot"].get("R1 paper"))  # AGW reports no indoor row


def test_learning_summary_and_chance(run) -> None:
    run.score_untrained()
    summary = run.learning_summary()
    assert {"R1 untrained", "R1 trained", "R1 chance", "mAP chance"} <= set(summary.columns)
    chance = summary.set_index("protocol").loc["all-search, single-shot", "R1 chance"]
    gallery_ids = len({r.pid for r in run.reader.gallery("all", 0)})
    assert 0.3 * 100 / gallery_ids < chance < 3 * 100 / gallery_ids  # random features: about one in the gallery's ids
