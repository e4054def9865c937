"""MMN: the middle-modality generator, the stripe heads and their test variants, the criterion, the groups."""

from __future__ import annotations

import pytest
import torch

from vireid_lib.engine import TrainConfig, build_optimizer
from vireid_lib.eval import pairwise_distance
from vireid_lib.losses.consistency import ProjectedPairDistance
from vireid_lib.papers.mmn import PAPER, MiddleModalityGenerator, MMNCriterion, MMNRecipe, build_mmn


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_mmn(6, pretrained=False, arch="resnet18")


def test_the_generator_starts_as_the_channel_mean_and_learns() -> None:
    generator = MiddleModalityGenerator()
    images = torch.rand(2, 3, 16, 8)
    code = torch.relu(generator.visible_encode(images))
    torch.testing.assert_close(code, 0.999 * images.mean(1, keepdim=True))  # 0.333 x (R + G + B)
    middle_v, middle_i = generator(images, torch.rand(3, 3, 16, 8))
    assert middle_v.shape == (2, 3, 16, 8) and middle_i.shape == (3, 3, 16, 8) and (middle_v >= 0).all()
    (middle_v.sum() + middle_i.sum()).backward()
    assert all(p.grad is not None for p in generator.parameters() if p.requires_grad)


def test_training_outputs_cover_v_mv_i_mi_with_four_stripes(model) -> None:
    model.train()
    out = model(torch.randn(2, 3, 64, 32), torch.randn(2, 3, 64, 32))
    assert out["middle"].shape == (4, 3, 64, 32)
    for k in range(4):
        assert out[f"pooled_{k}"].shape == (8, 512) and out[f"logits_{k}"].shape == (8, 6)
    torch.testing.assert_close(out["pooled"], torch.cat([out[f"pooled_{k}"] for k in range(4)], dim=1))
    out["logits_0"].sum().backward()
    assert model.generator.visible_encode.weight.grad is not None  # the generator trains through the backbone
    model.zero_grad()


def test_test_variants_and_the_summed_score(model) -> None:
    model.eval()
    with torch.no_grad():
        query, gallery = model(torch.randn(3, 3, 64, 32), None), model(None, torch.randn(4, 3, 64, 32))
    assert query["embedding"].shape == (3, 2048)  # 4 stripes x 512 for a ResNet-18
    torch.testing.assert_close(query["embedding"].norm(dim=1), torch.ones(3))
    torch.testing.assert_close(query["embedding_sum"], query["embedding"] + query["embedding_middle"])
    # the "sum" variant with the dot metric is the sum of the four original/middle similarity matrices
    similarities = sum(q @ g.T for q in (query["embedding"], query["embedding_middle"])
                       for g in (gallery["embedding"], gallery["embedding_middle"]))
    torch.testing.assert_close(-pairwise_distance(query["embedding_sum"], gallery["embedding_sum"], "dot"), similarities)
    assert list(PAPER.variants) == ["original", "middle", "sum"] and PAPER.variants["sum"].metric == "dot"


def test_the_consistency_term_is_zero_for_identical_halves_and_positive_otherwise() -> None:
    torch.manual_seed(1)
    loss = ProjectedPairDistance(16)
    same = torch.randn(5, 16)
    with torch.no_grad():
        assert float(loss(torch.cat([same, same]))) == pytest.approx(0.0, abs=1e-6)
        assert float(loss(torch.randn(10, 16))) > 0.1


def test_the_criterion_uses_the_four_pairs_and_the_stripe_mean(model) -> None:
    model.train()
    labels = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])  # [V, M_v, I, M_i]; visible i and infrared i share an identity
    criterion = MMNCriterion(6, feature_dim=512)
    losses = criterion(model(torch.randn(2, 3, 64, 32), torch.randn(2, 3, 64, 32)), labels)
    assert set(losses) >= {"loss", "id", "triplet", "dc", "triplet_precision"}
    torch.testing.assert_close(losses["loss"].detach(), losses["id"] + losses["triplet"] + 0.2 * losses["dc"])


def test_the_optimiser_groups_follow_the_official_code_and_fix_dc_head(model, tmp_path) -> None:
    config = TrainConfig(lr=0.1, out_dir=str(tmp_path))
    official = build_optimizer(model, config, MMNCriterion(6, feature_dim=512))
    assert [g["lr"] for g in official.param_groups] == [pytest.approx(0.01), 0.1]
    head_ids = {id(p) for p in model.necks.parameters()}
    assert {id(p) for p in official.param_groups[1]["params"]} == {id(p) for p in model.necks.parameters() if p.requires_grad}
    assert id(model.generator.decode.weight) in {id(p) for p in official.param_groups[0]["params"]} - head_ids
    fixed = MMNCriterion(6, feature_dim=512, fix_dc_head=True)
    optimiser = build_optimizer(model, config, fixed)
    assert len(optimiser.param_groups) == 3
    assert {id(p) for p in optimiser.param_groups[2]["params"]} == {id(p) for p in fixed.consistency.parameters()}


def test_recipe_and_batch_layout() -> None:
    recipe = MMNRecipe()
    assert (recipe.height, recipe.width, recipe.num_ids, recipe.num_per_modality, recipe.epochs) == (384, 192, 4, 4, 81)
    assert (recipe.milestones, recipe.random_erasing, recipe.erasing_fill, recipe.fix_dc_head) == ((20, 50), 0.5, (0.0, 0.0, 0.0), False)
    batch = (torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4), torch.tensor([0, 1]), torch.tensor([2, 3]))
    inputs, labels = PAPER.batch.unpack(batch)
    assert len(inputs) == 2 and labels.tolist() == [0, 1, 0, 1, 2, 3, 2, 3]
