"""AGW: forward outputs, optimiser groups, frozen BNNeck bias, recipe."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from vireid_lib.models import GeM
from vireid_lib.papers.agw import AGW, AGWRecipe, build_agw


@pytest.fixture(scope="module")
def model() -> AGW:
    torch.manual_seed(0)
    return build_agw(num_classes=5, pretrained=False)


def test_train_forward_shapes(model: AGW) -> None:
    model.train()
    out = model(torch.randn(2, 3, 64, 32), torch.randn(2, 3, 64, 32))
    assert set(out) == {"pooled", "bn", "logits"}
    assert out["pooled"].shape == (4, 2048)
    assert out["bn"].shape == (4, 2048)
    assert out["logits"].shape == (4, 5)
    assert torch.isfinite(out["logits"]).all()


@pytest.mark.parametrize("modality", ["visible", "infrared"])
def test_eval_forward_one_modality(model: AGW, modality: str) -> None:
    model.eval()
    with torch.no_grad():
        out = model(**{modality: torch.randn(3, 3, 64, 32)})
    assert out["embedding"].shape == (3, 2048)
    assert out["pooled"].shape == (3, 2048)
    torch.testing.assert_close(out["embedding"], model.neck.bn(out["pooled"]))


def test_eval_stems_differ_by_modality(model: AGW) -> None:
    model.eval()
    with torch.no_grad():
        model.backbone.infrared_stem.conv1.weight.mul_(2.0)
        x = torch.randn(2, 3, 64, 32)
        vis, ir = model(visible=x)["embedding"], model(infrared=x)["embedding"]
        model.backbone.infrared_stem.conv1.weight.div_(2.0)
    assert not torch.allclose(vis, ir)


def test_architecture_follows_agw(model: AGW) -> None:
    assert isinstance(model.pool, GeM) and model.pool.p == 3.0 and not model.pool.learnable
    assert len(model.backbone.non_local_blocks) == 5
    assert model.neck.classifier.bias is None
    assert model.backbone.layer4[0].conv2.stride == (1, 1)


def test_param_groups_lrs_and_coverage(model: AGW) -> None:
    groups = model.param_groups(0.1)
    assert [g["lr"] for g in groups] == pytest.approx([0.01, 0.1])
    ids = [id(p) for g in groups for p in g["params"]]
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert len(ids) == len(set(ids)) == len(trainable)
    assert set(ids) == trainable
    head = {id(p) for p in groups[1]["params"]}
    assert head == {id(model.neck.bn.weight), id(model.neck.classifier.weight)}
    torch.optim.SGD(groups, lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)


def test_bnneck_bias_frozen(model: AGW) -> None:
    assert model.neck.bn.bias.requires_grad is False
    torch.testing.assert_close(model.neck.bn.bias.detach(), torch.zeros(2048), rtol=0, atol=0)


def test_recipe_constants() -> None:
    recipe = AGWRecipe()
    assert (recipe.lr, recipe.momentum, recipe.weight_decay, recipe.nesterov) == (0.1, 0.9, 5e-4, True)
    assert (recipe.warmup_epochs, recipe.milestones, recipe.gamma, recipe.epochs) == (10, (20, 50), 0.1, 81)
    assert (recipe.height, recipe.width, recipe.num_ids, recipe.num_per_modality) == (288, 144, 8, 4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.lr = 1.0  # type: ignore[misc]


def test_fixed_non_local_width_option() -> None:
    model = build_agw(num_classes=3, pretrained=False, official_one_channel=False)
    assert model.backbone.non_local_blocks["layer3_3"].inter_channels == 512
