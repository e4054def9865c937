"""STAR: bone features, the joint graph, graph attention, guided pooling, frame refinement, style disturbance,
skeletons read beside the frames, and a short learning run on synthetic HITSZ-VCM."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from vireid_lib.data.datasets import TrackletDataset, check_skeleton_store, skeleton_key
from vireid_lib.data.errors import DatasetError
from vireid_lib.data.skeletons import COCO17_BONES, FILE_NAME, SkeletonStore
from vireid_lib.data.transforms import TransformConfig, build_test_transform
from vireid_lib.data.vcm import HITSZVCM, frame_chunks
from vireid_lib.engine import TrainConfig, build_optimizer
from vireid_lib.experiments.common import ExperimentError
from vireid_lib.experiments import prepare
from vireid_lib.papers.star import (FrameRefinement, GraphAttention, GuidedGeMPooling, STARCriterion, STARRecipe,
                                    adain, bone_features, build_star, gem, skeleton_graph, style_augment)


def test_bone_lengths_and_angles_of_a_hand_made_skeleton() -> None:
    keypoints = torch.zeros(1, 1, 17, 3)
    keypoints[0, 0, 13, :2] = torch.tensor([10.0, 20.0])  # left knee
    keypoints[0, 0, 15, :2] = torch.tensor([13.0, 24.0])  # left ankle: bone (15, 13) runs ankle -> knee
    keypoints[0, 0, 5, :2] = torch.tensor([0.0, 0.0])  # left shoulder
    keypoints[0, 0, 6, :2] = torch.tensor([0.0, 7.0])  # right shoulder: bone (5, 6) points straight down (+y)
    features = bone_features(keypoints)[0, 0]
    assert features.shape == (38,)
    first = COCO17_BONES.index((15, 13))
    assert features[2 * first] == pytest.approx(5.0)  # |(10 - 13, 20 - 24)| = 5
    assert features[2 * first + 1] == pytest.approx(math.atan2(-4.0, -3.0))
    shoulders = COCO17_BONES.index((5, 6))
    assert features[2 * shoulders] == pytest.approx(7.0) and features[2 * shoulders + 1] == pytest.approx(math.pi / 2)
    with pytest.raises(ValueError, match=r"\[B, S, 17, 3\]"):
        bone_features(torch.zeros(2, 17, 3))


@pytest.mark.parametrize("official", [False, True])
def test_the_joint_graph_edges(official: bool) -> None:
    edges = skeleton_graph(12, official=official)
    pairs = set(map(tuple, edges.t().tolist()))
    bones = 19 * (1 if official else 12)
    assert edges.shape[1] == len(pairs) == 2 * (bones + 17 * 11)  # both directions, no duplicates
    assert all((b, a) in pairs for a, b in pairs)
    assert (15, 13) in pairs and (13, 15) in pairs  # a bone of frame 0
    assert ((15 + 17 * 3, 13 + 17 * 3) in pairs) is (not official)  # a bone of frame 3: only in the fixed graph
    assert all((j + 17 * t, j + 17 * (t + 1)) in pairs for t in range(11) for j in range(17))  # temporal links
    assert (0, 34) not in pairs and all(a != b for a, b in pairs)  # no skipping a frame, no self loop


def test_graph_attention_follows_gatconv_on_a_small_graph() -> None:
    torch.manual_seed(0)
    layer = GraphAttention(3, 4, heads=2, concat=True).eval().requires_grad_(False)
    x = torch.randn(1, 5, 3)
    adjacency = torch.eye(5, dtype=torch.bool)
    for source, target in [(0, 1), (1, 0), (1, 2), (3, 2), (4, 2)]:
        adjacency[target, source] = True
    out, weights = layer(x, adjacency)
    h = (x[0] @ layer.linear.weight.T).reshape(5, 2, 4)
    for head in range(2):
        for i in range(5):
            senders = adjacency[i].nonzero().flatten().tolist()
            scores = torch.stack([torch.nn.functional.leaky_relu(
                (h[i, head] * layer.att_target[0, head, 0]).sum() + (h[j, head] * layer.att_source[0, head, 0]).sum(),
                0.2) for j in senders])
            alpha = scores.softmax(0)
            torch.testing.assert_close(weights[0, head, i, senders], alpha)
            assert weights[0, head, i].sum() == pytest.approx(1.0)
            expected = (alpha[:, None] * h[senders, head]).sum(0) + layer.bias.reshape(2, 4)[head]
            torch.testing.assert_close(out[0, i, head * 4:(head + 1) * 4], expected)


def test_guided_pooling_weights_sum_to_one_and_a_forced_p_is_plain_gem() -> None:
    torch.manual_seed(0)
    pool = GuidedGeMPooling(dim=8, guide_dim=16)
    frames = torch.rand(3, 12, 8) + 0.01
    pooled, weights = pool(frames, torch.randn(3, 16))
    assert weights.shape == (3, 5, 8)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(3, 8))
    with torch.no_grad():
        for i, score in enumerate(pool.scores):
            score.weight.zero_()
            score.bias.fill_(50.0 if pool.p_values[i] == 3.0 else 0.0)
    pooled, _ = pool(frames, torch.randn(3, 16))
    torch.testing.assert_close(pooled, gem(frames, 3.0))
    torch.testing.assert_close(gem(frames, 1.0), frames.mean(dim=1) + 0.0, atol=1e-6, rtol=1e-6)


def test_frame_refinement_is_the_identity_plus_a_constant_when_its_attention_is_zeroed() -> None:
    torch.manual_seed(0)
    refine = FrameRefinement(dim=8, heads=4).eval()
    with torch.no_grad():
        for attention in (refine.bone_to_visual, refine.visual_to_bone):
            attention.out_proj.weight.zero_()
            attention.out_proj.bias.zero_()
        offsets = []
        for _ in range(3):
            bones, visual = torch.randn(2, 12, 8), torch.rand(2, 12, 8)
            refined, w_bone, w_visual = refine(bones, visual)
            offsets.append(refined - visual)
            torch.testing.assert_close(w_bone.sum(-1), torch.ones(2, 12))
    constant = refine.ffn(torch.zeros(1, 16)) + 1e-3
    for offset in offsets:  # the same residual for any input: nothing of the attention reaches the output
        torch.testing.assert_close(offset, constant.expand_as(offset))


def test_style_augmentation_and_adain() -> None:
    torch.manual_seed(0)
    visible, infrared = torch.randn(4, 3, 8, 4), torch.randn(4, 3, 8, 4)
    v, i = style_augment(visible, infrared)
    ratio = i / infrared
    assert torch.allclose(ratio, ratio[:, :1, :1, :1].expand_as(ratio), atol=1e-5)  # one factor per infrared frame
    assert ((ratio[:, 0, 0, 0] >= 0.5) & (ratio[:, 0, 0, 0] <= 1.5)).all()
    for frame in range(4):  # each visible output channel is some input channel times a factor in [0.5, 1.5]
        for c in range(3):
            factors = [(v[frame, c] / visible[frame, k]) for k in range(3)]
            assert any(torch.allclose(f, f.flatten()[0].expand_as(f), atol=1e-4) and 0.5 <= f.flatten()[0] <= 1.5
                       for f in factors)
    content, style = torch.randn(2, 5, 6, 6), torch.randn(2, 5, 6, 6) * 3 + 1
    mixed = adain(content, style)
    torch.testing.assert_close(mixed.flatten(2).mean(2), style.flatten(2).mean(2), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(mixed.flatten(2).std(2), style.flatten(2).std(2), atol=1e-3, rtol=1e-3)


def test_star_outputs_losses_and_attention_without_hooks() -> None:
    torch.manual_seed(0)
    model = build_star(5, seq_len=6, pretrained=False, arch="resnet18").train()
    clips = torch.randn(2, 6, 3, 64, 32)
    keypoints = torch.rand(2, 6, 17, 3) * 40
    outputs = model(clips, clips + 0.5, keypoints, keypoints + 1)
    assert outputs["frame_logits"].shape == outputs["disturbed_logits"].shape == (24, 5)
    assert outputs["logits"].shape == outputs["skeleton_logits"].shape == (4, 5) and outputs["defense"] > 0
    criterion = STARCriterion(5, skeleton_id_weight=0.5, consistency_weight=2.0)
    losses = criterion(outputs, torch.tensor([0, 1, 0, 1]))
    expected = (losses["id"] + losses["triplet"] + losses["frame_id"] + losses["disturbed_id"] + losses["defense"]
                + 0.5 * losses["skeleton_id"] + 2.0 * losses["consistency"])
    torch.testing.assert_close(losses["loss"], expected)
    losses["loss"].backward()
    for part in (model.bone_lstm, model.graph, model.refine, model.guided_pool):
        assert all(p.grad is not None for p in part.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match="keypoints"):
        model(clips, clips)
    attention = model.attention(clips, keypoints, "infrared")
    assert attention.bone_to_visual.shape == attention.visual_to_bone.shape == (2, 6, 6)
    assert attention.edge_weights().shape == (2, attention.edges.shape[1])
    assert attention.joint_importance().shape == (2, 6, 17) and attention.bone_importance().shape == (2, 6, 19)
    torch.testing.assert_close(attention.pooling.sum(1), torch.ones(2, 512))
    baseline = build_star(5, seq_len=6, pretrained=False, arch="resnet18", skeletons=False).eval()
    assert baseline(None, clips)["embedding"].shape == (2, 512)
    assert not hasattr(baseline, "graph")


def test_clips_come_with_the_keypoints_of_their_sampled_frames(synthetic_vcm: Path) -> None:
    store_path = synthetic_vcm / FILE_NAME
    visible, _ = HITSZVCM(synthetic_vcm).train()
    dataset = TrackletDataset(visible[:3], 6, build_test_transform(TransformConfig(64, 32)), skeletons=store_path)
    (clip, keypoints), pid, _ = dataset[1]
    assert clip.shape == (6, 3, 64, 32) and keypoints.shape == (6, 17, 3) and pid == visible[1].pid
    with SkeletonStore(store_path) as store:
        expected = [store.get(skeleton_key(visible[1].frames[i])) for i in dataset.frame_indices(1)]
    torch.testing.assert_close(keypoints, torch.from_numpy(np.stack(expected)))


def test_a_missing_or_foreign_store_is_a_clear_error(synthetic_vcm: Path, tmp_path: Path) -> None:
    visible, _ = HITSZVCM(synthetic_vcm).train()
    with pytest.raises(DatasetError, match="does not exist.*python -m vireid_lib.skeletons extract vcm"):
        check_skeleton_store(tmp_path / "none.h5", visible)
    with pytest.raises(ExperimentError, match="STAR reads skeletons.*does not exist"):
        prepare("star", data_root=str(synthetic_vcm), skeleton_store=str(tmp_path / "none.h5"), pretrained=False,
                arch="resnet18", workers=0)
    import h5py
    import shutil

    other = tmp_path / "other.h5"
    shutil.copy(synthetic_vcm / FILE_NAME, other)
    with h5py.File(other, "a") as f:
        f.attrs["dataset"] = "sysu"
    with pytest.raises(DatasetError, match="made for dataset 'sysu'"):
        check_skeleton_store(other, visible)
    missing = tmp_path / "missing.h5"
    shutil.copy(synthetic_vcm / FILE_NAME, missing)
    folder = skeleton_key(visible[0].frames[0]).rpartition("/")[0]
    with h5py.File(missing, "a") as f:
        del f[folder]
    with pytest.raises(DatasetError, match=f"no keypoints for frame .*{folder}.*rerun"):
        check_skeleton_store(missing, visible)


def test_short_star_training_with_skeletons_lifts_retrieval_above_untrained_and_chance(synthetic_vcm: Path,
                                                                                      tmp_path: Path) -> None:
    run = prepare("star", data_root=str(synthetic_vcm), pretrained=False, arch="resnet18", seq_len=6, height=64,
                  width=32, epochs=8, batches_per_epoch=6, num_ids=4, optimizer="adam", lr=1e-3, backbone_lr_factor=1.0,
                  device="cpu", workers=0, out_dir=str(tmp_path), resume=False, progress=False, seed=0, eval_every=0)
    gallery_ids = len({r.pid for r in run.reader.split("ir2rgb").gallery})
    before = run.evaluate().summary[["R1", "mAP"]].mean()
    run.train()
    after = run.evaluate().summary[["R1", "mAP"]].mean()
    chance = run.chance()[["R1", "mAP"]].mean()
    print(f"R1 {before['R1']:.1f} -> {after['R1']:.1f}, mAP {before['mAP']:.1f} -> {after['mAP']:.1f} "
          f"(chance R1 {chance['R1']:.1f}, mAP {chance['mAP']:.1f}; {gallery_ids} gallery identities)")
    assert after["mAP"] >= before["mAP"] + 5.0 and after["mAP"] >= chance["mAP"] + 5.0
    assert after["R1"] > before["R1"] and after["R1"] >= 1.3 * chance["R1"]


def test_one_parameter_group_at_a_tenth_of_lr_as_the_mindspore_optimiser() -> None:
    """MindSpore's `nn.SGD(net.trainable_params(), ...)` has one group, which adjust_learning_rate sets to 0.1 x lr:
    every parameter, both BNNecks and classifiers included, trains at 0.01 at the peak and 0.0001 at the end."""
    model = build_star(5, seq_len=4, pretrained=False, arch="resnet18")
    optimizer = build_optimizer(model, TrainConfig(lr=0.1))
    (group,) = optimizer.param_groups
    assert {id(p) for p in group["params"]} == {id(p) for p in model.parameters() if p.requires_grad}
    assert any(p is model.neck.classifier.weight for p in group["params"])
    config = TrainConfig(lr=STARRecipe.lr, milestones=STARRecipe.milestones, epochs=STARRecipe.epochs)
    peaks = [group["base_lr"] * config.lr_factor(e) for e in (0, 9, 10, 59, 60, 119, 120, 200)]
    assert peaks == pytest.approx([0.001, 0.01, 0.01, 0.01, 0.001, 0.001, 0.0001, 0.0001])


def test_graph_attention_vectors_take_gatconvs_glorot_bound() -> None:
    """PyG's glorot on `att_src` / `att_dst` of shape [1, heads, width]: bound sqrt(6 / (heads + width)), 0.577 for
    STAR's first layer (2 x 16) and 0.679 for its second (1 x 12)."""
    torch.manual_seed(0)
    for (inputs, width, heads), bound in (((3, 16, 2), math.sqrt(6 / 18)), ((32, 12, 1), math.sqrt(6 / 13))):
        vectors = torch.cat([torch.cat([layer.att_source.detach().flatten(), layer.att_target.detach().flatten()])
                             for layer in (GraphAttention(inputs, width, heads) for _ in range(20))])
        assert vectors.abs().max() <= bound and vectors.abs().max() >= 0.97 * bound
        assert float(vectors.std()) == pytest.approx(bound / math.sqrt(3), rel=0.1)  # uniform on [-bound, bound]


def test_the_default_graph_is_the_codes_first_frame_bones() -> None:
    assert STARRecipe().official_graph is True
    model = build_star(5, seq_len=12, pretrained=False, arch="resnet18")
    assert model.graph.edges.shape[1] == 412  # 2 x (19 bones + 17 x 11 temporal links)
    fixed = build_star(5, seq_len=12, pretrained=False, arch="resnet18", official_graph=False)
    assert fixed.graph.edges.shape[1] == 830


def test_star_test_clips_take_a_seeded_random_frame_of_each_chunk(synthetic_vcm: Path) -> None:
    """STAR's test loader draws one random frame per chunk (MITML's takes the first): seeded by the run's seed and the
    tracklet, the same tracklet gets the same frames whatever the order it is read in."""
    records = HITSZVCM(synthetic_vcm).split("ir2rgb").gallery[:16]
    transform = build_test_transform(TransformConfig(height=32, width=16))

    def frames(items, **rule):
        dataset = TrackletDataset(items, 6, transform, **rule)
        return [dataset.frame_indices(i) for i in range(len(items))]

    drawn = frames(records, test_frames="random", frame_seed=0)
    assert drawn == frames(records[::-1], test_frames="random", frame_seed=0)[::-1]
    assert drawn != frames(records, test_frames="random", frame_seed=1)
    assert drawn != frames(records)  # not each chunk's first frame
    for record, picks in zip(records, drawn):
        chunks = frame_chunks(len(record.frames), 6)
        assert all(pick in chunk for pick, chunk in zip(picks, chunks.tolist()))
    assert STARRecipe().test_frames == "random"
    with pytest.raises(ValueError, match="test_frames='middle'"):
        TrackletDataset(records, 6, transform, test_frames="middle")
