"""MITML as its code runs it: the used network's size, the temporal gating, the parameter groups and their lr at
every epoch, the adversarial modality classifier and its confusion term, and an exact resume across its start."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from vireid_lib.engine import TrainConfig, train
from vireid_lib.engine.trainer import build_optimizer
from vireid_lib.experiments import prepare
from vireid_lib.papers.mitml import MITMLCriterion, ModalityClassifier, build_mitml
from vireid_lib.models.layers import TemporalFeatureLearning
from vireid_lib.papers.mitml import MODALITY_CLASS, PAPER, official_size


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_the_network_has_the_size_of_the_official_used_network() -> None:
    # Built here from torch modules as model_main.py builds its used parts: ResNet-50 layers 1-4 + the layer4 copy +
    # two stems, nn.LSTM(2048, 2048, 2), six Linear(2048, 2048), six SE (2048 -> 128 -> 2048, no bias), BN + classifier.
    r = torchvision.models.resnet50(weights=None)
    body = sum(_count(getattr(r, name)) for name in ("layer1", "layer2", "layer3", "layer4"))
    se = _count(nn.Linear(2048, 128, bias=False)) + _count(nn.Linear(128, 2048, bias=False))
    expected = (body + _count(r.layer4) + 2 * (_count(r.conv1) + _count(r.bn1)) + _count(nn.LSTM(2048, 2048, 2))
                + 6 * (_count(nn.Linear(2048, 2048)) + se) + _count(nn.BatchNorm1d(2048))
                + _count(nn.Linear(2048, 500, bias=False)))
    # modal_Classifier(2048, 3): Conv1d(2048, 1024, 3) + BN, then 7 halving Conv1d(k 3) + BN blocks, Linear(8, 3).
    widths = [1024 // 2**i for i in range(8)]
    adversary = sum(_count(nn.Conv1d(a, b, 3)) + _count(nn.BatchNorm1d(b)) for a, b in zip([2048] + widths[:-1], widths))
    adversary += _count(nn.Linear(8, 3))
    network, classifier = official_size(500)
    assert (network, classifier) == (expected, adversary)
    assert round(network / 1e6, 1) == 135.0 and round(classifier / 1e6, 1) == 8.4


def test_six_frames_are_part_of_the_model() -> None:
    with pytest.raises(ValueError, match="seq_len=8.*6 frames only"):
        build_mitml(10, seq_len=8, pretrained=False, arch="resnet18")
    model = build_mitml(10, pretrained=False, arch="resnet18").eval()
    with pytest.raises(ValueError, match="clips of 6 frames.*got 4"):
        model(torch.randn(1, 4, 3, 64, 32))


def test_temporal_learning_follows_the_official_formula() -> None:
    torch.manual_seed(0)
    module = TemporalFeatureLearning(dim=32, seq_len=6, reduction=4)
    summary, temporal, frames = torch.randn(3, 32), torch.randn(3, 6, 32), torch.randn(3, 6, 32)
    expected = []
    for i in range(6):  # t_i = Linear_i(t) + x_l[i]; gate = sigmoid(W2 relu(W1 t_i / 2)); f = x_h[i] * gate + x_h[i]
        t_i = summary @ module.linears[i].weight.T + module.linears[i].bias + temporal[:, i]
        w1, w2 = module.gates[i][0].weight, module.gates[i][2].weight
        gate = torch.sigmoid(torch.relu((t_i / 2) @ w1.T) @ w2.T)
        expected.append(frames[:, i] * gate + frames[:, i])
    torch.testing.assert_close(module(summary, temporal, frames), torch.stack(expected).mean(dim=0))


def test_the_layer4_copy_starts_equal_trains_apart_and_feeds_the_lstm() -> None:
    torch.manual_seed(0)
    model = build_mitml(6, pretrained=False, arch="resnet18").train()
    main, copy_ = dict(model.backbone.layer4.named_parameters()), dict(model.temporal_layer4.named_parameters())
    assert all(torch.equal(main[k], copy_[k]) and main[k] is not copy_[k] for k in main)
    out = model(torch.randn(2, 6, 3, 64, 32), torch.randn(2, 6, 3, 64, 32))
    assert out["pooled"].shape == (4, 512) and out["logits"].shape == (4, 6)
    assert out["modality"].tolist() == [0, 0, 1, 1]
    out["logits"].sum().backward()
    for name, part in (("layer4 copy", model.temporal_layer4), ("lstm", model.lstm), ("gates", model.temporal)):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters()), name
    model.eval()
    with torch.no_grad():
        assert model(None, torch.randn(3, 6, 3, 64, 32))["embedding"].shape == (3, 512)


def _official_lr(epoch: int, lr: float = 0.1) -> float:
    # train.py adjust_learning_rate, transcribed
    if epoch < 10:
        return lr * (epoch + 1) / 10
    if epoch < 35:
        return lr
    if epoch < 80:
        return lr * 0.1
    return lr * 0.01


def test_the_lr_of_every_group_at_every_epoch() -> None:
    model = build_mitml(6, pretrained=False, arch="resnet18")
    r = PAPER.recipe
    config = TrainConfig(epochs=r.epochs, lr=r.lr, warmup_epochs=r.warmup_epochs, milestones=r.milestones, gamma=r.gamma)
    optimizer = build_optimizer(model, config)
    head = {id(p) for p in model.neck.parameters() if p.requires_grad}
    rest, neck = optimizer.param_groups
    assert {id(p) for p in neck["params"]} == head
    assert {id(p) for p in rest["params"]} == {id(p) for p in model.parameters() if p.requires_grad and id(p) not in head}
    assert all(any(p is q for q in rest["params"]) for p in (*model.lstm.parameters(), *model.temporal.parameters()))
    assert r.epochs == 200
    for epoch in range(200):
        factor = config.lr_factor(epoch)
        assert rest["base_lr"] * factor == pytest.approx(0.1 * _official_lr(epoch), rel=1e-12), epoch
        assert neck["base_lr"] * factor == pytest.approx(_official_lr(epoch), rel=1e-12), epoch


def _outputs(seed: int = 0) -> tuple[dict, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    pooled = torch.randn(8, 16, generator=g)
    pooled[4:] += 2.0  # the infrared half sits elsewhere: the classifier can learn the modalities
    pooled.requires_grad_(True)
    logits = torch.randn(8, 4, generator=g, requires_grad=True)
    return ({"pooled": pooled, "logits": logits, "modality": torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])},
            torch.tensor([0, 1, 2, 3, 0, 1, 2, 3]))


def test_the_confusion_term_is_off_before_its_epoch_and_on_from_it() -> None:
    torch.manual_seed(0)
    criterion = MITMLCriterion(4, dim=16, confusion_epoch=2).train()
    outputs, labels = _outputs()
    reference = MITMLCriterion(4, dim=16, confusion_epoch=2)
    plain = reference.identity(outputs["logits"], labels) + reference.triplet(outputs["pooled"], labels)
    plain_grad = torch.autograd.grad(plain, outputs["pooled"])[0]
    criterion.set_epoch(1)
    before = criterion(outputs, labels)
    assert before["confusion"] == 0 and torch.equal(before["loss"], before["id"] + before["triplet"])
    assert torch.equal(torch.autograd.grad(before["loss"], outputs["pooled"])[0], plain_grad)
    criterion.set_epoch(2)
    after = criterion(outputs, labels)
    assert after["confusion"] > 0
    torch.testing.assert_close(after["loss"], after["id"] + after["triplet"] + after["confusion"])
    assert not torch.allclose(torch.autograd.grad(after["loss"], outputs["pooled"])[0], plain_grad)


def test_the_classifier_learns_the_official_modality_labels_on_detached_features() -> None:
    torch.manual_seed(0)
    criterion = MITMLCriterion(4, dim=16, confusion_epoch=1000).train()
    outputs, labels = _outputs()
    first = [p.detach().clone() for p in criterion.modality.parameters()]
    for _ in range(30):
        losses = criterion(outputs, labels)
    assert any(not torch.equal(a, b) for a, b in zip(first, criterion.modality.parameters()))  # it steps every call
    assert outputs["pooled"].grad is None  # its step never reached the network's features
    assert losses["modality_accuracy"] == 1.0
    criterion.eval()
    with torch.no_grad():
        predicted = criterion.modality(outputs["pooled"]).argmax(dim=1)
    expected = [MODALITY_CLASS["visible"]] * 4 + [MODALITY_CLASS["infrared"]] * 4
    assert predicted.tolist() == expected == [1, 1, 1, 1, 0, 0, 0, 0]  # train.py: visible 1, thermal 0


def test_the_modality_classifier_shape() -> None:
    classifier = ModalityClassifier(2048).train()
    assert classifier(torch.randn(5, 2048)).shape == (5, 3)
    assert [b[0].out_channels for b in classifier.blocks] == [1024, 512, 256, 128, 64, 32, 16, 8]


def _run(root: Path, out: Path):
    return prepare("mitml", data_root=str(root), pretrained=False, arch="resnet18", height=64, width=32, epochs=3,
                   confusion_epoch=1, batches_per_epoch=2, num_ids=2, workers=0, device="cpu", progress=False,
                   eval_every=0, seed=3, out_dir=str(out))


class Killed(RuntimeError):
    pass


def test_resume_across_the_confusion_epoch_is_exact(synthetic_vcm: Path, tmp_path: Path) -> None:
    whole = _run(synthetic_vcm, tmp_path / "whole")
    history = whole.train().history
    assert history[0]["confusion"] == 0 and history[1]["confusion"] > 0 and history[2]["confusion"] > 0

    def kill(epoch: int, step: int) -> None:
        if epoch == 2 and step == 1:
            raise Killed

    cut = _run(synthetic_vcm, tmp_path / "cut")
    with pytest.raises(Killed):
        train(cut.model, cut.criterion, cut.loader, cut.train_config, on_step=kill)
    resumed = _run(synthetic_vcm, tmp_path / "cut")
    result = resumed.train()
    assert result.resumed_from == 2
    for mine, theirs in ((resumed.model, whole.model), (resumed.criterion, whole.criterion)):
        a, b = mine.state_dict(), theirs.state_dict()
        differing = [k for k in a if isinstance(a[k], torch.Tensor) and not torch.equal(a[k], b[k])]
        assert differing == [], differing[:3]
    assert [r["loss"] for r in result.history] == [r["loss"] for r in history]
