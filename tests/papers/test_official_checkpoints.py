"""The authors' released checkpoints load into the workbook's models and give the official features.

Each test builds a model with the official module structure (the attribute names of
Cross-Modal-Re-ID-baseline's ``embed_net`` and IV-REID's ``Baseline``, and their forward passes,
written here from the official code's structure), randomises every tensor, saves it the way the
official scripts do, loads the file through :func:`vireid_lib.engine.checkpoint.load_weights`
and compares the workbook model's test features with the official forward's.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from vireid_lib.engine.checkpoint import CheckpointError, load_weights
from vireid_lib.papers import agw, ivreid
from vireid_lib.papers.agw import build_agw
from vireid_lib.papers.ivreid import build_ivreid


def randomise(module: nn.Module, seed: int) -> None:
    """Every parameter and BN statistic random, so that no mapping error can hide behind an init value."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif name.endswith(("bn1.weight", "bn2.weight", "bn3.weight", "downsample.1.weight")) or "W.1.weight" in name:
                tensor.copy_(torch.rand(tensor.shape, generator=generator) * 0.5 + 0.5)
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.05)


# ----------------------------------------------------------------------------- AGW (embed_net)

class NonLocalOfficial(nn.Module):
    """Official Non_local: g and W are Sequentials; inner width 1 reproduces the official defect."""

    def __init__(self, channels: int, inner: int = 1) -> None:
        super().__init__()
        self.inner = inner
        self.g = nn.Sequential(nn.Conv2d(channels, inner, 1))
        self.W = nn.Sequential(nn.Conv2d(inner, channels, 1), nn.BatchNorm2d(channels))
        self.theta = nn.Conv2d(channels, inner, 1)
        self.phi = nn.Conv2d(channels, inner, 1)

    def forward(self, x):
        b, _, h, w = x.shape
        g = self.g(x).view(b, self.inner, -1).permute(0, 2, 1)
        theta = self.theta(x).view(b, self.inner, -1).permute(0, 2, 1)
        phi = self.phi(x).view(b, self.inner, -1)
        f = torch.matmul(theta, phi)
        y = torch.matmul(f / f.size(-1), g).permute(0, 2, 1).contiguous().view(b, self.inner, h, w)
        return self.W(y) + x


class Holder(nn.Module):
    def __init__(self, name: str, resnet: nn.Module) -> None:
        super().__init__()
        setattr(self, name, resnet)


class EmbedNetOfficial(nn.Module):
    """embed_net's structure: three whole ResNet-50s, NL_1..NL_4 ModuleLists, bottleneck, classifier."""

    def __init__(self, classes: int, non_layers=(0, 2, 3, 0)) -> None:
        super().__init__()

        def resnet():
            net = torchvision.models.resnet50(weights=None)
            net.layer4[0].conv2.stride = (1, 1)
            net.layer4[0].downsample[0].stride = (1, 1)
            return net

        self.thermal_module = Holder("thermal", resnet())
        self.visible_module = Holder("visible", resnet())
        self.base_resnet = Holder("base", resnet())
        layers = (3, 4, 6, 3)
        for stage, (count, channels) in enumerate(zip(non_layers, (256, 512, 1024, 2048)), start=1):
            setattr(self, f"NL_{stage}", nn.ModuleList([NonLocalOfficial(channels) for _ in range(count)]))
            setattr(self, f"NL_{stage}_idx", sorted(layers[stage - 1] - (i + 1) for i in range(count)))
        self.bottleneck = nn.BatchNorm1d(2048)
        self.classifier = nn.Linear(2048, classes, bias=False)

    def forward(self, x, modal: int):
        stem = self.visible_module.visible if modal == 1 else self.thermal_module.thermal
        x = stem.maxpool(stem.relu(stem.bn1(stem.conv1(x))))
        for stage in range(1, 5):
            blocks, where = getattr(self.base_resnet.base, f"layer{stage}"), getattr(self, f"NL_{stage}_idx")
            counter = 0
            for i, block in enumerate(blocks):
                x = block(x)
                if counter < len(where) and i == where[counter]:
                    x = getattr(self, f"NL_{stage}")[counter](x)
                    counter += 1
        pooled = (torch.mean(x.flatten(2) ** 3, dim=-1) + 1e-12) ** (1 / 3)
        feat = self.bottleneck(pooled)
        return nn.functional.normalize(feat, dim=1)


def workbook_features(model: nn.Module, images: torch.Tensor, infrared: bool) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        out = model(None, images) if infrared else model(images, None)
    return nn.functional.normalize(out["embedding"], dim=1)


@pytest.fixture(scope="module")
def official_agw() -> EmbedNetOfficial:
    torch.manual_seed(0)
    net = EmbedNetOfficial(classes=7)
    randomise(net, seed=1)
    return net.eval()


def test_an_official_agw_best_t_file_gives_the_official_features(official_agw, tmp_path: Path) -> None:
    path = tmp_path / "sysu_agw_p4_n8_lr_0.1_seed_0_best.t"
    # What the official train.py saves: the state dict under "net" beside NumPy scores.
    torch.save({"net": official_agw.state_dict(), "cmc": np.linspace(0.5, 1, 20).astype(np.float32),
                "mAP": np.float64(0.48), "mINP": np.float64(0.35), "epoch": 40}, path)
    model = build_agw(7, pretrained=False)
    loaded = load_weights(model, path, agw.OFFICIAL_LAYOUTS)
    assert loaded.kind.startswith("AGW") and loaded.epoch == 41
    assert loaded.stored_metrics["mAP"] == pytest.approx(0.48) and loaded.stored_metrics["R1"] == pytest.approx(0.5)
    images = torch.randn(2, 3, 64, 32)
    for modal, infrared in ((1, False), (2, True)):
        with torch.no_grad():
            expected = official_agw(images, modal)
        torch.testing.assert_close(workbook_features(model, images, infrared), expected, rtol=1e-4, atol=1e-5)


def test_official_agw_mapping_equals_loading_the_workbook_state_dict(official_agw, tmp_path: Path) -> None:
    """Loading through the layout and loading the equivalent workbook state dict give one model."""
    path = tmp_path / "best.t"
    torch.save({"net": {f"module.{k}": v for k, v in official_agw.state_dict().items()}, "epoch": 2}, path)  # DataParallel
    through_layout = build_agw(7, pretrained=False)
    load_weights(through_layout, path, agw.OFFICIAL_LAYOUTS)
    plain = tmp_path / "workbook_state.pt"
    torch.save(through_layout.state_dict(), plain)
    again = build_agw(7, pretrained=False)
    assert load_weights(again, plain, agw.OFFICIAL_LAYOUTS).kind == "state dict"
    images = torch.randn(3, 3, 64, 32)
    torch.testing.assert_close(workbook_features(again, images, False), workbook_features(through_layout, images, False))


def test_an_official_tensor_without_a_place_is_named(official_agw, tmp_path: Path) -> None:
    state = dict(official_agw.state_dict())
    state["NL_2.0.extra.weight"] = torch.zeros(1)
    torch.save({"net": state}, tmp_path / "odd.t")
    with pytest.raises(CheckpointError, match="NL_2.0.extra.weight"):
        load_weights(build_agw(7, pretrained=False), tmp_path / "odd.t", agw.OFFICIAL_LAYOUTS)


def test_another_number_of_identities_is_named_in_the_error(official_agw, tmp_path: Path) -> None:
    torch.save({"net": official_agw.state_dict()}, tmp_path / "best.t")
    with pytest.raises(CheckpointError, match=r"neck.classifier.weight: file \(7, 2048\), model \(5, 2048\)"):
        load_weights(build_agw(5, pretrained=False), tmp_path / "best.t", agw.OFFICIAL_LAYOUTS)


# ---------------------------------------------------------------------------- IV-ReID (Baseline)

def _official_ivreid_classes():
    """IV-REID's model.resnet.ResNet / Bottleneck-style blocks and model.baseline.Baseline, as importable classes."""
    resnet_module = types.ModuleType("model.resnet")
    baseline_module = types.ModuleType("model.baseline")

    class BasicBlock(nn.Module):  # every conv with bias=True, as the released resnet.py
        def __init__(self, inplanes, planes, stride=1, downsample=None):
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=True)
            self.bn1 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=True)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = downsample

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu(out + (self.downsample(x) if self.downsample is not None else x))

    class ResNet(nn.Module):
        def __init__(self, last_stride=1, layers=(2, 2, 2, 2)):
            super().__init__()
            self.inplanes = 64
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=True)
            self.bn1 = nn.BatchNorm2d(64)  # no ReLU after it: commented out in the release
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            self.layer1 = self._make(64, layers[0], 1)
            self.layer2 = self._make(128, layers[1], 2)
            self.layer3 = self._make(256, layers[2], 2)
            self.layer4 = self._make(512, layers[3], last_stride)

        def _make(self, planes, blocks, stride):
            downsample = None
            if stride != 1 or self.inplanes != planes:
                downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride, bias=True), nn.BatchNorm2d(planes))
            layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
            self.inplanes = planes
            layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
            return nn.Sequential(*layers)

        def forward(self, x):
            x = self.maxpool(self.bn1(self.conv1(x)))
            return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    class Baseline(nn.Module):
        def __init__(self, classes):
            super().__init__()
            self.base = ResNet()
            self.gap = nn.AdaptiveAvgPool2d(1)
            self.bottleneck = nn.BatchNorm1d(512)
            self.share_classifier = nn.Linear(512, classes)

        def forward(self, x):
            return self.bottleneck(self.gap(self.base(x)).flatten(1))

    for cls, module in ((BasicBlock, resnet_module), (ResNet, resnet_module), (Baseline, baseline_module)):
        cls.__module__ = module.__name__
        cls.__qualname__ = cls.__name__
        setattr(module, cls.__name__, cls)
    package = types.ModuleType("model")
    package.__path__ = []
    package.resnet, package.baseline = resnet_module, baseline_module
    return {"model": package, "model.resnet": resnet_module, "model.baseline": baseline_module}, Baseline


@pytest.fixture(scope="module")
def pickled_ivreid(tmp_path_factory) -> tuple[Path, nn.Module]:
    """A whole pickled Baseline, as ``torch.save(model, ...)`` in the official train scripts; the
    authors' classes are importable while saving and gone when the workbook reads the file."""
    modules, baseline = _official_ivreid_classes()
    sys.modules.update(modules)
    try:
        torch.manual_seed(0)
        net = baseline(classes=6)
        randomise(net, seed=2)
        path = tmp_path_factory.mktemp("ivreid") / "all_best.pth"
        torch.save(net, path)
    finally:
        for name in modules:
            sys.modules.pop(name)
    return path, net.eval()


@pytest.mark.parametrize("conv_bias", [True, False])
def test_a_pickled_official_ivreid_model_gives_the_official_features(pickled_ivreid, conv_bias: bool) -> None:
    path, official = pickled_ivreid
    model = build_ivreid(6, pretrained=False, arch="resnet18", conv_bias=conv_bias)
    loaded = load_weights(model, path, ivreid.OFFICIAL_LAYOUTS)
    assert loaded.kind.startswith("IV-ReID")
    notes = " ".join(loaded.notes)
    assert "visible_head" in notes and "never save the modality heads" in notes
    assert ("folded" in notes) is (not conv_bias)
    images = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        expected = nn.functional.normalize(official(images), dim=1)
    for infrared in (False, True):  # one shared network: both modalities give the same feature
        torch.testing.assert_close(workbook_features(model, images, infrared), expected, rtol=1e-4, atol=1e-5)


def test_folded_biases_match_the_biased_model_tensor_for_tensor(pickled_ivreid) -> None:
    path, _ = pickled_ivreid
    biased, folded = build_ivreid(6, pretrained=False, arch="resnet18"), build_ivreid(6, pretrained=False, arch="resnet18", conv_bias=False)
    load_weights(biased, path, ivreid.OFFICIAL_LAYOUTS)
    load_weights(folded, path, ivreid.OFFICIAL_LAYOUTS)
    state = biased.state_dict()
    bias = state["backbone.layer2.0.downsample.0.bias"]
    torch.testing.assert_close(folded.state_dict()["backbone.layer2.0.downsample.1.running_mean"],
                               state["backbone.layer2.0.downsample.1.running_mean"] - bias)


def test_the_default_ivreid_is_the_released_network() -> None:
    model = build_ivreid(3, pretrained=False)
    convs = [m for m in model.backbone.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 53 and all(c.bias is not None for c in convs)
    assert isinstance(model.backbone.stem.relu, nn.Identity)
    assert isinstance(build_ivreid(3, pretrained=False, stem_relu=True).backbone.stem.relu, nn.ReLU)


# ------------------------------------------------------------------------------ bad files

def test_files_that_are_not_weights_get_a_workbook_message(tmp_path: Path) -> None:
    model = build_ivreid(3, pretrained=False, arch="resnet18")
    (tmp_path / "notes.txt").write_text("these are my notes\n")
    with pytest.raises(CheckpointError, match="not a PyTorch file: it holds text") as info:
        load_weights(model, tmp_path / "notes.txt")
    assert "weights_only" not in str(info.value)
    torch.save({"lr": 0.1, "epochs": 3}, tmp_path / "config.pt")
    with pytest.raises(CheckpointError, match=r"holds a dict with keys \['epochs', 'lr'\], not model weights"):
        load_weights(model, tmp_path / "config.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="is empty"):
        load_weights(model, tmp_path / "empty.pt")
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="missing keys"):
        load_weights(model, tmp_path / "other.pt", ivreid.OFFICIAL_LAYOUTS)
