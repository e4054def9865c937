"""The synthetic person renderer: keypoints, modalities, walking, and cross-modal identity."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vireid_lib.data.records import INFRARED, VISIBLE
from vireid_lib.data.synthetic.render import (
    COCO17_LIMBS, COCO17_NAMES, Pose, Scene, render, sample_identity, sample_pose, walk,
)

SIZE = (64, 128)
LEFT = [i for i, n in enumerate(COCO17_NAMES) if n.startswith("left_")]
RIGHT = [i for i, n in enumerate(COCO17_NAMES) if n.startswith("right_")]


def person(seed: int = 0):
    return sample_identity(np.random.default_rng(seed))


def test_coco17_definition() -> None:
    assert len(COCO17_NAMES) == 17 and COCO17_NAMES[0] == "nose" and COCO17_NAMES[16] == "right_ankle"
    assert all(0 <= a < 17 and 0 <= b < 17 and a != b for a, b in COCO17_LIMBS)
    assert {frozenset(limb) for limb in COCO17_LIMBS} >= {frozenset((5, 7)), frozenset((11, 13)), frozenset((13, 15))}


@pytest.mark.parametrize("modality", [VISIBLE, INFRARED])
def test_render_returns_an_image_and_keypoints_inside_it(modality: int) -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        image, keypoints = render(person(int(rng.integers(100))), sample_pose(rng), Scene(2, modality), SIZE, rng)
        assert image.mode == "RGB" and image.size == SIZE
        assert keypoints.shape == (17, 3) and keypoints.dtype == np.float32
        assert (keypoints[:, 0] >= 0).all() and (keypoints[:, 0] < SIZE[0]).all()
        assert (keypoints[:, 1] >= 0).all() and (keypoints[:, 1] < SIZE[1]).all()
        assert ((keypoints[:, 2] >= 0) & (keypoints[:, 2] <= 1)).all()
        # anatomy: head above shoulders above hips above ankles
        assert keypoints[0, 1] < keypoints[5, 1] < keypoints[11, 1] < keypoints[15, 1]


def test_hidden_joints_score_lower() -> None:
    rng = np.random.default_rng(2)
    side = Pose(phase=0.0, facing="left", scale=0.85, cx=0.5, ground=0.95)
    _, keypoints = render(person(), side, Scene(1, VISIBLE), SIZE, rng)
    near, far = keypoints[LEFT, 2], keypoints[RIGHT, 2]
    mirrored = Pose(phase=0.0, facing="right", scale=0.85, cx=0.5, ground=0.95)
    _, mirror = render(person(), mirrored, Scene(1, VISIBLE), SIZE, rng)
    assert (near > far).sum() >= 5 and (mirror[RIGHT, 2] > mirror[LEFT, 2]).sum() >= 5
    front = render(person(), Pose(0.0, "front", 0.85, 0.5, 0.95), Scene(1, VISIBLE), SIZE, rng)[1]
    back = render(person(), Pose(0.0, "back", 0.85, 0.5, 0.95), Scene(1, VISIBLE), SIZE, rng)[1]
    assert front[0, 2] > back[0, 2]  # the nose is hidden from behind


def test_same_inputs_same_image() -> None:
    pose = sample_pose(np.random.default_rng(5))
    a, ka = render(person(3), pose, Scene(4, VISIBLE), SIZE, np.random.default_rng(9))
    b, kb = render(person(3), pose, Scene(4, VISIBLE), SIZE, np.random.default_rng(9))
    assert np.array_equal(np.asarray(a), np.asarray(b)) and np.array_equal(ka, kb)


def test_infrared_is_a_heat_image_not_a_grey_copy() -> None:
    rng = np.random.default_rng(4)
    correlations = []
    for seed in range(12):
        pose = Pose(phase=0.3, facing="front", scale=0.85, cx=0.5, ground=0.95)
        visible, _ = render(person(seed), pose, Scene(1, VISIBLE), SIZE, rng)
        thermal, keypoints = render(person(seed), pose, Scene(3, INFRARED), SIZE, rng)
        t = np.asarray(thermal, dtype=np.float64)
        assert np.array_equal(t[..., 0], t[..., 1]) and np.array_equal(t[..., 1], t[..., 2])
        v = np.asarray(visible, dtype=np.float64) @ [0.299, 0.587, 0.114]
        correlations.append(np.corrcoef(v.ravel(), t[..., 0].ravel())[0, 1])
        # the face (exposed skin) is hotter than the background
        x, y = keypoints[0, :2].astype(int)
        assert t[y, x, 0] > np.median(t[..., 0]) + 20
    assert np.mean(correlations) < 0.8


def test_walk_advances_phase_and_stays_in_frame() -> None:
    rng = np.random.default_rng(6)
    for _ in range(10):
        poses = walk(rng, 30)
        assert len(poses) == 30 and len({p.facing for p in poses}) == 1
        steps = np.diff(np.unwrap([p.phase * 2 * np.pi for p in poses])) / (2 * np.pi)
        assert 0.03 < steps.mean() < 0.15
        identity = person(int(rng.integers(50)))
        for pose in poses[::5]:
            _, keypoints = render(identity, pose, Scene(1, VISIBLE), SIZE, rng)
            assert (keypoints[:, :2] >= 0).all() and (keypoints[:, 0] < SIZE[0]).all()


def test_different_people_look_different() -> None:
    pose = Pose(phase=0.2, facing="front", scale=0.85, cx=0.5, ground=0.95)
    images = [np.asarray(render(person(s), pose, Scene(1, VISIBLE), SIZE, np.random.default_rng(0))[0], float) for s in range(6)]
    for i in range(6):
        for j in range(i + 1, 6):
            assert np.abs(images[i] - images[j]).mean() > 3


def shape_descriptor(image, keypoints: np.ndarray) -> np.ndarray:
    """A HOG-like histogram of gradient orientations over the person's crop: shape, not colour."""
    grey = np.asarray(image, dtype=np.float64).mean(axis=2)
    x0, x1 = max(0, int(keypoints[:, 0].min()) - 6), min(SIZE[0], int(keypoints[:, 0].max()) + 7)
    y0, y1 = max(0, int(keypoints[:, 1].min()) - 8), min(SIZE[1], int(keypoints[:, 1].max()) + 6)
    crop = np.asarray(Image.fromarray(grey[y0:y1, x0:x1]).resize((32, 64)), dtype=np.float64)
    gy, gx = np.gradient(crop)
    magnitude = np.hypot(gx, gy)
    bins = np.minimum(((np.arctan2(gy, gx) % np.pi) / np.pi * 6).astype(int), 5)
    cells = [np.bincount(bins[i:i + 4, j:j + 4].ravel(), magnitude[i:i + 4, j:j + 4].ravel(), 6)
             for i in range(0, 64, 4) for j in range(0, 32, 4)]
    feature = np.sqrt(np.concatenate(cells))
    return (feature - feature.mean()) / (feature.std() + 1e-9)


def test_identity_is_recognisable_across_modalities() -> None:
    """Shape links the modalities: with the pose held fixed, an infrared person's gradient
    histogram finds its visible twin among 20 people far above chance (1/20)."""
    rng = np.random.default_rng(8)
    pose = Pose(phase=0.15, facing="front", scale=0.85, cx=0.5, ground=0.95)
    people = [person(100 + s) for s in range(20)]
    gallery = np.stack([shape_descriptor(*render(p, pose, Scene(1, VISIBLE), SIZE, rng)) for p in people])
    query = np.stack([shape_descriptor(*render(p, pose, Scene(3, INFRARED), SIZE, rng)) for p in people])
    rank1 = np.mean((query @ gallery.T).argmax(axis=1) == np.arange(20))
    assert rank1 >= 0.4
