"""The training loop: schedule, resume that ends bit-for-bit where an uninterrupted run does,
NaN stops, atomic checkpoints, strict loading, and the checkpoints kept by their test scores (each keep its own
epoch, ties as the script compares, selection state across a resume, a changed rule refused)."""

from __future__ import annotations

import csv
import errno
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from vireid_lib.data.samplers import CrossModalityIdentitySampler
from vireid_lib.engine import (
    CheckpointError, ConfigError, Keep, TrainConfig, TrainingDiverged, kept_path, load_checkpoint, load_model_state,
    save_atomic, train,
)
from vireid_lib.engine import trainer
from vireid_lib.engine.trainer import TrainingFailed, TrainingInterrupted
from vireid_lib.selection import SelectionError

IDS, PER_ID, DIM = 6, 5, 12


class TinyReID(nn.Module):
    """A two-stream model that follows the engine's contract, small enough for the CPU."""

    def __init__(self, classes: int = IDS) -> None:
        super().__init__()
        self.visible = nn.Linear(DIM, 16)
        self.infrared = nn.Linear(DIM, 16)
        self.drop = nn.Dropout(0.2)  # exercises the RNG inside a step
        self.head = nn.Linear(16, classes)

    def forward(self, visible, infrared):
        parts = []
        if visible is not None:
            parts.append(self.visible(visible))
        if infrared is not None:
            parts.append(self.infrared(infrared))
        features = torch.cat(parts)
        out = {"pooled": features, "embedding": features}
        if self.training:
            out["logits"] = self.head(self.drop(features))
        return out

    def param_groups(self, lr: float) -> list[dict]:
        return [{"params": [*self.visible.parameters(), *self.infrared.parameters()], "lr": 0.1 * lr},
                {"params": self.head.parameters(), "lr": lr}]


class CrossEntropy(nn.Module):
    def __init__(self, poison_epoch: int | None = None) -> None:
        super().__init__()
        self.poison_epoch, self.epoch = poison_epoch, 0

    def forward(self, outputs, labels):
        loss = nn.functional.cross_entropy(outputs["logits"], labels)
        if self.poison_epoch is not None and self.epoch >= self.poison_epoch:
            loss = loss * float("nan")
        return {"loss": loss, "ce": loss.detach()}


class Pairs(Dataset):
    """Identity prototypes plus fresh noise per draw (drawn from torch's RNG, like augmentation)."""

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(0)
        self.centres = torch.randn(IDS, DIM, generator=generator)
        self.pids = [i // PER_ID for i in range(IDS * PER_ID)]

    def __len__(self) -> int:
        return len(self.pids)

    def __getitem__(self, pair):
        v, i = pair
        return (self.centres[self.pids[v]] + 0.5 * torch.randn(DIM),
                self.centres[self.pids[i]] + 0.5 * torch.randn(DIM) + 1.0, self.pids[v], self.pids[i])


def loader(seed: int = 0) -> DataLoader:
    data = Pairs()
    sampler = CrossModalityIdentitySampler(data.pids, data.pids, num_ids=3, num_per_modality=2, seed=seed)
    return DataLoader(data, batch_size=sampler.batch_size, sampler=sampler)


def fresh_model() -> TinyReID:
    torch.manual_seed(123)
    return TinyReID()


def config(tmp_path: Path, **changes) -> TrainConfig:
    defaults = dict(epochs=4, lr=0.5, warmup_epochs=1, milestones=(3,), out_dir=str(tmp_path), progress=False)
    return TrainConfig(**{**defaults, **changes})


def test_agw_schedule() -> None:
    agw = TrainConfig()
    factors = [agw.lr_factor(e) for e in range(81)]
    assert factors[:10] == pytest.approx([(e + 1) / 10 for e in range(10)])
    assert factors[10:20] == [1.0] * 10 and factors[20:50] == pytest.approx([0.1] * 30)
    assert factors[50:] == pytest.approx([0.01] * 31)
    assert TrainConfig(schedule="constant").lr_factor(70) == 1.0


@pytest.mark.parametrize("changes,message", [
    ({"epochs": 0}, "epochs=0"), ({"optimizer": "rmsprop"}, "optimizer='rmsprop'.*'sgd', 'adam'"),
    ({"amp": "fp8"}, "amp='fp8'"), ({"lr": float("nan")}, "lr=nan"), ({"milestones": (50, 20)}, "milestones"),
])
def test_bad_config(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**changes)


def test_training_learns_writes_checkpoint_and_log(tmp_path: Path) -> None:
    result = train(fresh_model(), CrossEntropy(), loader(), config(tmp_path, epochs=6))
    losses = [row["loss"] for row in result.history]
    assert losses[-1] < 0.5 * losses[0]
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert float(rows[0]["lr"]) == pytest.approx(0.5) and float(rows[3]["lr"]) == pytest.approx(0.05)
    assert all(float(r["seconds"]) > 0 and float(r["images_per_s"]) > 0 for r in rows)
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["epoch"] == 5 and len(state["history"]) == 6


class Interrupt(Exception):
    pass


def test_interrupted_and_resumed_run_ends_exactly_like_an_uninterrupted_one(tmp_path: Path) -> None:
    whole = fresh_model()
    train(whole, CrossEntropy(), loader(), config(tmp_path / "whole"))

    def stop_mid_epoch(epoch: int, step: int) -> None:
        if epoch == 2 and step == 1:
            raise Interrupt  # as abrupt as a kill: epoch 3 is half done and never saved

    with pytest.raises(Interrupt):
        train(fresh_model(), CrossEntropy(), loader(), config(tmp_path / "split"), on_step=stop_mid_epoch)
    assert load_checkpoint(tmp_path / "split/last.pt")["epoch"] == 1
    resumed_model = fresh_model()
    resumed = train(resumed_model, CrossEntropy(), loader(), config(tmp_path / "split"))
    assert resumed.resumed_from == 2
    for name, tensor in whole.state_dict().items():
        assert torch.equal(tensor, resumed_model.state_dict()[name]), name
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in load_checkpoint(tmp_path / "whole/last.pt")["history"]]


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    criterion = CrossEntropy(poison_epoch=2)

    def track(epoch: int, step: int) -> None:
        criterion.epoch = epoch

    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 3, step 1 .*last.pt holds epoch 2.*Start over with a lower lr .*try 0.05.*resume=False"):
        train(fresh_model(), criterion, loader(), config(tmp_path), on_step=track)
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1


def test_resuming_with_other_settings_is_refused(tmp_path: Path) -> None:
    train(fresh_model(), CrossEntropy(), loader(), config(tmp_path, epochs=1))
    with pytest.raises(CheckpointError, match=r"other settings \(1 differ: lr: 0.5 -> 0.1\)"):
        train(fresh_model(), CrossEntropy(), loader(), config(tmp_path, epochs=2, lr=0.1))


RANK1, MAP = Keep("rank1", "R1"), Keep("map", "mAP")


def scripted(scores: list[dict]):
    """An evaluation function that returns the given scores in turn (the selection test of a run)."""
    queue = iter(scores)
    return lambda model: next(queue)


def weights_at(path: Path) -> dict:
    return load_checkpoint(path)["model"]


def test_each_keep_holds_the_epoch_of_its_own_best_score(tmp_path: Path) -> None:
    """Best R1 after epoch 2 and best mAP after epoch 3: each kept checkpoint holds its own epoch's weights."""
    scores = [{"R1": 30.0, "mAP": 20.0}, {"R1": 50.0, "mAP": 25.0}, {"R1": 40.0, "mAP": 35.0}]
    epochs: dict[int, dict] = {}
    model = fresh_model()

    def snapshot(epoch: int, step: int) -> None:  # the weights at the end of each epoch are the next one's start
        if step == 0 and epoch > 0:
            epochs[epoch] = {k: v.clone() for k, v in model.state_dict().items()}

    result = train(model, CrossEntropy(), loader(), config(tmp_path, epochs=3, eval_every=1, keeps=(RANK1, MAP)),
                   evaluate_fn=scripted(scores), on_step=snapshot)
    epochs[3] = model.state_dict()
    assert {name: entry["epoch"] for name, entry in result.selected.items()} == {"rank1": 2, "map": 3}
    assert result.selected["rank1"]["value"] == 50.0 and result.selected["rank1"]["scores"] == scores[1]
    for name, epoch in (("rank1", 2), ("map", 3)):
        kept = load_checkpoint(kept_path(tmp_path, name))
        assert kept["epoch"] + 1 == epoch and kept["kept"] == name
        for key, tensor in epochs[epoch].items():
            assert torch.equal(kept["model"][key], tensor), (name, key)
    assert [row["test_R1"] for row in result.history] == [30.0, 50.0, 40.0]
    assert result.last_metrics == scores[-1]


@pytest.mark.parametrize("ties,expected", [("first", 1), ("last", 3)])
def test_equal_scores_keep_the_earlier_or_the_later_epoch_as_the_script_compares(tmp_path: Path, ties: str,
                                                                                  expected: int) -> None:
    """`score > best` (ties="first") keeps epoch 1 of three equal scores; `score >= best` ("last") epoch 3."""
    result = train(fresh_model(), CrossEntropy(), loader(),
                   config(tmp_path, epochs=3, eval_every=1, keeps=(Keep("rank1", "R1", ties=ties),)),
                   evaluate_fn=scripted([{"R1": 40.0}] * 3))
    assert result.selected["rank1"]["epoch"] == expected


def test_a_keep_reads_its_direction_and_a_missing_score_is_named(tmp_path: Path) -> None:
    keeps = (Keep("t2v_map", "mAP", "ir2rgb"), Keep("v2t_map", "mAP", "rgb2ir"))
    scores = [{"ir2rgb mAP": 10.0, "rgb2ir mAP": 30.0}, {"ir2rgb mAP": 20.0, "rgb2ir mAP": 5.0}]
    result = train(fresh_model(), CrossEntropy(), loader(), config(tmp_path / "a", epochs=2, eval_every=1, keeps=keeps),
                   evaluate_fn=scripted(scores))
    assert {n: e["epoch"] for n, e in result.selected.items()} == {"t2v_map": 2, "v2t_map": 1}
    with pytest.raises(KeyError, match="'rank1' is chosen by 'R1'"):
        train(fresh_model(), CrossEntropy(), loader(), config(tmp_path / "b", epochs=1, eval_every=1, keeps=(RANK1,)),
              evaluate_fn=scripted([{"mAP": 1.0}]))


def test_only_scheduled_evaluations_compete(tmp_path: Path) -> None:
    """MCE's official schedule, scaled down: test after 1-based epochs 2 and 4 (eval_first=2, eval_every=2); the
    off-schedule last epoch 5 is scored for the last-epoch numbers but is no candidate, however good."""
    result = train(fresh_model(), CrossEntropy(), loader(),
                   config(tmp_path, epochs=5, eval_every=2, eval_first=2, keeps=(MAP,)),
                   evaluate_fn=scripted([{"mAP": 0.4}, {"mAP": 0.6}, {"mAP": 0.9}]))
    assert [row.get("test_mAP") for row in result.history] == [None, 0.4, None, 0.6, 0.9]
    assert result.selected["map"]["epoch"] == 4 and result.last_metrics["mAP"] == 0.9


def test_without_a_schedule_the_last_epoch_is_the_only_candidate(tmp_path: Path) -> None:
    result = train(fresh_model(), CrossEntropy(), loader(), config(tmp_path / "a", epochs=2, keeps=(MAP,)),
                   evaluate_fn=scripted([{"mAP": 0.3}]))
    assert result.selected["map"]["epoch"] == 2
    nothing = train(fresh_model(), CrossEntropy(), loader(), config(tmp_path / "b", epochs=2, eval_every=1),
                    evaluate_fn=scripted([{"mAP": 0.3}, {"mAP": 0.1}]))
    assert nothing.selected == {} and not list((tmp_path / "b").glob("best_*.pt"))


def test_a_resumed_run_selects_exactly_as_an_uninterrupted_one(tmp_path: Path) -> None:
    scores = [{"R1": 10.0, "mAP": 40.0}, {"R1": 30.0, "mAP": 20.0}, {"R1": 20.0, "mAP": 30.0}, {"R1": 25.0, "mAP": 35.0}]
    rule = dict(epochs=4, eval_every=1, keeps=(RANK1, MAP))
    whole = train(fresh_model(), CrossEntropy(), loader(), config(tmp_path / "whole", **rule),
                  evaluate_fn=scripted(scores))

    def stop(epoch: int, step: int) -> None:
        if epoch == 2 and step == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(fresh_model(), CrossEntropy(), loader(), config(tmp_path / "split", **rule), evaluate_fn=scripted(scores),
              on_step=stop)
    resumed = train(fresh_model(), CrossEntropy(), loader(), config(tmp_path / "split", **rule),
                    evaluate_fn=scripted(scores[2:]))
    assert resumed.resumed_from == 2
    assert {n: (e["epoch"], e["value"]) for n, e in resumed.selected.items()} == \
        {n: (e["epoch"], e["value"]) for n, e in whole.selected.items()} == {"rank1": (2, 30.0), "map": (1, 40.0)}
    for name in ("rank1", "map"):
        for key, tensor in weights_at(kept_path(tmp_path / "whole", name)).items():
            assert torch.equal(tensor, weights_at(kept_path(tmp_path / "split", name))[key]), (name, key)


@pytest.mark.parametrize("change,field", [({"keeps": (MAP,)}, "keeps"), ({"eval_every": 2}, "eval_every"),
                                          ({"keeps": (Keep("rank1", "R1", ties="last"),)}, "keeps")])
def test_a_changed_selection_rule_is_refused_on_resume(tmp_path: Path, change: dict, field: str) -> None:
    rule = dict(epochs=1, eval_every=1, keeps=(RANK1,))
    train(fresh_model(), CrossEntropy(), loader(), config(tmp_path, **rule), evaluate_fn=scripted([{"R1": 1.0}]))
    with pytest.raises(CheckpointError, match=rf"other settings .*{field}"):
        train(fresh_model(), CrossEntropy(), loader(), config(tmp_path, **{**rule, "epochs": 2, **change}),
              evaluate_fn=scripted([{"R1": 1.0, "mAP": 1.0}]))


def test_a_kept_checkpoint_lost_in_a_crash_after_last_pt_is_rewritten_on_resume(tmp_path: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """last.pt is written first, then the kept checkpoints it records: a run killed in between resumes with the kept
    file rebuilt from last.pt, which holds exactly those weights."""
    rule = dict(epochs=3, eval_every=1, keeps=(RANK1,))
    real_save = trainer.save_atomic

    def die_on_kept(obj, path):
        if Path(path).name.startswith("best_") and obj["epoch"] == 1:
            raise Interrupt  # killed after last.pt of epoch 2, before best_rank1.pt
        return real_save(obj, path)

    monkeypatch.setattr(trainer, "save_atomic", die_on_kept)
    with pytest.raises(Interrupt):
        train(fresh_model(), CrossEntropy(), loader(), config(tmp_path, **rule),
              evaluate_fn=scripted([{"R1": 1.0}, {"R1": 5.0}]))
    assert load_checkpoint(kept_path(tmp_path, "rank1"))["epoch"] == 0  # still epoch 1's
    monkeypatch.setattr(trainer, "save_atomic", real_save)
    last = weights_at(tmp_path / "last.pt")
    resumed = train(fresh_model(), CrossEntropy(), loader(), config(tmp_path, **rule),
                    evaluate_fn=scripted([{"R1": 2.0}]))
    assert resumed.selected["rank1"]["epoch"] == 2
    kept = load_checkpoint(kept_path(tmp_path, "rank1"))
    assert kept["epoch"] == 1 and all(torch.equal(kept["model"][k], v) for k, v in last.items())


def test_a_kept_checkpoint_that_cannot_be_repaired_stops_the_resume(tmp_path: Path) -> None:
    rule = dict(epochs=3, eval_every=1, keeps=(RANK1,))
    train(fresh_model(), CrossEntropy(), loader(), config(tmp_path, **{**rule, "epochs": 2}),
          evaluate_fn=scripted([{"R1": 5.0}, {"R1": 1.0}]))
    kept_path(tmp_path, "rank1").unlink()  # epoch 1's weights, which last.pt (epoch 2) no longer holds
    with pytest.raises(CheckpointError, match=r"best_rank1.pt should hold epoch 1 .* holds nothing.*selection='last'"):
        train(fresh_model(), CrossEntropy(), loader(), config(tmp_path, **rule), evaluate_fn=scripted([{"R1": 2.0}]))


def test_keeps_are_checked() -> None:
    with pytest.raises(SelectionError, match="metric='top1'"):
        Keep("rank1", "top1")
    with pytest.raises(SelectionError, match="ties='middle'"):
        Keep("rank1", "R1", ties="middle")
    with pytest.raises(SelectionError, match="names best_<name>.pt"):
        Keep("rank 1")
    with pytest.raises(ConfigError, match="keeps"):
        TrainConfig(keeps=(RANK1, Keep("rank1", "mAP")))


def test_the_evaluation_schedule_follows_the_official_epoch_tests() -> None:
    official = [e for e in range(160) if e > 10 and e % 2 == 0]  # MCE train.py, 0-based epochs
    config = TrainConfig(epochs=160, eval_every=2, eval_first=13)
    assert [e for e in range(160) if config.scheduled_evaluation(e)] == official
    assert [e for e in range(6) if TrainConfig(eval_every=2).scheduled_evaluation(e)] == [1, 3, 5]
    with pytest.raises(ConfigError, match="eval_first"):
        TrainConfig(eval_first=-1)


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_atomic({"epoch": 1}, tmp_path / "last.pt")

    def broken_save(obj, file):
        Path(file).write_bytes(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_atomic({"epoch": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_a_full_disk_says_so_and_leaves_the_last_checkpoint_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_atomic({"epoch": 1}, tmp_path / "last.pt")

    def full(obj, file):
        Path(file).write_bytes(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(CheckpointError, match=r"the disk is full: writing .*last.pt failed .* MiB free.*previous last.pt "
                                              r"is intact.*Free some space"):
        save_atomic({"epoch": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1 and [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_a_damaged_checkpoint_is_refused_not_resumed(tmp_path: Path) -> None:
    """20 KB zeroed inside the weights: torch still reads the file; its checksum does not match any more."""
    model = fresh_model()
    train(model, CrossEntropy(), loader(), config(tmp_path, epochs=1))
    checkpoint = tmp_path / "last.pt"
    original = checkpoint.read_bytes()
    data = bytearray(original)
    weights = model.state_dict()["head.weight"].numpy().tobytes()  # where the head's weights lie in the file
    at = original.index(weights)
    data[at:at + len(weights)] = bytes(len(weights))
    checkpoint.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"last.pt is damaged: .*checksum.*delete it and rerun.*--no-resume"):
        train(fresh_model(), CrossEntropy(), loader(), config(tmp_path, epochs=2))
    data = bytearray(original)
    data[-200:] = bytes(200)  # the zip's directory at the end
    checkpoint.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"last.pt is (truncated|damaged).*delete it and rerun"):
        train(fresh_model(), CrossEntropy(), loader(), config(tmp_path, epochs=2))
    checkpoint.write_bytes(original[:len(original) // 3])  # cut short, as by an interrupted copy
    with pytest.raises(CheckpointError, match=r"last.pt is truncated: .*end is missing.*delete it and rerun"):
        train(fresh_model(), CrossEntropy(), loader(), config(tmp_path, epochs=2))
    checkpoint.write_bytes(original)
    assert train(fresh_model(), CrossEntropy(), loader(), config(tmp_path, epochs=2)).resumed_from == 1


def test_a_finished_run_asked_for_fewer_epochs_says_so(tmp_path: Path) -> None:
    train(fresh_model(), CrossEntropy(), loader(), config(tmp_path, epochs=3))
    with pytest.raises(CheckpointError, match=r"has trained 3 epochs, more than epochs=2.*not a 2-epoch model.*epochs=3"):
        train(fresh_model(), CrossEntropy(), loader(), config(tmp_path, epochs=2))


@pytest.mark.parametrize("fault,expected", [
    (KeyboardInterrupt(), r"interrupted in epoch 2 of 3: .*last.pt holds epoch 1. Run the same command"),
    (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
     r"out of GPU memory in epoch 2 .*Tried to allocate 2.00 GiB.*amp='bf16'.*last checkpoint is intact"),
    (RuntimeError("DataLoader worker (pid 4242) is killed by signal: Killed. "),
     r"a data loader process was killed in epoch 2 .*memory.*workers=0.*resume"),
])
def test_faults_during_training_get_one_clear_message(tmp_path: Path, fault: BaseException, expected: str) -> None:
    def fail(epoch: int, step: int) -> None:
        if epoch == 1:
            raise fault

    with pytest.raises((TrainingInterrupted, TrainingFailed), match=expected) as caught:
        train(fresh_model(), CrossEntropy(), loader(), config(tmp_path, epochs=3), on_step=fail)
    if isinstance(fault, KeyboardInterrupt):  # Ctrl-C stays a KeyboardInterrupt; IPython shows the one line
        assert isinstance(caught.value, KeyboardInterrupt) and caught.value._render_traceback_() == [str(caught.value)]


def test_strict_loading_names_keys_and_files(tmp_path: Path) -> None:
    model = TinyReID()
    state = model.state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["head.bias"]
    with pytest.raises(CheckpointError, match=r"missing keys \['head.bias'\], unexpected keys \['extra.weight'\]"):
        load_model_state(model, state, "run/last.pt")
    with pytest.raises(CheckpointError, match="does not fit TinyReID"):
        load_model_state(TinyReID(classes=3), TinyReID(classes=4).state_dict(), "x.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="checkpoint .*bad.pt is not a PyTorch file: it holds text"):
        load_checkpoint(tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="absent.pt does not exist"):
        load_checkpoint(tmp_path / "absent.pt")


class BlowsUpBatchNorm(TinyReID):
    """A finite loss, but statistics that become infinite: caught at the end of the epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("running_var", torch.ones(1))

    def forward(self, visible, infrared):
        self.running_var.fill_(float("inf"))
        return super().forward(visible, infrared)


def test_non_finite_statistics_stop_training(tmp_path: Path) -> None:
    torch.manual_seed(123)
    with pytest.raises(TrainingDiverged, match=r"after epoch 1 the model holds NaN or infinite values in \['running_var'\]"):
        train(BlowsUpBatchNorm(), CrossEntropy(), loader(), config(tmp_path))


def test_compile_wraps_the_training_network_and_may_change_on_resume(tmp_path: Path, monkeypatch) -> None:
    """compile=True trains through torch.compile's wrapper (stood in for here: inductor needs a C++ toolchain
    and minutes), checkpoints hold the plain module's weights, and a run may be resumed with it off."""
    compiled = []

    def fake_compile(module):
        compiled.append(module)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    model = fresh_model()
    train(model, CrossEntropy(), loader(), config(tmp_path, epochs=1, compile=True))
    assert compiled == [model]
    state = load_checkpoint(tmp_path / "last.pt")
    assert set(state["model"]) == set(model.state_dict())  # no "_orig_mod." prefixes
    with pytest.warns(UserWarning, match="epochs=2"):
        result = train(fresh_model(), CrossEntropy(), loader(), config(tmp_path, epochs=2, compile=False))
    assert result.resumed_from == 1 and len(compiled) == 1


def test_a_batch_transform_runs_on_every_batch_on_the_device_and_must_match_augment(tmp_path: Path) -> None:
    seen = []

    def shift(batch):
        visible, infrared, vp, ip = batch
        seen.append(visible.device.type)
        return visible + 1.0, infrared, vp, ip

    train(fresh_model(), CrossEntropy(), loader(), config(tmp_path, epochs=1, augment="device"), batch_transform=shift)
    assert seen and set(seen) == {"cpu"}
    with pytest.raises(ValueError, match="batch_transform is missing"):
        train(fresh_model(), CrossEntropy(), loader(), config(tmp_path / "b", epochs=1, augment="device"))
    with pytest.raises(ConfigError, match="augment='gpu'"):
        config(tmp_path, augment="gpu")
