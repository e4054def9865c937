"""A number is shown only as what it is: runs that say whether they are at the paper's settings, checkpoints that
carry what they are (data, trial, classes, network, epochs) and refuse to be something else, and a clear message for
every fault of a run (see README.md here)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from vireid_lib.data.synthetic import SyntheticConfig, write_sysu
from vireid_lib.engine import CheckpointError
from vireid_lib.engine.trainer import TrainingInterrupted, TrainResult
from vireid_lib.experiments import common
from vireid_lib.experiments.common import ExperimentError
from vireid_lib.experiments import prepare
from vireid_lib.experiments.params import check_notebook_parameters

from .test_inputs import TINY, tiny


class Stop(Exception):
    pass


def test_a_quick_experiment_says_it_is_not_at_the_papers_settings(synthetic_sysu: Path, tmp_path: Path) -> None:
    run = tiny(synthetic_sysu, tmp_path)
    run.train()
    run.evaluate()
    settings = json.loads(run.record(tmp_path / "results").read_text())["settings"]
    assert settings["paper"] is False
    assert {"arch", "height", "width", "optimizer", "epochs", "epochs trained", "pretrained", "batches_per_epoch",
            "eval_trials", "num_ids"} <= set(settings["differs"])
    assert settings["differs"]["arch"] == {"paper": "resnet50", "run": "resnet18"}
    assert "arch resnet18 (paper resnet50)" in settings["label"] and "epochs trained 1 (paper 81)" in settings["label"]


def test_a_run_at_the_papers_settings_says_so(synthetic_sysu: Path, tmp_path: Path, monkeypatch) -> None:
    """The paper's recipe, torchvision's ImageNet file as weights_file, every epoch trained: paper settings. The seed
    is another draw of the same setting."""
    import torchvision

    weights = tmp_path / "resnet50-0676ba61.pth"
    torch.save(torchvision.models.resnet50().state_dict(), weights)
    monkeypatch.setattr(common, "_imagenet_file", lambda path, arch: Path(path) == weights)
    run = prepare(method="agw", dataset="sysu", data_root=str(synthetic_sysu), weights_file=str(weights),
                  pretrained=True, device="cpu", workers=0, out_dir=str(tmp_path / "runs"), seed=3)
    run.train_result = TrainResult(history=[{}] * 81, checkpoint=tmp_path / "last.pt")
    assert run.settings() == {"paper": True, "differs": {}, "label": "paper settings"}
    monkeypatch.setattr(common, "_imagenet_file", lambda path, arch: False)  # another file under that name
    assert run.settings()["differs"]["weights_file"]["run"] == str(weights)


def test_a_checkpoint_evaluated_on_another_trial_or_dataset_is_refused_unless_asked(synthetic_regdb: Path,
                                                                                    synthetic_sysu: Path,
                                                                                    tmp_path: Path) -> None:
    regdb = dict(dataset="regdb", num_ids=2)
    trained = tiny(synthetic_regdb, tmp_path / "t3", trial=3, **regdb)
    trained.train()
    checkpoint = str(trained.train_result.checkpoint)
    with pytest.raises(ExperimentError, match=r"trained on regdb trial 3, but this run evaluates regdb trial 1 "
                                              r"\(each RegDB trial tests identities other trials train on\).*"
                                              r"cross_dataset=True"):
        tiny(synthetic_regdb, tmp_path / "e1", trial=1, checkpoint=checkpoint, **regdb)
    with pytest.raises(ExperimentError, match=r"trained on regdb trial 3, but this run evaluates sysu"):
        tiny(synthetic_sysu, tmp_path / "e2", checkpoint=checkpoint)
    on_purpose = tiny(synthetic_sysu, tmp_path / "e3", checkpoint=checkpoint, cross_dataset=True)  # RegDB's classes
    on_purpose.evaluate()
    record = json.loads(on_purpose.record(tmp_path / "results").read_text())
    assert record["settings"]["differs"]["cross_dataset"] == {"paper": False, "run": True}
    assert record["config"]["params"]["cross_dataset"] is True
    assert record["config"]["params"]["checkpoint_classes"] == trained.params["num_classes"] != on_purpose.params["num_classes"]
    with pytest.raises(ExperimentError, match="cross_dataset=True evaluates a checkpoint.*checkpoint=<file>"):
        tiny(synthetic_sysu, tmp_path / "e4", cross_dataset=True)


def test_an_authors_file_named_for_other_data_is_refused(synthetic_regdb: Path, tmp_path: Path) -> None:
    trained = tiny(synthetic_regdb, tmp_path / "t1", dataset="regdb", trial=1)
    trained.train()
    official = tmp_path / "regdb_agw_p4_n8_lr_0.1_seed_0_trial_3_best.t"
    torch.save({"net": trained.model.state_dict(), "epoch": 40}, official)
    with pytest.raises(ExperimentError, match=r"regdb_agw_p4_n8_lr_0.1_seed_0_trial_3_best.t is named for regdb "
                                              r"trial 3, but this run evaluates regdb trial 1"):
        tiny(synthetic_regdb, tmp_path / "e", dataset="regdb", trial=1, checkpoint=str(official))


def test_a_checkpoint_of_another_network_names_what_it_holds(synthetic_sysu: Path, tmp_path: Path) -> None:
    trained = tiny(synthetic_sysu, tmp_path / "r18")
    trained.train()
    with pytest.raises(ExperimentError, match=r"holds arch resnet18; this run builds arch resnet34.*arch='resnet18'"):
        tiny(synthetic_sysu, tmp_path / "r34", arch="resnet34", checkpoint=str(trained.train_result.checkpoint))
    with pytest.raises(ExperimentError, match=r"holds method agw, arch resnet18; this run builds method mmn, arch "
                                              r"resnet50.*method='agw'"):
        prepare(method="mmn", dataset="sysu", data_root=str(synthetic_sysu), pretrained=False, device="cpu",
                workers=0, out_dir=str(tmp_path / "mmn"), checkpoint=str(trained.train_result.checkpoint))


def test_an_early_checkpoint_is_recorded_as_the_epoch_it_holds(synthetic_sysu: Path, tmp_path: Path) -> None:
    """A checkpoint of epoch 1 of a run planned for 3 is recorded as epoch 1 of 3, never as the run's planned 3."""
    run = tiny(synthetic_sysu, tmp_path / "run", epochs=3, selection="last")

    def stop(epoch: int, step: int) -> None:
        if epoch == 1:
            raise Stop

    with pytest.raises(Stop):
        from vireid_lib.engine import train

        train(run.model, run.criterion, run.loader, run.train_config, on_step=stop, unpack=run.batch.unpack)
    loaded = tiny(synthetic_sysu, tmp_path / "eval", epochs=3, checkpoint=str(run.run_dir / "last.pt"))
    loaded.evaluate()
    record = json.loads(loaded.record(tmp_path / "results").read_text())
    assert record["last"]["epoch"] == 1 and record["rows"][0]["epoch"] == 1
    assert record["settings"]["differs"]["epochs trained"] == {"paper": 81, "run": 1}
    assert record["config"]["train"]["epochs"] == 3  # what the run that made it planned


def test_resuming_on_other_images_of_the_same_sizes_is_refused(tmp_path: Path) -> None:
    """Two twins of one size but other seeds: the split sizes agree, the training files do not."""
    first, second = tmp_path / "first", tmp_path / "second"
    write_sysu(first, SyntheticConfig(ids=8, seed=1))
    write_sysu(second, SyntheticConfig(ids=8, seed=2))
    tiny(first, tmp_path / "runs").train()
    with pytest.raises(CheckpointError, match=r"identity.data.sizes.fingerprint"):
        tiny(second, tmp_path / "runs", epochs=2).train()
    moved = tmp_path / "moved"
    shutil.copytree(first, moved)  # the same images elsewhere still resume
    assert tiny(moved, tmp_path / "runs", epochs=2).train().resumed_from == 1


@pytest.mark.parametrize("changes,message", [
    ({"num_ids": 1}, r"num_ids=1 is invalid: it must be an integer >= 2"),
    ({"device": "foo"}, r"device='foo' is not a device; use 'auto', 'cpu', 'cuda' or 'cuda:N'"),
])
def test_values_the_trainer_would_choke_on_are_named(synthetic_sysu: Path, tmp_path: Path, changes: dict,
                                                     message: str) -> None:
    with pytest.raises(ExperimentError, match=message):
        tiny(synthetic_sysu, tmp_path, **changes)


def test_a_file_where_a_folder_belongs_is_named_before_any_training(synthetic_sysu: Path, tmp_path: Path,
                                                                    capsys) -> None:
    from vireid_lib.experiments.__main__ import main

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(ExperimentError, match=r"out_dir=.*a_file is a file, not a folder"):
        tiny(synthetic_sysu, blocker / "runs")
    with pytest.raises(ExperimentError, match=r"results_dir=.*a_file is a file, not a folder"):
        check_notebook_parameters({"results_dir": str(blocker), "out_dir": str(tmp_path)})
    code = main(["--method", "agw", "--data-root", str(synthetic_sysu), "--results-dir", str(blocker), "--no-pretrained",
                 "--out-dir", str(tmp_path / "runs"), "--device", "cpu"])
    assert code == 1 and "--results-dir=" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # nothing was trained


def test_ctrl_c_in_the_command_is_one_line_with_the_way_back(synthetic_sysu: Path, tmp_path: Path, monkeypatch,
                                                             capsys) -> None:
    from vireid_lib.experiments.__main__ import main

    def interrupted(self):
        raise TrainingInterrupted(f"interrupted in epoch 2 of 3: {self.run_dir}/last.pt holds epoch 1. Run the same "
                                  "command (or notebook) again to resume from there.")

    monkeypatch.setattr(common.PaperRun, "train", interrupted)
    code = main(["--method", "agw", "--data-root", str(synthetic_sysu), "--no-pretrained", "--arch", "resnet18",
                 "--out-dir", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 130 and err.startswith("stopped: interrupted in epoch 2 of 3") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_the_record_names_the_run_that_made_a_kept_checkpoint(synthetic_sysu: Path, tmp_path: Path) -> None:
    """Loading the weights of a vireid checkpoint records the settings of the run that trained them."""
    run = tiny(synthetic_sysu, tmp_path / "run", **{k: v for k, v in TINY.items() if k == "epochs"})
    run.train()
    loaded = tiny(synthetic_sysu, tmp_path / "eval", checkpoint=str(run.train_result.checkpoint), height=64)
    assert loaded.settings()["differs"]["arch"]["run"] == "resnet18"
