"""The papers side by side: trials pooled across RegDB's records, data kinds never mixed, reported numbers beside."""

from __future__ import annotations

import numpy as np
import pytest

from vireid_lib.results import compare


PAPER_SETTINGS = {"paper": True, "differs": {}, "label": "paper settings"}


def _settings(epochs: int) -> dict:
    return {"paper": False, "differs": {"epochs": {"paper": 81, "run": epochs}}, "label": f"epochs {epochs} (paper 81)"}


def _record(method: str, paper: str, trial: int, map_: float, kind: str = "real", seconds: float = 3600.0,
            selection: str = "last", settings: dict = PAPER_SETTINGS) -> dict:
    row = {"dataset": "RegDB", "protocol": "standard", "direction": "v2t", "trial": trial, "R1": map_ + 10,
           "mAP": map_, "mINP": map_ - 10}
    selected = {**row, "R1": map_ + 12, "mAP": map_ + 2, "mINP": map_ - 8}  # the script's kept checkpoint
    return {"paper": paper, "method": method, "dataset": "regdb", "data_kind": kind, "trial": trial,
            "per_trial": [selected if selection == "official" else row], "last": {"per_trial": [row]},
            "selection": {"selection": selection, "on_test_set": selection == "official"},
            "cmc": {"standard | v2t": [list(np.linspace(0.5, 1, 20))]},
            "config": {"params": {"height": 288, "width": 144, "arch": "resnet50",
                                  "recipe": {"num_ids": 8, "num_per_modality": 4, "seq_len": 0}},
                       "train": {"epochs": 81, "optimizer": "sgd", "lr": 0.1}},
            "durations": {"train_s": seconds}, "device": "cuda:0", "parameters": {"network": 24_000_000},
            "settings": settings}


def test_regdb_trials_pool_across_records_and_kinds_stay_apart() -> None:
    records = [_record("agw", "AGW", t, m) for t, m in ((1, 60.0), (2, 64.0), (3, 68.0))]
    records.append(_record("agw", "AGW", 1, 5.0, kind="synthetic"))
    table = compare.comparison(records, "real")
    (row,) = table.to_dict("records")
    assert row["trials"] == 3 and row["mAP"] == "64.00 ± 4.00" and row["R1"] == "74.00 ± 4.00"  # std over trials
    assert row["selection"] == "last epoch" and row["paper"] == "AGW"
    reported = [r for r in compare.reported_numbers() if r["method"] == "agw" and r["dataset"] == "regdb"
                and r["direction"] == "v2t"]
    assert row["mAP reported"] == float(reported[0]["mAP"])
    synthetic = compare.comparison(records, "synthetic").to_dict("records")
    assert [r["mAP"] for r in synthetic] == ["5.00"]
    config = compare.configurations(records, "real").to_dict("records")[0]
    assert config["records"] == 3 and config["GPU-h"] == 3.0 and config["parameters (M)"] == 24.0
    curves = compare.cmc_curves(records, "real", "RegDB")
    assert list(curves) == [("AGW standard", "v2t")] and curves[("AGW standard", "v2t")].shape == (20,)


def test_a_small_learning_rate_is_shown_as_it_was_set() -> None:
    """CST's 3.5e-4 must not read 0.00 in the configuration table (whose numbers print with two decimals)."""
    from vireid_lib.viz import table

    record = _record("cst", "CST", 1, 20.0)
    record["config"]["train"]["lr"] = 3.5e-4
    configurations = compare.configurations([record, _record("agw", "AGW", 1, 30.0)], "real").set_index("paper")
    assert configurations.loc["CST", "lr"] == "0.00035" and configurations.loc["AGW", "lr"] == "0.1"
    html = table(configurations.reset_index()).to_html()
    assert "0.00035" in html and ">0.00<" not in html


def test_the_official_rule_and_the_last_epoch_are_separate_rows() -> None:
    records = [_record("mmn", "MMN", t, m, selection="official") for t, m in ((1, 60.0), (2, 64.0))]
    records.append(_record("mmn", "MMN", 3, 90.0))  # reported its last epoch: no test-set choice to show
    table = compare.comparison(records, "real").set_index("selection")
    assert table.loc["last epoch", "mAP"] == "71.33 ± 16.29" and table.loc["last epoch", "trials"] == 3
    assert table.loc["official rule (chosen on the test set)", "mAP"] == "64.00 ± 2.83"
    assert table.loc["official rule (chosen on the test set)", "trials"] == 2


def test_runs_of_different_configurations_are_never_pooled() -> None:
    """A 1-epoch and a 3-epoch AGW run stay two rows (and two curves, two boxes, two configurations), each with its
    count of runs and trials; runs of one configuration pool."""
    records = [_record("agw", "AGW", 1, 10.0, settings=_settings(1)), _record("agw", "AGW", 1, 30.0, settings=_settings(3)),
               _record("agw", "AGW", 2, 34.0, settings=_settings(3))]
    table = compare.comparison(records, "real").set_index("settings")
    assert list(table.index) == ["epochs 1 (paper 81)", "epochs 3 (paper 81)"]
    assert table.loc["epochs 1 (paper 81)", "mAP"] == "10.00" and table.loc["epochs 1 (paper 81)", "runs"] == 1
    assert table.loc["epochs 3 (paper 81)", "mAP"] == "32.00 ± 2.83"
    assert table.loc["epochs 3 (paper 81)", "runs"] == 2 and table.loc["epochs 3 (paper 81)", "trials"] == 2
    configurations = compare.configurations(records, "real").set_index("settings")
    assert configurations.loc["epochs 3 (paper 81)", "records"] == 2 and len(configurations) == 2
    assert set(compare.cmc_curves(records, "real", "RegDB")) == {("AGW (epochs 1 (paper 81)) standard", "v2t"),
                                                               ("AGW (epochs 3 (paper 81)) standard", "v2t")}
    assert set(compare.trial_spread(records, "real")["paper"]) == {"AGW (epochs 1 (paper 81))", "AGW (epochs 3 (paper 81))"}


def test_a_metric_the_comparison_lacks_is_named_with_the_valid_ones() -> None:
    assert compare.check_metric("mINP") == "mINP"
    with pytest.raises(ValueError, match="metric='foo' is not a metric of the comparison; use one of R1, mAP, mINP"):
        compare.check_metric("foo")
