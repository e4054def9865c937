"""Two-stream ResNet-50: shapes, stems, size and strict weight loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from vireid_lib.models.backbone import TwoStreamResNet50, WeightsError, feature_map_size


@pytest.fixture(scope="module")
def backbone() -> TwoStreamResNet50:
    torch.manual_seed(0)
    return TwoStreamResNet50(pretrained=False)


@pytest.fixture(scope="module")
def resnet_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return torchvision.models.resnet50(weights=None).state_dict()


@pytest.fixture(scope="module")
def weights_path(tmp_path_factory: pytest.TempPathFactory, resnet_state: dict[str, torch.Tensor]) -> Path:
    path = tmp_path_factory.mktemp("weights") / "resnet50.pth"
    torch.save(resnet_state, path)
    return path


def test_last_stride_one_gives_sixteenth_resolution(backbone: TwoStreamResNet50) -> None:
    backbone.eval()
    with torch.no_grad():
        out = backbone(torch.randn(2, 3, 64, 32), torch.randn(2, 3, 64, 32))
    assert out.shape == (4, 2048, 4, 2)
    stride2 = TwoStreamResNet50(pretrained=False, last_stride=2).eval()
    with torch.no_grad():
        assert stride2(torch.randn(1, 3, 64, 32)).shape == (1, 2048, 2, 1)


def test_single_modality_and_order(backbone: TwoStreamResNet50) -> None:
    backbone.eval()
    v, i = torch.randn(2, 3, 64, 32), torch.randn(3, 3, 64, 32)
    with torch.no_grad():
        both = backbone(v, i)
        torch.testing.assert_close(both[:2], backbone(visible=v))
        torch.testing.assert_close(both[2:], backbone(infrared=i))
    with pytest.raises(ValueError):
        backbone()


def test_two_stems_are_separate_with_equal_initial_weights(backbone: TwoStreamResNet50) -> None:
    assert backbone.visible_stem is not backbone.infrared_stem
    vis, ir = backbone.visible_stem.state_dict(), backbone.infrared_stem.state_dict()
    assert vis.keys() == ir.keys()
    for key in vis:
        torch.testing.assert_close(vis[key], ir[key])
        assert vis[key].data_ptr() != ir[key].data_ptr()


def test_visible_only_step_changes_only_the_visible_stem() -> None:
    torch.manual_seed(0)
    model = TwoStreamResNet50(pretrained=False).train()
    before_v = {k: v.clone() for k, v in model.visible_stem.state_dict().items()}
    before_i = {k: v.clone() for k, v in model.infrared_stem.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    model(visible=torch.randn(2, 3, 64, 32)).pow(2).mean().backward()
    opt.step()
    assert not torch.equal(model.visible_stem.conv1.weight, before_v["conv1.weight"])
    for key, value in model.infrared_stem.state_dict().items():
        assert torch.equal(value, before_i[key]), key
    assert all(p.grad is None for p in model.infrared_stem.parameters())


def test_parameter_count_is_one_resnet_plus_one_stem(backbone: TwoStreamResNet50) -> None:
    total = sum(p.numel() for p in backbone.parameters())
    stem = sum(p.numel() for p in backbone.visible_stem.parameters())
    resnet = torchvision.models.resnet50(weights=None)
    without_fc = sum(p.numel() for n, p in resnet.named_parameters() if not n.startswith("fc."))
    assert stem == 64 * 3 * 7 * 7 + 2 * 64
    assert total == without_fc + stem
    assert total < 30_000_000  # the official three-ResNet build holds ~71M
    assert sum(p.numel() for p in backbone.stem_parameters()) == 2 * stem
    assert sum(p.numel() for p in backbone.body_parameters()) == total - 2 * stem


def test_shared_stem_has_one_stem() -> None:
    model = TwoStreamResNet50(pretrained=False, shared_stem=True)
    assert model.stem_of("visible") is model.stem_of("infrared") is model.stem
    assert not hasattr(model, "infrared_stem")


def test_non_local_placement_follows_agw() -> None:
    model = TwoStreamResNet50(pretrained=False, non_local=True)
    assert sorted(model.non_local_blocks.keys()) == ["layer2_2", "layer2_3", "layer3_3", "layer3_4", "layer3_5"]
    assert all(block.inter_channels == 1 for block in model.non_local_blocks.values())
    fixed = TwoStreamResNet50(pretrained=False, non_local=True, official_one_channel=False)
    assert fixed.non_local_blocks["layer2_2"].inter_channels == 256
    assert fixed.non_local_blocks["layer3_5"].inter_channels == 512


def test_weights_file_loads_into_both_stems_and_layers(
    weights_path: Path, resnet_state: dict[str, torch.Tensor]
) -> None:
    model = TwoStreamResNet50(pretrained=False, weights_file=weights_path, non_local=True)
    for stem in (model.visible_stem, model.infrared_stem):
        for key, value in stem.state_dict().items():
            torch.testing.assert_close(value, resnet_state[key], rtol=0, atol=0)
    state = model.state_dict()
    for key, value in resnet_state.items():
        if key.startswith("layer"):
            torch.testing.assert_close(state[key], value, rtol=0, atol=0)


def test_missing_num_batches_tracked_is_accepted(tmp_path: Path, resnet_state: dict[str, torch.Tensor]) -> None:
    # torchvision's own ImageNet files predate the BN counters.
    path = tmp_path / "old.pth"
    torch.save({k: v for k, v in resnet_state.items() if not k.endswith("num_batches_tracked")}, path)
    model = TwoStreamResNet50(pretrained=False, weights_file=path)
    torch.testing.assert_close(model.layer1[0].conv1.weight, resnet_state["layer1.0.conv1.weight"])


def _save(tmp_path: Path, state: dict[str, torch.Tensor]) -> Path:
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    return path


def test_missing_key_is_a_weights_error(tmp_path: Path, resnet_state: dict[str, torch.Tensor]) -> None:
    state = dict(resnet_state)
    del state["layer3.2.conv2.weight"]
    path = _save(tmp_path, state)
    with pytest.raises(WeightsError, match="layer3.2.conv2.weight") as info:
        TwoStreamResNet50(pretrained=False, weights_file=path)
    assert str(path) in str(info.value) and "missing" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_unexpected_key_is_a_weights_error(tmp_path: Path, resnet_state: dict[str, torch.Tensor]) -> None:
    path = _save(tmp_path, {**resnet_state, "bogus.weight": torch.zeros(1)})
    with pytest.raises(WeightsError, match="bogus.weight") as info:
        TwoStreamResNet50(pretrained=False, weights_file=path)
    assert str(path) in str(info.value) and "unexpected" in str(info.value)


def test_renamed_keys_are_a_weights_error(tmp_path: Path, resnet_state: dict[str, torch.Tensor]) -> None:
    path = _save(tmp_path, {f"module.{k}": v for k, v in resnet_state.items()})
    with pytest.raises(WeightsError, match="module.conv1.weight") as info:
        TwoStreamResNet50(pretrained=False, weights_file=path)
    assert "'conv1.weight'" in str(info.value) and "'module'" in str(info.value)


def test_fc_head_is_ignored_and_optional(tmp_path: Path, resnet_state: dict[str, torch.Tensor]) -> None:
    path = _save(tmp_path, {k: v for k, v in resnet_state.items() if not k.startswith("fc.")})
    TwoStreamResNet50(pretrained=False, weights_file=path)


def test_wrong_shape_is_a_weights_error(tmp_path: Path, resnet_state: dict[str, torch.Tensor]) -> None:
    path = _save(tmp_path, {**resnet_state, "conv1.weight": torch.zeros(64, 3, 3, 3)})
    with pytest.raises(WeightsError, match="conv1.weight"):
        TwoStreamResNet50(pretrained=False, weights_file=path)


@pytest.mark.parametrize("kind", ["garbage", "empty", "truncated", "pickled_module"])
def test_corrupt_file_is_a_weights_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "corrupt.pth"
    if kind == "garbage":
        path.write_bytes(b"this is not a checkpoint")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, path)
        path.write_bytes(path.read_bytes()[:200])
    else:  # a whole model object: not loadable with weights_only=True
        torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(WeightsError, match="corrupt.pth") as info:
        TwoStreamResNet50(pretrained=False, weights_file=path)
    assert "weights_only=False" not in str(info.value)


def test_non_state_dict_file_is_a_weights_error(tmp_path: Path, resnet_state: dict[str, torch.Tensor]) -> None:
    path = tmp_path / "checkpoint.pth"
    torch.save({"epoch": 3, "state_dict": {"conv1.weight": resnet_state["conv1.weight"]}}, path)
    with pytest.raises(WeightsError, match="checkpoint.pth") as info:
        TwoStreamResNet50(pretrained=False, weights_file=path)
    assert "state_dict" in str(info.value)


def test_missing_file_is_a_weights_error(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="nowhere.pth"):
        TwoStreamResNet50(pretrained=False, weights_file=tmp_path / "nowhere.pth")


def test_resnet18_arch_gives_512_channels_at_sixteenth_resolution_with_clamped_non_local() -> None:
    model = TwoStreamResNet50(pretrained=False, arch="resnet18", non_local=True).eval()
    assert model.out_channels == 512
    assert tuple(model(torch.zeros(1, 3, 64, 32)).shape) == (1, 512, 4, 2)
    # AGW's (0, 2, 3, 0) placement, cut to ResNet-18's two blocks per stage
    assert sorted(model.non_local_blocks) == ["layer2_0", "layer2_1", "layer3_0", "layer3_1"]
    stride2 = TwoStreamResNet50(pretrained=False, arch="resnet18", last_stride=2).eval()
    assert tuple(stride2(torch.zeros(1, 3, 64, 32)).shape[2:]) == (2, 1)


def test_weights_of_another_arch_are_rejected_naming_the_arch(tmp_path: Path) -> None:
    path = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    TwoStreamResNet50(pretrained=False, weights_file=path, arch="resnet18")  # its own arch loads
    with pytest.raises(WeightsError, match="resnet50"):
        TwoStreamResNet50(pretrained=False, weights_file=path)
    with pytest.raises(ValueError, match="arch='vgg16' is not supported"):
        TwoStreamResNet50(pretrained=False, arch="vgg16")


def test_feature_map_size_matches_the_backbone() -> None:
    for height, width, stride in ((288, 144, 1), (70, 30, 1), (384, 128, 2)):
        model = TwoStreamResNet50(pretrained=False, arch="resnet18", last_stride=stride).eval()
        assert feature_map_size(height, width, stride) == tuple(model(torch.zeros(1, 3, height, width)).shape[2:])
    assert feature_map_size(288, 144) == (18, 9)
