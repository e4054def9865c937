"""CAJ (ICCV21_CAJ/): the ADP triplet against a hand computation of loss.py's rule, the clamp that stalls it, the
[V, V_ca, I] batch, the selection rule of train_ext.py and testa.py's flip averaging."""

from __future__ import annotations

import math

import pytest
import torch

from vireid_lib.engine import TrainConfig
from vireid_lib.engine.extract import embed
from vireid_lib.experiments.runner import resolve_recipe, selection_config
from vireid_lib.papers import paper
from vireid_lib.papers.caj import CLAMP, AdaptiveWeightedTriplet, CAJCriterion, build_caj


def reference_adp(features: torch.Tensor, labels: torch.Tensor, alpha: float, gamma: float, square: bool) -> float:
    """loss.py's TripletLoss_ADP written out anchor by anchor, in float64."""
    x = features.double()
    n = len(x)
    total = 0.0
    for i in range(n):
        d = [math.sqrt(max(float(((x[i] - x[j]) ** 2).sum()), 1e-12)) for j in range(n)]
        pos = [labels[j] == labels[i] for j in range(n)]

        def weighted(sign: float, mask: list[bool]) -> float:
            # softmax_weights(dist * mask): the max over the masked row counts masked entries as 0
            logits = [sign * alpha * d[j] if mask[j] else 0.0 for j in range(n)]
            top = max(logits)
            e = [math.exp(logits[j] - top) if mask[j] else 0.0 for j in range(n)]
            z = sum(e) + 1e-6
            return sum(d[j] * e[j] / z for j in range(n))

        ap, an = weighted(1.0, pos), weighted(-1.0, [not p for p in pos])
        if square:
            diff = min(gamma * (ap - an) ** 2, CLAMP)
            y = -1.0 if ap > an else 1.0
            total += math.log1p(math.exp(-y * diff))
        else:
            total += math.log1p(math.exp(-gamma * (an - ap)))
    return total / n


@pytest.mark.parametrize("square", [True, False])
@pytest.mark.parametrize("alpha, gamma", [(1.0, 1.0), (0.5, 2.0)])
def test_the_adp_triplet_is_loss_pys_rule(square: bool, alpha: float, gamma: float) -> None:
    torch.manual_seed(0)
    features = torch.randn(12, 6)
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    loss, precision, clamped = AdaptiveWeightedTriplet(alpha, gamma, square)(features, labels)
    # float32 distances by |x|^2 + |y|^2 - 2xy, as pdist_torch computes them: agreement to 1e-4
    assert loss.item() == pytest.approx(reference_adp(features, labels, alpha, gamma, square), rel=1e-4)
    assert 0.0 <= precision.item() <= 1.0 and clamped.item() == 0.0


def test_past_the_clamp_the_squared_loss_gives_no_gradient_and_says_so() -> None:
    """Issue #27: features far apart push gamma (d_ap - d_an)^2 past 88, where clamp_max has zero gradient."""
    torch.manual_seed(1)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    features = (torch.randn(6, 4) * 100).requires_grad_()
    loss, _, clamped = AdaptiveWeightedTriplet(square=True)(features, labels)
    loss.backward()
    assert clamped.item() == 1.0 and torch.count_nonzero(features.grad) == 0
    features.grad = None
    unsquared, _, none_clamped = AdaptiveWeightedTriplet(square=False)(features, labels)
    unsquared.backward()
    assert none_clamped.item() == 0.0 and torch.count_nonzero(features.grad) > 0  # the switch keeps learning


def test_the_criterion_adds_cross_entropy_and_logs_the_clamped_fraction() -> None:
    torch.manual_seed(2)
    labels = torch.tensor([0, 1, 0, 1, 0, 1])
    outputs = {"logits": torch.randn(6, 2), "pooled": torch.randn(6, 8)}
    terms = CAJCriterion(2)(outputs, labels)
    identity = torch.nn.functional.cross_entropy(outputs["logits"], labels)
    assert terms["id"].item() == pytest.approx(identity.item(), rel=1e-6)
    assert terms["loss"].item() == pytest.approx(identity.item() + terms["adp"].item(), rel=1e-6)
    assert set(terms) >= {"clamped", "triplet_precision"}


def test_the_batch_is_two_visible_views_then_the_infrared_one() -> None:
    layout = paper("caj").batch
    assert layout.views == {"visible": ("erasing", "caj"), "infrared": ("caj",)}
    visible = (torch.zeros(2, 3, 8, 4), torch.ones(2, 3, 8, 4))
    inputs, labels = layout.unpack((visible, 2 * torch.ones(2, 3, 8, 4), torch.tensor([5, 6]), torch.tensor([5, 6])))
    assert [float(x[0, 0, 0, 0]) for x in inputs] == [0.0, 1.0, 2.0]
    assert labels.tolist() == [5, 6, 5, 6, 5, 6]  # cat(label1, label1, label2)


def test_the_checkpoint_is_picked_as_train_ext_py_picks_it_and_reported_with_flip() -> None:
    declared = paper("caj")
    recipe = declared.recipe_for("sysu")
    assert recipe.epochs == 100 and recipe.square and recipe.adp_alpha == recipe.adp_gamma == 1.0
    assert recipe.gamma == 0.1 and recipe.milestones == (20, 50) and recipe.warmup_epochs == 10  # AGW's lr steps
    config = TrainConfig(epochs=recipe.epochs, **selection_config(recipe))
    tested = [e + 1 for e in range(recipe.epochs) if config.scheduled_evaluation(e)]
    assert tested == list(range(3, 100, 2))  # 0-based 2, 4, ..., 98: the 100th epoch is never tested
    (keep,) = config.keeps
    assert keep.metric == "R1" and keep.ties == "first"  # cmc_att[0] > best_acc
    reported, chosen_by = next(iter(declared.variants.values())), declared.variants[recipe.selection_rule.variant]
    assert reported.flip and reported.output == "embedding" and not chosen_by.flip


def test_the_switch_reaches_the_criterion() -> None:
    recipe = resolve_recipe(paper("caj"), "regdb", {"square": False})
    criterion = paper("caj").criterion(4, recipe, "regdb")
    assert criterion.adp.square is False


def test_flip_averaging_averages_unit_features_as_testa_py() -> None:
    torch.manual_seed(3)
    model = build_caj(4, paper("caj").recipe_for("sysu").__class__(arch="resnet18"), pretrained=False).eval()
    images = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        plain = model(images, None)["embedding"]
        mirrored = model(torch.flip(images, dims=[-1]), None)["embedding"]
    assert torch.allclose(plain.norm(dim=1), torch.ones(2), atol=1e-5)  # embed_net's l2norm in evaluation
    averaged = embed(model, images, 0, flip=True)
    assert torch.allclose(averaged, (plain + mirrored) / 2, atol=1e-5)
