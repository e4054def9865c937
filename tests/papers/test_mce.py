"""MCE: the shared network, the memories (rebuild, backward-pass updates), each loss term, the recipe, resuming."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from vireid_lib.data.records import INFRARED, VISIBLE
from vireid_lib.data.transforms import build_test_transform
from vireid_lib.engine import train
from vireid_lib.experiments import prepare
from vireid_lib.papers import mce
from vireid_lib.papers.mce import PAPER, IdentityMemory, MCECriterion, build_mce, class_means, update_memory


def unit(*rows) -> torch.Tensor:
    return F.normalize(torch.tensor(rows, dtype=torch.float32), dim=1)


def small_run(root: Path, out: Path, dataset: str = "sysu", **overrides):
    settings = dict(pretrained=False, arch="resnet18", height=64, width=32, epochs=3, batches_per_epoch=2, num_ids=2,
                    workers=0, device="cpu", eval_trials=1, progress=False, seed=5, out_dir=str(out))
    return prepare(method="mce", dataset=dataset, data_root=str(root), **{**settings, **overrides})


# --- the network --------------------------------------------------------------------------------


def test_the_network_is_one_shared_resnet50_with_non_local_blocks_learnable_gem_and_no_classifier() -> None:
    torch.manual_seed(0)
    model = build_mce(pretrained=False)
    assert model.backbone.shared_stem and not hasattr(model.backbone, "visible_stem")
    assert sorted(model.backbone.non_local_blocks) == ["layer2_2", "layer2_3", "layer3_3", "layer3_4", "layer3_5"]
    assert all(b.inter_channels == 1 for b in model.backbone.non_local_blocks.values())  # the official 1-channel width
    assert model.pool.learnable and model.pool.p.detach().item() == 3.0 and model.neck.classifier is None
    assert not model.neck.bn.bias.requires_grad and model.neck.bn.bias.abs().sum() == 0
    # The official Model: torchvision's ResNet-50 without fc (23,508,032), five 1-channel non-local blocks
    # (7C + 3 each: theta, phi, g with bias, W conv + BN), GeM's p and the 2048-d neck.
    non_local = 2 * (7 * 512 + 3) + 3 * (7 * 1024 + 3)
    assert sum(p.numel() for p in model.parameters()) == 23_508_032 + non_local + 1 + 2 * 2048


def test_training_runs_v_i_ca_through_one_batch_and_evaluation_gives_the_post_bn_feature() -> None:
    torch.manual_seed(0)
    model = build_mce(pretrained=False, arch="resnet18").train()
    v, i, ca = (torch.randn(2, 3, 64, 32) for _ in range(3))
    out = model(v, i, ca)
    assert out["pooled"].shape == (6, 512) and out["bn"].shape == (6, 512)
    out["bn"].sum().backward()
    assert model.pool.p.grad is not None  # GeM's p trains
    model.eval()
    with torch.no_grad():
        test = model(None, i)
        torch.testing.assert_close(test["embedding"], model.neck.bn(model.pool(model.backbone(i, None)).flatten(1)))


# --- memories -----------------------------------------------------------------------------------


def test_the_rebuild_takes_normalised_class_means_and_the_global_memory_is_their_unnormalised_mean() -> None:
    torch.manual_seed(1)
    classes, dim = 3, 5
    views = [(torch.randn(9, dim) * 3, torch.tensor([0, 1, 2, 0, 1, 2, 0, 0, 1])) for _ in range(3)]
    criterion = MCECriterion(classes, dim)
    criterion.rebuild(views, epoch=0)
    expected = []
    for features, labels in views:  # independently: a loop over classes, normalising by hand
        rows = []
        for c in range(classes):
            members = [features[k] / features[k].norm() for k in range(len(labels)) if labels[k] == c]
            mean = torch.stack(members).mean(0)
            rows.append(mean / mean.norm())
        expected.append(torch.stack(rows))
    for memory, rows in zip(criterion.view_memories(), expected):
        torch.testing.assert_close(memory.features, rows)
        torch.testing.assert_close(memory.centers, rows)
    torch.testing.assert_close(criterion.memory.features, (expected[0] + expected[1] + expected[2]) / 3)
    assert (criterion.memory.features.norm(dim=1) < 1).all()  # train.py does not renormalise it
    first = criterion.snapshot(0)
    assert first["epoch"] == 1 and (first["labels"] >= 0).all() and len(first["labels"]) == 27
    criterion.rebuild(views, epoch=4)
    assert criterion.snapshot(0)["epoch"] == 1 and criterion.snapshot(1)["epoch"] == 5


def test_a_class_missing_from_a_view_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match=r"infrared images hold no sample of identities \[1\]"):
        class_means(torch.randn(2, 4), torch.tensor([0, 2]), 3, "infrared")


def test_the_hook_rebuilds_from_each_training_image_as_the_official_memory_loader_sees_it(
        synthetic_sysu: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class RedEverywhere:  # the CA pass's ChannelExchange, made deterministic: always the R channel
        def __init__(self, inplace: bool = False) -> None:
            pass

        def __call__(self, tensor):
            return tensor[:1].expand(3, -1, -1).clone()

    monkeypatch.setattr(mce, "ChannelExchange", RedEverywhere)
    run = small_run(synthetic_sysu, tmp_path)
    PAPER.hooks.on_epoch_start(run, 0)
    model, transform = run.model.eval(), build_test_transform(run.test_transform)
    pairs = run.loader.dataset

    def one_by_one(dataset, modality, exchange=False) -> torch.Tensor:
        images = torch.stack([transform(dataset.load(k)) for k in range(len(dataset.records))])  # evaluation mode:
        if exchange:  # one forward of the stack gives each image's own feature
            images = images[:, :1].expand(-1, 3, -1, -1)
        with torch.no_grad():
            return model(*((images, None) if modality == VISIBLE else (None, images)))["embedding"]

    labels = [torch.tensor([r.pid for r in d.records]) for d in (pairs.visible, pairs.infrared, pairs.visible)]
    features = [one_by_one(pairs.visible, VISIBLE), one_by_one(pairs.infrared, INFRARED),
                one_by_one(pairs.visible, VISIBLE, exchange=True)]
    classes = run.params["num_classes"]
    for memory, f, y in zip(run.criterion.view_memories(), features, labels):
        sums = torch.zeros(classes, f.shape[1]).index_add_(0, y, F.normalize(f, dim=1))
        torch.testing.assert_close(memory.features, F.normalize(sums / torch.bincount(y)[:, None], dim=1),
                                   atol=1e-5, rtol=1e-4)


def test_the_backward_pass_moves_the_global_memory_toward_the_least_similar_sample() -> None:
    memory = unit([1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0])
    before = memory.clone()
    # class 0: two samples, the second the less similar to row 0 (0.6 < 0.8); class 2: one sample; class 1 absent
    inputs = unit([0.8, 0.6, 0.0], [0.6, 0.0, 0.8], [0.0, 0.6, 0.8]).requires_grad_()
    labels = torch.tensor([0, 0, 2])
    logits = mce.MemoryUpdate.apply(inputs, labels, memory, 0.1, True)
    grad = torch.randn_like(logits)
    logits.backward(grad)
    torch.testing.assert_close(inputs.grad, grad @ before)  # gradients use the memory before the update
    row0 = 0.1 * torch.tensor([1.0, 0.0, 0.0]) + 0.9 * torch.tensor([0.6, 0.0, 0.8])
    row2 = 0.1 * torch.tensor([0.0, 0.0, 1.0]) + 0.9 * torch.tensor([0.0, 0.6, 0.8])
    torch.testing.assert_close(memory[0], row0 / row0.norm())
    torch.testing.assert_close(memory[2], row2 / row2.norm())
    torch.testing.assert_close(memory[1], before[1])  # a class not in the batch is untouched


def test_the_modality_memories_take_the_batch_mean_with_momentum_and_renormalise() -> None:
    memory = unit([1.0, 0.0], [0.0, 1.0])
    features = unit([0.6, 0.8], [0.0, 1.0], [1.0, 0.0])
    update_memory(memory, features, torch.tensor([1, 1, 0]), momentum=0.25, hard=False)
    row1 = 0.25 * torch.tensor([0.0, 1.0]) + 0.75 * torch.tensor([0.3, 0.9])  # mean of (0.6, 0.8) and (0, 1)
    torch.testing.assert_close(memory[1], row1 / row1.norm())
    torch.testing.assert_close(memory[0], torch.tensor([1.0, 0.0]))  # 0.25 e0 + 0.75 e0, renormalised
    assert torch.allclose(memory.norm(dim=1), torch.ones(2))


# --- the loss terms -----------------------------------------------------------------------------


def test_the_centre_triplet_uses_the_own_centre_and_the_nearest_other_centre_in_the_batch() -> None:
    criterion = MCECriterion(3, 2, margin=0.3)
    centres = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    features = torch.tensor([[0.6, 0.8], [0.0, 1.0], [1.0, 0.0]])
    labels = torch.tensor([0, 1, 2])
    # sample 0: own centre (1,0) at sqrt(0.8); others (0,1) at sqrt(0.4) and (-1,0) at sqrt(3.2) -> nearest sqrt(0.4)
    # sample 1: own at 0; nearest other sqrt(2) -> hinge 0. sample 2: own (-1,0) at 2; nearest other (1,0) at 0
    expected = (max(0.0, 0.8 ** 0.5 - 0.4 ** 0.5 + 0.3) + 0.0 + (2.0 - 0.0 + 0.3)) / 3
    assert criterion.centre_triplet(features, labels, centres).item() == pytest.approx(expected, abs=1e-5)


def test_the_memory_cross_entropy_is_at_temperature_005() -> None:
    memory = IdentityMemory(2, 2, momentum=0.25)
    memory.reset(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    loss = memory(torch.tensor([[3.0, 4.0]]), torch.tensor([1]))  # normalised to (0.6, 0.8)
    expected = -torch.log_softmax(torch.tensor([0.6, 0.8]) / 0.05, 0)[1]
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def _criterion_with_memories(dim: int = 3) -> MCECriterion:
    criterion = MCECriterion(2, dim)
    views = [(torch.eye(dim)[:2] + 0.1 * k, torch.tensor([0, 1])) for k in range(3)]
    criterion.rebuild(views)
    return criterion


def test_the_kl_term_pulls_each_view_toward_the_other_modalitys_detached_prediction() -> None:
    criterion = _criterion_with_memories()
    torch.manual_seed(2)
    bn = torch.randn(6, 3, requires_grad=True)
    labels = torch.tensor([0, 1, 0, 1, 0, 1])
    out = criterion({"bn": bn}, labels)
    f = F.normalize(bn, dim=1)
    v, i, ca = f[:2], f[2:4], f[4:]
    c_v, c_i, c_ca = (m.centers for m in criterion.view_memories())
    predictions = torch.cat([v @ c_v.T, i @ c_i.T, ca @ c_ca.T]) / 0.05
    targets = torch.cat([i @ c_v.T, v @ c_i.T, ca @ c_i.T]).detach() / 0.05
    p = F.softmax(targets, 1)
    by_hand = (p * (p.log() - F.log_softmax(predictions, 1))).sum() / 6  # KLDivLoss(reduction="batchmean")
    assert out["kl"].item() == pytest.approx(by_hand.item(), rel=1e-5)
    (grad,) = torch.autograd.grad(1.2 * by_hand, bn)
    fresh = _criterion_with_memories()
    bn2 = bn.detach().clone().requires_grad_()
    fresh.centre_weight, fresh.memory_weight, fresh.modality_weight = 0.0, 0.0, 0.0  # the KL term alone
    (mine,) = torch.autograd.grad(fresh({"bn": bn2}, labels)["loss"], bn2)
    torch.testing.assert_close(mine, grad, atol=1e-5, rtol=1e-4)


def test_the_total_is_the_weighted_sum_of_the_terms() -> None:
    criterion = _criterion_with_memories()
    torch.manual_seed(3)
    out = criterion({"bn": torch.randn(6, 3)}, torch.tensor([0, 1, 0, 1, 0, 1]))
    expected = out["centre"] + out["memory"] + out["visible"] + out["infrared"] + 0.4 * out["ca"] + 1.2 * out["kl"]
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(RuntimeError, match="memories were never built"):
        MCECriterion(2, 3)({"bn": torch.randn(6, 3)}, torch.tensor([0, 1, 0, 1, 0, 1]))


def test_the_criterion_runs_in_float32_under_mixed_precision() -> None:
    """Under autocast the memory logits would come back in bfloat16 and the backward pass's memory update would
    mix dtypes; the criterion computes in float32 whatever autocast says (CPU autocast stands in for CUDA's)."""
    torch.manual_seed(4)
    bn = torch.randn(6, 3, requires_grad=True)
    labels = torch.tensor([0, 1, 0, 1, 0, 1])
    plain, mixed = _criterion_with_memories(), _criterion_with_memories()
    expected = plain({"bn": bn}, labels)["loss"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = mixed({"bn": bn.to(torch.bfloat16)}, labels)["loss"]
    assert got.dtype == torch.float32 and got.item() == pytest.approx(expected.item(), rel=2e-2)
    got.backward()
    assert bn.grad is not None and mixed.memory.features.dtype == torch.float32
    assert not torch.equal(mixed.memory.features, mixed.memory.centers)  # the backward pass updated it


# --- the recipe ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset, expected", [
    # by hand from train.py's adjust_learning_rate: lr (e + 1) / 10 below 10; x0.1 when e > 20 (RegDB 30);
    # x0.01 when e >= 40 (RegDB 60)
    ("sysu", {0: 3.5e-5, 9: 3.5e-4, 10: 3.5e-4, 20: 3.5e-4, 21: 3.5e-5, 39: 3.5e-5, 40: 3.5e-6, 41: 3.5e-6}),
    ("regdb", {30: 3.5e-4, 31: 3.5e-5, 59: 3.5e-5, 60: 3.5e-6, 61: 3.5e-6}),
])
def test_the_lr_of_every_group_at_the_official_epochs(dataset, expected, synthetic_sysu, synthetic_regdb, tmp_path) -> None:
    from vireid_lib.engine import build_optimizer

    run = small_run(synthetic_sysu if dataset == "sysu" else synthetic_regdb, tmp_path, dataset, epochs=None)
    config = run.train_config
    assert config.optimizer == "adam" and config.weight_decay == 5e-4 and config.epochs == 160
    optimizer = build_optimizer(run.model, config, run.criterion)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == sum(
        1 for p in run.model.parameters() if p.requires_grad)  # GeM's p in, the frozen neck bias out
    for epoch, lr in expected.items():
        for group in optimizer.param_groups:
            assert group["base_lr"] * config.lr_factor(epoch) == pytest.approx(lr, rel=1e-9), (dataset, epoch)
    assert (config.eval_every, config.eval_first) == (2, 13)
    assert run.recipe.num_per_modality == (4 if dataset == "sysu" else 5)
    assert (run.recipe.height, run.recipe.width) == (64, 32)  # overridden here; the paper's below
    assert (PAPER.recipe_for(dataset).height, PAPER.recipe_for(dataset).width) == ((384, 128) if dataset == "sysu" else (288, 144))


def test_a_batch_is_v_i_ca_with_the_datasets_views(synthetic_regdb: Path, tmp_path: Path) -> None:
    run = small_run(synthetic_regdb, tmp_path, "regdb")
    assert run.batch.views == {"visible": ("erasing_grey_pad", "caj"), "infrared": ("erasing_grey_pad",)}
    inputs, labels = run.batch.unpack(next(iter(run.loader)))
    assert [x.shape[0] for x in inputs] == [10, 10, 10]  # 2 ids x 5 (RegDB), three views
    torch.testing.assert_close(labels[:10], labels[20:])  # CA carries the visible labels
    assert PAPER.batch.views == {"visible": ("erasing", "caj"), "infrared": ("caj",)}


# --- resuming -----------------------------------------------------------------------------------


class Killed(RuntimeError):
    pass


def test_kill_mid_training_and_resume_gives_the_same_memories_weights_and_metrics(synthetic_regdb: Path, tmp_path: Path) -> None:
    settings = dict(optimizer="adam", lr=1e-3, eval_every=1, eval_first=1, epochs=2)
    whole = small_run(synthetic_regdb, tmp_path / "whole", "regdb", **settings)
    whole.train()

    cut = small_run(synthetic_regdb, tmp_path / "cut", "regdb", **settings)

    def kill(epoch: int, step: int) -> None:
        if epoch == 1 and step == 1:  # mid-way through the second epoch: after its memories were rebuilt
            raise Killed

    with pytest.raises(Killed):
        train(cut.model, cut.criterion, cut.loader, cut.train_config, on_step=kill, evaluate_fn=cut.selection_test,
              unpack=cut.batch.unpack, on_epoch_start=lambda epoch: PAPER.hooks.on_epoch_start(cut, epoch))
    resumed = small_run(synthetic_regdb, tmp_path / "cut", "regdb", **settings)  # a new process builds the run afresh
    result = resumed.train()
    assert result.resumed_from == 1
    for mine, theirs in ((resumed.model, whole.model), (resumed.criterion, whole.criterion)):
        a, b = mine.state_dict(), theirs.state_dict()
        differing = [k for k in a if not torch.equal(a[k], b[k])]
        assert differing == [], f"{len(differing)} of {len(a)} tensors differ, e.g. {differing[:3]}"
    assert bool(resumed.criterion.built) and resumed.criterion.memory.features.abs().sum() > 0
    assert [r["loss"] for r in result.history] == [r["loss"] for r in whole.train_result.history]
    assert result.selected and result.selected["map"]["epoch"] == whole.train_result.selected["map"]["epoch"]
    assert result.selected["map"]["scores"] == whole.train_result.selected["map"]["scores"]
    after, before = resumed.selection_test(), whole.selection_test()
    assert after == before
    after, before = resumed._protocols().summary, whole._protocols().summary
    assert after[["R1", "mAP", "mINP"]].equals(before[["R1", "mAP", "mINP"]])
