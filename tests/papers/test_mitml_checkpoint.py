"""MITML's released weights (``VCM-project233/MITML``'s ``*_best.t``) load strictly into the workbook's MITML.

The official-layout files are made here from the workbook's own model, never with the official
code: its tensors renamed to the names ``embed_net`` (model_main.py) gives them, plus the tensors
``embed_net`` builds but never runs, at their official shapes with random values. The layout only
renames prefixes, so a ResNet-18 model keeps the tests quick; the paper's size (ResNet-50, 500
identities) is checked on the meta device, where no weight is allocated.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torch import nn
from torch.nn import functional as F

from vireid_lib.engine.checkpoint import CheckpointError, load_weights
from vireid_lib.experiments import prepare
from vireid_lib.papers.mitml import MITML, OFFICIAL_LAYOUTS, ModalityClassifier, build_mitml

CLASSES = 7
ARCH = "resnet18"
RELEASED_NAME = "VCM_drop_0.2_2_8_lr_0.1_seed_0t2v_map_best.t"  # train.py's suffix + "t2v_map_best.t"

# Workbook module -> the module of MITML's embed_net that holds the same tensors (model_main.py).
OFFICIAL_NAMES = (
    ("backbone.visible_stem.", "visible_module.visible."),
    ("backbone.infrared_stem.", "thermal_module.thermal."),
    ("backbone.layer", "base_resnet.base.layer"),
    ("temporal_layer4.", "base_resnet.layer4."),
    ("neck.bn.", "bottleneck."),
    ("neck.classifier.", "classifier."),
    ("lstm.", "lstm."),
    *((f"temporal.linears.{i}.", f"temporal_feat_learning.{name}.") for i, name in enumerate("abcdef")),
    *((f"temporal.gates.{i}.", f"temporal_feat_learning.se_{i + 1}.fc.") for i in range(6)),
)
WHOLE_RESNETS = ("visible_module.visible.", "thermal_module.thermal.", "base_resnet.base.")


def randomise(module: nn.Module, seed: int) -> None:
    """Every float tensor random (variances positive), so that no mapping error hides behind an initial value;
    the temporal learning's weights larger, so that its gates differ from one frame position to the next."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if tensor.is_floating_point():
                values = torch.randn(tensor.shape, generator=generator) * (0.5 if name.startswith("temporal.") else 0.05)
                tensor.copy_(values.abs() + 0.5 if name.endswith("running_var") else values)


def _filler(generator: torch.Generator | None):
    def make(shape, like: torch.Tensor) -> torch.Tensor:
        if like.device.type == "meta":
            return torch.empty(shape, dtype=like.dtype, device="meta")
        if not like.is_floating_point():
            return torch.randint(0, 100, shape, dtype=like.dtype, generator=generator)
        return torch.randn(shape, generator=generator, dtype=like.dtype)
    return make


def official_state(model: MITML, seed: int = 5) -> dict[str, torch.Tensor]:
    """What ``net.state_dict()`` of MITML's embed_net holds for these weights: the used tensors under their
    official names, and the never-run ones (the rest of three whole ResNets, bottleneck1, classifier1/2, each
    SELayer's ``l`` conv) at their official shapes, random."""
    make = _filler(torch.Generator().manual_seed(seed))
    state = {}
    for key, tensor in model.state_dict().items():
        workbook, official = next((w, o) for w, o in OFFICIAL_NAMES if key.startswith(w))
        state[official + key[len(workbook):]] = tensor.clone()
    dim, classes = model.neck.bn.num_features, model.neck.classifier.weight.shape[0]
    like = next(iter(state.values()))
    with torch.device(like.device):
        # The official resnet.py's ResNet has no fc head: conv1, bn1 and layer1-4 only.
        whole = {k: v for k, v in getattr(torchvision.models, ARCH if dim == 512 else "resnet50")(weights=None)
                 .state_dict().items() if not k.startswith("fc.")}
    for holder in WHOLE_RESNETS:
        for key, tensor in whole.items():
            state.setdefault(holder + key, make(tensor.shape, tensor))
    count = state["bottleneck.num_batches_tracked"]
    for part in ("weight", "bias", "running_mean", "running_var"):
        state[f"bottleneck1.{part}"] = make((dim,), like)
    state["bottleneck1.num_batches_tracked"] = make((), count)
    for name in ("classifier1", "classifier2"):
        state[f"{name}.weight"] = make((classes, dim), like)
    for i in range(1, 7):
        state[f"temporal_feat_learning.se_{i}.l.weight"] = make((dim, dim, 1, 1), like)
        state[f"temporal_feat_learning.se_{i}.l.bias"] = make((dim,), like)
    return state


def official_modality_classifier(dim: int) -> dict[str, torch.Tensor]:
    """``net_modal_classifier``: modal_Classifier's state (first_layer, layers.0-6, Liner), saved beside the network."""
    classifier = ModalityClassifier(dim)
    renamed = {}
    for key, tensor in classifier.state_dict().items():
        if key.startswith("blocks.0."):
            renamed["first_layer." + key[len("blocks.0."):]] = tensor
        elif key.startswith("blocks."):
            index, rest = key[len("blocks."):].split(".", 1)
            renamed[f"layers.{int(index) - 1}.{rest}"] = tensor
        else:
            renamed["Liner." + key[len("linear."):]] = tensor
    return renamed


def fresh() -> MITML:
    torch.manual_seed(11)
    return build_mitml(CLASSES, pretrained=False, arch=ARCH)


def assert_same_tensors(model: nn.Module, reference: nn.Module) -> None:
    mine, theirs = model.state_dict(), reference.state_dict()
    assert mine.keys() == theirs.keys()
    differing = [k for k in mine if not torch.equal(mine[k], theirs[k])]
    assert differing == [], differing[:5]


@pytest.fixture(scope="module")
def original() -> MITML:
    model = fresh()
    randomise(model, seed=3)
    return model.eval()


@pytest.fixture(scope="module")
def official(original: MITML) -> dict[str, torch.Tensor]:
    return official_state(original)


def test_at_the_paper_size_every_official_tensor_is_mapped_or_named_unused() -> None:
    """ResNet-50, 500 identities: embed_net's 1071 tensors are the workbook's 422 and 649 the forward never runs."""
    with torch.device("meta"):
        model = build_mitml(500, pretrained=False)
    state = official_state(model)
    mapping = OFFICIAL_LAYOUTS[0].convert(state, model)
    own = model.state_dict()
    assert (len(state), len(mapping.used), len(mapping.unused)) == (1071, 422, 649)
    assert set(mapping.used) | set(mapping.unused) == set(state) and not set(mapping.used) & set(mapping.unused)
    assert set(mapping.state) == set(own) and not mapping.absent
    assert all(tuple(mapping.state[k].shape) == tuple(own[k].shape) for k in own)
    unused_modules = {}
    for key in mapping.unused:
        module = next((h for h in WHOLE_RESNETS if key.startswith(h)), key.rsplit(".", 1)[0])
        unused_modules[module] = unused_modules.get(module, 0) + 1
    # the three whole ResNet-50s (318 tensors each) lose the 6 + 6 stem and 312 layer tensors the forward runs
    assert unused_modules == {"visible_module.visible.": 312, "thermal_module.thermal.": 312, "base_resnet.base.": 6,
                              "bottleneck1": 5, "classifier1": 1, "classifier2": 1,
                              **{f"temporal_feat_learning.se_{i}.l": 2 for i in range(1, 7)}}


def test_a_released_best_t_file_loads_every_tensor_and_gives_the_same_features(
        original: MITML, official: dict, tmp_path: Path) -> None:
    path = tmp_path / RELEASED_NAME
    # What train.py saves: the network under "net", its modality classifier beside it, the test's mAP and epoch.
    torch.save({"net": official, "net_modal_classifier": official_modality_classifier(512),
                "mAP": np.float64(0.41), "epoch": 90}, path)
    model = fresh()
    assert not torch.equal(model.lstm.weight_hh_l1, original.lstm.weight_hh_l1)
    loaded = load_weights(model, path, OFFICIAL_LAYOUTS)
    assert loaded.kind == OFFICIAL_LAYOUTS[0].name and loaded.epoch == 91
    assert loaded.stored_metrics["mAP"] == pytest.approx(0.41)
    assert any("never used by the official forward" in note for note in loaded.notes)
    assert any("net_modal_classifier" in note for note in loaded.notes)
    assert_same_tensors(model, original)
    clips = torch.randn(2, 6, 3, 64, 32)
    model.eval()
    with torch.no_grad():
        for visible, infrared in ((clips, None), (None, clips)):
            assert torch.equal(model(visible, infrared)["embedding"], original(visible, infrared)["embedding"])



def _part(state: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def _official_resnet(state: dict, prefix: str) -> nn.Module:
    """One of embed_net's whole ResNets (last stride 1, no fc head) holding the file's tensors under ``prefix``."""
    net = getattr(torchvision.models, ARCH)(weights=None)
    for module in net.layer4[0].modules():
        if isinstance(module, nn.Conv2d) and module.stride == (2, 2):
            module.stride = (1, 1)
    result = net.load_state_dict(_part(state, prefix), strict=False)
    assert not result.unexpected_keys and all(k.startswith("fc.") for k in result.missing_keys)
    return net.eval()


def official_features(state: dict, clips: torch.Tensor, visible: bool) -> torch.Tensor:
    """embed_net.forward at test time (model_main.py), run on the file's tensors: the stem of the clip's modality,
    base layer1-3, the main layer4 (x_h) and the copy (x_l, into the sequence-first 2-layer LSTM), per frame
    position i ``a..f(t) + x_l[i]`` gating ``x_h[i]`` through ``se_{i+1}``, the mean over frames, the bottleneck in
    eval mode, L2-normalised."""
    clips_count, frames = clips.shape[:2]
    stem = _official_resnet(state, "visible_module.visible." if visible else "thermal_module.thermal.")
    base = _official_resnet(state, "base_resnet.base.")
    layer4_copy = copy.deepcopy(base.layer4)
    layer4_copy.load_state_dict(_part(state, "base_resnet.layer4."))
    dim = state["bottleneck.weight"].shape[0]
    lstm = nn.LSTM(dim, dim, 2)
    lstm.load_state_dict(_part(state, "lstm."))
    with torch.no_grad():
        x = stem.maxpool(stem.relu(stem.bn1(stem.conv1(clips.flatten(0, 1)))))
        x = base.layer3(base.layer2(base.layer1(x)))
        x_l = layer4_copy(x).mean(dim=(2, 3)).view(clips_count, frames, -1).permute(1, 0, 2)
        x_h = base.layer4(x).mean(dim=(2, 3)).view(clips_count, frames, -1).permute(1, 0, 2)
        t = lstm(x_l)[0][-1]
        gated = []
        for i, name in enumerate("abcdef"):
            learned = F.linear(t, state[f"temporal_feat_learning.{name}.weight"],
                               state[f"temporal_feat_learning.{name}.bias"]) + x_l[i]
            se = _part(state, f"temporal_feat_learning.se_{i + 1}.fc.")
            y = torch.sigmoid(F.linear(F.relu(F.linear(learned / 2, se["0.weight"])), se["2.weight"]))
            gated.append(x_h[i] * y + x_h[i])
        pooled = torch.stack(gated, dim=1).mean(dim=1)
        bn = _part(state, "bottleneck.")
        feat = F.batch_norm(pooled, bn["running_mean"], bn["running_var"], bn["weight"], bn["bias"], training=False)
    return F.normalize(feat, dim=1)


def test_the_loaded_model_gives_the_official_forwards_features(official: dict, tmp_path: Path) -> None:
    """Independent of the renaming above: the official forward, written from model_main.py, on the file's tensors."""
    path = tmp_path / RELEASED_NAME
    torch.save({"net": official}, path)
    model = fresh()
    load_weights(model, path, OFFICIAL_LAYOUTS)
    model.eval()
    clips = torch.randn(2, 6, 3, 64, 32)
    for visible in (True, False):
        with torch.no_grad():
            out = model(clips, None) if visible else model(None, clips)
        torch.testing.assert_close(F.normalize(out["embedding"], dim=1), official_features(official, clips, visible),
                                   rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("wrap", ["bare state dict", "under net", "module. prefix", "module. prefix under net"])
def test_every_way_the_weights_are_saved_loads(original: MITML, official: dict, tmp_path: Path, wrap: str) -> None:
    state = {f"module.{k}": v for k, v in official.items()} if "module." in wrap else official
    path = tmp_path / RELEASED_NAME
    torch.save({"net": state, "epoch": 0} if "net" in wrap else state, path)
    model = fresh()
    assert load_weights(model, path, OFFICIAL_LAYOUTS).kind == OFFICIAL_LAYOUTS[0].name
    assert_same_tensors(model, original)


def _renamed(state: dict, old: str, new: str) -> dict:
    return {(new if k == old else k): v for k, v in state.items()}


@pytest.mark.parametrize("change, named", [
    # a tensor under a name no module of MITML has: the file's name is given
    (lambda s: _renamed(s, "classifier.weight", "classifier0.weight"), "classifier0.weight"),
    # renamed inside a module that maps: the model tensor it should have filled is given
    (lambda s: _renamed(s, "base_resnet.layer4.1.conv2.weight", "base_resnet.layer4.1.conv2.kernel"),
     "temporal_layer4.1.conv2.weight"),
    (lambda s: {k: v for k, v in s.items() if k != "lstm.weight_hh_l1"}, "lstm.weight_hh_l1"),
    (lambda s: {k: v for k, v in s.items() if k != "temporal_feat_learning.f.bias"}, "temporal.linears.5.bias"),
    (lambda s: {**s, "temporal_feat_learning.g.weight": torch.zeros(512, 512)}, "temporal_feat_learning.g.weight"),
    (lambda s: {**s, "lstm.weight_ih_l2": torch.zeros(2048, 512)}, "lstm.weight_ih_l2"),
], ids=["renamed out of every module", "renamed inside the layer4 copy", "missing LSTM tensor", "missing linear bias",
        "extra linear", "extra LSTM layer"])
def test_a_file_that_does_not_fit_is_refused_naming_the_tensor(official: dict, tmp_path: Path, change,
                                                               named: str) -> None:
    path = tmp_path / RELEASED_NAME
    torch.save({"net": change(official)}, path)
    model = fresh()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match=named.replace(".", r"\.")):
        load_weights(model, path, OFFICIAL_LAYOUTS)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing was loaded


def test_only_mitml_files_are_recognised(official: dict) -> None:
    identify = OFFICIAL_LAYOUTS[0].identify
    assert identify(official.keys())
    # AGW's embed_net (Cross-Modal-Re-ID-baseline, which MITML builds on): same stems, layers and BNNeck names,
    # no layer4 copy, LSTM or temporal learning
    agw = {k for k in official if not k.startswith(("base_resnet.layer4.", "lstm.", "temporal_feat_learning."))}
    assert not identify(agw | {"NL_2.0.g.0.weight", "NL_3.0.W.1.weight"})
    assert not identify(fresh().state_dict().keys())


def test_prepare_evaluates_a_released_file(synthetic_vcm: Path, tmp_path: Path) -> None:
    settings = dict(data_root=str(synthetic_vcm), pretrained=False, arch=ARCH, height=64, width=32, num_ids=2,
                    workers=0, device="cpu", progress=False, out_dir=str(tmp_path / "runs"))
    reference = prepare("mitml", **settings).model  # the network the run builds (its classes: the data's)
    randomise(reference, seed=4)
    path = tmp_path / RELEASED_NAME
    torch.save({"net": official_state(reference), "mAP": np.float64(0.3), "epoch": 150}, path)
    run = prepare("mitml", checkpoint=str(path), **settings)
    assert run.loaded.kind == OFFICIAL_LAYOUTS[0].name and run.loaded.epoch == 151
    assert run.describe_selection().startswith("the loaded weights")
    assert_same_tensors(run.model, reference)
