"""IV-ReID strong baseline: outputs, modality heads, optimiser groups, recipe."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vireid_lib.papers.ivreid import IVReID, IVReIDRecipe, build_ivreid

KEYS = {
    "pooled",
    "bn",
    "logits",
    "visible_logits",
    "infrared_logits",
    "visible_logits_on_infrared",
    "infrared_logits_on_visible",
}


@pytest.fixture(scope="module")
def model() -> IVReID:
    torch.manual_seed(0)
    return build_ivreid(num_classes=5, pretrained=False)


def test_train_outputs_keys_and_shapes(model: IVReID) -> None:
    model.train()
    out = model(torch.randn(2, 3, 64, 32), torch.randn(3, 3, 64, 32))
    assert set(out) == KEYS
    assert out["pooled"].shape == out["bn"].shape == (5, 2048)
    assert out["logits"].shape == (5, 5)
    assert out["visible_logits"].shape == out["infrared_logits_on_visible"].shape == (2, 5)
    assert out["infrared_logits"].shape == out["visible_logits_on_infrared"].shape == (3, 5)


def test_architecture_follows_official(model: IVReID) -> None:
    backbone = model.backbone
    assert backbone.shared_stem and len(backbone.non_local_blocks) == 0
    assert backbone.layer4[0].conv2.stride == (1, 1)
    assert model.neck.bn.bias.requires_grad and model.neck.classifier.bias is not None
    for head in (model.visible_head, model.infrared_head):
        assert isinstance(head.bn, nn.BatchNorm1d) and head.bn.num_features == 2048
        assert (head.fc1.in_features, head.fc1.out_features) == (2048, 512)
        assert (head.fc2.in_features, head.fc2.out_features) == (512, 5)
        # No activation between the two FCs (official IDENet): the head is affine after its BN.
        assert [type(m) for m in head.children()] == [nn.BatchNorm1d, nn.Linear, nn.Linear]


def test_heads_see_their_own_halves(model: IVReID) -> None:
    # Training-mode outputs, but with every BN on running statistics so that samples do
    # not interact through batch statistics: then each row depends on its own image only.
    model.train()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
    try:
        torch.manual_seed(1)
        v, i = torch.randn(2, 3, 64, 32), torch.randn(2, 3, 64, 32)
        with torch.no_grad():
            out = model(v, i)
            # A head run on half the batch may take another BLAS kernel than on the whole: equal to ~1e-5.
            close = dict(rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(out["visible_logits"], model.visible_head(out["bn"][:2]), **close)
            torch.testing.assert_close(out["infrared_logits"], model.infrared_head(out["bn"][2:]), **close)
            torch.testing.assert_close(out["infrared_logits_on_visible"], model.infrared_head(out["bn"][:2]), **close)
            torch.testing.assert_close(out["visible_logits_on_infrared"], model.visible_head(out["bn"][2:]), **close)
            other = model(v, torch.randn(2, 3, 64, 32))
        torch.testing.assert_close(other["visible_logits"], out["visible_logits"], **close)
        torch.testing.assert_close(other["infrared_logits_on_visible"], out["infrared_logits_on_visible"], **close)
        assert not torch.allclose(other["infrared_logits"], out["infrared_logits"])
    finally:
        model.train()


def test_head_gradients_follow_their_losses(model: IVReID) -> None:
    model.train()
    model.zero_grad()
    out = model(torch.randn(2, 3, 64, 32), torch.randn(2, 3, 64, 32))
    out["visible_logits"].sum().backward()
    assert model.visible_head.fc2.weight.grad is not None
    assert model.infrared_head.fc2.weight.grad is None
    assert model.backbone.stem.conv1.weight.grad is not None  # head losses train the backbone too
    model.zero_grad()


def test_eval_forward(model: IVReID) -> None:
    model.eval()
    with torch.no_grad():
        out = model(infrared=torch.randn(3, 3, 64, 32))
    assert out["embedding"].shape == (3, 2048)
    torch.testing.assert_close(out["embedding"], model.neck.bn(out["pooled"]))


def test_training_needs_both_modalities(model: IVReID) -> None:
    model.train()
    with pytest.raises(ValueError, match="both"):
        model(visible=torch.randn(2, 3, 64, 32))


def test_param_groups_heads_at_ten_times(model: IVReID) -> None:
    groups = model.param_groups(1e-4)
    assert [g["lr"] for g in groups] == pytest.approx([1e-4, 1e-3])
    ids = [id(p) for g in groups for p in g["params"]]
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert len(ids) == len(set(ids)) and set(ids) == trainable
    heads = {id(p) for h in (model.visible_head, model.infrared_head) for p in h.parameters()}
    assert {id(p) for p in groups[1]["params"]} == heads
    assert id(model.neck.bn.bias) in {id(p) for p in groups[0]["params"]}
    torch.optim.Adam(groups, lr=1e-4, weight_decay=5e-4)


def test_recipe() -> None:
    recipe = IVReIDRecipe()
    assert (recipe.optimizer, recipe.lr, recipe.head_lr, recipe.weight_decay) == ("adam", 1e-4, 1e-3, 5e-4)
    assert (recipe.epochs, recipe.schedule, recipe.seed, recipe.replace) == (100, "constant", 2019, False)
    assert (recipe.height, recipe.width, recipe.num_ids, recipe.num_per_modality) == (384, 128, 8, 4)
    assert recipe.margin("SYSU-MM01") == 0.3 and recipe.margin("regdb") == 0.2
    with pytest.raises(ValueError):
        recipe.margin("vcm")
